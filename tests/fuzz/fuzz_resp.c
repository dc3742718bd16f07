/* fuzz_resp: a libFuzzer target for examples/resp.h, kv's request parser (tests/fuzz/run.sh;
 * make check replays its corpus through a plain build, tests/fuzz/corpus.test).
 * Each input is parsed whole, then again fed in pieces whose sizes come from its first byte
 * (moved in memory between calls, as a connection's buffer is); both ways must see the same
 * requests and end the same way, and every argument must lie inside the bytes used. */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../examples/resp.h"

/* A digest of what parsing buf[0..n) in pieces of step bytes (0: all at once) produced. */
static uint64_t run(const uint8_t *data, size_t n, size_t step)
{
    struct resp_parser p;
    resp_init(&p);
    p.max_bulk = 1 << 12;      /* small limits, so that inputs reach them */
    p.max_args = 64;
    p.max_inline = 64;
    char *work = malloc(n + 1);
    if (!work)
        abort();
    size_t have = 0, start = 0, fed = 0;
    uint64_t h = 1469598103934665603ULL;
    for (;;) {
        int r = resp_parse(&p, work + start, have - start);
        if (r == RESP_CMD) {
            assert(p.used > 0 && p.used <= have - start);
            for (int i = 0; i < p.argc; i++) {
                assert(p.off[i] <= p.used && p.len[i] <= p.used - p.off[i]);
                for (size_t k = 0; k < p.len[i]; k++)
                    h = (h ^ (uint8_t)work[start + p.off[i] + k]) * 1099511628211ULL;
                h = (h ^ 0x100) * 1099511628211ULL;
            }
            h = (h ^ 0x200) * 1099511628211ULL;
            start += p.used;
            continue;
        }
        if (r == RESP_ERROR) {
            h = (h ^ 0x300 ^ strlen(p.err)) * 1099511628211ULL;
            break;
        }
        assert(r == RESP_MORE);
        if (fed == n)
            break;
        memmove(work, work + start, have - start);
        have -= start;
        start = 0;
        size_t k = step && n - fed > step ? step : n - fed;
        memcpy(work + have, data + fed, k);
        have += k;
        fed += k;
    }
    resp_free(&p);
    free(work);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 16;
    assert(run(data + 1, size - 1, 0) == run(data + 1, size - 1, step));
    return 0;
}

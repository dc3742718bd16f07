/* Fuzz harness: examples/http.h's request-head parser, on its own and as examples/httpd.c
 * drives it (reads of any size into a 1 KiB buffer that grows to HTTP_HEAD_MAX, pipelined
 * requests, bodies skipped by Content-Length). Checked for every input: no out-of-bounds
 * access (the parser gets exact-size heap copies, ASan watches), a verdict in the set the
 * server answers, an error never keeps the connection, the response fits its buffer, a
 * prefix of the input never decides differently from the whole, and the server's buffer
 * never fills without a verdict (which it would take for the client's EOF).
 * Built for libFuzzer by tests/fuzz/run.sh, and with tests/fuzz/replay.c for make check. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../examples/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                                        \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_http: %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

/* http_parse on an exact-size heap copy of buf[0..n). */
static int parse_copy(const char *buf, size_t n, struct http_req *r)
{
    char *b = malloc(n ? n : 1);
    REQUIRE(b != NULL);
    if (n)
        memcpy(b, buf, n);
    int v = http_parse(b, n, r);
    free(b);
    return v;
}

static void check_verdict(const char *buf, size_t n, int v, const struct http_req *r)
{
    REQUIRE(v == 0 || v == 1);
    if (v == 0) {
        REQUIRE(n < HTTP_HEAD_MAX);     /* a head that cannot end in the limit gets 431 */
        return;
    }
    REQUIRE(r->status == 200 || r->status == 400 || r->status == 431 || r->status == 501 ||
            r->status == 505);
    REQUIRE(r->head_len >= 1 && r->head_len <= n);
    REQUIRE(r->status == 200 || !r->keep_alive);
    REQUIRE(!r->keep_alive_10 || r->keep_alive);
    if (r->status == 200) {
        const char *h = buf, *e = buf + r->head_len;
        REQUIRE(e[-1] == '\n');
        REQUIRE((r->head_len >= 2 && e[-2] == '\n') || (r->head_len >= 3 && e[-2] == '\r' && e[-3] == '\n'));
        REQUIRE(memchr(h, '\n', r->head_len - 1) != NULL);  /* a request line, then the end */
        REQUIRE(r->body_len < 1000000000000000ull);         /* at most 15 digits */
    }
    char out[HTTP_RESPONSE_MAX + 16];
    memset(out, 0x5a, sizeof out);
    size_t len = http_respond(out, r);
    REQUIRE(len > 9 && len <= HTTP_RESPONSE_MAX);
    REQUIRE(memcmp(out, "HTTP/1.1 ", 9) == 0);
    for (size_t i = HTTP_RESPONSE_MAX; i < sizeof out; i++)
        REQUIRE(out[i] == 0x5a);
}

/* The whole input, and prefixes of it: a verdict on a prefix is the verdict on the whole. */
static void check_parse(const char *buf, size_t n)
{
    struct http_req whole, part;
    int v = parse_copy(buf, n, &whole);
    check_verdict(buf, n, v, &whole);
    int lines = 0;      /* the prefixes ending at the first 16 line ends, and two others */
    for (size_t m = 0; m < n && m < HTTP_HEAD_MAX; m++) {
        if (!(buf[m] == '\n' && lines++ < 16) && m != n - 1 && m != n / 2)
            continue;
        int pv = parse_copy(buf, m + 1, &part);
        check_verdict(buf, m + 1, pv, &part);
        if (pv == 0 || m + 1 == n)
            continue;
        REQUIRE(v == 1);
        REQUIRE(part.status == whole.status);
        if (part.status == 200) {
            REQUIRE(part.head_len == whole.head_len && part.body_len == whole.body_len);
            REQUIRE(part.keep_alive == whole.keep_alive && part.head_only == whole.head_only);
            REQUIRE(part.keep_alive_10 == whole.keep_alive_10);
        }
    }
}

/* examples/httpd.c's serve() loop over the stream data[0..size), read in chunks whose
 * sizes come from seed. */
#define IN_SMALL 1024
static void serve_stream(const char *data, size_t size, uint32_t seed)
{
    char small[IN_SMALL], *in = small;
    size_t cap = sizeof small, len = 0, at = 0;
    uint64_t skip = 0;
    int done = 0;
    uint32_t x = seed | 1;
    while (at < size) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t want = 1 + x % (x & 0x300 ? 4096 : 16);
        size_t room = cap - len;
        REQUIRE(room > 0);      /* else serve's read of 0 bytes looks like EOF */
        size_t n = want < room ? want : room;
        if (n > size - at)
            n = size - at;
        memcpy(in + len, data + at, n);
        at += n;
        len += n;
        size_t off = 0;
        while (!done) {
            size_t d = len - off < skip ? len - off : (size_t)skip;
            off += d;
            skip -= d;
            struct http_req rq;
            if (skip)
                break;
            int v = http_parse(in + off, len - off, &rq);
            check_verdict(in + off, len - off, v, &rq);
            if (!v)
                break;
            off += rq.head_len;
            skip = rq.body_len;
            done = !rq.keep_alive;
        }
        REQUIRE(off <= len);
        if (done)
            break;
        memmove(in, in + off, len - off);
        len -= off;
        if (len == cap && cap < HTTP_HEAD_MAX) {
            char *big = malloc(HTTP_HEAD_MAX);
            REQUIRE(big != NULL);
            memcpy(big, in, len);
            in = big;
            cap = HTTP_HEAD_MAX;
        }
    }
    if (in != small)
        free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1];   /* the first two bytes: read sizes */
    const char *buf = (const char *)data + 2;
    size -= 2;
    check_parse(buf, size);
    serve_stream(buf, size, seed);
    return 0;
}

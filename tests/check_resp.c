/* Check suite for examples/resp.h, the Redis-protocol request parser of examples/kv: whole
 * requests of both forms, the same bytes fed in every split (and one byte at a time, moved in
 * memory between calls as a connection's buffer is), redis's protocol errors, the limits on
 * claimed sizes (an error before anything is stored), and random bytes (no crash, every
 * result in bounds). */
#include "testutil.h"

#include <stdint.h>

/* Add test fn to s in a test case of its own with a timeout of secs. */
#define ADD_TEST(s, fn, secs) tcase_add_test(test_case((s), #fn, (secs)), fn)

#include "../examples/resp.h"

/* Parse all of buf[0..n) as the server does: returns the commands seen as "argc:arg,arg;..."
 * in out, then "!" and the error text if there was one, or "+" if bytes were left over. */
static void parse_all(char *buf, size_t n, size_t step, char *out, size_t outsz)
{
    struct resp_parser p;
    resp_init(&p);
    char *work = malloc(n + 1);
    ck_assert_ptr_nonnull(work);
    size_t have = 0, start = 0, fed = 0, o = 0;
    out[0] = 0;
    for (;;) {
        int r = resp_parse(&p, work + start, have - start);
        if (r == RESP_CMD) {
            ck_assert_uint_le(p.used, have - start);
            o += (size_t)snprintf(out + o, outsz - o, "%d:", p.argc);
            for (int i = 0; i < p.argc; i++) {
                ck_assert_uint_le(p.off[i] + p.len[i], p.used);
                o += (size_t)snprintf(out + o, outsz - o, "%.*s%s", (int)p.len[i], work + start + p.off[i],
                                      i + 1 < p.argc ? "," : "");
            }
            o += (size_t)snprintf(out + o, outsz - o, ";");
            start += p.used;
            continue;
        }
        if (r == RESP_ERROR) {
            snprintf(out + o, outsz - o, "!%s", p.err);
            break;
        }
        ck_assert_int_eq(r, RESP_MORE);
        if (fed == n) {
            if (have > start)
                snprintf(out + o, outsz - o, "+");
            break;
        }
        /* as a connection does: drop what was answered, move the rest to the front */
        memmove(work, work + start, have - start);
        have -= start;
        start = 0;
        size_t k = step && n - fed > step ? step : n - fed;
        memcpy(work + have, buf + fed, k);
        have += k;
        fed += k;
    }
    resp_free(&p);
    free(work);
}

static void expect(const char *req, size_t n, const char *want)
{
    char whole[4096], split[4096];
    char *copy = malloc(n + 1);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, req, n);
    parse_all(copy, n, 0, whole, sizeof whole);
    ck_assert_str_eq(whole, want);
    for (size_t step = 1; step <= n; step++) {
        memcpy(copy, req, n);       /* inline requests are unquoted in place */
        parse_all(copy, n, step, split, sizeof split);
        ck_assert_msg(strcmp(split, want) == 0, "split every %zu bytes: got %s, want %s", step, split, want);
    }
    free(copy);
}

#define EXPECT(lit, want) expect(lit, sizeof lit - 1, want)

START_TEST(multibulk_requests_in_every_split)
{
    EXPECT("*1\r\n$4\r\nPING\r\n", "1:PING;");
    EXPECT("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na\r\nbc\r\n", "3:SET,k,a\r\nbc;");
    EXPECT("*2\r\n$3\r\nGET\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n", "2:GET,;1:PING;");
    EXPECT("*0\r\n*-1\r\n", "0:;0:;");
    EXPECT("*2\r\n$3\r\nGET\r\n$3\r\nab", "+");
}
END_TEST

START_TEST(inline_requests_in_every_split)
{
    EXPECT("PING\r\n", "1:PING;");
    EXPECT("SET  k   v\n", "3:SET,k,v;");
    EXPECT("\r\n\n", "0:;0:;");
    EXPECT("ECHO \"a b\\x41\\n\" 'c\\'d'\r\n", "3:ECHO,a bA\n,c'd;");
    EXPECT("GET k\r\n*1\r\n$4\r\nPING\r\nDEL a b\r\n", "2:GET,k;1:PING;3:DEL,a,b;");
    EXPECT("GET k", "+");
}
END_TEST

START_TEST(protocol_errors_as_redis_words_them)
{
    EXPECT("*1\r\n+PING\r\n", "!Protocol error: expected '$', got '+'");
    EXPECT("*x\r\n", "!Protocol error: invalid multibulk length");
    EXPECT("*01\r\n", "!Protocol error: invalid multibulk length");
    EXPECT("*1\r\n$-1\r\n", "!Protocol error: invalid bulk length");
    EXPECT("*1\r\n$1a\r\n", "!Protocol error: invalid bulk length");
    EXPECT("SET a \"b\r\n", "!Protocol error: unbalanced quotes in request");
    EXPECT("SET a \"b\"c\r\n", "!Protocol error: unbalanced quotes in request");
    EXPECT("PING\r\n*1\r\n+", "1:PING;!Protocol error: expected '$', got '+'");
}
END_TEST

START_TEST(claimed_sizes_above_the_limits_fail_before_any_byte_is_stored)
{
    EXPECT("*1\r\n$536870913\r\n", "!Protocol error: invalid bulk length");
    EXPECT("*1048577\r\n", "!Protocol error: invalid multibulk length");
    EXPECT("*99999999999999999999\r\n", "!Protocol error: invalid multibulk length");
    /* within the limits, a claim is only a claim: nothing grows until the bytes come */
    struct resp_parser p;
    resp_init(&p);
    p.max_bulk = 100;
    char req[] = "*2\r\n$3\r\nGET\r\n$101\r\n";
    ck_assert_int_eq(resp_parse(&p, req, sizeof req - 1), RESP_ERROR);
    ck_assert_str_eq(p.err, "Protocol error: invalid bulk length");
    resp_free(&p);
    resp_init(&p);
    p.max_args = 3;
    char req2[] = "*4\r\n";
    ck_assert_int_eq(resp_parse(&p, req2, sizeof req2 - 1), RESP_ERROR);
    resp_free(&p);
    /* a line without its end, longer than max_inline */
    resp_init(&p);
    p.max_inline = 10;
    char line[] = "GET aaaaaaaaaaaaaaa";
    ck_assert_int_eq(resp_parse(&p, line, sizeof line - 1), RESP_ERROR);
    ck_assert_str_eq(p.err, "Protocol error: too big inline request");
    resp_free(&p);
    /* the same verdict when the whole line, newline included, came in one read */
    resp_init(&p);
    p.max_inline = 10;
    char whole[] = "GET aaaaaaaaaaaaaaa\r\n";
    ck_assert_int_eq(resp_parse(&p, whole, sizeof whole - 1), RESP_ERROR);
    ck_assert_str_eq(p.err, "Protocol error: too big inline request");
    resp_free(&p);
    resp_init(&p);
    p.max_inline = 10;
    char bulk[] = "*1\r\n$000000000000000004\r\nPING\r\n";
    ck_assert_int_eq(resp_parse(&p, bulk, sizeof bulk - 1), RESP_ERROR);
    ck_assert_str_eq(p.err, "Protocol error: too big bulk count string");
    resp_free(&p);
    resp_init(&p);
    p.max_inline = 10;
    char count[] = "*111111111111111";
    ck_assert_int_eq(resp_parse(&p, count, sizeof count - 1), RESP_ERROR);
    ck_assert_str_eq(p.err, "Protocol error: too big mbulk count string");
    resp_free(&p);
}
END_TEST

START_TEST(many_arguments_grow_the_table)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    n += (size_t)snprintf(buf + n, cap - n, "*1000\r\n");
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(buf + n, cap - n, "$%d\r\n%d\r\n", i < 10 ? 1 : i < 100 ? 2 : 3, i);
    struct resp_parser p;
    resp_init(&p);
    ck_assert_int_eq(resp_parse(&p, buf, n), RESP_CMD);
    ck_assert_int_eq(p.argc, 1000);
    ck_assert_uint_eq(p.used, n);
    ck_assert_int_eq(memcmp(buf + p.off[999], "999", 3), 0);
    resp_free(&p);
    free(buf);
}
END_TEST

START_TEST(random_bytes_never_crash_and_stay_in_bounds)
{
    static const char alphabet[] = "*$\r\n0123456789-\"' \\xabPINGSET";
    int rounds = RUNNING_ON_VALGRIND ? 2000 : 50000;
    uint64_t x = 88172645463325252ULL;
    char buf[64], out[8192];
    for (int r = 0; r < rounds; r++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = 1 + x % (sizeof buf - 1);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (x >> 40) % 4 == 0 ? (char)(x >> 8) : alphabet[(x >> 16) % (sizeof alphabet - 1)];
        }
        parse_all(buf, n, 1 + (x >> 24) % 7, out, sizeof out);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("resp");
    ADD_TEST(s, multibulk_requests_in_every_split, 10);
    ADD_TEST(s, inline_requests_in_every_split, 10);
    ADD_TEST(s, protocol_errors_as_redis_words_them, 10);
    ADD_TEST(s, claimed_sizes_above_the_limits_fail_before_any_byte_is_stored, 10);
    ADD_TEST(s, many_arguments_grow_the_table, 10);
    ADD_TEST(s, random_bytes_never_crash_and_stay_in_bounds, 60);
    return test_run(s);
}

/* Small helpers shared by the Check suites: errno and elapsed-time assertions, and a main
 * that runs a suite in fork mode. Time bounds are generous: tests run on slow, busy machines. */
#ifndef WEFT_TESTUTIL_H
#define WEFT_TESTUTIL_H

#include <check.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* End the test early, saying why on stderr, when cond holds (a tool or machine that cannot
 * run it). */
#define SKIP_IF(cond, why)                                                                  \
    do {                                                                                    \
        if (cond) {                                                                         \
            fprintf(stderr, "%s: skipped: %s\n", __func__, why);                            \
            return;                                                                         \
        }                                                                                   \
    } while (0)

/* expr must fail with -1 (or NULL) and errno err. */
#define ck_assert_fails(expr, err)                                                          \
    do {                                                                                    \
        errno = 0;                                                                          \
        long long r_ = (long long)(intptr_t)(expr);                                         \
        int e_ = errno;                                                                     \
        ck_assert_msg((r_ == -1 || r_ == 0) && e_ == (err), "%s: expected failure %s, got %lld, errno %d (%s)", \
                      #expr, strerror(err), r_, e_, strerror(e_));                          \
    } while (0)

/* expr must not return -1; errno is shown when it does. */
#define ck_assert_ok(expr)                                                                  \
    do {                                                                                    \
        errno = 0;                                                                          \
        long long r_ = (long long)(expr);                                                   \
        ck_assert_msg(r_ != -1, "%s failed: %s", #expr, strerror(errno));                   \
    } while (0)

/* Elapsed ms since start is at least lo (never early) and below hi (generous). */
#define ck_assert_elapsed(start, lo, hi)                                                    \
    do {                                                                                    \
        int64_t el_ = weft_now() - (start);                                                 \
        ck_assert_msg(el_ >= (lo) && el_ < (hi), "elapsed %lld ms, expected [%d, %d)",      \
                      (long long)el_, (int)(lo), (int)(hi));                                \
    } while (0)

/* Fail with a message unless cond holds. For hot loops: every ck_assert, passing or not,
 * sends a mark point to the runner (a syscall in fork mode); this costs nothing when it holds. */
#define test_require(cond, ...)                                                             \
    do {                                                                                    \
        if (!(cond))                                                                        \
            ck_abort_msg(__VA_ARGS__);                                                      \
    } while (0)

/* What weft_dump(fd, flags) writes, as a string (free it). */
static inline char *test_dump(int flags)
{
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    int m = fileno(f);
    ck_assert_int_eq(weft_dump(m, flags), 0);
    off_t len = lseek(m, 0, SEEK_END);
    ck_assert_int_ge(len, 0);
    char *s = malloc((size_t)len + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(pread(m, s, (size_t)len, 0), len);
    s[len] = '\0';
    fclose(f);
    return s;
}

/* Run suite s in fork mode, unless the environment says CK_FORK=no (for valgrind); exit
 * status is EXIT_SUCCESS when every test passed. */
static inline int test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    if (!getenv("CK_FORK"))
        srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* A test case with a per-test timeout (seconds; Check's CK_TIMEOUT_MULTIPLIER scales it). */
static inline TCase *test_case(Suite *s, const char *name, double timeout)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout);
    suite_add_tcase(s, tc);
    return tc;
}

#endif

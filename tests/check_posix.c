/* weft/posix.h: a translation unit that includes it after the system headers gets the weft
 * wrappers under libc's names, with nothing else changed. Every call here is written as
 * plain POSIX code; each must park the task it runs in (a ticker task keeps running) rather
 * than block the thread, and keep libc's results. */
#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include <weft/posix.h>

static long ticks;
static volatile int stop;

static void *ticker(void *arg)
{
    (void)arg;
    while (!stop && weft_sleep(1) == 0)
        ticks++;
    return NULL;
}

/* Run fn as a task beside the ticker; returns how often the ticker ticked while fn ran. */
/* The ticker ticks once before fn runs; every further tick is proof that the loop ran while
 * fn waited (its 1 ms sleep is due before any wait of fn's ends, so it runs first whatever
 * the machine's speed). The counts asserted below are those orderings, not timings. */
static long run_beside_ticker(void *(*fn)(void *), void *arg)
{
    ticks = 0;
    stop = 0;
    weft_task *k = weft_go(ticker, NULL), *t = weft_go(fn, arg);
    ck_assert_ptr_nonnull(k);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    long seen = ticks;
    stop = 1;
    ck_assert_int_eq(weft_join(k, NULL), 0);
    return seen;
}

static void *sleeps(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now();
    ck_assert_int_eq(usleep(20000), 0);
    struct timespec ts = { 0, 20 * 1000000 };
    ck_assert_int_eq(nanosleep(&ts, NULL), 0);
    ck_assert_int_eq(sleep(1), 0);
    ck_assert_elapsed(t0, 1040, 10000);
    return NULL;
}

START_TEST(sleep_usleep_and_nanosleep_park_the_task)
{
    ck_assert_int_gt(run_beside_ticker(sleeps, NULL), 3);    /* one tick per sleep at least */
}
END_TEST

static int p[2];

static void *selects(void *arg)
{
    (void)arg;
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(p[0], &rd);
    struct timeval tv = { 0, 50000 };
    ck_assert_int_eq(select(p[0] + 1, &rd, NULL, NULL, &tv), 0);
    ck_assert(!FD_ISSET(p[0], &rd));
    return NULL;
}

START_TEST(select_parks_the_task)
{
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_gt(run_beside_ticker(selects, NULL), 1);
    ck_assert_int_eq(close(p[0]), 0);
    ck_assert_int_eq(close(p[1]), 0);
}
END_TEST

static void *writes_later(void *arg)
{
    (void)arg;
    usleep(30000);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    return NULL;
}

/* fcntl shows and sets O_NONBLOCK as the caller wants it, and reads follow: EAGAIN while
 * the caller has it set, a park once cleared. */
static void *flips(void *arg)
{
    (void)arg;
    char c;
    int fl = fcntl(p[0], F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(p[0], F_SETFL, fl | O_NONBLOCK), 0);
    ck_assert_fails(read(p[0], &c, 1), EAGAIN);
    ck_assert(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    ck_assert_int_eq(fcntl(p[0], F_SETFL, fl & ~O_NONBLOCK), 0);
    ck_assert_int_eq(fcntl(p[0], F_GETFL) & O_NONBLOCK, 0);
    weft_task *w = weft_go(writes_later, NULL);
    ck_assert_int_eq(read(p[0], &c, 1), 1);     /* parks until the writer runs */
    ck_assert_int_eq(weft_join(w, NULL), 0);
    ck_assert_int_eq(fcntl(p[0], F_SETFD, FD_CLOEXEC), 0);     /* others pass through */
    ck_assert_int_eq(fcntl(p[0], F_GETFD), FD_CLOEXEC);
    return NULL;
}

START_TEST(fcntl_keeps_the_callers_view_of_o_nonblock)
{
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_int_gt(run_beside_ticker(flips, NULL), 1);
    ck_assert_int_eq(close(p[0]), 0);
    ck_assert_int_eq(close(p[1]), 0);
}
END_TEST

static void *long_usleep(void *arg)
{
    (void)arg;
    errno = 0;
    int r = usleep(10 * 1000 * 1000);
    return (void *)(intptr_t)(r == 0 ? 0 : errno);
}

START_TEST(a_cancelled_usleep_fails_with_ecanceled)
{
    weft_task *t = weft_go(long_usleep, NULL);
    ck_assert_ptr_nonnull(t);
    weft_join_until(t, NULL, weft_now() + 20);     /* let it start sleeping */
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, ECANCELED);
}
END_TEST

static Suite *posix_suite(void)
{
    Suite *s = suite_create("posix");
    tcase_add_test(test_case(s, "sleep_usleep_and_nanosleep_park_the_task", 15), sleep_usleep_and_nanosleep_park_the_task);
    tcase_add_test(test_case(s, "select_parks_the_task", 10), select_parks_the_task);
    tcase_add_test(test_case(s, "fcntl_keeps_the_callers_view_of_o_nonblock", 10), fcntl_keeps_the_callers_view_of_o_nonblock);
    tcase_add_test(test_case(s, "a_cancelled_usleep_fails_with_ecanceled", 10), a_cancelled_usleep_fails_with_ecanceled);
    return s;
}

int main(void)
{
    return test_run(posix_suite());
}

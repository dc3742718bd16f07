/* An order-of-events log for the scheduler suites (check_sched, check_runnow): tasks append
 * values as things happen, the test checks the sequence; and run_ok, weft_run that must end
 * cleanly. Each suite that includes it has a log of its own. */
#ifndef WEFT_EVENTLOG_H
#define WEFT_EVENTLOG_H

#include "testutil.h"

#define LOG_MAX 4096
static int log_v[LOG_MAX];
static int log_n;

static inline void log_reset(void) { log_n = 0; }

static inline void log_add(int v)
{
    test_require(log_n < LOG_MAX, "log full");
    log_v[log_n++] = v;
}

/* The log is exactly the 'n' values given. */
static inline void log_expect(const int *want, int n)
{
    ck_assert_int_eq(log_n, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(log_v[i] == want[i], "log[%d] = %d, expected %d", i, log_v[i], want[i]);
}

static inline void run_ok(void)
{
    int r = weft_run();
    ck_assert_msg(r == 0, "weft_run: %d (%s)", r, strerror(errno));
}

#endif

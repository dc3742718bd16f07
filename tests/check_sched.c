/* The scheduler through its public API: run order, sleep and deadlines, join/detach/cancel
 * and each of their errors, calls made outside any task, names and ids, deadlock detection,
 * scale, and one scheduler per thread. The timers alone are check_timer's; stacks are
 * check_stack's; register and FP state across switches is check_ctx's. */
#include "config.h"
#include "eventlog.h"
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>


/* ---- helpers ------------------------------------------------------------------------------ */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define V(i) ((void *)(intptr_t)(i))
#define I(p) ((int)(intptr_t)(p))


/* The errno of a blocking call's failure, 0 on success: what a task hands back to its joiner. */
static int err_of(int r) { return r == 0 ? 0 : errno; }

static void *ret_arg(void *arg) { return arg; }

static void *sleep_forever(void *arg)
{
    return V(err_of(weft_sleep_until(-1)));
}

static int64_t sleep_ms_arg;    /* how long sleep_then_ret sleeps */

static void *sleep_then_ret(void *arg)
{
    weft_sleep(sleep_ms_arg);
    return arg;
}

/* Run fn(arg) as a task and return what it returned. */
static void *in_task(void *(*fn)(void *), void *arg)
{
    void *v = V(-1);
    weft_task *t = weft_go(fn, arg);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_join(t, &v), 0);
    run_ok();
    return v;
}

/* ---- run order ---------------------------------------------------------------------------- */

enum { RR_TASKS = 5, RR_ROUNDS = 4 };

static void *rr_task(void *arg)
{
    for (int r = 0; r < RR_ROUNDS; r++) {
        log_add(I(arg));
        ck_assert_int_eq(weft_yield(), 0);
    }
    return NULL;
}

START_TEST(yield_runs_tasks_round_robin)
{
    log_reset();
    for (int i = 0; i < RR_TASKS; i++) {
        weft_attr a = { .detached = 1 };
        ck_assert_ptr_nonnull(weft_spawn(&a, rr_task, V(i)));
    }
    run_ok();
    int want[RR_TASKS * RR_ROUNDS];
    for (int k = 0; k < RR_TASKS * RR_ROUNDS; k++)
        want[k] = k % RR_TASKS;
    log_expect(want, RR_TASKS * RR_ROUNDS);
}
END_TEST

static void *yield_alone(void *arg)
{
    for (int i = 0; i < 1000; i++)
        if (weft_yield() != 0)
            return V(errno);
    return V(0);
}

START_TEST(yield_with_nothing_else_runnable_returns_at_once)
{
    ck_assert_int_eq(I(in_task(yield_alone, NULL)), 0);
}
END_TEST

static int child_ran;

static void *mark_ran(void *arg)
{
    child_ran = 1;
    return arg;
}

static void *spawn_then_yield(void *arg)
{
    weft_task *c = weft_go(mark_ran, V(5));
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(child_ran, 0);     /* not before the spawner gives up the CPU */
    ck_assert_int_eq(weft_yield(), 0);
    ck_assert_int_eq(child_ran, 1);
    void *v;
    ck_assert_int_eq(weft_join(c, &v), 0);
    ck_assert_ptr_eq(v, V(5));
    return NULL;
}

START_TEST(spawned_task_first_runs_when_spawner_yields)
{
    child_ran = 0;
    in_task(spawn_then_yield, NULL);
}
END_TEST

START_TEST(task_spawned_outside_runs_only_when_scheduler_runs)
{
    child_ran = 0;
    weft_task *t = weft_go(mark_ran, V(6));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(child_ran, 0);
    run_ok();
    ck_assert_int_eq(child_ran, 1);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(6));
}
END_TEST

/* ---- sleep -------------------------------------------------------------------------------- */

/* 50 ms apart, so a stall while they park cannot reorder their deadlines. */
static const int order_ms[] = { 250, 50, 150, 100, 200 };

static void *sleep_and_log(void *arg)
{
    int i = I(arg);
    int64_t start = now_ns();
    ck_assert_int_eq(weft_sleep(order_ms[i]), 0);
    ck_assert_int_ge(now_ns() - start, (int64_t)order_ms[i] * 1000000);
    log_add(i);
    return NULL;
}

START_TEST(sleepers_wake_in_deadline_order)
{
    log_reset();
    for (int i = 0; i < 5; i++) {
        weft_attr a = { .detached = 1 };
        ck_assert_ptr_nonnull(weft_spawn(&a, sleep_and_log, V(i)));
    }
    run_ok();
    static const int want[] = { 1, 3, 2, 4, 0 };
    log_expect(want, 5);
}
END_TEST

enum { SAME_TASKS = 8 };
static int64_t same_deadline;
static int same_late;

static void *sleep_until_same(void *arg)
{
    if (weft_now() >= same_deadline)
        same_late++;
    ck_assert_int_eq(weft_sleep_until(same_deadline), 0);
    ck_assert_int_ge(weft_now(), same_deadline);
    log_add(I(arg));
    return NULL;
}

START_TEST(equal_deadlines_wake_in_spawn_order)
{
    log_reset();
    same_late = 0;
    same_deadline = weft_now() + 200;
    for (int i = 0; i < SAME_TASKS; i++) {
        weft_attr a = { .detached = 1 };
        ck_assert_ptr_nonnull(weft_spawn(&a, sleep_until_same, V(i)));
    }
    run_ok();
    ck_assert_msg(same_late == 0, "%d tasks started after the deadline: machine too slow", same_late);
    int want[SAME_TASKS];
    for (int i = 0; i < SAME_TASKS; i++)
        want[i] = i;
    log_expect(want, SAME_TASKS);
}
END_TEST

static const int never_early_ms[] = { 1, 2, 3, 5, 8, 13, 21, 34 };

static void *sleep_durations(void *arg)
{
    for (size_t i = 0; i < sizeof never_early_ms / sizeof never_early_ms[0]; i++) {
        int64_t ms = never_early_ms[i];
        int64_t start = now_ns();
        ck_assert_int_eq(weft_sleep(ms), 0);
        int64_t el = now_ns() - start;
        ck_assert_msg(el >= ms * 1000000, "weft_sleep(%lld) returned after %lld ns",
                      (long long)ms, (long long)el);
        ck_assert_msg(el < (ms + 2000) * 1000000, "weft_sleep(%lld) took %lld ns",
                      (long long)ms, (long long)el);
    }
    return NULL;
}

START_TEST(sleep_never_returns_early)
{
    in_task(sleep_durations, NULL);
}
END_TEST

static void *sleep_until_past(void *arg)
{
    int64_t start = weft_now();
    ck_assert_int_eq(weft_sleep_until(start - 10), 0);
    ck_assert_int_eq(weft_sleep_until(start), 0);
    ck_assert_int_eq(weft_sleep(-5), 0);
    ck_assert_elapsed(start, 0, 1000);
    return NULL;
}

START_TEST(sleep_until_a_past_deadline_returns_at_once)
{
    in_task(sleep_until_past, NULL);
}
END_TEST

static void *sleep_max(void *arg)
{
    return V(err_of(weft_sleep(INT64_MAX)));
}

START_TEST(sleep_of_the_largest_duration_lasts_until_cancelled)
{
    weft_task *t = weft_go(sleep_max, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_join_until(t, NULL, weft_now() + 30), ETIMEDOUT);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq(I(v), ECANCELED);
    run_ok();
}
END_TEST

static void *sleep0_logger(void *arg)
{
    log_add(I(arg));
    ck_assert_int_eq(weft_sleep(0), 0);
    log_add(I(arg));
    return NULL;
}

START_TEST(sleep_zero_yields_to_other_tasks)
{
    log_reset();
    for (int i = 0; i < 2; i++) {
        weft_attr a = { .detached = 1 };
        ck_assert_ptr_nonnull(weft_spawn(&a, sleep0_logger, V(i)));
    }
    run_ok();
    static const int want[] = { 0, 1, 0, 1 };
    log_expect(want, 4);
}
END_TEST

/* ---- per-task deadline scope -------------------------------------------------------------- */

static void *scope_cuts_sleep(void *arg)
{
    int64_t start = weft_now();
    int64_t d = start + 50;
    ck_assert_int_eq(weft_set_task_deadline(d), -1);
    ck_assert_fails(weft_sleep(10000), ETIMEDOUT);
    ck_assert_elapsed(start, 50, 3000);
    ck_assert_int_eq(weft_set_task_deadline(-1), d);        /* restore: hands back ours */
    ck_assert_int_eq(weft_set_task_deadline(-1), -1);
    ck_assert_int_eq(weft_sleep(5), 0);                     /* no scope: sleeps in full */
    return NULL;
}

START_TEST(task_deadline_cuts_a_sleep_short_with_etimedout)
{
    in_task(scope_cuts_sleep, NULL);
}
END_TEST

static void *scope_nested(void *arg)
{
    int64_t outer = weft_now() + 5000;
    ck_assert_int_eq(weft_set_task_deadline(outer), -1);
    ck_assert_int_eq(weft_sleep(20), 0);      /* ends before the scope: a plain success */
    int64_t inner = weft_now() + 30;
    ck_assert_int_eq(weft_set_task_deadline(inner), outer);
    ck_assert_fails(weft_sleep(5000), ETIMEDOUT);
    ck_assert_int_eq(weft_set_task_deadline(outer), inner);
    ck_assert_int_eq(weft_sleep(10), 0);      /* the outer scope is back, far away */
    ck_assert_int_eq(weft_set_task_deadline(-1), outer);
    return NULL;
}

START_TEST(task_deadline_scopes_nest_and_restore)
{
    in_task(scope_nested, NULL);
}
END_TEST

static void *scope_past(void *arg)
{
    sleep_ms_arg = 300;
    weft_task *t = weft_go(sleep_then_ret, V(3));
    ck_assert_ptr_nonnull(t);
    int64_t start = weft_now();
    int64_t old = weft_set_task_deadline(start - 1);
    ck_assert_fails(weft_sleep(1000), ETIMEDOUT);
    ck_assert_fails(weft_join(t, NULL), ETIMEDOUT);
    ck_assert_fails(weft_sleep_until(-1), ETIMEDOUT);
    ck_assert_elapsed(start, 0, 1000);
    weft_set_task_deadline(old);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);    /* the timed-out join left t joinable */
    ck_assert_ptr_eq(v, V(3));
    return NULL;
}

START_TEST(task_deadline_in_the_past_fails_blocking_calls_at_once)
{
    in_task(scope_past, NULL);
}
END_TEST

START_TEST(task_deadline_outside_any_task_returns_minus_one)
{
    ck_assert_int_eq(weft_set_task_deadline(weft_now() + 10), -1);
    int64_t start = weft_now();
    ck_assert_int_eq(weft_sleep(30), 0);      /* no scope was set: the sleep is whole */
    ck_assert_elapsed(start, 30, 2000);
}
END_TEST

/* ---- join --------------------------------------------------------------------------------- */

START_TEST(join_returns_the_task_return_value)
{
    weft_task *t = weft_go(ret_arg, V(1234));
    ck_assert_ptr_nonnull(t);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(1234));
    run_ok();
}
END_TEST

static int after_exit;

static void exit_from_nested(void *v)
{
    weft_exit(v);
    after_exit = 1;
}

static void *exits_early(void *arg)
{
    exit_from_nested(arg);
    after_exit = 2;
    return V(-1);
}

START_TEST(join_returns_the_weft_exit_value)
{
    after_exit = 0;
    weft_task *t = weft_go(exits_early, V(77));
    ck_assert_ptr_nonnull(t);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(77));
    ck_assert_int_eq(after_exit, 0);    /* weft_exit did not return */
    run_ok();
}
END_TEST

START_TEST(join_with_null_value_pointer_works)
{
    weft_task *t = weft_go(ret_arg, V(1));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    run_ok();
}
END_TEST

static void *join_ended_child(void *arg)
{
    weft_task *c = weft_go(mark_ran, V(8));
    ck_assert_ptr_nonnull(c);
    while (!child_ran)
        weft_yield();
    /* c ran to its end in its turn; nothing else is runnable, so a join that parked would
     * never come back before the other logger below ran. */
    log_reset();
    weft_attr a = { .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&a, sleep0_logger, V(9)));
    void *v;
    ck_assert_int_eq(weft_join(c, &v), 0);
    ck_assert_int_eq(log_n, 0);
    ck_assert_ptr_eq(v, V(8));
    return NULL;
}

START_TEST(join_of_an_ended_task_reports_at_once)
{
    child_ran = 0;
    in_task(join_ended_child, NULL);
}
END_TEST

START_TEST(join_from_main_of_an_ended_task_reports_its_value)
{
    weft_task *t = weft_go(ret_arg, V(31));
    ck_assert_ptr_nonnull(t);
    run_ok();                           /* t ends; nobody has joined it yet */
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(31));
    run_ok();
}
END_TEST

static void *join_self(void *arg)
{
    ck_assert_fails(weft_join(weft_self(), NULL), EDEADLK);
    ck_assert_fails(weft_join_until(weft_self(), NULL, weft_now() + 10), EDEADLK);
    return V(4);
}

START_TEST(join_self_fails_edeadlk)
{
    ck_assert_ptr_eq(in_task(join_self, NULL), V(4));
}
END_TEST

static void *join_detached(void *arg)
{
    weft_attr a = { .detached = 1 };
    weft_task *d = weft_spawn(&a, yield_alone, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_fails(weft_join(d, NULL), EINVAL);
    ck_assert_fails(weft_join_until(d, NULL, weft_now() + 100), EINVAL);
    weft_task *t = weft_go(yield_alone, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_detach(t), 0);
    ck_assert_fails(weft_join(t, NULL), EINVAL);
    return NULL;
}

START_TEST(join_of_a_detached_task_fails_einval)
{
    in_task(join_detached, NULL);
}
END_TEST

START_TEST(second_join_fails_einval)
{
    weft_task *t = weft_go(ret_arg, V(2));
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_fails(weft_join(t, NULL), EINVAL);
    ck_assert_fails(weft_join_until(t, NULL, -1), EINVAL);
    ck_assert_fails(weft_detach(t), EINVAL);
    ck_assert_fails(weft_cancel(t), EINVAL);
    run_ok();
}
END_TEST

START_TEST(join_null_fails_einval)
{
    ck_assert_fails(weft_join(NULL, NULL), EINVAL);          /* no scheduler yet */
    weft_task *t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_join(NULL, NULL), EINVAL);          /* with one */
    ck_assert_fails(weft_join_until(NULL, NULL, weft_now() + 10), EINVAL);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    run_ok();
}
END_TEST

static weft_task *shared_target;

static void *first_joiner(void *arg)
{
    void *v = NULL;
    ck_assert_int_eq(weft_join(shared_target, &v), 0);
    ck_assert_ptr_eq(v, V(42));
    log_add(1);
    return NULL;
}

static void *second_joiner(void *arg)
{
    ck_assert_fails(weft_join(shared_target, NULL), EINVAL);
    ck_assert_fails(weft_join_until(shared_target, NULL, weft_now() + 50), EINVAL);
    ck_assert_fails(weft_detach(shared_target), EINVAL);   /* being joined */
    log_add(2);
    return NULL;
}

START_TEST(second_task_joining_the_same_task_fails_einval)
{
    log_reset();
    sleep_ms_arg = 20;
    shared_target = weft_go(sleep_then_ret, V(42));
    ck_assert_ptr_nonnull(shared_target);
    weft_attr a = { .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&a, first_joiner, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&a, second_joiner, NULL));
    run_ok();
    static const int want[] = { 2, 1 };
    log_expect(want, 2);
}
END_TEST

static void *join_until_timeout(void *arg)
{
    sleep_ms_arg = 300;
    weft_task *t = weft_go(sleep_then_ret, V(7));
    ck_assert_ptr_nonnull(t);
    int64_t start = weft_now();
    void *v = V(-1);
    ck_assert_fails(weft_join_until(t, &v, start + 20), ETIMEDOUT);
    ck_assert_elapsed(start, 20, 3000);
    ck_assert_ptr_eq(v, V(-1));                             /* untouched on failure */
    ck_assert_fails(weft_join_until(t, &v, weft_now() - 1), ETIMEDOUT);
    ck_assert_int_eq(weft_join_until(t, &v, weft_now() + 10000), 0);
    ck_assert_ptr_eq(v, V(7));
    return NULL;
}

START_TEST(join_until_times_out_and_the_task_stays_joinable)
{
    in_task(join_until_timeout, NULL);
}
END_TEST

static volatile int stop_busy;

/* Yields without ever blocking, until told to stop (or, so a broken test ends, 5 s pass). */
static void *busy_yielder(void *arg)
{
    int64_t end = weft_now() + 5000;
    while (!stop_busy && weft_now() < end)
        weft_yield();
    return V(stop_busy);
}

static void *join_until_busy(void *arg)
{
    weft_task *t = weft_go(busy_yielder, NULL);
    ck_assert_ptr_nonnull(t);
    int64_t start = weft_now();
    ck_assert_fails(weft_join_until(t, NULL, start + 30), ETIMEDOUT);
    ck_assert_elapsed(start, 30, 2500);
    stop_busy = 1;
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(1));
    return NULL;
}

START_TEST(join_until_times_out_while_the_target_stays_busy)
{
    stop_busy = 0;
    in_task(join_until_busy, NULL);
}
END_TEST

static void *busy_logger(void *arg)
{
    for (int i = 0; i < 10; i++) {
        log_add(1);
        weft_yield();
    }
    return NULL;
}

START_TEST(join_from_main_runs_the_scheduler_until_the_task_ends)
{
    log_reset();
    sleep_ms_arg = 30;
    weft_task *t = weft_go(sleep_then_ret, V(5));
    ck_assert_ptr_nonnull(t);
    weft_attr a = { .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&a, busy_logger, NULL));
    int64_t start = weft_now();
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(5));
    ck_assert_elapsed(start, 30, 3000);
    ck_assert_int_eq(log_n, 10);        /* the other task ran meanwhile */
    run_ok();
}
END_TEST

START_TEST(join_until_from_main_times_out_and_the_task_stays_joinable)
{
    sleep_ms_arg = 300;
    weft_task *t = weft_go(sleep_then_ret, V(6));
    ck_assert_ptr_nonnull(t);
    int64_t start = weft_now();
    ck_assert_fails(weft_join_until(t, NULL, start + 30), ETIMEDOUT);
    ck_assert_elapsed(start, 30, 3000);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(6));
    ck_assert_elapsed(start, 300, 5000);
    run_ok();
}
END_TEST

START_TEST(join_until_from_main_times_out_while_tasks_stay_busy)
{
    stop_busy = 0;
    weft_task *t = weft_go(busy_yielder, NULL);
    ck_assert_ptr_nonnull(t);
    int64_t start = weft_now();
    ck_assert_fails(weft_join_until(t, NULL, start + 30), ETIMEDOUT);
    ck_assert_elapsed(start, 30, 2500);
    stop_busy = 1;
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(1));
    run_ok();
}
END_TEST

START_TEST(join_from_main_returns_when_the_task_ends_while_others_stay_busy)
{
    stop_busy = 0;
    weft_task *b = weft_go(busy_yielder, NULL);
    ck_assert_ptr_nonnull(b);
    sleep_ms_arg = 20;
    weft_task *t = weft_go(sleep_then_ret, V(21));
    ck_assert_ptr_nonnull(t);
    int64_t start = weft_now();
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(21));
    ck_assert_elapsed(start, 20, 2500);     /* not when the busy task stops (5 s) */
    stop_busy = 1;
    ck_assert_int_eq(weft_join(b, &v), 0);
    ck_assert_ptr_eq(v, V(1));
    run_ok();
}
END_TEST

START_TEST(join_until_from_main_with_a_past_deadline_fails_at_once)
{
    child_ran = 0;
    weft_task *t = weft_go(mark_ran, V(4));
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_join_until(t, NULL, weft_now() - 1), ETIMEDOUT);
    ck_assert_int_eq(child_ran, 0);         /* nothing ran */
    void *v;
    ck_assert_int_eq(weft_join_until(t, &v, weft_now() + 10000), 0);
    ck_assert_ptr_eq(v, V(4));
    run_ok();
}
END_TEST

START_TEST(join_from_main_of_a_task_nothing_can_wake_fails_edeadlk)
{
    weft_task *t = weft_go(sleep_forever, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_join(t, NULL), EDEADLK);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq(I(v), ECANCELED);
    run_ok();
}
END_TEST

/* ---- detach ------------------------------------------------------------------------------- */

static weft_task *detach_target;

static void *detach_while_joined(void *arg)
{
    ck_assert_fails(weft_detach(detach_target), EINVAL);
    ck_assert_fails(weft_join(detach_target, NULL), EINVAL);   /* nor a second joiner */
    return NULL;
}

START_TEST(detach_error_paths_fail_einval)
{
    ck_assert_fails(weft_detach(NULL), EINVAL);
    /* already detached */
    weft_task *t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_detach(t), 0);
    ck_assert_fails(weft_detach(t), EINVAL);
    weft_attr a = { .detached = 1 };
    weft_task *d = weft_spawn(&a, ret_arg, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_fails(weft_detach(d), EINVAL);
    run_ok();
    /* already joined */
    t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_fails(weft_detach(t), EINVAL);
    /* being joined (by the main context here; a task is in second_task_joining_...) */
    sleep_ms_arg = 20;
    detach_target = weft_go(sleep_then_ret, V(1));
    ck_assert_ptr_nonnull(detach_target);
    weft_task *j = weft_go(detach_while_joined, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(weft_join(detach_target, NULL), 0);
    ck_assert_int_eq(weft_join(j, NULL), 0);
    run_ok();
}
END_TEST

START_TEST(detached_task_runs_to_its_end)
{
    child_ran = 0;
    weft_task *t = weft_go(mark_ran, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_detach(t), 0);
    run_ok();
    ck_assert_int_eq(child_ran, 1);
}
END_TEST

START_TEST(detach_of_an_ended_task_releases_it)
{
    weft_task *t = weft_go(ret_arg, V(3));
    ck_assert_ptr_nonnull(t);
    run_ok();
    ck_assert_int_eq(weft_detach(t), 0);
    ck_assert_fails(weft_join(t, NULL), EINVAL);
    run_ok();
}
END_TEST

/* ---- cancel ------------------------------------------------------------------------------- */

static void *sleep_long_and_report(void *arg)
{
    int64_t start = weft_now();
    int e = err_of(weft_sleep(10000));
    ck_assert_elapsed(start, 0, 2000);
    return V(e);
}

static void *cancel_sleeper(void *arg)
{
    weft_task *t = weft_go(sleep_long_and_report, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_yield(), 0);      /* t runs and parks in its sleep */
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    return v;
}

START_TEST(cancel_wakes_a_sleeping_task_with_ecanceled)
{
    ck_assert_int_eq(I(in_task(cancel_sleeper, NULL)), ECANCELED);
}
END_TEST

static weft_task *join_victim_target;

static void *join_and_report(void *arg)
{
    void *v = NULL;
    int e = err_of(weft_join(join_victim_target, &v));
    ck_assert_ptr_eq(v, NULL);
    return V(e);
}

static void *cancel_joiner(void *arg)
{
    sleep_ms_arg = 200;
    join_victim_target = weft_go(sleep_then_ret, V(9));
    ck_assert_ptr_nonnull(join_victim_target);
    weft_task *j = weft_go(join_and_report, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_int_eq(weft_yield(), 0);      /* the target sleeps, j parks joining it */
    ck_assert_int_eq(weft_cancel(j), 0);
    void *v;
    ck_assert_int_eq(weft_join(j, &v), 0);
    ck_assert_int_eq(I(v), ECANCELED);
    /* The target is untouched, and can be joined by someone else now. */
    ck_assert_int_eq(weft_join(join_victim_target, &v), 0);
    ck_assert_ptr_eq(v, V(9));
    return NULL;
}

START_TEST(cancel_wakes_a_joining_task_with_ecanceled)
{
    in_task(cancel_joiner, NULL);
}
END_TEST

static weft_task *other_live;

static void *cancelled_before_running(void *arg)
{
    ck_assert_fails(weft_sleep(10), ECANCELED);
    ck_assert_fails(weft_sleep(0), ECANCELED);
    ck_assert_fails(weft_yield(), ECANCELED);
    ck_assert_fails(weft_sleep_until(-1), ECANCELED);
    ck_assert_fails(weft_join(other_live, NULL), ECANCELED);
    ck_assert_fails(weft_join_until(other_live, NULL, weft_now() + 1000), ECANCELED);
    return V(3);
}

START_TEST(cancel_of_a_runnable_task_fails_its_next_blocking_calls)
{
    sleep_ms_arg = 50;
    other_live = weft_go(sleep_then_ret, V(1));
    ck_assert_ptr_nonnull(other_live);
    weft_task *t = weft_go(cancelled_before_running, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_cancel(t), 0);    /* twice is fine */
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);  /* joining a cancelled task works */
    ck_assert_ptr_eq(v, V(3));
    ck_assert_int_eq(weft_join(other_live, &v), 0);
    ck_assert_ptr_eq(v, V(1));
    run_ok();
}
END_TEST

static void *sticky_after_wake(void *arg)
{
    ck_assert_fails(weft_sleep(10000), ECANCELED);
    for (int i = 0; i < 3; i++) {
        ck_assert_fails(weft_sleep(1), ECANCELED);
        ck_assert_fails(weft_yield(), ECANCELED);
        ck_assert_fails(weft_sleep_until(weft_now() + 5), ECANCELED);
    }
    return V(11);
}

START_TEST(cancel_is_sticky)
{
    weft_task *t = weft_go(sticky_after_wake, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_join_until(t, NULL, weft_now() + 20), ETIMEDOUT);
    ck_assert_int_eq(weft_cancel(t), 0);    /* from outside any task */
    void *v;
    int64_t start = weft_now();
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_elapsed(start, 0, 2000);
    ck_assert_ptr_eq(v, V(11));
    run_ok();
}
END_TEST

static void *cancel_self(void *arg)
{
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    ck_assert_fails(weft_yield(), ECANCELED);
    ck_assert_ptr_nonnull(weft_self());     /* still running, and can finish normally */
    return V(12);
}

START_TEST(yield_after_cancel_fails_ecanceled)
{
    ck_assert_ptr_eq(in_task(cancel_self, NULL), V(12));
}
END_TEST

static int spin_flag;

/* Polls on weft_yield until spin_flag is set (giving up after many rounds); returns 1 when
 * every yield failed with ECANCELED, 0 when one did not, -1 when it gave up. */
static void *spin_on_yield(void *arg)
{
    int all_cancelled = 1;
    for (long i = 0; !spin_flag; i++) {
        if (i == 10 * 1000 * 1000)
            return V(-1);
        if (weft_yield() != -1 || errno != ECANCELED)
            all_cancelled = 0;
    }
    return V(all_cancelled);
}

static void *set_spin_flag(void *arg)
{
    spin_flag = 1;
    return NULL;
}

START_TEST(cancelled_task_polling_on_yield_lets_the_flag_setter_run)
{
    spin_flag = 0;
    weft_task *t = weft_go(spin_on_yield, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_cancel(t), 0);
    weft_task *f = weft_go(set_spin_flag, NULL);
    ck_assert_ptr_nonnull(f);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(1));
    ck_assert_int_eq(weft_join(f, NULL), 0);
    run_ok();
}
END_TEST

static void *cancelled_logger(void *arg)
{
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    log_add(1);
    ck_assert_fails(weft_yield(), ECANCELED);
    log_add(3);
    ck_assert_fails(weft_sleep(0), ECANCELED);
    log_add(5);
    return NULL;
}

static void *plain_logger(void *arg)
{
    log_add(2);
    ck_assert_int_eq(weft_yield(), 0);
    log_add(4);
    return NULL;
}

START_TEST(cancelled_task_yield_and_sleep_zero_still_yield)
{
    log_reset();
    weft_task *a = weft_go(cancelled_logger, NULL);
    weft_task *b = weft_go(plain_logger, NULL);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(weft_join(a, NULL), 0);
    ck_assert_int_eq(weft_join(b, NULL), 0);
    static const int want[] = { 1, 2, 3, 4, 5 };
    log_expect(want, 5);
    run_ok();
}
END_TEST

START_TEST(cancel_of_an_ended_task_does_nothing)
{
    weft_task *t = weft_go(ret_arg, V(13));
    ck_assert_ptr_nonnull(t);
    run_ok();
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(13));
    run_ok();
}
END_TEST

START_TEST(cancel_null_fails_einval)
{
    ck_assert_fails(weft_cancel(NULL), EINVAL);
    weft_task *t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_cancel(NULL), EINVAL);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    run_ok();
}
END_TEST

/* ---- outside any task ------------------------------------------------------------------- */

START_TEST(yield_and_exit_outside_any_task_fail_eperm)
{
    ck_assert_fails(weft_yield(), EPERM);                   /* before any scheduler exists */
    ck_assert_fails(weft_exit(NULL), EPERM);
    weft_task *t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_yield(), EPERM);                   /* and with one */
    ck_assert_fails(weft_exit(NULL), EPERM);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    run_ok();
}
END_TEST

START_TEST(sleep_outside_any_task_sleeps_the_thread)
{
    int64_t start = now_ns();
    ck_assert_int_eq(weft_sleep(30), 0);
    ck_assert_int_ge(now_ns() - start, 30 * 1000000);
    int64_t s2 = weft_now();
    ck_assert_int_eq(weft_sleep_until(s2 + 20), 0);
    ck_assert_elapsed(s2, 20, 2000);
    s2 = weft_now();
    ck_assert_int_eq(weft_sleep(0), 0);
    ck_assert_int_eq(weft_sleep_until(s2 - 5), 0);
    ck_assert_elapsed(s2, 0, 1000);
    ck_assert_fails(weft_sleep_until(-1), EINVAL);          /* never sleeps the thread forever */
}
END_TEST

START_TEST(self_id_and_name_outside_any_task)
{
    ck_assert_ptr_null(weft_self());
    ck_assert_int_eq(weft_id(NULL), 0);
    ck_assert_ptr_null(weft_name(NULL));
    ck_assert_fails(weft_set_name(NULL, "x"), EPERM);
    weft_task *t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_null(weft_self());
    ck_assert_int_eq(weft_id(NULL), 0);
    ck_assert_ptr_null(weft_name(NULL));
    ck_assert_int_ne(weft_id(t), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    run_ok();
}
END_TEST

START_TEST(run_with_no_tasks_returns_zero)
{
    run_ok();
    run_ok();
}
END_TEST

static int inside_spawned;

static void *count_inside_spawned(void *arg)
{
    inside_spawned++;
    return NULL;
}

static void *run_inside(void *arg)
{
    ck_assert_fails(weft_run(), EPERM);
    ck_assert_fails(weft_main(count_inside_spawned, NULL), EPERM);
    ck_assert_fails(weft_main_attr(&(weft_attr){ .name = "m" }, count_inside_spawned, NULL), EPERM);
    return V(1);
}

START_TEST(run_inside_a_task_fails_eperm)
{
    inside_spawned = 0;
    ck_assert_ptr_eq(in_task(run_inside, NULL), V(1));
    ck_assert_int_eq(inside_spawned, 0);    /* weft_main spawned nothing */
}
END_TEST

/* ---- weft_main ---------------------------------------------------------------------------- */

static int main_fn_ran, main_children_done;

static void *main_child(void *arg)
{
    weft_sleep(5);
    main_children_done++;
    return NULL;
}

static void *main_fn(void *arg)
{
    ck_assert_ptr_nonnull(weft_self());
    ck_assert_str_eq(weft_name(NULL), "main");
    ck_assert_ptr_eq(arg, V(99));
    for (int i = 0; i < 3; i++) {
        weft_attr a = { .detached = 1 };
        ck_assert_ptr_nonnull(weft_spawn(&a, main_child, NULL));
    }
    main_fn_ran = 1;
    return NULL;                /* the children outlive it; weft_main waits for them */
}

START_TEST(weft_main_runs_fn_in_a_task_until_every_task_ends)
{
    main_fn_ran = main_children_done = 0;
    ck_assert_int_eq(weft_main(main_fn, V(99)), 0);
    ck_assert_int_eq(main_fn_ran, 1);
    ck_assert_int_eq(main_children_done, 3);
    ck_assert_ptr_null(weft_self());
}
END_TEST

enum { BIG_FRAME = 600 * 1024 };  /* far more than the default stack holds */
static int main_attr_ran;

/* Needs a stack bigger than the default, and checks its name; takes a while to end. */
static void *main_attr_fn(void *arg)
{
    volatile char big[BIG_FRAME];
    memset((char *)big, 1, sizeof big);
    ck_assert_int_eq(big[BIG_FRAME - 1] + big[0], 2);
    ck_assert_str_eq(weft_name(NULL), arg ? (const char *)arg : "main");
    ck_assert_int_eq(weft_sleep(5), 0);     /* not cancelled: it is no daemon */
    main_attr_ran++;
    return NULL;
}

START_TEST(weft_main_attr_uses_the_stack_size_and_name)
{
    main_attr_ran = 0;
    weft_attr a = { .stack_size = 1024 * 1024, .name = "entry" };
    ck_assert_int_eq(weft_main_attr(&a, main_attr_fn, "entry"), 0);
    ck_assert_int_eq(main_attr_ran, 1);
    ck_assert_ptr_null(weft_self());
}
END_TEST

START_TEST(weft_main_attr_task_is_detached_no_daemon_and_named_main_by_default)
{
    main_attr_ran = 0;
    weft_attr a = { .stack_size = 1024 * 1024, .detached = 0, .daemon = 1 };
    ck_assert_int_eq(weft_main_attr(&a, main_attr_fn, NULL), 0);
    ck_assert_int_eq(main_attr_ran, 1);
    /* Detached: nothing was left to join, so the scheduler was released and ids restart. */
    weft_task *t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_id(t), 1);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    run_ok();
}
END_TEST

START_TEST(weft_main_attr_rejects_bad_attributes_with_einval)
{
    weft_attr a = { .stack_size = 1 };
    ck_assert_fails(weft_main_attr(&a, ret_arg, NULL), EINVAL);
    weft_attr r = { .reserved = { 1 } };
    ck_assert_fails(weft_main_attr(&r, ret_arg, NULL), EINVAL);
    ck_assert_fails(weft_main_attr(NULL, NULL, NULL), EINVAL);
    run_ok();
}
END_TEST

START_TEST(weft_main_with_null_fn_fails_einval)
{
    ck_assert_fails(weft_main(NULL, NULL), EINVAL);
}
END_TEST

static void *main_deadlocks(void *arg)
{
    weft_task *t = weft_go(sleep_forever, NULL);
    ck_assert_ptr_nonnull(t);
    *(weft_task **)arg = t;
    weft_join(t, NULL);
    return NULL;
}

START_TEST(weft_main_reports_edeadlk)
{
    weft_task *stuck = NULL;
    ck_assert_fails(weft_main(main_deadlocks, &stuck), EDEADLK);
    /* Unstick it so the scheduler can end cleanly. */
    ck_assert_ptr_nonnull(stuck);
    ck_assert_int_eq(weft_cancel(stuck), 0);
    run_ok();
}
END_TEST

/* ---- names and ids ------------------------------------------------------------------------ */

static void *naming(void *arg)
{
    ck_assert_str_eq(weft_name(NULL), "");                  /* unnamed */
    ck_assert_int_eq(weft_set_name(NULL, "worker"), 0);
    ck_assert_str_eq(weft_name(NULL), "worker");
    ck_assert_str_eq(weft_name(weft_self()), "worker");
    char longname[64];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    longname[0] = 'A';
    ck_assert_int_eq(weft_set_name(NULL, longname), 0);
    ck_assert_uint_eq(strlen(weft_name(NULL)), 31);
    ck_assert_int_eq(strncmp(weft_name(NULL), longname, 31), 0);
    ck_assert_int_eq(weft_set_name(weft_self(), "exactly-thirty-one-bytes-long-x"), 0);
    ck_assert_str_eq(weft_name(NULL), "exactly-thirty-one-bytes-long-x");
    ck_assert_int_eq(weft_set_name(NULL, NULL), 0);
    ck_assert_str_eq(weft_name(NULL), "");
    return NULL;
}

START_TEST(set_name_truncates_to_31_bytes_and_null_clears)
{
    in_task(naming, NULL);
}
END_TEST

START_TEST(spawn_copies_the_attr_name)
{
    char buf[40] = "copied-name";
    weft_attr a = { .name = buf };
    weft_task *t = weft_spawn(&a, ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    strcpy(buf, "changed");
    ck_assert_str_eq(weft_name(t), "copied-name");
    ck_assert_int_eq(weft_set_name(t, "renamed-from-main"), 0);
    ck_assert_str_eq(weft_name(t), "renamed-from-main");
    weft_task *u = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(u);
    ck_assert_str_eq(weft_name(u), "");
    memset(buf, 'x', sizeof buf - 1);
    buf[sizeof buf - 1] = '\0';
    weft_attr b = { .name = buf };
    weft_task *v = weft_spawn(&b, ret_arg, NULL);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(strlen(weft_name(v)), 31);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_join(u, NULL), 0);
    ck_assert_int_eq(weft_join(v, NULL), 0);
    run_ok();
}
END_TEST

static void *report_own_id(void *arg)
{
    return V(weft_id(NULL));
}

START_TEST(ids_start_at_one_increase_and_are_never_reused)
{
    run_ok();                   /* a fresh scheduler: earlier tests (CK_FORK=no) released theirs */
    enum { N = 200 };
    weft_task *t[N];
    uint64_t id[N];
    for (int i = 0; i < N; i++) {
        ck_assert_ptr_nonnull(t[i] = weft_go(report_own_id, NULL));
        id[i] = weft_id(t[i]);
    }
    ck_assert_int_eq(id[0], 1);
    for (int i = 0; i < N; i++) {
        if (i)
            ck_assert_int_gt(id[i], id[i - 1]);
        void *v;
        ck_assert_int_eq(weft_join(t[i], &v), 0);
        ck_assert_int_eq((uint64_t)(intptr_t)v, id[i]);     /* weft_id(NULL) in the task */
    }
    /* The records are reused now; the ids are not. */
    for (int i = 0; i < N; i++) {
        weft_task *u = weft_go(report_own_id, NULL);
        ck_assert_ptr_nonnull(u);
        ck_assert_int_gt(weft_id(u), id[N - 1] + (uint64_t)i);
        ck_assert_int_eq(weft_join(u, NULL), 0);
    }
    run_ok();
}
END_TEST

/* ---- weft_runnable ---------------------------------------------------------------------- */

enum { RUNNABLE_N = 6 };
static int runnable_seen[RUNNABLE_N];

static void *note_runnable(void *arg)
{
    runnable_seen[I(arg)] = weft_runnable();
    return NULL;
}

static void *count_runnable(void *arg)
{
    ck_assert_int_eq(weft_runnable(), 0);               /* the caller does not count */
    weft_task *t[RUNNABLE_N];
    for (int i = 0; i < RUNNABLE_N; i++) {
        ck_assert_ptr_nonnull(t[i] = weft_go(note_runnable, V(i)));
        ck_assert_int_eq(weft_runnable(), i + 1);
    }
    ck_assert_int_eq(weft_yield(), 0);
    /* Each saw the ones after it and this task, queued behind them. */
    for (int i = 0; i < RUNNABLE_N; i++)
        ck_assert_int_eq(runnable_seen[i], RUNNABLE_N - i);
    ck_assert_int_eq(weft_runnable(), 0);
    for (int i = 0; i < RUNNABLE_N; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    /* A parked task is not runnable; woken, it is. */
    weft_task *sl = weft_go(sleep_forever, NULL);
    ck_assert_ptr_nonnull(sl);
    ck_assert_int_eq(weft_runnable(), 1);
    ck_assert_int_eq(weft_yield(), 0);                  /* it parks */
    ck_assert_int_eq(weft_runnable(), 0);
    ck_assert_int_eq(weft_cancel(sl), 0);
    ck_assert_int_eq(weft_runnable(), 1);
    ck_assert_int_eq(weft_join(sl, NULL), 0);
    ck_assert_int_eq(weft_runnable(), 0);
    return V(1);
}

START_TEST(runnable_counts_the_run_queue_and_drops_as_tasks_run)
{
    ck_assert_ptr_eq(in_task(count_runnable, NULL), V(1));
}
END_TEST

START_TEST(runnable_outside_any_task_counts_every_runnable_task)
{
    run_ok();
    ck_assert_int_eq(weft_runnable(), 0);               /* no scheduler */
    weft_task *t[RUNNABLE_N];
    for (int i = 0; i < RUNNABLE_N; i++) {
        ck_assert_ptr_nonnull(t[i] = weft_go(note_runnable, V(i)));
        ck_assert_int_eq(weft_runnable(), i + 1);
    }
    ck_assert_int_eq(weft_join(t[RUNNABLE_N - 1], NULL), 0);   /* the last: they all run */
    ck_assert_int_eq(weft_runnable(), 0);
    for (int i = 0; i < RUNNABLE_N; i++)
        ck_assert_int_eq(runnable_seen[i], RUNNABLE_N - 1 - i);
    for (int i = 0; i < RUNNABLE_N - 1; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    run_ok();
}
END_TEST

/* ---- daemons ---------------------------------------------------------------------------- */

static int user_done, daemon_cleanups, daemon_saw_user_done;

static void *user_sleeps_then_ends(void *arg)
{
    ck_assert_int_eq(weft_sleep(20), 0);
    user_done = 1;
    return NULL;
}

/* Sleeps until cancelled; its cleanup notes whether the user task had ended by then. */
static void *daemon_sleeps_forever(void *arg)
{
    int e = err_of(weft_sleep_until(-1));
    daemon_saw_user_done += user_done;
    daemon_cleanups++;
    return V(e);
}

static void daemons_reset(void)
{
    user_done = daemon_cleanups = daemon_saw_user_done = 0;
}

START_TEST(daemon_sleeping_forever_does_not_keep_weft_run_going)
{
    daemons_reset();
    weft_attr d = { .daemon = 1, .name = "daemon" };
    weft_task *t = weft_spawn(&d, daemon_sleeps_forever, NULL);
    ck_assert_ptr_nonnull(t);
    weft_attr dd = { .daemon = 1, .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&dd, daemon_sleeps_forever, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .detached = 1 }, user_sleeps_then_ends, NULL));
    run_ok();
    ck_assert_int_eq(user_done, 1);
    ck_assert_int_eq(daemon_cleanups, 2);               /* cancelled, and their cleanups ran */
    ck_assert_int_eq(daemon_saw_user_done, 2);          /* only once the user task had ended */
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);              /* a joinable daemon stays joinable */
    ck_assert_int_eq(I(v), ECANCELED);
    run_ok();
}
END_TEST

START_TEST(weft_run_with_only_daemons_cancels_them_at_once)
{
    daemons_reset();
    weft_attr d = { .daemon = 1, .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&d, daemon_sleeps_forever, NULL));
    run_ok();
    ck_assert_int_eq(daemon_cleanups, 1);
}
END_TEST

static weft_task *dj[2];
static int dj_err[2];

/* Daemon i joins daemon 1 - i: a cycle nothing but a cancel can break. */
static void *daemon_joins_the_other(void *arg)
{
    int i = I(arg);
    dj_err[i] = err_of(weft_join(dj[1 - i], NULL));
    daemon_cleanups++;
    return NULL;
}

START_TEST(daemons_waiting_on_each_other_do_not_make_weft_run_fail_edeadlk)
{
    daemons_reset();
    weft_attr d = { .daemon = 1 };
    for (int i = 0; i < 2; i++)
        ck_assert_ptr_nonnull(dj[i] = weft_spawn(&d, daemon_joins_the_other, V(i)));
    ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .detached = 1 }, user_sleeps_then_ends, NULL));
    run_ok();
    ck_assert_int_eq(user_done, 1);
    ck_assert_int_eq(daemon_cleanups, 2);
    /* Whichever of them the cancel woke first failed its join with ECANCELED, which ended
     * it, so the other one's join may have succeeded. */
    ck_assert(dj_err[0] == ECANCELED || dj_err[1] == ECANCELED);
    weft_join(dj[0], NULL);     /* whichever the other did not join */
    weft_join(dj[1], NULL);
    ck_assert_fails(weft_join(dj[0], NULL), EINVAL);
    ck_assert_fails(weft_join(dj[1], NULL), EINVAL);
    run_ok();
}
END_TEST

static long daemon_spins;

static void *daemon_spins_on_yield(void *arg)
{
    while (weft_yield() == 0)
        daemon_spins++;
    ck_assert_int_eq(errno, ECANCELED);
    daemon_saw_user_done += user_done;
    daemon_cleanups++;
    return NULL;
}

static void *user_yields_then_ends(void *arg)
{
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(weft_yield(), 0);
    user_done = 1;
    return NULL;
}

START_TEST(busy_daemon_does_not_keep_weft_run_going)
{
    daemons_reset();
    daemon_spins = 0;
    weft_attr d = { .daemon = 1, .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&d, daemon_spins_on_yield, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&d, daemon_spins_on_yield, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .detached = 1 }, user_yields_then_ends, NULL));
    run_ok();
    ck_assert_int_eq(daemon_cleanups, 2);
    ck_assert_int_eq(daemon_saw_user_done, 2);
    ck_assert_int_ge(daemon_spins, 100);                /* they ran alongside the user task */
}
END_TEST

/* Cancelled, it starts another daemon on its way out: weft_run cancels that one too. */
static void *daemon_spawns_a_daemon_when_cancelled(void *arg)
{
    ck_assert_fails(weft_sleep_until(-1), ECANCELED);
    weft_attr d = { .daemon = 1, .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&d, daemon_sleeps_forever, NULL));
    daemon_cleanups++;
    return NULL;
}

START_TEST(daemon_spawned_while_weft_run_ends_is_cancelled_too)
{
    daemons_reset();
    weft_attr d = { .daemon = 1, .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&d, daemon_spawns_a_daemon_when_cancelled, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .detached = 1 }, user_sleeps_then_ends, NULL));
    run_ok();
    ck_assert_int_eq(daemon_cleanups, 2);
}
END_TEST

static void *dump_to(void *arg)
{
    ck_assert_int_eq(weft_dump(I(arg), WEFT_DUMP_NO_BACKTRACE), 0);
    ck_assert_int_eq(weft_dump(I(arg), WEFT_DUMP_NO_BACKTRACE | WEFT_DUMP_JSON), 0);
    return NULL;
}

START_TEST(dump_marks_daemon_tasks)
{
    daemons_reset();
    FILE *f = tmpfile();
    ck_assert_ptr_nonnull(f);
    weft_attr d = { .daemon = 1, .detached = 1, .name = "the-daemon" };
    ck_assert_ptr_nonnull(weft_spawn(&d, daemon_sleeps_forever, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .detached = 1 }, dump_to, V(fileno(f))));
    run_ok();
    char buf[16384];
    rewind(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, ", daemon\n"));
    ck_assert_ptr_nonnull(strstr(buf, "\"name\":\"the-daemon\""));
    ck_assert_ptr_nonnull(strstr(buf, "\"daemon\":true"));
    ck_assert_ptr_nonnull(strstr(buf, "\"daemon\":false"));  /* the dumping task */
}
END_TEST

/* ---- user data ------------------------------------------------------------------------- */

static int data_a, data_b, data_c;
static weft_task *data_peer;

/* Runs with its data set by the spawner; reads it, changes it, and sets its peer's. */
static void *data_user(void *arg)
{
    ck_assert_ptr_eq(weft_data(NULL), &data_a);
    ck_assert_ptr_eq(weft_data(weft_self()), &data_a);
    ck_assert_int_eq(weft_set_data(NULL, &data_b), 0);
    ck_assert_ptr_eq(weft_data(NULL), &data_b);
    ck_assert_ptr_eq(weft_data(data_peer), NULL);           /* unset: NULL */
    ck_assert_int_eq(weft_set_data(data_peer, &data_c), 0);
    ck_assert_int_eq(weft_yield(), 0);                      /* the peer checks it */
    return weft_data(NULL);
}

static void *data_peer_task(void *arg)
{
    ck_assert_ptr_eq(weft_data(NULL), &data_c);
    ck_assert_int_eq(weft_set_data(weft_self(), NULL), 0);
    ck_assert_ptr_eq(weft_data(NULL), NULL);
    return NULL;
}

START_TEST(task_data_is_set_and_read_on_self_and_other_tasks)
{
    weft_task *t = weft_go(data_user, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(data_peer = weft_go(data_peer_task, NULL));
    ck_assert_ptr_eq(weft_data(t), NULL);
    ck_assert_int_eq(weft_set_data(t, &data_a), 0);         /* from outside any task */
    ck_assert_ptr_eq(weft_data(t), &data_a);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, &data_b);
    ck_assert_int_eq(weft_join(data_peer, NULL), 0);
    run_ok();
}
END_TEST

START_TEST(task_data_outside_any_task_fails_eperm)
{
    ck_assert_fails(weft_set_data(NULL, &data_a), EPERM);   /* no scheduler yet */
    ck_assert_fails(weft_data(NULL), EPERM);
    weft_task *t = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_fails(weft_set_data(NULL, &data_a), EPERM);   /* a scheduler, but no task */
    ck_assert_fails(weft_data(NULL), EPERM);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    run_ok();
}
END_TEST

/* A stale handle's data calls fail, and the tasks now in its place start with none. */
START_TEST(task_data_of_a_stale_handle_fails_einval)
{
    weft_task *old = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(old);
    ck_assert_int_eq(weft_set_data(old, &data_a), 0);
    ck_assert_int_eq(weft_join(old, NULL), 0);
    ck_assert_fails(weft_set_data(old, &data_b), EINVAL);
    ck_assert_fails(weft_data(old), EINVAL);
    for (int i = 0; i < 300; i++) {
        weft_task *t = weft_go(ret_arg, NULL);
        ck_assert_ptr_nonnull(t);
        test_require(weft_data(t) == NULL, "task %d starts with data", i);
        ck_assert_int_eq(weft_set_data(t, &data_c), 0);
        ck_assert_int_eq(weft_join(t, NULL), 0);
        test_require(weft_data(old) == NULL && errno == EINVAL, "stale data call %d", i);
    }
    run_ok();
}
END_TEST

/* ---- stale handles ---------------------------------------------------------------------- */

/* More tasks than a record chunk or a first handle table hold: some of them take the place of
 * the task whose handle went stale. */
enum { NEWGEN = 300 };
static weft_task *newgen[NEWGEN];
static int newgen_done, newgen_bad;

/* A task of the new generation: lives across the stale calls (it yields and sleeps), then
 * checks that it was not cancelled and still has its name. */
static void *newgen_task(void *arg)
{
    char want[32];
    snprintf(want, sizeof want, "new-%d", I(arg));
    for (int i = 0; i < 3; i++)
        newgen_bad += weft_yield() != 0;
    newgen_bad += weft_sleep(1) != 0;
    newgen_bad += strcmp(weft_name(NULL), want) != 0;
    newgen_done++;
    return arg;
}

static void newgen_spawn(void)
{
    newgen_done = newgen_bad = 0;
    for (int i = 0; i < NEWGEN; i++) {
        char name[32];
        snprintf(name, sizeof name, "new-%d", i);
        weft_attr a = { .name = name };
        newgen[i] = weft_spawn(&a, newgen_task, V(i));
        test_require(newgen[i] != NULL, "spawn %d: %s", i, strerror(errno));
    }
}

/* Every new task runs to its end, uncancelled, with its own name and value. */
static void newgen_join(void)
{
    for (int i = 0; i < NEWGEN; i++) {
        char want[32];
        snprintf(want, sizeof want, "new-%d", i);
        ck_assert_str_eq(weft_name(newgen[i]), want);
        void *v = NULL;
        ck_assert_int_eq(weft_join(newgen[i], &v), 0);
        ck_assert_ptr_eq(v, V(i));
    }
    ck_assert_int_eq(newgen_done, NEWGEN);
    ck_assert_int_eq(newgen_bad, 0);
}

/* Each call given a stale handle fails with EINVAL (weft_id: 0). */
static void stale_calls_fail_einval(weft_task *stale)
{
    ck_assert_fails(weft_id(stale), EINVAL);
    ck_assert_fails(weft_name(stale), EINVAL);
    ck_assert_fails(weft_set_name(stale, "hijacked"), EINVAL);
    ck_assert_fails(weft_cancel(stale), EINVAL);
    ck_assert_fails(weft_detach(stale), EINVAL);
    ck_assert_fails(weft_join(stale, NULL), EINVAL);
    ck_assert_fails(weft_join_until(stale, NULL, weft_now() + 100), EINVAL);
}

START_TEST(stale_handle_after_join_fails_einval_and_spares_the_new_tasks)
{
    weft_task *old = weft_go(ret_arg, V(1));
    ck_assert_ptr_nonnull(old);
    ck_assert_int_eq(weft_join(old, NULL), 0);
    stale_calls_fail_einval(old);       /* at once */
    newgen_spawn();
    stale_calls_fail_einval(old);       /* and with its place taken by a new task */
    newgen_join();
    run_ok();
}
END_TEST

static void *stale_from_a_task(void *arg)
{
    weft_task *old = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(old);
    ck_assert_int_eq(weft_join(old, NULL), 0);
    newgen_spawn();
    ck_assert_int_eq(weft_yield(), 0);  /* the new tasks are running */
    stale_calls_fail_einval(old);
    newgen_join();
    return V(1);
}

START_TEST(stale_handle_in_a_task_fails_einval_and_spares_the_new_tasks)
{
    ck_assert_ptr_eq(in_task(stale_from_a_task, NULL), V(1));
}
END_TEST

START_TEST(stale_handle_of_an_ended_detached_task_fails_einval)
{
    weft_attr a = { .detached = 1, .name = "old" };
    weft_task *old = weft_spawn(&a, ret_arg, NULL);
    ck_assert_ptr_nonnull(old);
    weft_task *k = weft_go(ret_arg, NULL);      /* runs after old has ended */
    ck_assert_ptr_nonnull(k);
    ck_assert_int_eq(weft_join(k, NULL), 0);
    stale_calls_fail_einval(old);
    newgen_spawn();
    stale_calls_fail_einval(old);
    newgen_join();
    run_ok();
}
END_TEST

/* Spawned and joined one at a time, tasks do not take the slot of the task just joined:
 * released slots are reused oldest first, once 64 are free, so a slot's generation (and with
 * it a stale handle) comes round only after 2^32 uses of each of 65 slots. A handle is
 * (generation << 32 | slot + 1) (src/sched.h), so the slot is its low half. */
START_TEST(one_at_a_time_spawns_never_reuse_a_recent_slot)
{
    enum { N = 500, RECENT = 64 };
    static weft_task *seen[N];
    for (int i = 0; i < N; i++) {
        seen[i] = weft_go(ret_arg, V(i));
        ck_assert_ptr_nonnull(seen[i]);
        for (int k = i > RECENT ? i - RECENT : 0; k < i; k++)
            ck_assert_msg((uint32_t)(uintptr_t)seen[k] != (uint32_t)(uintptr_t)seen[i],
                          "task %d got the slot of task %d", i, k);
        void *v = NULL;
        ck_assert_int_eq(weft_join(seen[i], &v), 0);
        ck_assert_ptr_eq(v, V(i));
    }
    stale_calls_fail_einval(seen[N - 1]);
    stale_calls_fail_einval(seen[0]);
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

START_TEST(stale_handle_from_a_released_scheduler_fails_einval)
{
    weft_task *old = weft_go(ret_arg, NULL);
    ck_assert_ptr_nonnull(old);
    ck_assert_int_eq(weft_join(old, NULL), 0);
    run_ok();                           /* nothing left: the scheduler is released */
    stale_calls_fail_einval(old);       /* no scheduler on the thread */
    newgen_spawn();                     /* a new one, its tasks in the same places */
    stale_calls_fail_einval(old);
    newgen_join();
    run_ok();
}
END_TEST

static void *report_self(void *arg)
{
    return weft_self();
}

START_TEST(self_is_the_handle_spawn_returned)
{
    weft_task *t = weft_go(report_self, NULL);
    ck_assert_ptr_nonnull(t);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, t);
    run_ok();
}
END_TEST

/* ---- spawn errors ----------------------------------------------------------------------- */

START_TEST(spawn_with_null_fn_fails_einval)
{
    ck_assert_fails(weft_go(NULL, NULL), EINVAL);
    weft_attr a = { .stack_size = 0 };
    ck_assert_fails(weft_spawn(&a, NULL, NULL), EINVAL);
}
END_TEST

START_TEST(spawn_with_stack_size_out_of_range_fails_einval)
{
    weft_attr a = { .stack_size = WEFT_STACK_MIN - 1 };
    ck_assert_fails(weft_spawn(&a, ret_arg, NULL), EINVAL);
    a.stack_size = 1;
    ck_assert_fails(weft_spawn(&a, ret_arg, NULL), EINVAL);
    a.stack_size = WEFT_STACK_MAX + 1;
    ck_assert_fails(weft_spawn(&a, ret_arg, NULL), EINVAL);
    a.stack_size = SIZE_MAX;
    ck_assert_fails(weft_spawn(&a, ret_arg, NULL), EINVAL);
}
END_TEST

START_TEST(spawn_with_nonzero_reserved_fails_einval)
{
    weft_attr a0;
    for (int i = 0; i < (int)(sizeof a0.reserved / sizeof a0.reserved[0]); i++) {
        weft_attr a = { .name = "r" };
        a.reserved[i] = 1;
        ck_assert_fails(weft_spawn(&a, ret_arg, NULL), EINVAL);
    }
}
END_TEST

START_TEST(spawn_accepts_the_stack_size_bounds)
{
    static const size_t sizes[] = { WEFT_STACK_MIN, WEFT_STACK_MIN + 1, 100000, WEFT_STACK_MAX };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        weft_attr a = { .stack_size = sizes[i] };
        weft_task *t = weft_spawn(&a, ret_arg, V(i + 1));
        ck_assert_msg(t != NULL, "stack size %zu: %s", sizes[i], strerror(errno));
        void *v;
        ck_assert_int_eq(weft_join(t, &v), 0);
        ck_assert_ptr_eq(v, V(i + 1));
    }
    run_ok();
}
END_TEST

/* ---- deadlock detection ----------------------------------------------------------------- */

static weft_task *cyc[3];
static int cyc_err[3];
static void *cyc_val[3];

/* Task i joins task i+1 (mod 3), notes how that went, and returns 100 + i. */
static void *cyc_join(void *arg)
{
    int i = I(arg);
    cyc_val[i] = V(-1);
    cyc_err[i] = err_of(weft_join(cyc[(i + 1) % 3], &cyc_val[i]));
    return V(100 + i);
}

START_TEST(run_reports_edeadlk_for_a_join_cycle_through_a_third_task)
{
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(cyc[i] = weft_go(cyc_join, V(i)));
    ck_assert_fails(weft_run(), EDEADLK);
    ck_assert_fails(weft_run(), EDEADLK);           /* and again: nothing changed */
    /* Cancel 0: its join of 1 fails and 0 ends; 2, joining 0, gets 0's value and ends; 1,
     * joining 2, gets 2's. Nobody joined 1, so main does. */
    ck_assert_int_eq(weft_cancel(cyc[0]), 0);
    run_ok();
    ck_assert_int_eq(cyc_err[0], ECANCELED);
    ck_assert_int_eq(cyc_err[2], 0);
    ck_assert_ptr_eq(cyc_val[2], V(100));
    ck_assert_int_eq(cyc_err[1], 0);
    ck_assert_ptr_eq(cyc_val[1], V(102));
    void *v;
    ck_assert_int_eq(weft_join(cyc[1], &v), 0);
    ck_assert_ptr_eq(v, V(101));
    run_ok();
}
END_TEST

static weft_task *forever;

static void *join_forever(void *arg)
{
    void *v = V(-1);
    int e = err_of(weft_join(forever, &v));
    ck_assert_int_eq(e, 0);
    return v;
}

START_TEST(run_reports_edeadlk_for_a_join_on_a_task_sleeping_forever)
{
    forever = weft_go(sleep_forever, NULL);
    ck_assert_ptr_nonnull(forever);
    weft_task *j = weft_go(join_forever, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_fails(weft_run(), EDEADLK);
    ck_assert_int_eq(weft_cancel(forever), 0);
    run_ok();
    void *v;
    ck_assert_int_eq(weft_join(j, &v), 0);
    ck_assert_int_eq(I(v), ECANCELED);  /* forever's sleep was cancelled; j got its value */
    run_ok();
}
END_TEST

START_TEST(run_does_not_report_deadlock_while_a_timer_is_pending)
{
    sleep_ms_arg = 40;
    forever = weft_go(sleep_then_ret, V(17));    /* join_forever joins whatever 'forever' is */
    ck_assert_ptr_nonnull(forever);
    weft_task *j = weft_go(join_forever, NULL);
    ck_assert_ptr_nonnull(j);
    run_ok();
    void *v;
    ck_assert_int_eq(weft_join(j, &v), 0);
    ck_assert_ptr_eq(v, V(17));
    run_ok();
}
END_TEST

/* ---- scale -------------------------------------------------------------------------------- */

enum { MANY = 10000 };

static void *many_child(void *arg)
{
    weft_yield();
    return V(I(arg) * 3 + 1);
}

static void *many_parent(void *arg)
{
    static weft_task *t[MANY];
    for (int i = 0; i < MANY; i++) {
        t[i] = weft_go(many_child, V(i));
        test_require(t[i] != NULL, "spawn %d: %s", i, strerror(errno));
        test_require(i == 0 || weft_id(t[i]) > weft_id(t[i - 1]), "ids out of order at %d", i);
    }
    int bad = 0;
    for (int i = 0; i < MANY; i++) {
        void *v = NULL;
        test_require(weft_join(t[i], &v) == 0, "join %d: %s", i, strerror(errno));
        bad += I(v) != i * 3 + 1;
    }
    return V(bad);
}

START_TEST(ten_thousand_tasks_spawned_and_joined)
{
    ck_assert_int_eq(I(in_task(many_parent, NULL)), 0);
}
END_TEST

enum { SLEEPERS = 100000, SLEEPERS_VALGRIND = 20000, SPREAD_MS = 200 };
static int sl_count;                /* SLEEPERS, fewer under valgrind (see below) */
static unsigned short *sl_off;      /* task i sleeps until sl_base + sl_off[i] */
static int *sl_order;
static int sl_n, sl_started, sl_late, sl_early, sl_errors;
static int64_t sl_base, sl_t0;

static void *timed_sleeper(void *arg)
{
    int i = I(arg);
    sl_started++;
    while (sl_base < 0)                 /* the first round: every sleeper has started */
        weft_yield();
    int64_t d = sl_base + sl_off[i];
    if (weft_now() >= d)
        sl_late++;
    if (weft_sleep_until(d) != 0)
        sl_errors++;
    if (weft_now() < d)
        sl_early++;
    sl_order[sl_n++] = i;
    return NULL;
}

/* Spawned last, so it runs once every sleeper has started; it picks a base far enough out
 * (four times the first round's duration, plus half a second) that every sleeper parks before it. */
static void *sleepers_go(void *arg)
{
    ck_assert_int_eq(sl_started, sl_count);
    int64_t now = weft_now();
    sl_base = now + 4 * (now - sl_t0) + 500;     /* generous: the second round runs on a busy machine too */
    return NULL;
}

START_TEST(hundred_thousand_sleepers_wake_in_deadline_order)
{
    sl_count = SLEEPERS;
    if (RUNNING_ON_VALGRIND) {
        /* Each stack is a mapping of its own to valgrind, whose table of them is bounded. */
        fprintf(stderr, "%s: %d sleepers, not %d: valgrind runs out of segments\n", __func__,
                SLEEPERS_VALGRIND, SLEEPERS);
        sl_count = SLEEPERS_VALGRIND;
    }
    sl_off = malloc((size_t)sl_count * sizeof *sl_off);
    sl_order = malloc((size_t)sl_count * sizeof *sl_order);
    ck_assert(sl_off && sl_order);
    uint32_t x = 12345;
    for (int i = 0; i < sl_count; i++) {
        x = x * 1103515245u + 12345u;
        sl_off[i] = (unsigned short)((x >> 8) % SPREAD_MS);
    }
    sl_n = sl_started = sl_late = sl_early = sl_errors = 0;
    sl_base = -1;
    weft_attr a = { .stack_size = WEFT_STACK_MIN, .detached = 1 };
    for (int i = 0; i < sl_count; i++)
        test_require(weft_spawn(&a, timed_sleeper, V(i)) != NULL, "spawn %d: %s", i, strerror(errno));
    ck_assert_ptr_nonnull(weft_spawn(&a, sleepers_go, NULL));
    sl_t0 = weft_now();
    run_ok();
    ck_assert_int_eq(sl_n, sl_count);
    ck_assert_int_eq(sl_errors, 0);
    ck_assert_int_eq(sl_early, 0);
    ck_assert_msg(sl_late == 0, "%d sleepers parked after their deadline (base chosen too near)", sl_late);
    for (int k = 1; k < sl_count; k++) {
        int p = sl_order[k - 1], q = sl_order[k];
        test_require(sl_off[p] < sl_off[q] || (sl_off[p] == sl_off[q] && p < q),
                     "wake %d: task %d (+%d ms) after task %d (+%d ms)", k, q, sl_off[q], p, sl_off[p]);
    }
    free(sl_off);
    free(sl_order);
}
END_TEST

/* ---- one scheduler per thread ----------------------------------------------------------- */

enum { THR_WORKERS = 3, THR_ROUNDS = 200 };

struct thr_state {
    int log[THR_WORKERS * THR_ROUNDS];
    int n;
    uint64_t main_id;
    uint64_t worker_ids[THR_WORKERS];
    int run_rc;
    pthread_barrier_t *barrier;
};

static __thread struct thr_state *thr_cur;

static void *thr_worker(void *arg)
{
    struct thr_state *st = thr_cur;
    for (int r = 0; r < THR_ROUNDS; r++) {
        st->log[st->n++] = I(arg);
        weft_yield();
    }
    return NULL;
}

static void *thr_main(void *arg)
{
    struct thr_state *st = thr_cur;
    st->main_id = weft_id(NULL);
    weft_task *w[THR_WORKERS];
    for (int i = 0; i < THR_WORKERS; i++) {
        w[i] = weft_go(thr_worker, V(i));
        if (!w[i])
            return NULL;
        st->worker_ids[i] = weft_id(w[i]);
    }
    /* Both threads are inside their schedulers at once here. */
    pthread_barrier_wait(st->barrier);
    for (int i = 0; i < THR_WORKERS; i++)
        weft_join(w[i], NULL);
    return NULL;
}

static void *thr_body(void *arg)
{
    thr_cur = arg;
    thr_cur->run_rc = weft_main(thr_main, NULL);
    return NULL;
}

static void thr_check(const struct thr_state *st, const char *who)
{
    ck_assert_msg(st->run_rc == 0, "%s: weft_main failed", who);
    ck_assert_msg(st->main_id == 1, "%s: first task id %llu, expected 1", who,
                  (unsigned long long)st->main_id);
    for (int i = 0; i < THR_WORKERS; i++)
        ck_assert_int_eq(st->worker_ids[i], (uint64_t)i + 2);
    ck_assert_int_eq(st->n, THR_WORKERS * THR_ROUNDS);
    for (int k = 0; k < st->n; k++)
        ck_assert_msg(st->log[k] == k % THR_WORKERS, "%s: log[%d] = %d", who, k, st->log[k]);
}

START_TEST(thread_runs_its_own_scheduler_alongside_main)
{
    run_ok();                   /* the main thread's ids start at 1 again */
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    static struct thr_state other, mine;
    memset(&other, 0, sizeof other);
    memset(&mine, 0, sizeof mine);
    other.barrier = mine.barrier = &b;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, thr_body, &other), 0);
    thr_body(&mine);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    pthread_barrier_destroy(&b);
    thr_check(&mine, "main thread");
    thr_check(&other, "second thread");
    ck_assert_ptr_null(weft_self());
}
END_TEST

/* ---- suite -------------------------------------------------------------------------------- */

static void *named_value(void *arg)
{
    return (void *)(intptr_t)(strcmp(weft_name(NULL), "literal") == 0 ? (intptr_t)arg : -1);
}

START_TEST(spawn_takes_a_compound_literal_attribute)
{
    weft_task *t = weft_spawn(&(weft_attr){ .name = "literal", .stack_size = 64 * 1024 }, named_value, (void *)7);
    ck_assert_ptr_nonnull(t);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq((intptr_t)v, 7);
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = test_case(s, "order", 10);
    tcase_add_test(tc, yield_runs_tasks_round_robin);
    tcase_add_test(tc, yield_with_nothing_else_runnable_returns_at_once);
    tcase_add_test(tc, spawned_task_first_runs_when_spawner_yields);
    tcase_add_test(tc, task_spawned_outside_runs_only_when_scheduler_runs);

    tc = test_case(s, "sleep", 10);
    tcase_add_test(tc, sleepers_wake_in_deadline_order);
    tcase_add_test(tc, equal_deadlines_wake_in_spawn_order);
    tcase_add_test(tc, sleep_never_returns_early);
    tcase_add_test(tc, sleep_until_a_past_deadline_returns_at_once);
    tcase_add_test(tc, sleep_zero_yields_to_other_tasks);
    tcase_add_test(tc, sleep_of_the_largest_duration_lasts_until_cancelled);
    tcase_add_test(tc, task_deadline_cuts_a_sleep_short_with_etimedout);
    tcase_add_test(tc, task_deadline_scopes_nest_and_restore);
    tcase_add_test(tc, task_deadline_in_the_past_fails_blocking_calls_at_once);
    tcase_add_test(tc, task_deadline_outside_any_task_returns_minus_one);

    tc = test_case(s, "join", 10);
    tcase_add_test(tc, spawn_takes_a_compound_literal_attribute);
    tcase_add_test(tc, join_returns_the_task_return_value);
    tcase_add_test(tc, join_returns_the_weft_exit_value);
    tcase_add_test(tc, join_with_null_value_pointer_works);
    tcase_add_test(tc, join_of_an_ended_task_reports_at_once);
    tcase_add_test(tc, join_from_main_of_an_ended_task_reports_its_value);
    tcase_add_test(tc, join_self_fails_edeadlk);
    tcase_add_test(tc, join_of_a_detached_task_fails_einval);
    tcase_add_test(tc, second_join_fails_einval);
    tcase_add_test(tc, join_null_fails_einval);
    tcase_add_test(tc, second_task_joining_the_same_task_fails_einval);
    tcase_add_test(tc, join_until_times_out_and_the_task_stays_joinable);
    tcase_add_test(tc, join_until_times_out_while_the_target_stays_busy);
    tcase_add_test(tc, join_from_main_runs_the_scheduler_until_the_task_ends);
    tcase_add_test(tc, join_until_from_main_times_out_and_the_task_stays_joinable);
    tcase_add_test(tc, join_until_from_main_times_out_while_tasks_stay_busy);
    tcase_add_test(tc, join_from_main_returns_when_the_task_ends_while_others_stay_busy);
    tcase_add_test(tc, join_until_from_main_with_a_past_deadline_fails_at_once);
    tcase_add_test(tc, join_from_main_of_a_task_nothing_can_wake_fails_edeadlk);

    tc = test_case(s, "detach", 10);
    tcase_add_test(tc, detach_error_paths_fail_einval);
    tcase_add_test(tc, detached_task_runs_to_its_end);
    tcase_add_test(tc, detach_of_an_ended_task_releases_it);

    tc = test_case(s, "cancel", 10);
    tcase_add_test(tc, cancel_wakes_a_sleeping_task_with_ecanceled);
    tcase_add_test(tc, cancel_wakes_a_joining_task_with_ecanceled);
    tcase_add_test(tc, cancel_of_a_runnable_task_fails_its_next_blocking_calls);
    tcase_add_test(tc, cancel_is_sticky);
    tcase_add_test(tc, yield_after_cancel_fails_ecanceled);
    tcase_add_test(tc, cancelled_task_polling_on_yield_lets_the_flag_setter_run);
    tcase_add_test(tc, cancelled_task_yield_and_sleep_zero_still_yield);
    tcase_add_test(tc, cancel_of_an_ended_task_does_nothing);
    tcase_add_test(tc, cancel_null_fails_einval);

    tc = test_case(s, "outside", 10);
    tcase_add_test(tc, yield_and_exit_outside_any_task_fail_eperm);
    tcase_add_test(tc, sleep_outside_any_task_sleeps_the_thread);
    tcase_add_test(tc, self_id_and_name_outside_any_task);
    tcase_add_test(tc, run_with_no_tasks_returns_zero);
    tcase_add_test(tc, run_inside_a_task_fails_eperm);
    tcase_add_test(tc, weft_main_runs_fn_in_a_task_until_every_task_ends);
    tcase_add_test(tc, weft_main_with_null_fn_fails_einval);
    tcase_add_test(tc, weft_main_attr_uses_the_stack_size_and_name);
    tcase_add_test(tc, weft_main_attr_task_is_detached_no_daemon_and_named_main_by_default);
    tcase_add_test(tc, weft_main_attr_rejects_bad_attributes_with_einval);
    tcase_add_test(tc, weft_main_reports_edeadlk);

    tc = test_case(s, "names", 10);
    tcase_add_test(tc, set_name_truncates_to_31_bytes_and_null_clears);
    tcase_add_test(tc, spawn_copies_the_attr_name);
    tcase_add_test(tc, ids_start_at_one_increase_and_are_never_reused);

    tc = test_case(s, "runnable", 10);
    tcase_add_test(tc, runnable_counts_the_run_queue_and_drops_as_tasks_run);
    tcase_add_test(tc, runnable_outside_any_task_counts_every_runnable_task);

    tc = test_case(s, "daemon", 10);
    tcase_add_test(tc, daemon_sleeping_forever_does_not_keep_weft_run_going);
    tcase_add_test(tc, weft_run_with_only_daemons_cancels_them_at_once);
    tcase_add_test(tc, daemons_waiting_on_each_other_do_not_make_weft_run_fail_edeadlk);
    tcase_add_test(tc, busy_daemon_does_not_keep_weft_run_going);
    tcase_add_test(tc, daemon_spawned_while_weft_run_ends_is_cancelled_too);
    tcase_add_test(tc, dump_marks_daemon_tasks);

    tc = test_case(s, "data", 10);
    tcase_add_test(tc, task_data_is_set_and_read_on_self_and_other_tasks);
    tcase_add_test(tc, task_data_outside_any_task_fails_eperm);
    tcase_add_test(tc, task_data_of_a_stale_handle_fails_einval);

    tc = test_case(s, "stale", 20);
    tcase_add_test(tc, one_at_a_time_spawns_never_reuse_a_recent_slot);
    tcase_add_test(tc, stale_handle_after_join_fails_einval_and_spares_the_new_tasks);
    tcase_add_test(tc, stale_handle_in_a_task_fails_einval_and_spares_the_new_tasks);
    tcase_add_test(tc, stale_handle_of_an_ended_detached_task_fails_einval);
    tcase_add_test(tc, stale_handle_from_a_released_scheduler_fails_einval);
    tcase_add_test(tc, self_is_the_handle_spawn_returned);

    tc = test_case(s, "spawn", 10);
    tcase_add_test(tc, spawn_with_null_fn_fails_einval);
    tcase_add_test(tc, spawn_with_stack_size_out_of_range_fails_einval);
    tcase_add_test(tc, spawn_with_nonzero_reserved_fails_einval);
    tcase_add_test(tc, spawn_accepts_the_stack_size_bounds);

    tc = test_case(s, "deadlock", 10);
    tcase_add_test(tc, run_reports_edeadlk_for_a_join_cycle_through_a_third_task);
    tcase_add_test(tc, run_reports_edeadlk_for_a_join_on_a_task_sleeping_forever);
    tcase_add_test(tc, run_does_not_report_deadlock_while_a_timer_is_pending);

    tc = test_case(s, "many", 60);
    tcase_add_test(tc, ten_thousand_tasks_spawned_and_joined);
    tc = test_case(s, "sleepers", 120);
    tcase_add_test(tc, hundred_thousand_sleepers_wake_in_deadline_order);

    tc = test_case(s, "threads", 20);
    tcase_add_test(tc, thread_runs_its_own_scheduler_alongside_main);
    return s;
}

int main(void)
{
    return test_run(sched_suite());
}

/* Delayed calls: weft_after / weft_at run fn once in a new task at the deadline, in deadline
 * order; reset pushes a timer back; stop before firing prevents the call and says so, stop
 * after says it fired; many timers; bad input. */
#include "testutil.h"

static int order[16];
static int norder;

static void *note(void *arg)
{
    order[norder++] = (int)(intptr_t)arg;
    return NULL;
}

START_TEST(fires_once_in_a_task_of_its_own)
{
    norder = 0;
    int64_t t0 = weft_now();
    weft_timer *t = weft_after(20, note, (void *)1);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_timer_fired(t), 0);
    ck_assert_int_eq(weft_run(), 0);        /* the armed timer keeps the loop going */
    ck_assert_elapsed(t0, 20, 5000);
    ck_assert_int_eq(norder, 1);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(weft_timer_fired(t), 1);
    ck_assert_int_eq(weft_timer_stop(t), 1);
}
END_TEST

static uint64_t fn_task, main_task;

static void *who(void *arg)
{
    (void)arg;
    fn_task = weft_id(weft_self());
    ck_assert_str_eq(weft_name(weft_self()), "timer");
    return NULL;
}

static void *who_main(void *arg)
{
    (void)arg;
    main_task = weft_id(weft_self());
    weft_timer *t = weft_after(0, who, NULL);
    while (!weft_timer_fired(t))
        weft_sleep(1);
    weft_yield();
    ck_assert_int_eq(weft_timer_stop(t), 1);
    return NULL;
}

START_TEST(fn_runs_in_a_new_task)
{
    fn_task = main_task = 0;
    ck_assert_int_eq(weft_main(who_main, NULL), 0);
    ck_assert_uint_ne(fn_task, 0);
    ck_assert_uint_ne(fn_task, main_task);
}
END_TEST

START_TEST(timers_fire_in_deadline_order)
{
    norder = 0;
    int64_t now = weft_now();
    weft_timer *a = weft_at(now + 30, note, (void *)3);
    weft_timer *b = weft_at(now + 10, note, (void *)1);
    weft_timer *c = weft_at(now + 20, note, (void *)2);
    weft_timer *d = weft_at(now + 20, note, (void *)4);    /* same deadline: after c */
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(norder, 4);
    ck_assert_int_eq(order[0], 1);
    ck_assert_int_eq(order[1], 2);
    ck_assert_int_eq(order[2], 4);
    ck_assert_int_eq(order[3], 3);
    weft_timer_stop(a);
    weft_timer_stop(b);
    weft_timer_stop(c);
    weft_timer_stop(d);
}
END_TEST

START_TEST(reset_pushes_the_timer_back)
{
    norder = 0;
    int64_t now = weft_now();
    weft_timer *a = weft_at(now + 10, note, (void *)1);
    weft_timer *b = weft_at(now + 40, note, (void *)2);
    ck_assert_int_eq(weft_timer_reset(a, now + 80), 0);    /* now after b */
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(norder, 2);
    ck_assert_int_eq(order[0], 2);
    ck_assert_int_eq(order[1], 1);
    ck_assert_int_ge(weft_now() - now, 80);
    /* A fired timer reset is armed again and fires once more. */
    ck_assert_int_eq(weft_timer_reset(b, weft_now() + 5), 0);
    ck_assert_int_eq(weft_timer_fired(b), 0);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(norder, 3);
    ck_assert_int_eq(order[2], 2);
    ck_assert_int_eq(weft_timer_stop(a), 1);
    ck_assert_int_eq(weft_timer_stop(b), 1);
}
END_TEST

/* An idle timeout pushed back at each "request": it fires only once they stop. */
static weft_timer *idle;
static int idle_fired_after;

static void *idle_fn(void *arg)
{
    idle_fired_after = *(int *)arg;
    return NULL;
}

static void *requests(void *arg)
{
    int *served = arg;
    for (*served = 0; *served < 10; ++*served) {
        weft_sleep(5);
        ck_assert_int_eq(weft_timer_reset(idle, weft_now() + 50), 0);
        ck_assert_int_eq(weft_timer_fired(idle), 0);
    }
    return NULL;
}

START_TEST(idle_timer_pushed_back_at_each_request_fires_after_the_last)
{
    static int served;
    idle_fired_after = -1;
    idle = weft_after(50, idle_fn, &served);
    weft_go(requests, &served);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(idle_fired_after, 10);
    ck_assert_int_eq(weft_timer_stop(idle), 1);
}
END_TEST

static void *stopper(void *arg)
{
    weft_timer *t = arg;
    weft_sleep(5);
    ck_assert_int_eq(weft_timer_stop(t), 0);     /* not fired: fn will not run */
    return NULL;
}

START_TEST(stop_before_firing_prevents_the_call)
{
    norder = 0;
    weft_timer *t = weft_after(200, note, (void *)1);
    weft_go(stopper, t);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(norder, 0);
    ck_assert_int_lt(weft_now() - t0, 200);    /* the stopped timer no longer holds the loop */
    /* Stopped from outside any task too. */
    t = weft_after(1000, note, (void *)1);
    ck_assert_int_eq(weft_timer_stop(t), 0);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(norder, 0);
}
END_TEST

/* fn stops its own timer (handed to it through arg): the handle is good until then. */
struct self_stop {
    weft_timer *t;
    int r;
};

static void *stop_self(void *arg)
{
    struct self_stop *ss = arg;
    ss->r = weft_timer_stop(ss->t);
    return NULL;
}

START_TEST(fn_may_stop_its_own_timer)
{
    struct self_stop ss = { NULL, -2 };
    ss.t = weft_after(1, stop_self, &ss);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(ss.r, 1);
}
END_TEST

static long nfired;

static void *count(void *arg)
{
    (void)arg;
    nfired++;
    return NULL;
}

START_TEST(ten_thousand_timers)
{
    int n = RUNNING_ON_VALGRIND ? 1000 : 10000;
    weft_timer **ts = malloc((size_t)n * sizeof *ts);
    nfired = 0;
    int64_t now = weft_now();
    for (int i = 0; i < n; i++) {
        ts[i] = weft_at(now + 10 + i % 50, count, NULL);
        test_require(ts[i] != NULL, "timer %d", i);
    }
    /* Push every other one back, stop every fourth. */
    for (int i = 0; i < n; i += 2)
        test_require(weft_timer_reset(ts[i], now + 60 + i % 7) == 0, "reset %d", i);
    int stopped = 0;
    for (int i = 0; i < n; i += 4) {
        test_require(weft_timer_stop(ts[i]) == 0, "stop %d", i);
        ts[i] = NULL;
        stopped++;
    }
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(nfired, n - stopped);
    for (int i = 0; i < n; i++)
        if (ts[i])
            test_require(weft_timer_stop(ts[i]) == 1, "stop %d", i);
    free(ts);
}
END_TEST

START_TEST(bad_input_fails_with_einval)
{
    ck_assert_fails(weft_after(10, NULL, NULL), EINVAL);
    ck_assert_fails(weft_at(weft_now(), NULL, NULL), EINVAL);
    ck_assert_fails(weft_after(-1, note, NULL), EINVAL);
    ck_assert_fails(weft_at(-1, note, NULL), EINVAL);
    ck_assert_fails(weft_timer_reset(NULL, 0), EINVAL);
    ck_assert_fails(weft_timer_stop(NULL), EINVAL);
    ck_assert_fails(weft_timer_fired(NULL), EINVAL);
    weft_timer *t = weft_after(10, note, NULL);
    ck_assert_fails(weft_timer_reset(t, -1), EINVAL);
    ck_assert_int_eq(weft_timer_stop(t), 0);
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

/* A timer armed in one thread cannot be touched from another while armed. */
#include <pthread.h>

static void *other_thread(void *arg)
{
    weft_timer *t = arg;
    errno = 0;
    intptr_t a = weft_timer_reset(t, weft_now() + 5) == -1 && errno == EPERM;
    errno = 0;
    intptr_t b = weft_timer_stop(t) == -1 && errno == EPERM;
    return (void *)(intptr_t)(a && b);
}

START_TEST(other_threads_get_eperm)
{
    weft_timer *t = weft_after(10000, note, NULL);
    pthread_t th;
    void *ok;
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, t), 0);
    pthread_join(th, &ok);
    ck_assert_ptr_nonnull(ok);
    ck_assert_int_eq(weft_timer_stop(t), 0);
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("after");
    TCase *tc = test_case(s, "after", 20);
    tcase_add_test(tc, fires_once_in_a_task_of_its_own);
    tcase_add_test(tc, fn_runs_in_a_new_task);
    tcase_add_test(tc, timers_fire_in_deadline_order);
    tcase_add_test(tc, reset_pushes_the_timer_back);
    tcase_add_test(tc, idle_timer_pushed_back_at_each_request_fires_after_the_last);
    tcase_add_test(tc, stop_before_firing_prevents_the_call);
    tcase_add_test(tc, fn_may_stop_its_own_timer);
    tcase_add_test(tc, ten_thousand_timers);
    tcase_add_test(tc, bad_input_fails_with_einval);
    tcase_add_test(tc, other_threads_get_eperm);
    return test_run(s);
}

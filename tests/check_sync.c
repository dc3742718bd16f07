/* The sync layer: weft_park and the unpark pair, mutex (hand-off order, no barging), condition
 * variable, wait group, semaphore and task group; for each call its deadline, cancel and
 * bad-input paths, what the dump says of a task parked on each, and weft_run's EDEADLK for a
 * lock cycle. Order and outcomes are asserted, never speed. */
#include "iotest.h"

#include <limits.h>
#include <stdint.h>
#include <sys/mman.h>

#define V(x) ((void *)(intptr_t)(x))

/* ---- helpers ---------------------------------------------------------------------------- */

enum sop_kind { S_PARK, S_LOCK, S_COND, S_WG, S_SEM, S_GROUP };

/* One blocking sync call made by a task, with what it saw. */
struct sop {
    enum sop_kind kind;
    void *obj;
    weft_mutex *m;              /* S_COND: the mutex (taken before the wait, let go after) */
    int64_t deadline;
    int hold_ms;                /* S_LOCK: keep the lock this long (sleeping) before unlocking */
    int r, err, done;
    int order;                  /* when it returned, among the sops of a test (from 1) */
    int held_after;             /* S_COND: held the mutex when the wait returned */
};

static int sop_clock;

static void *sop_run(void *p)
{
    struct sop *o = p;
    errno = 0;
    switch (o->kind) {
    case S_PARK: o->r = weft_park(o->obj, "testing", o->deadline); break;
    case S_LOCK: o->r = weft_mutex_lock(o->obj, o->deadline); break;
    case S_COND:
        ck_assert_int_eq(weft_mutex_lock(o->m, -1), 0);
        o->r = weft_cond_wait(o->obj, o->m, o->deadline);
        break;
    case S_WG: o->r = weft_wg_wait(o->obj, o->deadline); break;
    case S_SEM: o->r = weft_sem_acquire(o->obj, o->deadline); break;
    case S_GROUP: o->r = weft_group_wait(o->obj, o->deadline); break;
    }
    o->err = errno;
    o->order = ++sop_clock;
    o->done = 1;
    if (o->kind == S_COND) {
        o->held_after = weft_mutex_holder(o->m) == weft_id(NULL);
        ck_assert_int_eq(weft_mutex_unlock(o->m), 0);
    }
    if (o->kind == S_LOCK && o->r == 0) {
        if (o->hold_ms)
            weft_sleep(o->hold_ms);
        ck_assert_int_eq(weft_mutex_unlock(o->obj), 0);
    }
    return NULL;
}

/* Start o as a detached task named name and let it run until it parks. The handle is good
 * until o->done is set. */
static weft_task *sop_start(struct sop *o, const char *name)
{
    o->done = 0;
    o->r = -2;
    o->err = 0;
    weft_task *t = weft_spawn(&(weft_attr){ .name = name, .detached = 1 }, sop_run, o);
    ck_assert_ptr_nonnull(t);
    settle();
    return t;
}

#define ck_assert_sop_ok(o)                                                                 \
    ck_assert_msg((o)->done && (o)->r == 0, "sop: done %d, r %d, errno %s", (o)->done,      \
                  (o)->r, strerror((o)->err))
#define ck_assert_sop_failed(o, e)                                                          \
    ck_assert_msg((o)->done && (o)->r == -1 && (o)->err == (e),                             \
                  "sop: done %d, r %d, errno %s; expected %s", (o)->done, (o)->r,           \
                  strerror((o)->err), strerror(e))

static int64_t in_ms(int ms)
{
    return weft_now() + ms;
}

/* The whole dump, text or JSON, through a memfd. */
static char *dump_string(int flags)
{
    return test_dump(flags | WEFT_DUMP_NO_BACKTRACE);
}

/* The header line of task 'name' in a text dump (malloc'd). */
static char *text_line(const char *dump, const char *name)
{
    char key[80];
    snprintf(key, sizeof key, " \"%s\" [", name);
    const char *k = strstr(dump, key);
    ck_assert_msg(k != NULL, "no task \"%s\" in:\n%s", name, dump);
    const char *start = k;
    while (start > dump && start[-1] != '\n')
        start--;
    const char *eol = strchr(k, '\n');
    size_t n = eol ? (size_t)(eol - start) : strlen(start);
    char *s = strndup(start, n);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* The JSON object of task 'name' (from its "id" to the next task's), malloc'd. */
static char *json_task(const char *dump, const char *name)
{
    char key[80];
    snprintf(key, sizeof key, "\"name\":\"%s\",\"state\"", name);
    const char *k = strstr(dump, key);
    ck_assert_msg(k != NULL, "no task \"%s\" in:\n%s", name, dump);
    const char *end = strstr(k, "{\"id\":");
    char *s = end ? strndup(k, (size_t)(end - k)) : strdup(k);
    ck_assert_ptr_nonnull(s);
    return s;
}

#define ck_assert_has(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

/* Check one parked task's line in the text dump and its fields in the JSON one. */
static void check_dumped(const char *name, const char *text_want, const char *const *json_want)
{
    char *d = dump_string(0);
    char *line = text_line(d, name);
    ck_assert_has(line, text_want);
    free(line);
    free(d);
    d = dump_string(WEFT_DUMP_JSON);
    char *obj = json_task(d, name);
    for (int i = 0; json_want[i]; i++)
        ck_assert_has(obj, json_want[i]);
    free(obj);
    free(d);
}

/* ---- weft_park and the unpark pair ------------------------------------------------------ */

TASK_TEST(unpark_one_wakes_parked_tasks_in_arrival_order)
{
    static weft_waitq q;        /* all zero: a valid empty queue */
    struct sop o[5];
    for (int i = 0; i < 5; i++) {
        o[i] = (struct sop){ .kind = S_PARK, .obj = &q, .deadline = -1 };
        sop_start(&o[i], "parker");
    }
    ck_assert_int_eq(weft_waitq_waiting(&q), 5);
    sop_clock = 0;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(weft_unpark_one(&q), 1);
        settle();
        ck_assert_sop_ok(&o[i]);
        ck_assert_int_eq(o[i].order, i + 1);
        ck_assert_int_eq(weft_waitq_waiting(&q), 4 - i);
    }
    ck_assert_int_eq(weft_unpark_one(&q), 0);
    ck_assert_int_eq(weft_unpark_all(&q), 0);
}

TASK_TEST(unpark_all_wakes_every_parked_task_and_says_how_many)
{
    weft_waitq q = WEFT_WAITQ_INIT;
    struct sop o[7];
    for (int i = 0; i < 7; i++) {
        o[i] = (struct sop){ .kind = S_PARK, .obj = &q, .deadline = in_ms(60000) };
        sop_start(&o[i], "parker");
    }
    ck_assert_int_eq(weft_unpark_all(&q), 7);
    ck_assert_int_eq(weft_waitq_waiting(&q), 0);
    settle();
    for (int i = 0; i < 7; i++)
        ck_assert_sop_ok(&o[i]);
}

TASK_TEST(park_times_out_and_leaves_the_queue)
{
    weft_waitq q = WEFT_WAITQ_INIT_NAMED("q");
    int64_t t0 = weft_now();
    ck_assert_fails(weft_park(&q, "nothing", in_ms(30)), ETIMEDOUT);
    ck_assert_int_ge(weft_now() - t0, 30);
    ck_assert_int_eq(weft_waitq_waiting(&q), 0);
    ck_assert_fails(weft_park(&q, "nothing", weft_now() - 1), ETIMEDOUT);   /* past: at once */
    ck_assert_fails(weft_park(&q, "nothing", 0), ETIMEDOUT);
    /* A timed-out task is not woken by a later unpark, nor counted. */
    struct sop late = { .kind = S_PARK, .obj = &q, .deadline = in_ms(20) };
    sop_start(&late, "late");
    struct sop stays = { .kind = S_PARK, .obj = &q, .deadline = -1 };
    sop_start(&stays, "stays");
    weft_sleep(60);
    ck_assert_sop_failed(&late, ETIMEDOUT);
    ck_assert_int_eq(weft_waitq_waiting(&q), 1);
    ck_assert_int_eq(weft_unpark_one(&q), 1);
    settle();
    ck_assert_sop_ok(&stays);
    /* The task's deadline scope applies too. */
    int64_t old = weft_set_task_deadline(in_ms(20));
    ck_assert_fails(weft_park(&q, "scope", -1), ETIMEDOUT);
    weft_set_task_deadline(old);
}

TASK_TEST(park_is_cancelled)
{
    weft_waitq q = WEFT_WAITQ_INIT;
    struct sop o = { .kind = S_PARK, .obj = &q, .deadline = -1 };
    weft_task *t = sop_start(&o, "parker");
    ck_assert_int_eq(weft_waitq_waiting(&q), 1);
    ck_assert_int_eq(weft_cancel(t), 0);
    settle();
    ck_assert_sop_failed(&o, ECANCELED);
    ck_assert_int_eq(weft_waitq_waiting(&q), 0);
    ck_assert_int_eq(weft_unpark_all(&q), 0);
    /* Cancelled before it parks: fails at once. */
    weft_cancel(weft_self());
    ck_assert_fails(weft_park(&q, "x", -1), ECANCELED);
}

START_TEST(park_bad_input_and_outside_a_task)
{
    weft_waitq q = WEFT_WAITQ_INIT;
    ck_assert_fails(weft_park(NULL, "x", -1), EINVAL);
    ck_assert_fails(weft_park(&q, "x", -1), EPERM);
    ck_assert_fails(weft_unpark_one(NULL), EINVAL);
    ck_assert_fails(weft_unpark_all(NULL), EINVAL);
    ck_assert_fails(weft_waitq_waiting(NULL), EINVAL);
    ck_assert_fails(weft_waitq_init(NULL, "x"), EINVAL);
    ck_assert_int_eq(weft_unpark_one(&q), 0);      /* no scheduler yet: nobody to wake */
    ck_assert_int_eq(weft_waitq_init(&q, "named"), 0);
    ck_assert_str_eq(q.name, "named");
}
END_TEST

/* From the main context: the tasks park, weft_run finds nothing can wake them (EDEADLK),
 * main unparks them, and they end. */
START_TEST(unpark_from_the_main_context)
{
    static weft_waitq q;
    struct sop o[3];
    for (int i = 0; i < 3; i++) {
        o[i] = (struct sop){ .kind = S_PARK, .obj = &q, .deadline = -1 };
        ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .detached = 1 }, sop_run, &o[i]));
    }
    ck_assert_fails(weft_run(), EDEADLK);
    ck_assert_int_eq(weft_waitq_waiting(&q), 3);
    ck_assert_int_eq(weft_unpark_all(&q), 3);
    ck_assert_int_eq(weft_run(), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_sop_ok(&o[i]);
}
END_TEST

/* ---- mutex ---------------------------------------------------------------------------- */

TASK_TEST(mutex_lock_unlock_and_misuse)
{
    static weft_mutex zero;     /* all zero: unlocked */
    weft_mutex m = WEFT_MUTEX_INIT;
    ck_assert_int_eq(weft_mutex_lock(&zero, -1), 0);
    ck_assert_uint_eq(weft_mutex_holder(&zero), weft_id(NULL));
    ck_assert_int_eq(weft_mutex_unlock(&zero), 0);
    ck_assert_uint_eq(weft_mutex_holder(&zero), 0);
    ck_assert_fails(weft_mutex_unlock(&m), EPERM);             /* not locked */
    ck_assert_int_eq(weft_mutex_lock(&m, -1), 0);
    ck_assert_fails(weft_mutex_lock(&m, -1), EDEADLK);         /* no recursion */
    ck_assert_fails(weft_mutex_lock(&m, 0), EDEADLK);
    ck_assert_fails(weft_mutex_destroy(&m), EBUSY);            /* locked */
    ck_assert_int_eq(weft_mutex_unlock(&m), 0);
    ck_assert_int_eq(weft_mutex_lock(&m, 0), 0);               /* past deadline, free: taken */
    ck_assert_int_eq(weft_mutex_unlock(&m), 0);
    ck_assert_fails(weft_mutex_lock(NULL, -1), EINVAL);
    ck_assert_fails(weft_mutex_unlock(NULL), EINVAL);
    ck_assert_fails(weft_mutex_init(NULL, NULL), EINVAL);
    ck_assert_fails(weft_mutex_destroy(NULL), EINVAL);
    ck_assert_uint_eq(weft_mutex_holder(NULL), 0);
    ck_assert_int_eq(weft_mutex_destroy(&m), 0);
    ck_assert_fails(weft_mutex_lock(&m, -1), EINVAL);          /* destroyed */
    ck_assert_fails(weft_mutex_unlock(&m), EINVAL);
    ck_assert_fails(weft_mutex_destroy(&m), EINVAL);
    ck_assert_int_eq(weft_mutex_init(&m, "again"), 0);
    ck_assert_int_eq(weft_mutex_lock(&m, -1), 0);
    ck_assert_int_eq(weft_mutex_unlock(&m), 0);
    /* A cancelled task still takes a free mutex (cleanup needs it). */
    weft_cancel(weft_self());
    ck_assert_int_eq(weft_mutex_lock(&m, -1), 0);
    ck_assert_int_eq(weft_mutex_unlock(&m), 0);
}

static weft_mutex shared_m = WEFT_MUTEX_INIT;

static void *lock_and_hold(void *arg)
{
    ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
    weft_sleep((int64_t)(intptr_t)arg);
    ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    return NULL;
}

TASK_TEST(mutex_unlock_by_a_non_owner_fails_eperm)
{
    weft_task *h = weft_go(lock_and_hold, V(50));
    ck_assert_ptr_nonnull(h);
    settle();
    ck_assert_uint_eq(weft_mutex_holder(&shared_m), weft_id(h));
    ck_assert_fails(weft_mutex_unlock(&shared_m), EPERM);
    ck_assert_fails(weft_mutex_lock(&shared_m, 0), ETIMEDOUT);     /* a try: held */
    ck_assert_fails(weft_mutex_destroy(&shared_m), EBUSY);
    ck_assert_int_eq(weft_join(h, NULL), 0);
    ck_assert_uint_eq(weft_mutex_holder(&shared_m), 0);
}

START_TEST(mutex_outside_a_task_fails_eperm)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    ck_assert_fails(weft_mutex_lock(&m, -1), EPERM);
    ck_assert_fails(weft_mutex_lock(&m, 0), EPERM);
    ck_assert_fails(weft_mutex_unlock(&m), EPERM);
}
END_TEST

/* 100 contenders park in spawn order; the lock goes to them in exactly that order. */
#define CONTENDERS 100
static int got[CONTENDERS], ngot;

static void *contend(void *arg)
{
    ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
    got[ngot++] = (int)(intptr_t)arg;
    weft_yield();               /* let the others try meanwhile: they must stay queued */
    ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    return NULL;
}

TASK_TEST(mutex_hands_off_in_arrival_order_to_100_contenders)
{
    ngot = 0;
    ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
    weft_task *t[CONTENDERS];
    for (int i = 0; i < CONTENDERS; i++) {
        ck_assert_ptr_nonnull(t[i] = weft_go(contend, V(i)));
        weft_yield();           /* i parks before i + 1 is spawned */
    }
    ck_assert_int_eq(weft_waitq_waiting(&shared_m.q_), CONTENDERS);
    ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    ck_assert_uint_eq(weft_mutex_holder(&shared_m), weft_id(t[0]));  /* handed over at once */
    for (int i = 0; i < CONTENDERS; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    ck_assert_int_eq(ngot, CONTENDERS);
    for (int i = 0; i < CONTENDERS; i++)
        ck_assert_int_eq(got[i], i);
    ck_assert_uint_eq(weft_mutex_holder(&shared_m), 0);
}

/* A task that unlocks and locks again at once does not barge past a waiter. */
static int turns[8], nturns;

static void *relocker(void *arg)
{
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
        turns[nturns++] = (int)(intptr_t)arg;
        ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    }
    return NULL;
}

TASK_TEST(mutex_does_not_starve_a_waiter_behind_a_relocking_task)
{
    nturns = 0;
    ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
    weft_task *a = weft_go(relocker, V(1));
    weft_task *b = weft_go(relocker, V(2));
    settle();
    ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    ck_assert_int_eq(weft_join(a, NULL), 0);
    ck_assert_int_eq(weft_join(b, NULL), 0);
    ck_assert_int_eq(nturns, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(turns[i], 1 + i % 2);   /* strictly alternating */
}

TASK_TEST(mutex_waiter_that_times_out_is_never_handed_the_lock)
{
    ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
    struct sop late = { .kind = S_LOCK, .obj = &shared_m, .deadline = in_ms(20) };
    struct sop patient = { .kind = S_LOCK, .obj = &shared_m, .deadline = -1, .hold_ms = 1 };
    sop_start(&late, "late");
    sop_start(&patient, "patient");
    int64_t t0 = weft_now();
    weft_sleep(60);
    ck_assert_sop_failed(&late, ETIMEDOUT);
    ck_assert_int_ge(weft_now() - t0, 20);
    ck_assert_int_eq(weft_waitq_waiting(&shared_m.q_), 1);
    ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    settle();
    weft_sleep(10);
    ck_assert_sop_ok(&patient);
    ck_assert_uint_eq(weft_mutex_holder(&shared_m), 0);
    /* Again with the timed-out waiter first in line and nobody behind: the lock is free. */
    ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
    late.deadline = in_ms(10);
    sop_start(&late, "late");
    weft_sleep(40);
    ck_assert_sop_failed(&late, ETIMEDOUT);
    ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    ck_assert_uint_eq(weft_mutex_holder(&shared_m), 0);
    ck_assert_int_eq(weft_waitq_waiting(&shared_m.q_), 0);
    /* The task's deadline scope ends a lock wait too. */
    weft_task *h = weft_go(lock_and_hold, V(100));
    settle();
    int64_t old = weft_set_task_deadline(in_ms(20));
    ck_assert_fails(weft_mutex_lock(&shared_m, -1), ETIMEDOUT);
    weft_set_task_deadline(old);
    ck_assert_int_eq(weft_join(h, NULL), 0);
}

TASK_TEST(mutex_waiter_that_is_cancelled_leaves_the_queue)
{
    ck_assert_int_eq(weft_mutex_lock(&shared_m, -1), 0);
    struct sop c = { .kind = S_LOCK, .obj = &shared_m, .deadline = -1 };
    struct sop d = { .kind = S_LOCK, .obj = &shared_m, .deadline = -1 };
    weft_task *tc = sop_start(&c, "cancelled");
    sop_start(&d, "next");
    ck_assert_fails(weft_mutex_destroy(&shared_m), EBUSY);
    ck_assert_int_eq(weft_cancel(tc), 0);
    settle();
    ck_assert_sop_failed(&c, ECANCELED);
    ck_assert_int_eq(weft_waitq_waiting(&shared_m.q_), 1);
    ck_assert_int_eq(weft_mutex_unlock(&shared_m), 0);
    settle();
    ck_assert_sop_ok(&d);
    ck_assert_uint_eq(weft_mutex_holder(&shared_m), 0);
}

/* Two tasks each hold one mutex and wait for the other's: weft_run reports EDEADLK; the
 * dump shows each in lock-wait, held by the other. */
static weft_mutex cyc_m[2] = { WEFT_MUTEX_INIT_NAMED("A"), WEFT_MUTEX_INIT_NAMED("B") };
static int cyc_err[2];

static void *cyc_lock(void *arg)
{
    int i = (int)(intptr_t)arg;
    ck_assert_int_eq(weft_mutex_lock(&cyc_m[i], -1), 0);
    weft_yield();               /* both hold theirs before either asks for the other */
    if (weft_mutex_lock(&cyc_m[!i], -1) == 0) {
        cyc_err[i] = 0;         /* errno is the thread's: another task may have set it */
        ck_assert_int_eq(weft_mutex_unlock(&cyc_m[!i]), 0);
    } else {
        cyc_err[i] = errno;
    }
    ck_assert_int_eq(weft_mutex_unlock(&cyc_m[i]), 0);
    return NULL;
}

START_TEST(run_reports_edeadlk_for_a_lock_cycle)
{
    weft_task *t[2];
    for (int i = 0; i < 2; i++)
        ck_assert_ptr_nonnull(t[i] = weft_spawn(&(weft_attr){ .name = i ? "cyc1" : "cyc0" },
                                                cyc_lock, V(i)));
    uint64_t id0 = weft_id(t[0]), id1 = weft_id(t[1]);
    ck_assert_fails(weft_run(), EDEADLK);
    ck_assert_uint_eq(weft_mutex_holder(&cyc_m[0]), id0);
    ck_assert_uint_eq(weft_mutex_holder(&cyc_m[1]), id1);
    char want[64], held[64];
    snprintf(want, sizeof want, "[lock-wait lock \"B\" held by task %llu", (unsigned long long)id1);
    snprintf(held, sizeof held, "\"holder\":%llu", (unsigned long long)id1);
    check_dumped("cyc0", want, (const char *[]){ "\"kind\":\"lock\"", "\"name\":\"B\"", held, NULL });
    snprintf(want, sizeof want, "[lock-wait lock \"A\" held by task %llu", (unsigned long long)id0);
    snprintf(held, sizeof held, "\"holder\":%llu", (unsigned long long)id0);
    check_dumped("cyc1", want, (const char *[]){ "\"op\":\"lock\"", "\"name\":\"A\"", held, NULL });
    ck_assert_fails(weft_run(), EDEADLK);           /* nothing changed */
    ck_assert_int_eq(weft_cancel(t[0]), 0);         /* 0 gives up: 1 gets A, then ends */
    ck_assert_int_eq(weft_run(), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    ck_assert_int_eq(cyc_err[0], ECANCELED);
    ck_assert_int_eq(cyc_err[1], 0);
    ck_assert_uint_eq(weft_mutex_holder(&cyc_m[0]), 0);
    ck_assert_uint_eq(weft_mutex_holder(&cyc_m[1]), 0);
}
END_TEST

/* ---- condition variable ------------------------------------------------------------------- */

static weft_cond shared_c = WEFT_COND_INIT;

TASK_TEST(cond_signal_wakes_one_in_order_and_broadcast_the_rest)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT_NAMED("c");
    struct sop o[4];
    for (int i = 0; i < 4; i++) {
        o[i] = (struct sop){ .kind = S_COND, .obj = &c, .m = &m, .deadline = -1 };
        sop_start(&o[i], "waiter");
    }
    ck_assert_int_eq(weft_waitq_waiting(&c.q_), 4);
    ck_assert_uint_eq(weft_mutex_holder(&m), 0);    /* every waiter let it go */
    sop_clock = 0;
    ck_assert_int_eq(weft_cond_signal(&c), 1);
    settle();
    ck_assert_sop_ok(&o[0]);
    ck_assert_int_eq(o[0].order, 1);
    ck_assert(o[0].held_after);
    ck_assert(!o[1].done);
    ck_assert_int_eq(weft_cond_broadcast(&c), 3);
    settle();
    for (int i = 1; i < 4; i++) {
        ck_assert_sop_ok(&o[i]);
        ck_assert_int_eq(o[i].order, i + 1);
        ck_assert(o[i].held_after);
    }
    ck_assert_int_eq(weft_cond_signal(&c), 0);
    ck_assert_int_eq(weft_cond_broadcast(&c), 0);
    ck_assert_int_eq(weft_cond_destroy(&c), 0);
    ck_assert_fails(weft_cond_signal(&c), EINVAL);
    ck_assert_fails(weft_cond_broadcast(&c), EINVAL);
    ck_assert_int_eq(weft_mutex_lock(&m, -1), 0);
    ck_assert_fails(weft_cond_wait(&c, &m, -1), EINVAL);
    ck_assert_int_eq(weft_mutex_unlock(&m), 0);
}

TASK_TEST(cond_wait_misuse)
{
    weft_mutex m = WEFT_MUTEX_INIT, other = WEFT_MUTEX_INIT;
    weft_cond c = WEFT_COND_INIT;
    ck_assert_fails(weft_cond_wait(&c, &m, -1), EPERM);        /* m not held */
    ck_assert_fails(weft_cond_wait(NULL, &m, -1), EINVAL);
    ck_assert_fails(weft_cond_wait(&c, NULL, -1), EINVAL);
    ck_assert_fails(weft_cond_signal(NULL), EINVAL);
    ck_assert_fails(weft_cond_broadcast(NULL), EINVAL);
    ck_assert_fails(weft_cond_init(NULL, NULL), EINVAL);
    ck_assert_fails(weft_cond_destroy(NULL), EINVAL);
    struct sop o = { .kind = S_COND, .obj = &c, .m = &m, .deadline = -1 };
    sop_start(&o, "waiter");
    ck_assert_fails(weft_cond_destroy(&c), EBUSY);
    ck_assert_int_eq(weft_mutex_lock(&other, -1), 0);
    ck_assert_fails(weft_cond_wait(&c, &other, -1), EINVAL);   /* not the waiters' mutex */
    ck_assert_uint_eq(weft_mutex_holder(&other), weft_id(NULL));
    ck_assert_int_eq(weft_mutex_unlock(&other), 0);
    ck_assert_int_eq(weft_cond_signal(&c), 1);
    settle();
    ck_assert_sop_ok(&o);
    ck_assert_int_eq(weft_cond_destroy(&c), 0);
    /* Once no one waits, another mutex may be used. */
    ck_assert_int_eq(weft_cond_init(&c, NULL), 0);
    ck_assert_int_eq(weft_mutex_lock(&other, -1), 0);
    ck_assert_fails(weft_cond_wait(&c, &other, 0), ETIMEDOUT);  /* past: keeps the mutex */
    ck_assert_uint_eq(weft_mutex_holder(&other), weft_id(NULL));
    int64_t old = weft_set_task_deadline(weft_now() - 1);        /* the scope: the same */
    ck_assert_fails(weft_cond_wait(&c, &other, -1), ETIMEDOUT);
    weft_set_task_deadline(old);
    ck_assert_uint_eq(weft_mutex_holder(&other), weft_id(NULL));
    weft_cancel(weft_self());
    ck_assert_fails(weft_cond_wait(&c, &other, -1), ECANCELED); /* at once: keeps it too */
    ck_assert_uint_eq(weft_mutex_holder(&other), weft_id(NULL));
    ck_assert_int_eq(weft_mutex_unlock(&other), 0);
}

START_TEST(cond_outside_a_task)
{
    weft_mutex m = WEFT_MUTEX_INIT;
    ck_assert_fails(weft_cond_wait(&shared_c, &m, -1), EPERM);
    ck_assert_int_eq(weft_cond_signal(&shared_c), 0);
    ck_assert_int_eq(weft_cond_broadcast(&shared_c), 0);
}
END_TEST

/* A cond wait that times out or is cancelled while another task holds the mutex returns only
 * once it holds the mutex again. */
TASK_TEST(cond_wait_retakes_the_mutex_after_timeout_and_cancel)
{
    static weft_mutex m = WEFT_MUTEX_INIT;
    struct sop to = { .kind = S_COND, .obj = &shared_c, .m = &m, .deadline = in_ms(20) };
    struct sop ca = { .kind = S_COND, .obj = &shared_c, .m = &m, .deadline = -1 };
    sop_start(&to, "timeout");
    weft_task *tca = sop_start(&ca, "cancel");
    ck_assert_int_eq(weft_mutex_lock(&m, -1), 0);
    ck_assert_int_eq(weft_cancel(tca), 0);
    weft_sleep(60);             /* the deadline passes while we hold m */
    ck_assert(!to.done && !ca.done);
    ck_assert_int_eq(weft_waitq_waiting(&m.q_), 2);    /* both wait for m, not for the cond */
    ck_assert_int_eq(weft_waitq_waiting(&shared_c.q_), 0);
    ck_assert_int_eq(weft_mutex_unlock(&m), 0);
    settle();
    ck_assert_sop_failed(&ca, ECANCELED);   /* cancelled first, so queued for m first */
    ck_assert_sop_failed(&to, ETIMEDOUT);
    ck_assert(to.held_after && ca.held_after);
    ck_assert_int_lt(ca.order, to.order);
    ck_assert_uint_eq(weft_mutex_holder(&m), 0);
}

/* A cancel that comes while the cond waiter is already queued for the mutex again neither
 * ends that wait nor is lost. */
TASK_TEST(cond_relock_is_not_cut_short_by_a_cancel)
{
    static weft_mutex m = WEFT_MUTEX_INIT;
    struct sop o = { .kind = S_COND, .obj = &shared_c, .m = &m, .deadline = -1 };
    weft_task *t = sop_start(&o, "waiter");
    ck_assert_int_eq(weft_mutex_lock(&m, -1), 0);
    ck_assert_int_eq(weft_cond_signal(&shared_c), 1);
    settle();                   /* it is queued on m now */
    ck_assert_int_eq(weft_waitq_waiting(&m.q_), 1);
    ck_assert_int_eq(weft_cancel(t), 0);
    settle();
    ck_assert(!o.done);
    ck_assert_int_eq(weft_waitq_waiting(&m.q_), 1);
    ck_assert_int_eq(weft_mutex_unlock(&m), 0);
    settle();
    ck_assert_sop_ok(&o);       /* it was signalled before the cancel */
    ck_assert(o.held_after);
}

/* Broadcast with timeouts mixed in: the waiters that timed out report ETIMEDOUT and are not
 * counted; the others are woken by the broadcast; every one returns holding the mutex. */
TASK_TEST(cond_broadcast_with_timeouts_mixed_in)
{
    static weft_mutex m = WEFT_MUTEX_INIT;
    enum { N = 20 };
    struct sop o[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct sop){ .kind = S_COND, .obj = &shared_c, .m = &m,
                             .deadline = i % 2 ? in_ms(10 + i) : -1 };
        sop_start(&o[i], "waiter");
    }
    weft_sleep(80);
    for (int i = 1; i < N; i += 2)
        ck_assert_sop_failed(&o[i], ETIMEDOUT);
    ck_assert_int_eq(weft_waitq_waiting(&shared_c.q_), N / 2);
    ck_assert_int_eq(weft_cond_broadcast(&shared_c), N / 2);
    settle();
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0)
            ck_assert_sop_ok(&o[i]);
        ck_assert(o[i].held_after);
    }
    ck_assert_uint_eq(weft_mutex_holder(&m), 0);
}

/* ---- wait group -------------------------------------------------------------------------- */

static weft_wg big_wg = WEFT_WG_INIT_NAMED("big");
static long big_done;

static void *wg_worker(void *arg)
{
    (void)arg;
    weft_yield();
    big_done++;
    ck_assert_int_eq(weft_wg_done(&big_wg), 0);
    return NULL;
}

TASK_TEST(wait_group_over_10000_tasks)
{
    /* Valgrind follows every live stack on each switch: 10,000 at once take it minutes, so
     * it counts 200 there (the count is the point natively; the logic is the same). */
    const int N = RUNNING_ON_VALGRIND ? 200 : 10000;
    big_done = 0;
    ck_assert_int_eq(weft_wg_add(&big_wg, N), 0);
    weft_attr a = { .stack_size = WEFT_STACK_MIN, .detached = 1 };
    for (int i = 0; i < N; i++)
        ck_assert_ptr_nonnull(weft_spawn(&a, wg_worker, NULL));
    struct sop w2 = { .kind = S_WG, .obj = &big_wg, .deadline = -1 };
    sop_start(&w2, "second waiter");
    ck_assert_int_eq(weft_wg_wait(&big_wg, in_ms(60000)), 0);
    ck_assert_int_eq(big_done, N);
    settle();
    ck_assert_sop_ok(&w2);
    ck_assert_int_eq(weft_wg_wait(&big_wg, 0), 0);     /* zero: at once, past deadline or not */
}

TASK_TEST(wait_group_deadline_cancel_and_misuse)
{
    weft_wg wg = WEFT_WG_INIT;
    ck_assert_int_eq(weft_wg_wait(&wg, -1), 0);
    ck_assert_fails(weft_wg_done(&wg), EINVAL);        /* below zero */
    ck_assert_fails(weft_wg_add(&wg, -5), EINVAL);
    ck_assert_int_eq(weft_wg_add(&wg, 2), 0);
    ck_assert_fails(weft_wg_add(&wg, LONG_MAX), EOVERFLOW);
    ck_assert_fails(weft_wg_add(&wg, -3), EINVAL);     /* nothing changed */
    ck_assert_fails(weft_wg_add(&wg, LONG_MIN), EINVAL);
    ck_assert_fails(weft_wg_wait(&wg, in_ms(20)), ETIMEDOUT);
    ck_assert_fails(weft_wg_wait(&wg, 0), ETIMEDOUT);
    struct sop c = { .kind = S_WG, .obj = &wg, .deadline = -1 };
    weft_task *t = sop_start(&c, "cancelled");
    ck_assert_fails(weft_wg_destroy(&wg), EBUSY);
    ck_assert_int_eq(weft_cancel(t), 0);
    settle();
    ck_assert_sop_failed(&c, ECANCELED);
    ck_assert_int_eq(weft_waitq_waiting(&wg.q_), 0);
    struct sop w = { .kind = S_WG, .obj = &wg, .deadline = -1 };
    sop_start(&w, "waiter");
    ck_assert_int_eq(weft_wg_done(&wg), 0);
    settle();
    ck_assert(!w.done);
    ck_assert_int_eq(weft_wg_add(&wg, -1), 0);
    settle();
    ck_assert_sop_ok(&w);
    ck_assert_int_eq(weft_wg_destroy(&wg), 0);
    ck_assert_fails(weft_wg_add(&wg, 1), EINVAL);
    ck_assert_fails(weft_wg_wait(&wg, -1), EINVAL);
    ck_assert_fails(weft_wg_destroy(&wg), EINVAL);
    ck_assert_fails(weft_wg_add(NULL, 1), EINVAL);
    ck_assert_fails(weft_wg_done(NULL), EINVAL);
    ck_assert_fails(weft_wg_wait(NULL, -1), EINVAL);
    ck_assert_fails(weft_wg_init(NULL, NULL), EINVAL);
    ck_assert_int_eq(weft_wg_init(&wg, "again"), 0);
    ck_assert_int_eq(weft_wg_wait(&wg, -1), 0);
}

START_TEST(wait_group_from_the_main_context)
{
    weft_wg wg = WEFT_WG_INIT;
    ck_assert_int_eq(weft_wg_wait(&wg, -1), 0);
    ck_assert_int_eq(weft_wg_add(&wg, 1), 0);
    ck_assert_fails(weft_wg_wait(&wg, -1), EPERM);
    ck_assert_fails(weft_wg_wait(&wg, 0), ETIMEDOUT);
    ck_assert_int_eq(weft_wg_done(&wg), 0);
}
END_TEST

/* ---- semaphore --------------------------------------------------------------------------- */

TASK_TEST(semaphore_counts_and_hands_permits_over_in_order)
{
    weft_sem s = WEFT_SEM_INIT(3);
    ck_assert_int_eq(weft_sem_value(&s), 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_sem_acquire(&s, -1), 0);
    ck_assert_int_eq(weft_sem_value(&s), 0);
    ck_assert_fails(weft_sem_acquire(&s, 0), ETIMEDOUT);        /* a try */
    struct sop o[3];
    for (int i = 0; i < 3; i++) {
        o[i] = (struct sop){ .kind = S_SEM, .obj = &s, .deadline = -1 };
        sop_start(&o[i], "acquirer");
    }
    sop_clock = 0;
    ck_assert_int_eq(weft_sem_release(&s), 0);
    ck_assert_int_eq(weft_sem_value(&s), 0);                    /* handed over, not counted */
    ck_assert_int_eq(weft_sem_acquire(&s, 0), -1);              /* and not taken by a barger */
    settle();
    ck_assert_sop_ok(&o[0]);
    ck_assert(!o[1].done);
    ck_assert_int_eq(weft_sem_release(&s), 0);
    ck_assert_int_eq(weft_sem_release(&s), 0);
    settle();
    ck_assert_int_eq(o[1].order, 2);
    ck_assert_int_eq(o[2].order, 3);
    ck_assert_int_eq(weft_sem_release(&s), 0);
    ck_assert_int_eq(weft_sem_value(&s), 1);
}

TASK_TEST(semaphore_deadline_cancel_and_misuse)
{
    weft_sem s;
    ck_assert_fails(weft_sem_init(&s, -1, NULL), EINVAL);
    ck_assert_fails(weft_sem_init(NULL, 1, NULL), EINVAL);
    ck_assert_int_eq(weft_sem_init(&s, 0, "s"), 0);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_sem_acquire(&s, in_ms(20)), ETIMEDOUT);
    ck_assert_int_ge(weft_now() - t0, 20);
    /* A waiter that timed out is not given the next permit. */
    struct sop late = { .kind = S_SEM, .obj = &s, .deadline = in_ms(10) };
    sop_start(&late, "late");
    weft_sleep(40);
    ck_assert_sop_failed(&late, ETIMEDOUT);
    ck_assert_int_eq(weft_sem_release(&s), 0);
    ck_assert_int_eq(weft_sem_value(&s), 1);
    ck_assert_int_eq(weft_sem_acquire(&s, 0), 0);
    struct sop c = { .kind = S_SEM, .obj = &s, .deadline = -1 };
    weft_task *t = sop_start(&c, "cancelled");
    ck_assert_fails(weft_sem_destroy(&s), EBUSY);
    ck_assert_int_eq(weft_cancel(t), 0);
    settle();
    ck_assert_sop_failed(&c, ECANCELED);
    ck_assert_int_eq(weft_sem_release(&s), 0);
    ck_assert_int_eq(weft_sem_value(&s), 1);
    ck_assert_int_eq(weft_sem_destroy(&s), 0);
    ck_assert_fails(weft_sem_acquire(&s, -1), EINVAL);
    ck_assert_fails(weft_sem_release(&s), EINVAL);
    ck_assert_fails(weft_sem_destroy(&s), EINVAL);
    ck_assert_fails(weft_sem_acquire(NULL, -1), EINVAL);
    ck_assert_fails(weft_sem_release(NULL), EINVAL);
    ck_assert_fails(weft_sem_value(NULL), EINVAL);
    ck_assert_int_eq(weft_sem_init(&s, LONG_MAX, NULL), 0);
    ck_assert_fails(weft_sem_release(&s), EOVERFLOW);
}

START_TEST(semaphore_from_the_main_context)
{
    weft_sem s = WEFT_SEM_INIT(1);
    ck_assert_int_eq(weft_sem_acquire(&s, -1), 0);             /* free: no task needed */
    ck_assert_fails(weft_sem_acquire(&s, -1), EPERM);
    ck_assert_fails(weft_sem_acquire(&s, 0), ETIMEDOUT);
    ck_assert_int_eq(weft_sem_release(&s), 0);
    ck_assert_int_eq(weft_sem_value(&s), 1);
}
END_TEST

/* A semaphore of 4 bounds 50 workers to 4 at a time, and all 4 slots get used. */
static weft_sem slots = WEFT_SEM_INIT(4);
static int inside, most;

static void *bounded(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_sem_acquire(&slots, -1), 0);
    if (++inside > most)
        most = inside;
    weft_sleep(1);
    inside--;
    ck_assert_int_eq(weft_sem_release(&slots), 0);
    return NULL;
}

TASK_TEST(semaphore_bounds_concurrency)
{
    weft_task *t[50];
    for (int i = 0; i < 50; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(bounded, NULL));
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    ck_assert_int_eq(most, 4);
    ck_assert_int_eq(weft_sem_value(&slots), 4);
}

/* ---- task group -------------------------------------------------------------------------- */

static int member_ran, member_cancelled, member_ended;

static void *member_ok(void *arg)
{
    (void)arg;
    weft_yield();
    member_ran++;
    member_ended++;
    return V(1);                /* not a failure: only weft_group_fail is */
}

static void *member_forever(void *arg)
{
    (void)arg;
    member_ran++;
    if (weft_sleep_until(-1) != 0 && errno == ECANCELED)
        member_cancelled++;
    member_ended++;
    return NULL;
}

static weft_group fail_g = WEFT_GROUP_INIT_NAMED("g");

static void *member_fails(void *arg)
{
    weft_sleep((int64_t)(intptr_t)arg);
    ck_assert_int_eq(weft_group_fail(&fail_g, EIO), 0);
    ck_assert_int_eq(weft_group_fail(&fail_g, ENOENT), 0);     /* the first one stands */
    member_ended++;
    return NULL;
}

static void group_reset(void)
{
    member_ran = member_cancelled = member_ended = 0;
}

TASK_TEST(group_waits_for_every_member)
{
    weft_group g = WEFT_GROUP_INIT;
    group_reset();
    for (int i = 0; i < 20; i++)
        ck_assert_ptr_nonnull(weft_group_go(&g, member_ok, NULL));
    ck_assert_int_eq(weft_group_size(&g), 20);
    ck_assert_fails(weft_group_destroy(&g), EBUSY);
    ck_assert_int_eq(weft_group_wait(&g, -1), 0);
    ck_assert_int_eq(member_ended, 20);
    ck_assert_int_eq(weft_group_size(&g), 0);
    ck_assert_int_eq(weft_group_wait(&g, 0), 0);
    ck_assert_int_eq(weft_group_destroy(&g), 0);
}

static void *member_exits(void *arg)
{
    (void)arg;
    member_ran++;
    weft_sleep(1);
    weft_exit(NULL);
    member_ended = -100;    /* never reached */
    return NULL;
}

/* A member that ends with weft_exit is counted out as one that returns. */
TASK_TEST(group_member_ending_with_weft_exit_is_counted_out)
{
    weft_group g = WEFT_GROUP_INIT;
    group_reset();
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(weft_group_go(&g, member_exits, NULL));
    ck_assert_ptr_nonnull(weft_group_go(&g, member_ok, NULL));
    ck_assert_int_eq(weft_group_wait(&g, weft_now() + 10000), 0);
    ck_assert_int_eq(member_ran, 6);         /* the five, and member_ok */
    ck_assert_int_eq(member_ended, 1);       /* only member_ok got past its end */
    ck_assert_int_eq(weft_group_size(&g), 0);
    ck_assert_int_eq(weft_group_destroy(&g), 0);
}

TASK_TEST(group_first_failure_cancels_the_rest_and_joins_them)
{
    group_reset();
    ck_assert_int_eq(weft_group_init(&fail_g, "g"), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_ptr_nonnull(weft_group_spawn(&fail_g, &(weft_attr){ .name = "m" },
                                               member_forever, NULL));
    ck_assert_ptr_nonnull(weft_group_go(&fail_g, member_fails, V(10)));
    ck_assert_fails(weft_group_wait(&fail_g, in_ms(60000)), EIO);
    ck_assert_int_eq(member_ran, 10);
    ck_assert_int_eq(member_cancelled, 10);
    ck_assert_int_eq(member_ended, 11);
    ck_assert_int_eq(weft_group_size(&fail_g), 0);
    /* A failed group stays failed: no new members, the same verdict. */
    ck_assert_fails(weft_group_go(&fail_g, member_ok, NULL), ECANCELED);
    ck_assert_fails(weft_group_wait(&fail_g, -1), EIO);
    ck_assert_int_eq(weft_group_init(&fail_g, NULL), 0);
    ck_assert_int_eq(weft_group_wait(&fail_g, -1), 0);
}

TASK_TEST(group_cancel_ends_every_member)
{
    weft_group g = WEFT_GROUP_INIT;
    group_reset();
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(weft_group_go(&g, member_forever, NULL));
    settle();
    ck_assert_int_eq(weft_group_cancel(&g), 0);
    ck_assert_fails(weft_group_wait(&g, -1), ECANCELED);
    ck_assert_int_eq(member_cancelled, 5);
    ck_assert_int_eq(weft_group_size(&g), 0);
}

TASK_TEST(group_wait_deadline_cancels_and_still_joins_the_members)
{
    weft_group g = WEFT_GROUP_INIT;
    group_reset();
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(weft_group_go(&g, member_forever, NULL));
    int64_t t0 = weft_now();
    ck_assert_fails(weft_group_wait(&g, in_ms(30)), ETIMEDOUT);
    ck_assert_int_ge(weft_now() - t0, 30);
    ck_assert_int_eq(member_ended, 5);
    ck_assert_int_eq(member_cancelled, 5);
    ck_assert_int_eq(weft_group_size(&g), 0);
    ck_assert_fails(weft_group_wait(&g, -1), ETIMEDOUT);      /* the verdict stays */
}

/* A member that cleans up over several switches after being cancelled is still waited for. */
static void *member_slow_cleanup(void *arg)
{
    (void)arg;
    weft_sleep_until(-1);
    for (int i = 0; i < 5; i++)
        weft_yield();
    member_ended++;
    return NULL;
}

static weft_group cancel_g = WEFT_GROUP_INIT;

static void *group_waiter(void *arg)
{
    struct sop *o = arg;
    o->r = weft_group_wait(&cancel_g, -1);
    o->err = errno;
    o->done = 1;
    return NULL;
}

TASK_TEST(group_waiter_cancelled_cancels_and_joins_the_members)
{
    group_reset();
    ck_assert_int_eq(weft_group_init(&cancel_g, NULL), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_nonnull(weft_group_go(&cancel_g, member_slow_cleanup, NULL));
    struct sop o = { .r = -2 };
    weft_task *w = weft_go(group_waiter, &o);
    settle();
    ck_assert(!o.done);
    ck_assert_int_eq(weft_cancel(w), 0);
    ck_assert_int_eq(weft_join(w, NULL), 0);
    ck_assert_sop_failed(&o, ECANCELED);
    ck_assert_int_eq(member_ended, 3);
    ck_assert_int_eq(weft_group_size(&cancel_g), 0);
}

/* A member that spawns more members while the group is waited for: the wait covers them. */
static weft_group grow_g = WEFT_GROUP_INIT;

static void *member_spawner(void *arg)
{
    long depth = (long)(intptr_t)arg;
    weft_yield();
    if (depth > 0) {
        ck_assert_ptr_nonnull(weft_group_go(&grow_g, member_spawner, V(depth - 1)));
        ck_assert_ptr_nonnull(weft_group_go(&grow_g, member_spawner, V(depth - 1)));
    }
    member_ended++;
    return NULL;
}

TASK_TEST(group_wait_covers_members_spawned_by_members)
{
    group_reset();
    ck_assert_int_eq(weft_group_init(&grow_g, NULL), 0);
    ck_assert_ptr_nonnull(weft_group_go(&grow_g, member_spawner, V(5)));
    ck_assert_int_eq(weft_group_wait(&grow_g, in_ms(60000)), 0);
    ck_assert_int_eq(member_ended, 63);         /* 2^6 - 1 */
    ck_assert_int_eq(weft_group_size(&grow_g), 0);
}

static void *member_waits_own_group(void *arg)
{
    ck_assert_fails(weft_group_wait(arg, -1), EDEADLK);
    member_ended++;
    return NULL;
}

TASK_TEST(group_misuse)
{
    weft_group g = WEFT_GROUP_INIT;
    group_reset();
    ck_assert_fails(weft_group_go(NULL, member_ok, NULL), EINVAL);
    ck_assert_fails(weft_group_go(&g, NULL, NULL), EINVAL);
    ck_assert_fails(weft_group_spawn(&g, &(weft_attr){ .stack_size = 1 }, member_ok, NULL), EINVAL);
    ck_assert_int_eq(weft_group_size(&g), 0);
    ck_assert_fails(weft_group_wait(NULL, -1), EINVAL);
    ck_assert_fails(weft_group_fail(NULL, EIO), EINVAL);
    ck_assert_fails(weft_group_fail(&g, 0), EINVAL);
    ck_assert_fails(weft_group_fail(&g, -1), EINVAL);
    ck_assert_fails(weft_group_cancel(NULL), EINVAL);
    ck_assert_fails(weft_group_init(NULL, NULL), EINVAL);
    ck_assert_fails(weft_group_destroy(NULL), EINVAL);
    ck_assert_fails(weft_group_size(NULL), EINVAL);
    ck_assert_ptr_nonnull(weft_group_go(&g, member_waits_own_group, &g));
    ck_assert_int_eq(weft_group_wait(&g, -1), 0);
    ck_assert_int_eq(member_ended, 1);
    ck_assert_int_eq(weft_group_destroy(&g), 0);
    ck_assert_fails(weft_group_go(&g, member_ok, NULL), EINVAL);
    ck_assert_fails(weft_group_wait(&g, -1), EINVAL);
    ck_assert_fails(weft_group_fail(&g, EIO), EINVAL);
    ck_assert_fails(weft_group_destroy(&g), EINVAL);
}

START_TEST(group_from_the_main_context)
{
    static weft_group g = WEFT_GROUP_INIT;
    group_reset();
    ck_assert_int_eq(weft_group_wait(&g, -1), 0);              /* empty: nothing to wait for */
    ck_assert_ptr_nonnull(weft_group_go(&g, member_ok, NULL));
    ck_assert_fails(weft_group_wait(&g, -1), EPERM);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(member_ended, 1);
    ck_assert_int_eq(weft_group_wait(&g, -1), 0);
}
END_TEST

/* ---- the dump ---------------------------------------------------------------------------- */

static weft_mutex dump_m = WEFT_MUTEX_INIT_NAMED("cache");

TASK_TEST(dump_shows_each_sync_wait)
{
    char want[96], holder[64];
    /* lock-wait: the holder's id and how many wait. */
    ck_assert_int_eq(weft_mutex_lock(&dump_m, -1), 0);
    struct sop l1 = { .kind = S_LOCK, .obj = &dump_m, .deadline = -1 };
    struct sop l2 = { .kind = S_LOCK, .obj = &dump_m, .deadline = in_ms(60000) };
    sop_start(&l1, "locker");
    sop_start(&l2, "locker2");
    snprintf(want, sizeof want, "[lock-wait lock \"cache\" held by task %llu, 2 waiting",
             (unsigned long long)weft_id(NULL));
    snprintf(holder, sizeof holder, "\"holder\":%llu", (unsigned long long)weft_id(NULL));
    check_dumped("locker", want, (const char *[]){ "\"state\":\"lock-wait\"", "\"kind\":\"lock\"",
                 "\"op\":\"lock\"", "\"name\":\"cache\"", holder, "\"waiting\":2", NULL });
    check_dumped("locker2", "deadline in ", (const char *[]){ "\"left_ms\":", NULL });
    ck_assert_int_eq(weft_mutex_unlock(&dump_m), 0);
    weft_sleep(5);
    ck_assert_sop_ok(&l1);
    ck_assert_sop_ok(&l2);

    /* cond-wait, unnamed: the address. */
    static weft_mutex cm = WEFT_MUTEX_INIT;
    static weft_cond c = WEFT_COND_INIT;
    struct sop cw = { .kind = S_COND, .obj = &c, .m = &cm, .deadline = -1 };
    sop_start(&cw, "condwaiter");
    snprintf(want, sizeof want, "[cond-wait wait %p", (void *)&c);
    check_dumped("condwaiter", want, (const char *[]){ "\"state\":\"cond-wait\"",
                 "\"kind\":\"cond\"", "\"op\":\"wait\"", "\"name\":null", "\"holder\":0",
                 "\"waiting\":1", NULL });
    /* relock: a cond waiter queued for its mutex again shows lock-wait, op relock. */
    ck_assert_int_eq(weft_mutex_lock(&cm, -1), 0);
    ck_assert_int_eq(weft_cond_signal(&c), 1);
    settle();
    snprintf(want, sizeof want, "[lock-wait relock %p held by task %llu", (void *)&cm,
             (unsigned long long)weft_id(NULL));
    check_dumped("condwaiter", want, (const char *[]){ "\"op\":\"relock\"", NULL });
    ck_assert_int_eq(weft_mutex_unlock(&cm), 0);
    settle();
    ck_assert_sop_ok(&cw);

    /* wg-wait */
    static weft_wg wg = WEFT_WG_INIT_NAMED("jobs");
    ck_assert_int_eq(weft_wg_add(&wg, 1), 0);
    struct sop ww = { .kind = S_WG, .obj = &wg, .deadline = -1 };
    sop_start(&ww, "wgwaiter");
    check_dumped("wgwaiter", "[wg-wait wait \"jobs\"", (const char *[]){
                 "\"state\":\"wg-wait\"", "\"kind\":\"wg\"", "\"name\":\"jobs\"", NULL });
    ck_assert_int_eq(weft_wg_done(&wg), 0);
    settle();
    ck_assert_sop_ok(&ww);

    /* sem-wait, three waiting */
    static weft_sem sm = WEFT_SEM_INIT_NAMED(0, "pool");
    struct sop sw[3];
    for (int i = 0; i < 3; i++) {
        sw[i] = (struct sop){ .kind = S_SEM, .obj = &sm, .deadline = -1 };
        sop_start(&sw[i], i ? "semwaiter2" : "semwaiter");
    }
    check_dumped("semwaiter", "[sem-wait acquire \"pool\", 3 waiting", (const char *[]){
                 "\"state\":\"sem-wait\"", "\"kind\":\"sem\"", "\"op\":\"acquire\"",
                 "\"waiting\":3", NULL });
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_sem_release(&sm), 0);
    settle();

    /* weft_park: the user's reason */
    static weft_waitq q = WEFT_WAITQ_INIT_NAMED("mailbox");
    struct sop pw = { .kind = S_PARK, .obj = &q, .deadline = -1 };
    sop_start(&pw, "parker");
    check_dumped("parker", "[waiting testing \"mailbox\"", (const char *[]){
                 "\"kind\":\"user\"", "\"op\":\"testing\"", "\"name\":\"mailbox\"", NULL });
    ck_assert_int_eq(weft_unpark_one(&q), 1);
    settle();
    ck_assert_sop_ok(&pw);

    /* a group wait */
    static weft_group g = WEFT_GROUP_INIT_NAMED("crew");
    ck_assert_ptr_nonnull(weft_group_go(&g, member_forever, NULL));
    struct sop gw = { .kind = S_GROUP, .obj = &g, .deadline = -1 };
    sop_start(&gw, "groupwaiter");
    check_dumped("groupwaiter", "[wg-wait group \"crew\"", (const char *[]){
                 "\"op\":\"group\"", NULL });
    ck_assert_int_eq(weft_group_cancel(&g), 0);
    settle();
    ck_assert_sop_failed(&gw, ECANCELED);

    /* Woken, the tasks show no wait any more. */
    char *d = dump_string(0);
    ck_assert_msg(strstr(d, "mailbox") == NULL && strstr(d, "crew") == NULL, "%s", d);
    free(d);
}

/* ---- suite ----------------------------------------------------------------------------- */

static Suite *sync_suite(void)
{
    Suite *s = suite_create("sync");
    ADD_TEST(s, unpark_one_wakes_parked_tasks_in_arrival_order, 10);
    ADD_TEST(s, unpark_all_wakes_every_parked_task_and_says_how_many, 10);
    ADD_TEST(s, park_times_out_and_leaves_the_queue, 10);
    ADD_TEST(s, park_is_cancelled, 10);
    ADD_TEST(s, park_bad_input_and_outside_a_task, 10);
    ADD_TEST(s, unpark_from_the_main_context, 10);
    ADD_TEST(s, mutex_lock_unlock_and_misuse, 10);
    ADD_TEST(s, mutex_unlock_by_a_non_owner_fails_eperm, 10);
    ADD_TEST(s, mutex_outside_a_task_fails_eperm, 10);
    ADD_TEST(s, mutex_hands_off_in_arrival_order_to_100_contenders, 20);
    ADD_TEST(s, mutex_does_not_starve_a_waiter_behind_a_relocking_task, 10);
    ADD_TEST(s, mutex_waiter_that_times_out_is_never_handed_the_lock, 10);
    ADD_TEST(s, mutex_waiter_that_is_cancelled_leaves_the_queue, 10);
    ADD_TEST(s, run_reports_edeadlk_for_a_lock_cycle, 10);
    ADD_TEST(s, cond_signal_wakes_one_in_order_and_broadcast_the_rest, 10);
    ADD_TEST(s, cond_wait_misuse, 10);
    ADD_TEST(s, cond_outside_a_task, 10);
    ADD_TEST(s, cond_wait_retakes_the_mutex_after_timeout_and_cancel, 10);
    ADD_TEST(s, cond_relock_is_not_cut_short_by_a_cancel, 10);
    ADD_TEST(s, cond_broadcast_with_timeouts_mixed_in, 10);
    ADD_TEST(s, wait_group_over_10000_tasks, 120);
    ADD_TEST(s, wait_group_deadline_cancel_and_misuse, 10);
    ADD_TEST(s, wait_group_from_the_main_context, 10);
    ADD_TEST(s, semaphore_counts_and_hands_permits_over_in_order, 10);
    ADD_TEST(s, semaphore_deadline_cancel_and_misuse, 10);
    ADD_TEST(s, semaphore_from_the_main_context, 10);
    ADD_TEST(s, semaphore_bounds_concurrency, 20);
    ADD_TEST(s, group_waits_for_every_member, 10);
    ADD_TEST(s, group_member_ending_with_weft_exit_is_counted_out, 10);
    ADD_TEST(s, group_first_failure_cancels_the_rest_and_joins_them, 10);
    ADD_TEST(s, group_cancel_ends_every_member, 10);
    ADD_TEST(s, group_wait_deadline_cancels_and_still_joins_the_members, 10);
    ADD_TEST(s, group_waiter_cancelled_cancels_and_joins_the_members, 10);
    ADD_TEST(s, group_wait_covers_members_spawned_by_members, 10);
    ADD_TEST(s, group_misuse, 10);
    ADD_TEST(s, group_from_the_main_context, 10);
    ADD_TEST(s, dump_shows_each_sync_wait, 20);
    return s;
}

int main(void)
{
    return test_run(sync_suite());
}

/* Shared channels (src/offload_chan.c): bad input; two loops on two threads ping-ponging in
 * order; many producers on several threads into consumers on several loops, every element
 * received once, buffered and unbuffered; a plain thread feeding a loop; timeouts and
 * cancels racing with completions, losing and duplicating nothing; close from another
 * thread; free while waited on; a peer thread that leaves; an idle loop, not EDEADLK; a daemon
 * parked on one when the run ends. */
#include "iotest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

static long scale(long n, long under_valgrind)
{
    return RUNNING_ON_VALGRIND ? under_valgrind : n;
}

static weft_chan *mks(size_t elem, size_t cap)
{
    weft_chan *c = weft_chan_make_shared(elem, cap);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Run fn(arg) as the one task of a loop on a new thread. */
struct loop {
    pthread_t th;
    void *(*fn)(void *);
    void *arg;
    int rc;
};

static void *loop_main(void *p)
{
    struct loop *l = p;
    l->rc = -2;
    if (weft_go(l->fn, l->arg))
        l->rc = weft_run();
    return NULL;
}

static void loop_start(struct loop *l, void *(*fn)(void *), void *arg)
{
    l->fn = fn;
    l->arg = arg;
    ck_assert_int_eq(pthread_create(&l->th, NULL, loop_main, l), 0);
}

static void loop_join(struct loop *l)
{
    ck_assert_int_eq(pthread_join(l->th, NULL), 0);
    ck_assert_int_eq(l->rc, 0);
}

START_TEST(bad_input)
{
    ck_assert_ptr_null(weft_chan_make_shared(0, 1));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(weft_chan_make_shared(WEFT_CHAN_ELEM_MAX + 1, 1));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_ptr_null(weft_chan_make_shared(8, SIZE_MAX / 4));
    ck_assert_int_eq(errno, EINVAL);
    weft_chan *c = mks(4, 1);
    int v = 1;
    ck_assert_fails(weft_chan_send(c, NULL, 0), EINVAL);
    weft_chan_clause cl = { c, WEFT_CHAN_RECV, &v, 0 };
    ck_assert_fails(weft_chan_select(&cl, 1, 0), EINVAL);
    ck_assert_fails(weft_chan_recv(c, &v, 0), ETIMEDOUT);        /* past deadline: try once */
    ck_assert_ok(weft_chan_send(c, &v, 0));
    ck_assert_fails(weft_chan_send(c, &v, 0), ETIMEDOUT);
    ck_assert_fails(weft_chan_send(c, &v, weft_now() + 30), ETIMEDOUT);  /* the thread blocks */
    v = 0;
    ck_assert_ok(weft_chan_recv(c, &v, -1));
    ck_assert_int_eq(v, 1);
    ck_assert_ok(weft_chan_set_name(c, "jobs"));
    ck_assert_ok(weft_chan_set_name(c, NULL));
    ck_assert_ok(weft_chan_close(c));
    ck_assert_fails(weft_chan_close(c), EPIPE);
    ck_assert_fails(weft_chan_send(c, &v, -1), EPIPE);
    ck_assert_fails(weft_chan_recv(c, &v, -1), EPIPE);
    ck_assert_ok(weft_chan_free(c));
}
END_TEST

/* ---- ping-pong between two loops ------------------------------------------------------ */

struct pp {
    weft_chan *ab, *ba;
    long n;
    long bad;
};

static void *pp_echo(void *p)
{
    struct pp *x = p;
    long v;
    while (weft_chan_recv(x->ab, &v, -1) == 0)
        if (weft_chan_send(x->ba, &v, -1) != 0)
            x->bad++;
    return NULL;
}

static void *pp_drive(void *p)
{
    struct pp *x = p;
    for (long i = 0; i < x->n; i++) {
        long v = -1;
        if (weft_chan_send(x->ab, &i, -1) != 0 || weft_chan_recv(x->ba, &v, -1) != 0 || v != i)
            x->bad++;
    }
    weft_chan_close(x->ab);
    return NULL;
}

static void ping_pong(size_t cap, long n)
{
    struct pp x = { mks(sizeof(long), cap), mks(sizeof(long), cap), n, 0 };
    struct loop a, b;
    loop_start(&b, pp_echo, &x);
    loop_start(&a, pp_drive, &x);
    loop_join(&a);
    loop_join(&b);
    ck_assert_int_eq(x.bad, 0);
    ck_assert_ok(weft_chan_free(x.ab));
    ck_assert_ok(weft_chan_free(x.ba));
}

START_TEST(two_loops_ping_pong_unbuffered)
{
    ping_pong(0, scale(100000, 2000));
}
END_TEST

START_TEST(two_loops_ping_pong_buffered)
{
    ping_pong(4, scale(100000, 2000));
}
END_TEST

/* ---- many producers, many consumers --------------------------------------------------- */

#define NPROD 3
#define NCONS 2
#define TPL 2   /* tasks per loop */

struct mp {
    weft_chan *c;
    long per;           /* values per producing task */
    _Atomic int *seen;
    _Atomic long got;
    _Atomic int next_base;
};

static void *mp_send(void *p)
{
    struct mp *m = p;
    long base = atomic_fetch_add(&m->next_base, 1) * m->per;
    for (long i = 0; i < m->per; i++) {
        int v = (int)(base + i);
        ck_assert_int_eq(weft_chan_send(m->c, &v, -1), 0);
    }
    return NULL;
}

static void *mp_recv(void *p)
{
    struct mp *m = p;
    int v;
    while (weft_chan_recv(m->c, &v, -1) == 0) {
        atomic_fetch_add(&m->seen[v], 1);
        atomic_fetch_add(&m->got, 1);
    }
    return NULL;
}

static void *spawn_many(void *p, void *(*fn)(void *))
{
    weft_task *t[TPL];
    for (int i = 0; i < TPL; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(fn, p));
    for (int i = 0; i < TPL; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    return NULL;
}

static void *prod_loop(void *p)
{
    return spawn_many(p, mp_send);
}

static void *cons_loop(void *p)
{
    return spawn_many(p, mp_recv);
}

static void many_to_many(size_t cap)
{
    struct mp m = { mks(sizeof(int), cap), scale(20000, 300), NULL, 0, 0 };
    long total = m.per * NPROD * TPL;
    m.seen = calloc((size_t)total, sizeof *m.seen);
    struct loop pl[NPROD], cl[NCONS];
    for (int i = 0; i < NCONS; i++)
        loop_start(&cl[i], cons_loop, &m);
    for (int i = 0; i < NPROD; i++)
        loop_start(&pl[i], prod_loop, &m);
    for (int i = 0; i < NPROD; i++)
        loop_join(&pl[i]);
    ck_assert_ok(weft_chan_close(m.c));
    for (int i = 0; i < NCONS; i++)
        loop_join(&cl[i]);
    ck_assert_int_eq(atomic_load(&m.got), total);
    for (long i = 0; i < total; i++)
        ck_assert_msg(atomic_load(&m.seen[i]) == 1, "value %ld received %d times", i, m.seen[i]);
    free(m.seen);
    ck_assert_ok(weft_chan_free(m.c));
}

START_TEST(many_producers_many_consumers_unbuffered)
{
    many_to_many(0);
}
END_TEST

START_TEST(many_producers_many_consumers_buffered)
{
    many_to_many(16);
}
END_TEST

/* ---- a plain thread and a loop -------------------------------------------------------- */

START_TEST(plain_thread_feeds_a_loop_and_hears_back)
{
    struct pp x = { mks(sizeof(long), 0), mks(sizeof(long), 1), 0, 0 };
    struct loop b;
    loop_start(&b, pp_echo, &x);
    long n = scale(20000, 500);
    for (long i = 0; i < n; i++) {
        long v = -1;
        ck_assert_ok(weft_chan_send(x.ab, &i, -1));
        ck_assert_ok(weft_chan_recv(x.ba, &v, weft_now() + 60000));
        ck_assert_int_eq(v, i);
    }
    ck_assert_ok(weft_chan_close(x.ab));
    loop_join(&b);
    ck_assert_int_eq(x.bad, 0);
    ck_assert_ok(weft_chan_free(x.ab));
    ck_assert_ok(weft_chan_free(x.ba));
}
END_TEST

/* ---- timeouts and cancels racing with completions ------------------------------------- */

struct race {
    weft_chan *c;
    long n;
    _Atomic int *seen;
    _Atomic long got, timeouts, cancels;
    _Atomic int finished;
};

static void *race_recv(void *p)
{
    struct race *r = p;
    int v;
    int64_t d = weft_now() + (int64_t)(weft_now() % 3);
    if (weft_chan_recv(r->c, &v, d) == 0) {
        atomic_fetch_add(&r->seen[v], 1);
        atomic_fetch_add(&r->got, 1);
    } else if (errno == ETIMEDOUT) {
        atomic_fetch_add(&r->timeouts, 1);
    } else if (errno == ECANCELED) {
        atomic_fetch_add(&r->cancels, 1);
    } else if (errno == EPIPE) {
        atomic_store(&r->finished, 1);
    }
    return NULL;
}

/* Waves of receivers with short deadlines, half of them cancelled at once or soon. */
static void *race_loop(void *p)
{
    struct race *r = p;
    while (!atomic_load(&r->finished)) {
        weft_task *t[8];
        for (int i = 0; i < 8; i++)
            ck_assert_ptr_nonnull(t[i] = weft_go(race_recv, r));
        weft_yield();
        for (int i = 0; i < 8; i += 2)
            weft_cancel(t[i]);
        for (int i = 0; i < 8; i++)
            weft_join(t[i], NULL);
    }
    return NULL;
}

START_TEST(timeouts_and_cancels_lose_and_duplicate_nothing)
{
    struct race r = { mks(sizeof(int), 0), scale(20000, 500), NULL, 0, 0, 0, 0 };
    r.seen = calloc((size_t)r.n, sizeof *r.seen);
    struct loop l[2];
    loop_start(&l[0], race_loop, &r);
    loop_start(&l[1], race_loop, &r);
    long sender_timeouts = 0;
    for (int i = 0; i < r.n; i++) {
        /* The plain thread's own waits time out too; then the same value goes again. */
        while (weft_chan_send(r.c, &i, weft_now() + 1) != 0) {
            ck_assert_int_eq(errno, ETIMEDOUT);
            sender_timeouts++;
        }
    }
    ck_assert_ok(weft_chan_close(r.c));
    loop_join(&l[0]);
    loop_join(&l[1]);
    ck_assert_int_eq(atomic_load(&r.got), r.n);
    for (long i = 0; i < r.n; i++)
        ck_assert_msg(atomic_load(&r.seen[i]) == 1, "value %ld received %d times", i, r.seen[i]);
    ck_assert_msg(atomic_load(&r.cancels) > 0, "no receiver was cancelled");
    free(r.seen);
    ck_assert_ok(weft_chan_free(r.c));
    (void)sender_timeouts;
}
END_TEST

/* ---- close, free, a peer that leaves, idling ------------------------------------------ */

struct cl {
    weft_chan *in, *out;
    _Atomic int parked, epipe;
};

static void *cl_recv(void *p)
{
    struct cl *c = p;
    int v = 0;
    atomic_fetch_add(&c->parked, 1);
    if (weft_chan_recv(c->in, &v, -1) < 0 && errno == EPIPE)
        atomic_fetch_add(&c->epipe, 1);
    return NULL;
}

static void *cl_send(void *p)
{
    struct cl *c = p;
    int v = 0;
    atomic_fetch_add(&c->parked, 1);
    if (weft_chan_send(c->out, &v, -1) < 0 && errno == EPIPE)
        atomic_fetch_add(&c->epipe, 1);
    return NULL;
}

static void *cl_loop(void *p)
{
    weft_task *t[5];
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(i < 3 ? cl_recv : cl_send, p));
    for (int i = 0; i < 5; i++)
        weft_join(t[i], NULL);
    return NULL;
}

START_TEST(close_from_another_thread_wakes_every_waiter_with_epipe)
{
    struct cl c = { mks(sizeof(int), 0), mks(sizeof(int), 0), 0, 0 };
    struct loop l;
    loop_start(&l, cl_loop, &c);
    while (atomic_load(&c.parked) < 5)
        usleep(1000);
    usleep(50000);
    /* Parked now (or about to be: then they find the channel closed, EPIPE all the same). */
    ck_assert_fails(weft_chan_free(c.in), EBUSY);
    ck_assert_fails(weft_chan_free(c.out), EBUSY);
    ck_assert_ok(weft_chan_close(c.in));
    ck_assert_ok(weft_chan_close(c.out));
    loop_join(&l);
    ck_assert_int_eq(atomic_load(&c.epipe), 5);
    ck_assert_ok(weft_chan_free(c.in));
    ck_assert_ok(weft_chan_free(c.out));
}
END_TEST

static void *nothing(void *p)
{
    return p;
}

static void *lonely(void *p)
{
    int *r = p, v;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, nothing, NULL), 0);
    pthread_join(th, NULL);     /* the peer left without a word */
    weft_chan *c = mks(sizeof(int), 0);
    int64_t t0 = weft_now();
    r[0] = weft_chan_recv(c, &v, t0 + 100);
    r[1] = errno;
    r[2] = (int)(weft_now() - t0);
    weft_chan_free(c);
    return NULL;
}

START_TEST(a_lone_wait_times_out_and_the_loop_idles_rather_than_deadlocks)
{
    int r[3];
    ck_assert_ptr_nonnull(weft_go(lonely, r));
    ck_assert_int_eq(weft_run(), 0);      /* not EDEADLK */
    ck_assert_int_eq(r[0], -1);
    ck_assert_int_eq(r[1], ETIMEDOUT);
    ck_assert_int_ge(r[2], 100);
}
END_TEST

static void *cancel_me(void *p)
{
    int v;
    int r = weft_chan_recv(p, &v, -1);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

TASK_TEST(cancel_of_a_parked_receive_is_ecanceled)
{
    weft_chan *c = mks(sizeof(int), 0);
    weft_task *t = weft_go(cancel_me, c);
    settle();
    ck_assert_ok(weft_cancel(t));
    void *v;
    ck_assert_ok(weft_join(t, &v));
    ck_assert_int_eq((int)(intptr_t)v, ECANCELED);
    ck_assert_ok(weft_chan_free(c));
}

static void *parked_daemon(void *p)
{
    int v;
    weft_chan_recv(p, &v, -1);      /* cancelled once only background tasks are left */
    return NULL;
}

static void *leave_a_daemon_parked(void *p)
{
    int v;
    /* a wait that times out: this thread's port, and its reaper, exist from here on, so the
     * reaper comes before the daemon in the order weft_run cancels them */
    ck_assert_int_eq(weft_chan_recv(p, &v, weft_now() + 10), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    weft_attr a = { .daemon = 1, .detached = 1, .name = "parked" };
    ck_assert_ptr_nonnull(weft_spawn(&a, parked_daemon, p));
    settle();
    return NULL;
}

/* The reaper ends with the run; the daemon's wait, cancelled after it, must not touch the
 * port the reaper leaves (the sanitizer builds see a use after free). */
START_TEST(a_daemon_parked_on_a_shared_channel_ends_cleanly_with_the_run)
{
    weft_chan *c = mks(sizeof(int), 0);
    ck_assert_ptr_nonnull(weft_go(leave_a_daemon_parked, c));
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_ok(weft_chan_free(c));    /* nobody waits on it any more */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("xchan");
    ADD_TEST(s, bad_input, 10);
    ADD_TEST(s, two_loops_ping_pong_unbuffered, 240);
    ADD_TEST(s, two_loops_ping_pong_buffered, 240);
    ADD_TEST(s, many_producers_many_consumers_unbuffered, 240);
    ADD_TEST(s, many_producers_many_consumers_buffered, 240);
    ADD_TEST(s, plain_thread_feeds_a_loop_and_hears_back, 240);
    ADD_TEST(s, timeouts_and_cancels_lose_and_duplicate_nothing, 240);
    ADD_TEST(s, close_from_another_thread_wakes_every_waiter_with_epipe, 30);
    ADD_TEST(s, a_lone_wait_times_out_and_the_loop_idles_rather_than_deadlocks, 30);
    ADD_TEST(s, cancel_of_a_parked_receive_is_ecanceled, 10);
    ADD_TEST(s, a_daemon_parked_on_a_shared_channel_ends_cleanly_with_the_run, 10);
    return test_run(s);
}

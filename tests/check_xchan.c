/* Shared channels (src/offload_chan.c): bad input; two loops on two threads ping-ponging in
 * order; many producers on several threads into consumers on several loops, every element
 * received once, buffered and unbuffered; a plain thread feeding a loop; timeouts and
 * cancels racing with completions, losing and duplicating nothing; close from another
 * thread; free while waited on; a peer thread that leaves; an idle loop, not EDEADLK; a daemon
 * parked on one when the run ends.
 * Select over shared channels (src/offload_select.c): fed by other threads, mixed with a
 * local channel, sending to another thread, timeouts and cancels racing with peers on other
 * threads (nothing lost or duplicated), close from another thread, a plain thread. */
#include "iotest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>

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
    ck_assert_fails(weft_chan_select(&cl, 1, 0), ETIMEDOUT);    /* select takes it: try once */
    weft_chan_clause bad[2] = { { c, WEFT_CHAN_RECV, &v, 0 }, { c, WEFT_CHAN_SEND, NULL, 0 } };
    ck_assert_fails(weft_chan_select(bad, 2, 0), EINVAL);
    bad[1].op = 7;
    ck_assert_fails(weft_chan_select(bad, 2, 0), EINVAL);
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

/* A receiver completed by another thread whose message has not reached its loop yet, and
 * cancelled while it waits for that message: it must wait on (not spin: the loop that brings
 * the message would never run again), return the element, and keep the cancel for its next
 * call. The loop is held (a task spinning without yielding) until the other thread has
 * handed the element over, so the message is still on its way at both cancels. */
struct late_cancel {
    weft_chan *c;
    weft_task *rx;
    atomic_int handed;
    int r, err, v, next_err;
};

static void *late_cancel_rx(void *p)
{
    struct late_cancel *lc = p;
    errno = 0;
    lc->r = weft_chan_recv(lc->c, &lc->v, -1);
    lc->err = errno;
    lc->next_err = weft_sleep(1000) == 0 ? 0 : errno;   /* the cancel, kept */
    return NULL;
}

static void *late_cancel_tx(void *p)
{
    struct late_cancel *lc = p;
    int v = 4242;
    ck_assert_ok(weft_chan_send(lc->c, &v, -1));    /* a plain thread: the receiver waits */
    atomic_store(&lc->handed, 1);
    return NULL;
}

static void *late_cancel_main(void *p)
{
    struct late_cancel *lc = p;
    ck_assert_ptr_nonnull(lc->rx = weft_go(late_cancel_rx, lc));
    settle();                       /* the receiver is parked */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, late_cancel_tx, lc), 0);
    while (!atomic_load(&lc->handed))
        ;                           /* no yield: the loop does not poll, the message waits */
    ck_assert_ok(weft_cancel(lc->rx));
    weft_yield();                   /* it learns it was completed, and waits for the message */
    ck_assert_ok(weft_cancel(lc->rx));
    ck_assert_ok(weft_join(lc->rx, NULL));
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    return NULL;
}

START_TEST(a_receiver_cancelled_while_its_message_is_on_its_way_gets_the_element)
{
    struct late_cancel lc = { .c = mks(sizeof(int), 0) };
    ck_assert_ptr_nonnull(weft_go(late_cancel_main, &lc));
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(lc.r, 0);
    ck_assert_int_eq(lc.v, 4242);
    ck_assert_int_eq(lc.next_err, ECANCELED);
    ck_assert_ok(weft_chan_free(lc.c));
}
END_TEST

/* The run ends with a daemon parked on a shared channel; a plain thread completes its record
 * after the port's reaper has left, before the daemon runs (a second daemon, between the two in
 * the order weft_run cancels them, holds the loop until then). The daemon must still get the
 * element and the run end: nobody but the daemon itself can deliver the message now. */
struct after_reaper {
    weft_chan *c, *hold;
    atomic_int go, handed;
    int r, v;
};

static void *after_reaper_tx(void *p)
{
    struct after_reaper *ar = p;
    while (!atomic_load(&ar->go))
        usleep(1000);
    int v = 777;
    ck_assert_ok(weft_chan_send(ar->c, &v, -1));
    atomic_store(&ar->handed, 1);
    return NULL;
}

static void *after_reaper_holder(void *p)
{
    struct after_reaper *ar = p;
    int v;
    weft_chan_recv(ar->hold, &v, -1);   /* cancelled as the run ends, after the reaper */
    atomic_store(&ar->go, 1);
    while (!atomic_load(&ar->handed))
        ;                               /* no yield: the daemon below runs only after this */
    return NULL;
}

static void *after_reaper_rx(void *p)
{
    struct after_reaper *ar = p;
    ar->r = weft_chan_recv(ar->c, &ar->v, -1);
    return NULL;
}

static void *after_reaper_main(void *p)
{
    struct after_reaper *ar = p;
    int v;
    /* a wait that times out: the port and its reaper exist from here, before both daemons */
    ck_assert_int_eq(weft_chan_recv(ar->c, &v, weft_now() + 10), -1);
    weft_attr a = { .daemon = 1, .detached = 1 };
    a.name = "holder";
    ck_assert_ptr_nonnull(weft_spawn(&a, after_reaper_holder, ar));
    a.name = "receiver";
    ck_assert_ptr_nonnull(weft_spawn(&a, after_reaper_rx, ar));
    settle();
    return NULL;
}

START_TEST(a_daemon_completed_after_the_reaper_left_gets_the_element_and_the_run_ends)
{
    struct after_reaper ar = { .c = mks(sizeof(int), 0), .r = -2 };
    ck_assert_ptr_nonnull(ar.hold = weft_chan_make(sizeof(int), 0));
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, after_reaper_tx, &ar), 0);
    ck_assert_ptr_nonnull(weft_go(after_reaper_main, &ar));
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_eq(ar.r, 0);
    ck_assert_int_eq(ar.v, 777);
    ck_assert_ok(weft_chan_free(ar.c));
    ck_assert_ok(weft_chan_free(ar.hold));
}
END_TEST

static void *parked_select_daemon(void *p)
{
    int v;
    weft_chan_clause cl[2] = { { .chan = p, .op = WEFT_CHAN_RECV, .elem = &v },
                               { .chan = p, .op = WEFT_CHAN_RECV, .elem = &v } };
    weft_chan_select(cl, 2, -1);    /* cancelled once only background tasks are left */
    return NULL;
}

static void *leave_a_select_daemon_parked(void *p)
{
    int v;
    ck_assert_int_eq(weft_chan_recv(p, &v, weft_now() + 10), -1);
    ck_assert_int_eq(errno, ETIMEDOUT);
    weft_attr a = { .daemon = 1, .detached = 1, .name = "parked-select" };
    ck_assert_ptr_nonnull(weft_spawn(&a, parked_select_daemon, p));
    settle();
    return NULL;
}

START_TEST(a_daemon_parked_in_a_shared_select_ends_cleanly_with_the_run)
{
    weft_chan *c = mks(sizeof(int), 0);
    ck_assert_ptr_nonnull(weft_go(leave_a_select_daemon_parked, c));
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_ok(weft_chan_free(c));
}
END_TEST

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

/* ---- select over shared channels ------------------------------------------------------- */

#define SEL_PROD 2

struct xs {
    weft_chan *c[SEL_PROD];
    long per;                   /* values per producer */
    _Atomic int *seen;
    _Atomic long got, sum, bad;
    _Atomic int next;
};

/* A loop's one task: send per values (its own range) on its channel, then close it. */
static void *xs_feed(void *p)
{
    struct xs *x = p;
    int k = atomic_fetch_add(&x->next, 1);
    for (long i = 0; i < x->per; i++) {
        int v = (int)(k * x->per + i);
        if (weft_chan_send(x->c[k], &v, -1) != 0)
            atomic_fetch_add(&x->bad, 1);
    }
    if (weft_chan_close(x->c[k]) != 0)
        atomic_fetch_add(&x->bad, 1);
    return NULL;
}

/* Select receives over n channels until each one has said EPIPE (its clause is then dropped);
 * returns how many EPIPEs it saw. */
static int select_drain(struct xs *x, weft_chan_clause *cl, int n, int *vals)
{
    int closed = 0;
    while (n > 0) {
        int i = weft_chan_select(cl, n, -1);
        if (i < 0 || i >= n) {
            atomic_fetch_add(&x->bad, 1);
            return closed;
        }
        if (cl[i].err == EPIPE) {
            closed++;
            cl[i] = cl[n - 1];
            n--;
            continue;
        }
        if (cl[i].err != 0) {
            atomic_fetch_add(&x->bad, 1);
            continue;
        }
        int v = *(int *)cl[i].elem;
        if (v < 0 || v >= x->per * SEL_PROD) {
            atomic_fetch_add(&x->bad, 1);
            continue;
        }
        atomic_fetch_add(&x->seen[v], 1);
        atomic_fetch_add(&x->got, 1);
        atomic_fetch_add(&x->sum, v);
    }
    (void)vals;
    return closed;
}

static void *xs_drain_task(void *p)
{
    struct xs *x = p;
    int v[SEL_PROD];
    weft_chan_clause cl[SEL_PROD];
    for (int i = 0; i < SEL_PROD; i++)
        cl[i] = (weft_chan_clause){ x->c[i], WEFT_CHAN_RECV, &v[i], 0 };
    if (select_drain(x, cl, SEL_PROD, v) != SEL_PROD)
        atomic_fetch_add(&x->bad, 1);
    return NULL;
}

static void xs_check(struct xs *x)
{
    long total = x->per * SEL_PROD;
    ck_assert_int_eq(atomic_load(&x->bad), 0);
    ck_assert_int_eq(atomic_load(&x->got), total);
    ck_assert_int_eq(atomic_load(&x->sum), total * (total - 1) / 2);
    for (long i = 0; i < total; i++)
        ck_assert_msg(atomic_load(&x->seen[i]) == 1, "value %ld received %d times", i,
                      atomic_load(&x->seen[i]));
}

static void xs_init(struct xs *x, size_t cap0, size_t cap1, long per)
{
    memset(x, 0, sizeof *x);
    x->c[0] = mks(sizeof(int), cap0);
    x->c[1] = mks(sizeof(int), cap1);
    x->per = per;
    x->seen = calloc((size_t)(per * SEL_PROD), sizeof *x->seen);
    ck_assert_ptr_nonnull(x->seen);
}

static void xs_fini(struct xs *x)
{
    for (int i = 0; i < SEL_PROD; i++)
        ck_assert_ok(weft_chan_free(x->c[i]));
    free(x->seen);
}

START_TEST(select_over_two_shared_channels_fed_by_two_loops)
{
    struct xs x;
    xs_init(&x, 0, 8, scale(50000, 1000));     /* 100,000 in all; one unbuffered, one not */
    struct loop l[SEL_PROD + 1];
    loop_start(&l[SEL_PROD], xs_drain_task, &x);
    for (int i = 0; i < SEL_PROD; i++)
        loop_start(&l[i], xs_feed, &x);
    for (int i = 0; i <= SEL_PROD; i++)
        loop_join(&l[i]);
    xs_check(&x);
    xs_fini(&x);
}
END_TEST

START_TEST(a_plain_thread_selects_over_shared_channels)
{
    struct xs x;
    xs_init(&x, 0, 2, scale(20000, 500));
    int v[SEL_PROD];
    weft_chan_clause cl[SEL_PROD];
    for (int i = 0; i < SEL_PROD; i++)
        cl[i] = (weft_chan_clause){ x.c[i], WEFT_CHAN_RECV, &v[i], 0 };
    /* Nothing to receive yet: the thread blocks until its deadline. */
    ck_assert_fails(weft_chan_select(cl, SEL_PROD, weft_now() + 20), ETIMEDOUT);
    /* A channel of this thread in the mix, nothing ready: only a task may wait on it. */
    weft_chan *loc = weft_chan_make(sizeof(int), 0);
    weft_chan_clause mixed[2] = { cl[0], { loc, WEFT_CHAN_RECV, &v[1], 0 } };
    ck_assert_fails(weft_chan_select(mixed, 2, -1), EPERM);
    ck_assert_ok(weft_chan_free(loc));
    struct loop l[SEL_PROD];
    for (int i = 0; i < SEL_PROD; i++)
        loop_start(&l[i], xs_feed, &x);
    ck_assert_int_eq(select_drain(&x, cl, SEL_PROD, v), SEL_PROD);
    for (int i = 0; i < SEL_PROD; i++)
        loop_join(&l[i]);
    xs_check(&x);
    xs_fini(&x);
}
END_TEST

/* A loop's task feeds a local channel while another thread feeds the shared one; a second
 * task selects over both. */
struct mix {
    struct xs *x;
    weft_chan *loc;
};

static void *mix_local_feed(void *p)
{
    struct mix *m = p;
    for (long i = 0; i < m->x->per; i++) {
        int v = (int)i;
        if (weft_chan_send(m->loc, &v, -1) != 0)
            atomic_fetch_add(&m->x->bad, 1);
        if (i % 7 == 0)
            weft_yield();
    }
    weft_chan_close(m->loc);
    return NULL;
}

static void *mix_drain(void *p)
{
    struct mix *m = p;
    int v[2];
    weft_chan_clause cl[2] = { { m->loc, WEFT_CHAN_RECV, &v[0], 0 },
                               { m->x->c[1], WEFT_CHAN_RECV, &v[1], 0 } };
    if (select_drain(m->x, cl, 2, v) != 2)
        atomic_fetch_add(&m->x->bad, 1);
    return NULL;
}

static void *mix_loop(void *p)
{
    struct mix *m = p;
    m->loc = weft_chan_make(sizeof(int), 0);
    ck_assert_ptr_nonnull(m->loc);
    weft_task *a = weft_go(mix_drain, m), *b = weft_go(mix_local_feed, m);
    ck_assert_ok(weft_join(a, NULL));
    ck_assert_ok(weft_join(b, NULL));
    ck_assert_ok(weft_chan_free(m->loc));
    return NULL;
}

START_TEST(select_mixes_a_local_and_a_shared_channel)
{
    struct xs x;
    xs_init(&x, 0, 0, scale(30000, 500));
    atomic_store(&x.next, 1);  /* the other thread feeds c[1] with values per..2*per-1 */
    struct mix m = { &x, NULL };
    struct loop l, f;
    loop_start(&l, mix_loop, &m);
    loop_start(&f, xs_feed, &x);
    loop_join(&f);
    loop_join(&l);
    /* The local channel carried 0..per-1, the shared one per..2*per-1: each once. */
    xs_check(&x);
    ck_assert_ok(weft_chan_close(x.c[0]));
    xs_fini(&x);
}
END_TEST

/* Select sends: each value goes on whichever of two shared channels a receiver on another
 * thread takes first; a third clause, a receive on a local channel, never fires. */
struct xsend {
    weft_chan *c[2];
    long n;
    _Atomic int *seen;
    _Atomic long bad;
};

static void *xsend_task(void *p)
{
    struct xsend *x = p;
    weft_chan *loc = weft_chan_make(sizeof(int), 0);
    int v, dummy;
    weft_chan_clause cl[3] = { { x->c[0], WEFT_CHAN_SEND, &v, 0 },
                               { x->c[1], WEFT_CHAN_SEND, &v, 0 },
                               { loc, WEFT_CHAN_RECV, &dummy, 0 } };
    for (v = 0; v < x->n; v++) {
        int i = weft_chan_select(cl, 3, -1);
        if (i < 0 || i > 1 || cl[i].err != 0)
            atomic_fetch_add(&x->bad, 1);
    }
    weft_chan_close(x->c[0]);
    weft_chan_close(x->c[1]);
    weft_chan_free(loc);
    return NULL;
}

struct xrecv_arg {
    struct xsend *x;
    int k;
};

static void *xrecv_loop(void *p)
{
    struct xrecv_arg *a = p;
    int v;
    while (weft_chan_recv(a->x->c[a->k], &v, -1) == 0) {
        if (v < 0 || v >= a->x->n)
            atomic_fetch_add(&a->x->bad, 1);
        else
            atomic_fetch_add(&a->x->seen[v], 1);
    }
    return NULL;
}

START_TEST(select_sends_on_shared_channels_to_receivers_on_other_threads)
{
    struct xsend x = { { mks(sizeof(int), 0), mks(sizeof(int), 3) }, scale(50000, 1000), NULL, 0 };
    x.seen = calloc((size_t)x.n, sizeof *x.seen);
    struct xrecv_arg ra[2] = { { &x, 0 }, { &x, 1 } };
    struct loop r[2], s;
    loop_start(&r[0], xrecv_loop, &ra[0]);
    loop_start(&r[1], xrecv_loop, &ra[1]);
    loop_start(&s, xsend_task, &x);
    loop_join(&s);
    loop_join(&r[0]);
    loop_join(&r[1]);
    ck_assert_int_eq(atomic_load(&x.bad), 0);
    for (long i = 0; i < x.n; i++)
        ck_assert_msg(atomic_load(&x.seen[i]) == 1, "value %ld received %d times", i,
                      atomic_load(&x.seen[i]));
    free(x.seen);
    ck_assert_ok(weft_chan_free(x.c[0]));
    ck_assert_ok(weft_chan_free(x.c[1]));
}
END_TEST

/* ---- select racing: timeouts and cancels against peers on other threads ---------------- */

/* Values 0..n-1 go out from plain threads with short deadlines (retrying the same value after
 * a timeout) on two channels; loops run waves of selects, receiving over both (and a local
 * channel nobody sends on) with short deadlines, half of them cancelled, until every value
 * is in. Meanwhile selects
 * send unique tokens on a third channel with short deadlines, some cancelled, to a plain
 * thread receiving with short deadlines: a token is received exactly when its select said
 * it was sent. */
struct srace {
    weft_chan *in[2], *out;
    long n, ntok;
    _Atomic int *seen;          /* per value: times received */
    _Atomic int *sent;          /* per token: the select said it was sent */
    _Atomic int *got;           /* per token: times received */
    _Atomic long recvd, cancels, timeouts, bad, tok;
    _Atomic int all_sent;       /* the plain threads' sends all returned */
};

static void *srace_select_recv(void *p)
{
    struct srace *r = p;
    weft_chan *loc = weft_chan_make(sizeof(int), 0);
    int v[3];
    weft_chan_clause cl[3] = { { r->in[0], WEFT_CHAN_RECV, &v[0], 0 },
                               { loc, WEFT_CHAN_RECV, &v[1], 0 },
                               { r->in[1], WEFT_CHAN_RECV, &v[2], 0 } };
    int64_t d = weft_now() + (int64_t)(weft_now() % 3);
    int i = weft_chan_select(cl, 3, d);
    if (i == 0 || i == 2) {
        int x = *(int *)cl[i].elem;
        if (cl[i].err != 0 || x < 0 || x >= r->n) {
            atomic_fetch_add(&r->bad, 1);
        } else {
            atomic_fetch_add(&r->seen[x], 1);
            atomic_fetch_add(&r->recvd, 1);
        }
    } else if (i >= 0) {
        atomic_fetch_add(&r->bad, 1);           /* the loop's own channel never fires */
    } else if (errno == ECANCELED) {
        atomic_fetch_add(&r->cancels, 1);
    } else if (errno == ETIMEDOUT) {
        atomic_fetch_add(&r->timeouts, 1);
    } else {
        atomic_fetch_add(&r->bad, 1);
    }
    weft_chan_free(loc);
    return NULL;
}

static void *srace_select_send(void *p)
{
    struct srace *r = p;
    long t = atomic_fetch_add(&r->tok, 1);
    if (t >= r->ntok)
        return NULL;
    int v = (int)t, dummy;
    weft_chan *loc = weft_chan_make(sizeof(int), 0);
    weft_chan_clause cl[2] = { { loc, WEFT_CHAN_RECV, &dummy, 0 },
                               { r->out, WEFT_CHAN_SEND, &v, 0 } };
    int i = weft_chan_select(cl, 2, weft_now() + (int64_t)(weft_now() % 3));
    if (i == 1 && cl[1].err == 0)
        atomic_store(&r->sent[t], 1);
    else if (i >= 0 || (errno != ECANCELED && errno != ETIMEDOUT))
        atomic_fetch_add(&r->bad, 1);
    weft_chan_free(loc);
    return NULL;
}

static void *srace_loop(void *p)
{
    struct srace *r = p;
    while (!atomic_load(&r->all_sent)) {
        weft_task *t[8];
        for (int i = 0; i < 8; i++)
            ck_assert_ptr_nonnull(t[i] = weft_go(i % 4 == 3 ? srace_select_send
                                                 : srace_select_recv, r));
        weft_yield();
        for (int i = 0; i < 8; i += 2)
            weft_cancel(t[i]);
        for (int i = 0; i < 8; i++)
            weft_join(t[i], NULL);
    }
    /* Every value was taken but perhaps one, still in in[1]'s buffer. */
    int v;
    if (weft_chan_recv(r->in[1], &v, 0) == 0) {
        atomic_fetch_add(&r->seen[v], 1);
        atomic_fetch_add(&r->recvd, 1);
    }
    return NULL;
}

struct srace_sender {
    struct srace *r;
    int k;
};

static void *srace_send_thread(void *p)
{
    struct srace_sender *s = p;
    struct srace *r = s->r;
    for (int i = s->k; i < r->n; i += 2) {
        while (weft_chan_send(r->in[i % 2], &i, weft_now() + 1) != 0)
            if (errno != ETIMEDOUT)
                atomic_fetch_add(&r->bad, 1);
    }
    return NULL;
}

static void *srace_recv_thread(void *p)
{
    struct srace *r = p;
    int v;
    for (;;) {
        if (weft_chan_recv(r->out, &v, weft_now() + 1) == 0) {
            if (v < 0 || v >= r->ntok)
                atomic_fetch_add(&r->bad, 1);
            else
                atomic_fetch_add(&r->got[v], 1);
        } else if (errno == EPIPE) {
            return NULL;
        } else if (errno != ETIMEDOUT) {
            atomic_fetch_add(&r->bad, 1);
        }
    }
}

START_TEST(select_timeouts_and_cancels_race_peers_on_other_threads)
{
    struct srace r;
    memset(&r, 0, sizeof r);
    r.in[0] = mks(sizeof(int), 0);
    r.in[1] = mks(sizeof(int), 1);
    r.out = mks(sizeof(int), 0);
    r.n = scale(20000, 400);
    r.ntok = scale(20000, 400);
    r.seen = calloc((size_t)r.n, sizeof *r.seen);
    r.sent = calloc((size_t)r.ntok, sizeof *r.sent);
    r.got = calloc((size_t)r.ntok, sizeof *r.got);
    struct loop l[2];
    loop_start(&l[0], srace_loop, &r);
    loop_start(&l[1], srace_loop, &r);
    pthread_t st[2], rt;
    struct srace_sender ss[2] = { { &r, 0 }, { &r, 1 } };
    ck_assert_int_eq(pthread_create(&rt, NULL, srace_recv_thread, &r), 0);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&st[i], NULL, srace_send_thread, &ss[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(st[i], NULL);
    atomic_store(&r.all_sent, 1);
    loop_join(&l[0]);
    loop_join(&l[1]);
    ck_assert_ok(weft_chan_close(r.out));
    pthread_join(rt, NULL);
    ck_assert_int_eq(atomic_load(&r.bad), 0);
    ck_assert_int_eq(atomic_load(&r.recvd), r.n);
    for (long i = 0; i < r.n; i++)
        ck_assert_msg(atomic_load(&r.seen[i]) == 1, "value %ld received %d times", i,
                      atomic_load(&r.seen[i]));
    long nsent = 0;
    for (long i = 0; i < r.ntok; i++) {
        ck_assert_msg(atomic_load(&r.got[i]) == atomic_load(&r.sent[i]),
                      "token %ld: select said sent %d, received %d times", i,
                      atomic_load(&r.sent[i]), atomic_load(&r.got[i]));
        nsent += atomic_load(&r.sent[i]);
    }
    ck_assert_msg(atomic_load(&r.cancels) > 0, "no select was cancelled");
    ck_assert_msg(nsent > 0, "no select send completed");
    free(r.seen);
    free(r.sent);
    free(r.got);
    ck_assert_ok(weft_chan_free(r.in[0]));
    ck_assert_ok(weft_chan_free(r.in[1]));
    ck_assert_ok(weft_chan_free(r.out));
}
END_TEST

/* ---- select: close from another thread, cancel, deadline ------------------------------- */

struct sclose {
    weft_chan *a, *b, *z;
    _Atomic int parked;
    int idx[2], err[2];
};

/* Select receive on a and send on b, until a is closed; then receive on z (never fed) and
 * send on b, until b is closed. */
static void *sclose_task(void *p)
{
    struct sclose *c = p;
    int v = 0, w = 1;
    weft_chan_clause cl[2] = { { c->a, WEFT_CHAN_RECV, &v, 0 }, { c->b, WEFT_CHAN_SEND, &w, 0 } };
    for (int k = 0; k < 2; k++) {
        atomic_fetch_add(&c->parked, 1);
        c->idx[k] = weft_chan_select(cl, 2, weft_now() + 60000);
        c->err[k] = c->idx[k] >= 0 ? cl[c->idx[k]].err : errno;
        cl[0].chan = c->z;
    }
    return NULL;
}

START_TEST(close_from_another_thread_wakes_a_select_with_epipe_for_its_clause)
{
    struct sclose c = { mks(sizeof(int), 0), mks(sizeof(int), 0), mks(sizeof(int), 2), 0,
                        { 0, 0 }, { 0, 0 } };
    struct loop l;
    loop_start(&l, sclose_task, &c);
    while (atomic_load(&c.parked) < 1)
        usleep(1000);
    usleep(30000);
    ck_assert_fails(weft_chan_free(c.a), EBUSY);
    ck_assert_ok(weft_chan_close(c.a));
    while (atomic_load(&c.parked) < 2)
        usleep(1000);
    usleep(30000);
    ck_assert_ok(weft_chan_close(c.b));
    loop_join(&l);
    ck_assert_int_eq(c.idx[0], 0);          /* the receive on a */
    ck_assert_int_eq(c.err[0], EPIPE);
    ck_assert_int_eq(c.idx[1], 1);          /* the send on b */
    ck_assert_int_eq(c.err[1], EPIPE);
    ck_assert_ok(weft_chan_free(c.a));
    ck_assert_ok(weft_chan_free(c.b));
    ck_assert_ok(weft_chan_free(c.z));
}
END_TEST

static void *select_parked(void *p)
{
    int v;
    weft_chan *loc = weft_chan_make(sizeof(int), 0);
    weft_chan_clause cl[2] = { { p, WEFT_CHAN_RECV, &v, 0 }, { loc, WEFT_CHAN_SEND, &v, 0 } };
    int r = weft_chan_select(cl, 2, -1);
    weft_chan_free(loc);
    return (void *)(intptr_t)(r < 0 ? errno : -1);
}

TASK_TEST(a_parked_select_on_shared_channels_is_cancelled_and_times_out)
{
    weft_chan *c = mks(sizeof(int), 0);
    weft_task *t = weft_go(select_parked, c);
    settle();
    ck_assert_ok(weft_cancel(t));
    void *v;
    ck_assert_ok(weft_join(t, &v));
    ck_assert_int_eq((int)(intptr_t)v, ECANCELED);
    int x;
    weft_chan_clause cl[1] = { { c, WEFT_CHAN_RECV, &x, 0 } };
    int64_t t0 = weft_now();
    ck_assert_fails(weft_chan_select(cl, 1, t0 + 50), ETIMEDOUT);
    ck_assert_int_ge(weft_now() - t0, 50);
    /* A ready local clause completes even beside a shared one that is not. */
    weft_chan *loc = weft_chan_make(sizeof(int), 1);
    x = 5;
    ck_assert_ok(weft_chan_send(loc, &x, -1));
    weft_chan_clause two[2] = { { c, WEFT_CHAN_RECV, &x, 0 }, { loc, WEFT_CHAN_RECV, &x, 0 } };
    x = 0;
    ck_assert_int_eq(weft_chan_select(two, 2, 0), 1);
    ck_assert_int_eq(x, 5);
    /* More clauses than fit on the stack, one channel in several of them. */
    weft_chan *d = mks(sizeof(int), 1);
    weft_chan_clause many[7];
    for (int i = 0; i < 7; i++)
        many[i] = (weft_chan_clause){ i % 2 ? c : loc, WEFT_CHAN_RECV, &x, 0 };
    many[6] = (weft_chan_clause){ d, WEFT_CHAN_RECV, &x, 0 };
    ck_assert_fails(weft_chan_select(many, 7, weft_now() + 20), ETIMEDOUT);
    x = 9;
    ck_assert_ok(weft_chan_send(d, &x, 0));
    x = 0;
    ck_assert_int_eq(weft_chan_select(many, 7, weft_now() + 20), 6);
    ck_assert_int_eq(x, 9);
    ck_assert_ok(weft_chan_free(d));
    ck_assert_ok(weft_chan_free(loc));
    ck_assert_ok(weft_chan_free(c));
}

static char *dump_string(void)
{
    return test_dump(WEFT_DUMP_NO_BACKTRACE);
}

static void *select_until_closed(void *p)
{
    int v;
    weft_chan *loc = weft_chan_make(sizeof(int), 0);
    weft_chan_clause cl[2] = { { loc, WEFT_CHAN_RECV, &v, 0 }, { p, WEFT_CHAN_RECV, &v, 0 } };
    int r = weft_chan_select(cl, 2, -1);
    weft_chan_free(loc);
    return (void *)(intptr_t)(r == 1 && cl[1].err == EPIPE);
}

TASK_TEST(the_dump_shows_a_select_on_a_shared_channel)
{
    weft_chan *c = mks(sizeof(int), 0);
    ck_assert_ok(weft_chan_set_name(c, "jobs"));
    weft_task *t = weft_spawn(&(weft_attr){ .name = "xsel" }, select_until_closed, c);
    ck_assert_ptr_nonnull(t);
    settle();
    char *text = dump_string();
    ck_assert_msg(strstr(text, "\"xsel\" [chan-wait select \"jobs [shared]\", ") != NULL,
                  "%s", text);
    free(text);
    ck_assert_fails(weft_chan_free(c), EBUSY);
    ck_assert_ok(weft_chan_close(c));
    void *ok;
    ck_assert_ok(weft_join(t, &ok));
    ck_assert_int_eq((int)(intptr_t)ok, 1);
    ck_assert_ok(weft_chan_free(c));
}

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
    ADD_TEST(s, a_daemon_parked_in_a_shared_select_ends_cleanly_with_the_run, 10);
    ADD_TEST(s, a_receiver_cancelled_while_its_message_is_on_its_way_gets_the_element, 20);
    ADD_TEST(s, a_daemon_completed_after_the_reaper_left_gets_the_element_and_the_run_ends, 20);
    ADD_TEST(s, select_over_two_shared_channels_fed_by_two_loops, 240);
    ADD_TEST(s, a_plain_thread_selects_over_shared_channels, 240);
    ADD_TEST(s, select_mixes_a_local_and_a_shared_channel, 240);
    ADD_TEST(s, select_sends_on_shared_channels_to_receivers_on_other_threads, 240);
    ADD_TEST(s, select_timeouts_and_cancels_race_peers_on_other_threads, 300);
    ADD_TEST(s, close_from_another_thread_wakes_a_select_with_epipe_for_its_clause, 60);
    ADD_TEST(s, a_parked_select_on_shared_channels_is_cancelled_and_times_out, 30);
    ADD_TEST(s, the_dump_shows_a_select_on_a_shared_channel, 30);
    return test_run(s);
}

/* Channels and select (src/chan.c): bad input, buffered and unbuffered hand-offs in order,
 * deadlines, cancels and close on every call, free while waited on, select's choice, its
 * fairness and its all-or-nothing completion, a 100,000-message pipeline, EDEADLK, and the
 * dump's chan-wait lines in text and JSON. */
#include "iotest.h"

#include <stdint.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1        /* its allocator, too, stops a huge malloc with an error */
#else
#define UNDER_TSAN 0
#endif

static weft_chan *mk(size_t elem, size_t cap)
{
    weft_chan *c = weft_chan_make(elem, cap);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* One channel call made by a task, as struct op is for the IO suites. */
struct cop {
    weft_chan *c;
    int send;
    int val;
    int64_t deadline;
    int r, err, done;
    int64_t ended;
};

static void *cop_run(void *p)
{
    struct cop *o = p;
    errno = 0;
    o->r = o->send ? weft_chan_send(o->c, &o->val, o->deadline) : weft_chan_recv(o->c, &o->val, o->deadline);
    o->err = errno;
    o->ended = weft_now();
    o->done = 1;
    return NULL;
}

static weft_task *cop_start(struct cop *o, weft_chan *c, int send, int val, int64_t deadline)
{
    *o = (struct cop){ .c = c, .send = send, .val = val, .deadline = deadline, .r = -2 };
    weft_task *t = weft_go(cop_run, o);
    ck_assert_ptr_nonnull(t);
    settle();
    return t;
}

#define ck_assert_cop(o, rr, e)                                                             \
    ck_assert_msg((o)->done && (o)->r == (rr) && ((rr) == 0 || (o)->err == (e)),            \
                  "cop: done %d r %d errno %s; expected r %d %s", (o)->done, (o)->r,        \
                  strerror((o)->err), (rr), strerror(e))

/* ---- bad input ---------------------------------------------------------------------------- */

START_TEST(make_rejects_bad_sizes)
{
    ck_assert_fails(weft_chan_make(0, 4), EINVAL);
    ck_assert_fails(weft_chan_make(WEFT_CHAN_ELEM_MAX + 1, 0), EINVAL);
    ck_assert_fails(weft_chan_make(SIZE_MAX, 1), EINVAL);
    ck_assert_fails(weft_chan_make(8, SIZE_MAX), EINVAL);           /* elem * cap overflows */
    ck_assert_fails(weft_chan_make(16, SIZE_MAX / 16), EINVAL);     /* past PTRDIFF_MAX */
    weft_chan *c = mk(WEFT_CHAN_ELEM_MAX, 2);
    ck_assert_int_eq(weft_chan_free(c), 0);
    c = mk(1, 0);
    ck_assert_int_eq(weft_chan_free(c), 0);
    /* A buffer no machine has: refused by malloc (ASan and Valgrind complain before that). */
    SKIP_IF(UNDER_ASAN || UNDER_TSAN || RUNNING_ON_VALGRIND, "huge malloc under a checker");
    ck_assert_fails(weft_chan_make(1, (size_t)1 << 56), ENOMEM);
}
END_TEST

START_TEST(null_and_bad_arguments_fail_einval)
{
    int v = 1;
    ck_assert_fails(weft_chan_send(NULL, &v, -1), EINVAL);
    ck_assert_fails(weft_chan_recv(NULL, &v, -1), EINVAL);
    ck_assert_fails(weft_chan_close(NULL), EINVAL);
    ck_assert_fails(weft_chan_free(NULL), EINVAL);
    ck_assert_fails(weft_chan_set_name(NULL, "x"), EINVAL);
    weft_chan *c = mk(sizeof v, 1);
    ck_assert_fails(weft_chan_send(c, NULL, -1), EINVAL);
    weft_chan_clause cl[2] = { { c, WEFT_CHAN_RECV, &v, 0 }, { c, WEFT_CHAN_SEND, &v, 0 } };
    ck_assert_fails(weft_chan_select(NULL, 1, -1), EINVAL);
    ck_assert_fails(weft_chan_select(cl, 0, -1), EINVAL);
    ck_assert_fails(weft_chan_select(cl, -1, -1), EINVAL);
    ck_assert_fails(weft_chan_select(cl, WEFT_CHAN_SELECT_MAX + 1, -1), EINVAL);
    cl[1].op = 0;
    ck_assert_fails(weft_chan_select(cl, 2, -1), EINVAL);
    cl[1].op = WEFT_CHAN_SEND;
    cl[1].elem = NULL;
    ck_assert_fails(weft_chan_select(cl, 2, -1), EINVAL);
    cl[1].elem = &v;
    cl[0].chan = NULL;
    ck_assert_fails(weft_chan_select(cl, 2, -1), EINVAL);
    /* Nothing was done by the refused calls: the channel is empty and open. */
    ck_assert_fails(weft_chan_recv(c, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(weft_chan_set_name(c, NULL), 0);
    ck_assert_int_eq(weft_chan_free(c), 0);
}
END_TEST

/* Outside any task: what completes at once works, what would block says EPERM (or ETIMEDOUT
 * with a deadline already past). */
START_TEST(outside_a_task_only_what_needs_no_wait)
{
    int v = 7, w = 0;
    weft_chan *c = mk(sizeof v, 1);
    ck_assert_int_eq(weft_chan_send(c, &v, -1), 0);
    ck_assert_fails(weft_chan_send(c, &v, -1), EPERM);
    ck_assert_fails(weft_chan_send(c, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(weft_chan_recv(c, &w, -1), 0);
    ck_assert_int_eq(w, 7);
    ck_assert_fails(weft_chan_recv(c, &w, -1), EPERM);
    ck_assert_fails(weft_chan_recv(c, &w, weft_now() - 5), ETIMEDOUT);
    weft_chan_clause cl = { c, WEFT_CHAN_RECV, &w, -1 };
    ck_assert_fails(weft_chan_select(&cl, 1, -1), EPERM);
    ck_assert_int_eq(weft_chan_free(c), 0);
}
END_TEST

/* ---- buffered ------------------------------------------------------------------------------ */

TASK_TEST(buffered_channel_is_fifo_and_never_blocks_with_room)
{
    weft_chan *c = mk(sizeof(int), 4);
    for (int i = 1; i <= 4; i++)
        ck_assert_int_eq(weft_chan_send(c, &i, 0), 0);
    int x = 5;
    ck_assert_fails(weft_chan_send(c, &x, 0), ETIMEDOUT);
    for (int i = 1; i <= 4; i++) {
        ck_assert_int_eq(weft_chan_recv(c, &x, 0), 0);
        ck_assert_int_eq(x, i);
    }
    ck_assert_fails(weft_chan_recv(c, &x, 0), ETIMEDOUT);
    /* Round the ring many times, with elements dropped on receive now and then. */
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 100; round++) {
        for (int k = 0; k < 1 + round % 4; k++, next_in++)
            ck_assert_int_eq(weft_chan_send(c, &next_in, 0), 0);
        while (weft_chan_recv(c, round % 7 == 0 ? NULL : &x, 0) == 0) {
            ck_assert(round % 7 == 0 || x == next_out);
            next_out++;
        }
        ck_assert_int_eq(errno, ETIMEDOUT);
    }
    ck_assert_int_eq(next_out, next_in);
    ck_assert_int_eq(weft_chan_free(c), 0);
}

struct stream {
    weft_chan *c;
    int n;
    int bad;
};

static void *slow_consumer(void *p)
{
    struct stream *st = p;
    for (int i = 0; i < st->n; i++) {
        int x;
        if (i % 3 == 0)
            weft_yield();
        if (weft_chan_recv(st->c, &x, -1) != 0 || x != i)
            st->bad++;
    }
    return NULL;
}

TASK_TEST(full_buffer_parks_the_sender_and_keeps_order)
{
    struct stream st = { mk(sizeof(int), 3), 5000, 0 };
    weft_task *t = weft_go(slow_consumer, &st);
    ck_assert_ptr_nonnull(t);
    for (int i = 0; i < st.n; i++)
        ck_assert_int_eq(weft_chan_send(st.c, &i, -1), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(st.bad, 0);
    ck_assert_int_eq(weft_chan_free(st.c), 0);
}

/* Big elements are copied whole, also when a parked sender's element moves into the ring. */
static unsigned char big_a[4096], big_b[4096], big_c[4096];

static void *big_sender(void *p)
{
    return (void *)(intptr_t)weft_chan_send(p, big_b, -1);
}

TASK_TEST(large_elements_copied_whole)
{
    for (int i = 0; i < 4096; i++) {
        big_a[i] = (unsigned char)(i * 7);
        big_b[i] = (unsigned char)(i * 13 + 1);
    }
    weft_chan *c = mk(4096, 1);
    ck_assert_int_eq(weft_chan_send(c, big_a, 0), 0);
    weft_task *t = weft_go(big_sender, c);
    settle();                                   /* parked: the ring is full */
    ck_assert_int_eq(weft_chan_recv(c, big_c, 0), 0);
    ck_assert_int_eq(memcmp(big_a, big_c, 4096), 0);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq((intptr_t)r, 0);
    memset(big_b, 0, sizeof big_b);             /* the ring holds its own copy */
    ck_assert_int_eq(weft_chan_recv(c, big_c, 0), 0);
    for (int i = 0; i < 4096; i++)
        ck_assert_int_eq(big_c[i], (unsigned char)(i * 13 + 1));
    ck_assert_int_eq(weft_chan_free(c), 0);
}

/* ---- FIFO waiters and the rendezvous --------------------------------------------------------- */

static void fifo_senders(size_t cap)
{
    weft_chan *c = mk(sizeof(int), cap);
    int filler = -1;
    for (size_t i = 0; i < cap; i++)
        ck_assert_int_eq(weft_chan_send(c, &filler, 0), 0);
    struct cop o[5];
    weft_task *t[5];
    for (int i = 0; i < 5; i++)
        t[i] = cop_start(&o[i], c, 1, i, -1);
    for (size_t i = 0; i < cap; i++) {
        int x;
        ck_assert_int_eq(weft_chan_recv(c, &x, 0), 0);
        ck_assert_int_eq(x, -1);
    }
    for (int i = 0; i < 5; i++) {
        int x;
        ck_assert_int_eq(weft_chan_recv(c, &x, 0), 0);
        ck_assert_int_eq(x, i);
    }
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
        ck_assert_cop(&o[i], 0, 0);
    }
    ck_assert_int_eq(weft_chan_free(c), 0);
}

TASK_TEST(parked_senders_are_served_in_arrival_order)
{
    fifo_senders(0);
    fifo_senders(1);
    fifo_senders(3);
}

TASK_TEST(parked_receivers_are_served_in_arrival_order)
{
    for (size_t cap = 0; cap < 3; cap++) {
        weft_chan *c = mk(sizeof(int), cap);
        struct cop o[5];
        weft_task *t[5];
        for (int i = 0; i < 5; i++)
            t[i] = cop_start(&o[i], c, 0, -1, -1);
        for (int i = 0; i < 5; i++)
            ck_assert_int_eq(weft_chan_send(c, &i, 0), 0);     /* a receiver waits: no wait */
        for (int i = 0; i < 5; i++) {
            ck_assert_int_eq(weft_join(t[i], NULL), 0);
            ck_assert_cop(&o[i], 0, 0);
            ck_assert_int_eq(o[i].val, i);
        }
        ck_assert_int_eq(weft_chan_free(c), 0);
    }
}

static char order_log[16];
static int order_len;
static int rv_got;

static void *rv_receiver(void *p)
{
    weft_chan *c = p;
    order_log[order_len++] = 'r';
    ck_assert_int_eq(weft_chan_recv(c, &rv_got, -1), 0);
    order_log[order_len++] = 'R';
    return NULL;
}

/* Unbuffered: a send completes only once a receiver holds the element, whichever side
 * comes first. */
TASK_TEST(unbuffered_send_returns_once_a_receiver_has_it)
{
    weft_chan *c = mk(sizeof(int), 0);
    int v = 42;
    ck_assert_fails(weft_chan_send(c, &v, 0), ETIMEDOUT);      /* nobody to take it */
    /* Receiver first: the send hands over at once and the receiver holds it already. */
    order_len = 0;
    rv_got = 0;
    weft_task *t = weft_go(rv_receiver, c);
    settle();
    order_log[order_len++] = 's';
    ck_assert_int_eq(weft_chan_send(c, &v, 0), 0);
    order_log[order_len++] = 'S';
    ck_assert_int_eq(rv_got, 42);       /* the receiver has it, though it has not run yet */
    ck_assert_int_eq(weft_join(t, NULL), 0);
    order_log[order_len] = '\0';
    ck_assert_str_eq(order_log, "rsSR");
    /* Sender first: it parks until the receiver comes. */
    order_len = 0;
    order_log[order_len++] = 's';
    t = weft_go(rv_receiver, c);
    v = 43;
    ck_assert_int_eq(weft_chan_send(c, &v, -1), 0);
    order_log[order_len++] = 'S';
    ck_assert_int_eq(weft_join(t, NULL), 0);
    order_log[order_len] = '\0';
    ck_assert_str_eq(order_log, "srRS");
    ck_assert_int_eq(rv_got, 43);
    ck_assert_int_eq(weft_chan_free(c), 0);
}

/* ---- deadlines and cancel -------------------------------------------------------------------- */

TASK_TEST(every_wait_times_out_and_changes_nothing)
{
    weft_chan *c = mk(sizeof(int), 1);
    weft_chan *u = mk(sizeof(int), 0);
    int v = 1, x;
    int64_t t0 = weft_now();
    ck_assert_fails(weft_chan_recv(c, &x, weft_now() + 40), ETIMEDOUT);
    ck_assert_elapsed(t0, 40, 5000);
    ck_assert_int_eq(weft_chan_send(c, &v, 0), 0);
    t0 = weft_now();
    ck_assert_fails(weft_chan_send(c, &v, weft_now() + 40), ETIMEDOUT);
    ck_assert_elapsed(t0, 40, 5000);
    t0 = weft_now();
    ck_assert_fails(weft_chan_send(u, &v, weft_now() + 40), ETIMEDOUT);
    ck_assert_elapsed(t0, 40, 5000);
    weft_chan_clause cl[2] = { { u, WEFT_CHAN_RECV, &x, 0 }, { c, WEFT_CHAN_SEND, &v, 0 } };
    t0 = weft_now();
    ck_assert_fails(weft_chan_select(cl, 2, weft_now() + 40), ETIMEDOUT);
    ck_assert_elapsed(t0, 40, 5000);
    ck_assert_fails(weft_chan_select(cl, 2, 0), ETIMEDOUT);
    /* The task's deadline scope cuts every wait short too. */
    int64_t old = weft_set_task_deadline(weft_now() + 30);
    ck_assert_fails(weft_chan_recv(u, &x, -1), ETIMEDOUT);
    ck_assert_fails(weft_chan_select(cl, 2, -1), ETIMEDOUT);
    weft_set_task_deadline(old);
    /* Exactly the one element sent is there, and nobody waits. */
    ck_assert_int_eq(weft_chan_recv(c, &x, 0), 0);
    ck_assert_fails(weft_chan_recv(c, &x, 0), ETIMEDOUT);
    ck_assert_int_eq(weft_chan_free(c), 0);
    ck_assert_int_eq(weft_chan_free(u), 0);
}

static void *select_task(void *p)
{
    weft_chan_clause *cl = p;
    int r = weft_chan_select(cl, 2, -1);
    return (void *)(intptr_t)(r < 0 ? -errno : r);
}

TASK_TEST(cancel_wakes_every_kind_of_wait)
{
    weft_chan *c = mk(sizeof(int), 0);
    weft_chan *b = mk(sizeof(int), 1);
    int one = 1;
    ck_assert_int_eq(weft_chan_send(b, &one, 0), 0);
    struct cop rs, ss, bs;
    weft_task *tr = cop_start(&rs, c, 0, 0, -1);
    weft_task *ts = cop_start(&ss, c, 1, 5, -1);    /* meets tr: both done */
    ck_assert_int_eq(weft_join(tr, NULL), 0);
    ck_assert_int_eq(weft_join(ts, NULL), 0);
    ck_assert_int_eq(rs.val, 5);
    tr = cop_start(&rs, c, 0, 0, -1);
    ts = cop_start(&ss, b, 1, 9, weft_now() + 60000);
    weft_task *tb = cop_start(&bs, c, 0, 0, -1);
    ck_assert_int_eq(weft_chan_free(c), -1);
    ck_assert_int_eq(errno, EBUSY);
    ck_assert_int_eq(weft_cancel(tr), 0);
    ck_assert_int_eq(weft_cancel(ts), 0);
    ck_assert_int_eq(weft_cancel(tb), 0);
    ck_assert_int_eq(weft_join(tr, NULL), 0);
    ck_assert_int_eq(weft_join(ts, NULL), 0);
    ck_assert_int_eq(weft_join(tb, NULL), 0);
    ck_assert_cop(&rs, -1, ECANCELED);
    ck_assert_cop(&ss, -1, ECANCELED);
    ck_assert_cop(&bs, -1, ECANCELED);
    int x;
    ck_assert_int_eq(weft_chan_recv(b, &x, 0), 0);      /* only the first element */
    ck_assert_int_eq(x, 1);
    ck_assert_fails(weft_chan_recv(b, &x, 0), ETIMEDOUT);
    /* Select: cancelled, it completes no clause. */
    int got = -1;
    weft_chan_clause cl[2] = { { c, WEFT_CHAN_RECV, &got, 0 }, { b, WEFT_CHAN_RECV, &got, 0 } };
    weft_task *sel = weft_go(select_task, cl);
    settle();
    ck_assert_int_eq(weft_cancel(sel), 0);
    void *r;
    ck_assert_int_eq(weft_join(sel, &r), 0);
    ck_assert_int_eq((intptr_t)r, -ECANCELED);
    ck_assert_int_eq(got, -1);
    ck_assert_fails(weft_chan_send(c, &one, 0), ETIMEDOUT);    /* nobody waits on c or b now */
    ck_assert_int_eq(weft_chan_free(c), 0);
    ck_assert_int_eq(weft_chan_free(b), 0);
}

static void *cancelled_drainer(void *p)
{
    weft_chan *c = p;
    weft_cancel(weft_self());
    int x, n = 0;
    while (weft_chan_recv(c, &x, -1) == 0)
        n++;
    return (void *)(intptr_t)(errno == ECANCELED ? n : -1);
}

TASK_TEST(cancelled_task_still_completes_what_needs_no_wait)
{
    weft_chan *c = mk(sizeof(int), 4);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(weft_chan_send(c, &i, 0), 0);
    void *r;
    weft_task *t = weft_go(cancelled_drainer, c);
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq((intptr_t)r, 3);
    ck_assert_int_eq(weft_chan_free(c), 0);
}

/* ---- close and free ------------------------------------------------------------------------- */

TASK_TEST(close_wakes_parked_receivers_and_senders_with_epipe)
{
    weft_chan *c = mk(sizeof(int), 0);
    struct cop o[6];
    weft_task *t[6];
    for (int i = 0; i < 3; i++)
        t[i] = cop_start(&o[i], c, 0, 0, -1);
    ck_assert_int_eq(weft_chan_close(c), 0);
    ck_assert_fails(weft_chan_close(c), EPIPE);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
        ck_assert_cop(&o[i], -1, EPIPE);
    }
    ck_assert_int_eq(weft_chan_free(c), 0);
    /* Senders parked on a full buffer: woken with EPIPE, their elements not delivered; the
     * buffered ones are still received, then EPIPE. */
    c = mk(sizeof(int), 2);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(weft_chan_send(c, &i, 0), 0);
    for (int i = 0; i < 3; i++)
        t[i] = cop_start(&o[i], c, 1, 100 + i, weft_now() + 60000);
    ck_assert_int_eq(weft_chan_close(c), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
        ck_assert_cop(&o[i], -1, EPIPE);
    }
    int v = 5, x;
    ck_assert_fails(weft_chan_send(c, &v, 0), EPIPE);
    ck_assert_fails(weft_chan_send(c, &v, -1), EPIPE);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(weft_chan_recv(c, &x, -1), 0);
        ck_assert_int_eq(x, i);
    }
    ck_assert_fails(weft_chan_recv(c, &x, -1), EPIPE);
    ck_assert_fails(weft_chan_recv(c, &x, 0), EPIPE);
    ck_assert_int_eq(weft_chan_free(c), 0);
}

static void *recv_then_stop(void *p)
{
    int x;
    return (void *)(intptr_t)(weft_chan_recv(p, &x, -1) == 0 ? 0 : errno);
}

/* A task woken but not yet run holds no reference: the channel may go at once. */
TASK_TEST(free_refused_while_parked_allowed_once_woken)
{
    weft_chan *c = mk(sizeof(int), 0);
    weft_task *t = weft_go(recv_then_stop, c);
    settle();
    ck_assert_fails(weft_chan_free(c), EBUSY);
    int v = 1;
    ck_assert_int_eq(weft_chan_send(c, &v, 0), 0);          /* t is runnable, not run */
    ck_assert_int_eq(weft_chan_free(c), 0);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq((intptr_t)r, 0);
    c = mk(sizeof(int), 0);
    t = weft_go(recv_then_stop, c);
    settle();
    ck_assert_int_eq(weft_chan_close(c), 0);
    ck_assert_int_eq(weft_chan_free(c), 0);
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq((intptr_t)r, EPIPE);
    /* Parked in a select on two channels: each is busy. */
    weft_chan *a = mk(sizeof(int), 0), *b = mk(sizeof(int), 0);
    int got = 0;
    weft_chan_clause cl[2] = { { a, WEFT_CHAN_RECV, &got, 0 }, { b, WEFT_CHAN_RECV, &got, 0 } };
    t = weft_go(select_task, cl);
    settle();
    ck_assert_fails(weft_chan_free(a), EBUSY);
    ck_assert_fails(weft_chan_free(b), EBUSY);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_chan_free(a), 0);
    ck_assert_int_eq(weft_chan_free(b), 0);
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq((intptr_t)r, -ECANCELED);
}

/* ---- select -------------------------------------------------------------------------------- */

TASK_TEST(select_completes_the_one_ready_clause)
{
    weft_chan *a = mk(sizeof(int), 0), *b = mk(sizeof(int), 1), *c = mk(sizeof(int), 1);
    int ra = -1, rb = -1, sc = 77;
    ck_assert_int_eq(weft_chan_send(c, &sc, 0), 0);         /* c full: its send is not ready */
    int v = 5;
    ck_assert_int_eq(weft_chan_send(b, &v, 0), 0);
    weft_chan_clause cl[3] = {
        { a, WEFT_CHAN_RECV, &ra, -1 }, { b, WEFT_CHAN_RECV, &rb, -1 }, { c, WEFT_CHAN_SEND, &sc, -1 },
    };
    ck_assert_int_eq(weft_chan_select(cl, 3, -1), 1);
    ck_assert_int_eq(cl[1].err, 0);
    ck_assert_int_eq(rb, 5);
    ck_assert_int_eq(ra, -1);
    ck_assert_int_eq(cl[0].err, -1);        /* the others are untouched */
    ck_assert_int_eq(cl[2].err, -1);
    ck_assert_fails(weft_chan_select(cl, 3, 0), ETIMEDOUT);
    int x;
    ck_assert_int_eq(weft_chan_recv(c, &x, 0), 0);          /* now c's send is ready */
    sc = 78;
    ck_assert_int_eq(weft_chan_select(cl, 3, 0), 2);
    ck_assert_int_eq(weft_chan_recv(c, &x, 0), 0);
    ck_assert_int_eq(x, 78);
    ck_assert_int_eq(weft_chan_free(a), 0);
    ck_assert_int_eq(weft_chan_free(b), 0);
    ck_assert_int_eq(weft_chan_free(c), 0);
}

struct selwait {
    weft_chan_clause cl[20];
    int n;
    int r, err;
};

static void *selwait_run(void *p)
{
    struct selwait *s = p;
    s->r = weft_chan_select(s->cl, s->n, -1);
    s->err = errno;
    return NULL;
}

/* Parked on many channels (more than fit on the stack), the first to be ready wins; the
 * task is off every other channel afterwards. */
TASK_TEST(parked_select_wakes_on_the_first_ready_channel)
{
    weft_chan *ch[20];
    int got[20];
    struct selwait s = { .n = 20 };
    for (int i = 0; i < 20; i++) {
        ch[i] = mk(sizeof(int), i % 2);
        got[i] = -1;
        s.cl[i] = (weft_chan_clause){ ch[i], i < 10 ? WEFT_CHAN_RECV : WEFT_CHAN_SEND, &got[i], -1 };
        if (i >= 10) {     /* fill the buffered ones so their send waits */
            int f = 0;
            if (i % 2)
                ck_assert_int_eq(weft_chan_send(ch[i], &f, 0), 0);
        }
    }
    weft_task *t = weft_go(selwait_run, &s);
    settle();
    int v = 17;
    ck_assert_int_eq(weft_chan_send(ch[7], &v, 0), 0);      /* the parked select takes it */
    ck_assert_int_eq(weft_chan_send(ch[9], &v, 0), 0);      /* buffered: kept for later */
    ck_assert_fails(weft_chan_send(ch[6], &v, 0), ETIMEDOUT);  /* unbuffered: nobody there now */
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(s.r, 7);
    ck_assert_int_eq(s.cl[7].err, 0);
    ck_assert_int_eq(got[7], 17);
    ck_assert_int_eq(got[9], -1);
    /* Now the send side: park again, and receive from an unbuffered send clause's channel. */
    int x;
    ck_assert_int_eq(weft_chan_recv(ch[9], &x, 0), 0);
    for (int i = 10; i < 20; i++)
        got[i] = 1000 + i;
    t = weft_go(selwait_run, &s);
    settle();
    ck_assert_int_eq(weft_chan_recv(ch[12], &x, 0), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(s.r, 12);
    ck_assert_int_eq(x, 1012);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(weft_chan_free(ch[i]), 0);
}

TASK_TEST(select_reports_a_closed_channel_as_epipe)
{
    weft_chan *a = mk(sizeof(int), 0), *b = mk(sizeof(int), 0);
    int x = 0;
    struct selwait s = { .n = 2 };
    s.cl[0] = (weft_chan_clause){ a, WEFT_CHAN_RECV, &x, -1 };
    s.cl[1] = (weft_chan_clause){ b, WEFT_CHAN_SEND, &x, -1 };
    weft_task *t = weft_go(selwait_run, &s);
    settle();
    ck_assert_int_eq(weft_chan_close(b), 0);                /* wakes the parked send clause */
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(s.r, 1);
    ck_assert_int_eq(s.cl[1].err, EPIPE);
    ck_assert_int_eq(weft_chan_select(s.cl, 2, -1), 1);     /* closed: ready at once */
    ck_assert_int_eq(s.cl[1].err, EPIPE);
    s.cl[1].op = WEFT_CHAN_RECV;
    ck_assert_int_eq(weft_chan_select(s.cl, 2, 0), 1);
    ck_assert_int_eq(s.cl[1].err, EPIPE);
    ck_assert_int_eq(weft_chan_free(a), 0);
    ck_assert_int_eq(weft_chan_free(b), 0);
}

/* One channel in a send and a receive clause of one select: whoever comes completes one. */
TASK_TEST(select_may_name_a_channel_twice)
{
    weft_chan *c = mk(sizeof(int), 0);
    int in = -1, out = 31;
    struct selwait s = { .n = 2 };
    s.cl[0] = (weft_chan_clause){ c, WEFT_CHAN_RECV, &in, -1 };
    s.cl[1] = (weft_chan_clause){ c, WEFT_CHAN_SEND, &out, -1 };
    ck_assert_fails(weft_chan_select(s.cl, 2, 0), ETIMEDOUT);  /* never meets itself */
    weft_task *t = weft_go(selwait_run, &s);
    settle();
    int v = 9;
    ck_assert_int_eq(weft_chan_send(c, &v, 0), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(s.r, 0);
    ck_assert_int_eq(in, 9);
    t = weft_go(selwait_run, &s);
    settle();
    ck_assert_int_eq(weft_chan_recv(c, &v, 0), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(s.r, 1);
    ck_assert_int_eq(v, 31);
    ck_assert_int_eq(weft_chan_free(c), 0);
}

/* Every ready clause gets a fair share: 4 always-ready clauses (two receives, two sends)
 * over 40,000 rounds each expect 10,000 (standard deviation about 87); the bounds, 8,000 and
 * 12,000, are 23 deviations away, so a fair choice never fails them and a biased one does. */
TASK_TEST(select_chooses_fairly_among_ready_clauses)
{
    enum { ROUNDS = 40000, K = 4 };
    weft_chan *ch[K];
    int val[K], count[K] = { 0 };
    weft_chan_clause cl[K];
    for (int i = 0; i < K; i++) {
        ch[i] = mk(sizeof(int), 1);
        val[i] = i;
        if (i < 2)
            ck_assert_int_eq(weft_chan_send(ch[i], &val[i], 0), 0);
        cl[i] = (weft_chan_clause){ ch[i], i < 2 ? WEFT_CHAN_RECV : WEFT_CHAN_SEND, &val[i], 0 };
    }
    for (int r = 0; r < ROUNDS; r++) {
        int k = weft_chan_select(cl, K, 0);
        test_require(k >= 0 && k < K && cl[k].err == 0, "round %d: %d", r, k);
        count[k]++;
        /* Make the clause ready again: refill a receive, empty a send. */
        int x = k;
        if (k < 2)
            test_require(weft_chan_send(ch[k], &x, 0) == 0, "refill");
        else
            test_require(weft_chan_recv(ch[k], &x, 0) == 0, "drain");
    }
    for (int i = 0; i < K; i++) {
        ck_assert_msg(count[i] > ROUNDS / K * 4 / 5 && count[i] < ROUNDS / K * 6 / 5,
                      "clause %d chosen %d times of %d", i, count[i], ROUNDS);
        ck_assert_int_eq(weft_chan_free(ch[i]), 0);
    }
}

/* A select woken by a send and then cancelled before it runs has completed its clause; one
 * cancelled first completes none, and the send then finds nobody. */
TASK_TEST(select_cancel_and_wake_in_one_tick_is_all_or_nothing)
{
    weft_chan *a = mk(sizeof(int), 0), *b = mk(sizeof(int), 0);
    int got = -1;
    struct selwait s = { .n = 2 };
    s.cl[0] = (weft_chan_clause){ a, WEFT_CHAN_RECV, &got, -1 };
    s.cl[1] = (weft_chan_clause){ b, WEFT_CHAN_RECV, &got, -1 };
    weft_task *t = weft_go(selwait_run, &s);
    settle();
    int v = 3;
    ck_assert_int_eq(weft_chan_send(b, &v, 0), 0);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(s.r, 1);
    ck_assert_int_eq(got, 3);
    got = -1;
    t = weft_go(selwait_run, &s);
    settle();
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_fails(weft_chan_send(a, &v, 0), ETIMEDOUT);
    ck_assert_fails(weft_chan_send(b, &v, 0), ETIMEDOUT);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(s.r, -1);
    ck_assert_int_eq(s.err, ECANCELED);
    ck_assert_int_eq(got, -1);
    ck_assert_int_eq(weft_chan_free(a), 0);
    ck_assert_int_eq(weft_chan_free(b), 0);
}

/* Under churn: a producer offers 0..N-1 through a select over two channels, retrying a
 * value until a select reports it sent; consumers take them through selects that time out
 * and are cancelled all the time. Every value must arrive exactly once. */
enum { CHURN_N = 3000, CHURN_CONSUMERS = 4 };

struct churn {
    weft_chan *ch[2];
    weft_chan *stop;
    unsigned char seen[CHURN_N];
    int dup, timeouts, cancels, received;
    int producer_timeouts, producer_cancels;
    weft_task *cons[CHURN_CONSUMERS];
};

static void *churn_consumer(void *p)
{
    struct churn *z = p;
    for (;;) {
        int a = -1, b = -1;
        weft_chan_clause cl[3] = {
            { z->ch[0], WEFT_CHAN_RECV, &a, 0 }, { z->ch[1], WEFT_CHAN_RECV, &b, 0 },
            { z->stop, WEFT_CHAN_RECV, NULL, 0 },
        };
        int k = weft_chan_select(cl, 3, weft_now() + 1 + (z->received % 3));
        if (k < 0) {
            if (errno == ECANCELED) {
                z->cancels++;
                return NULL;
            }
            test_require(errno == ETIMEDOUT, "consumer: %s", strerror(errno));
            z->timeouts++;
            continue;
        }
        if (k == 2)
            return NULL;
        int v = k == 0 ? a : b;
        test_require(v >= 0 && v < CHURN_N && (k == 0 ? b : a) == -1, "bad value %d", v);
        if (z->seen[v]++)
            z->dup++;
        z->received++;
        if (z->received % 5 == 0)
            weft_sleep(1);
    }
}

static void *churn_producer(void *p)
{
    struct churn *z = p;
    for (int v = 0; v < CHURN_N;) {
        int x = v, y = v;
        weft_chan_clause cl[2] = { { z->ch[0], WEFT_CHAN_SEND, &x, 0 }, { z->ch[1], WEFT_CHAN_SEND, &y, 0 } };
        int k = weft_chan_select(cl, 2, weft_now() + 2);
        if (k >= 0) {
            test_require(cl[k].err == 0, "send: %s", strerror(cl[k].err));
            v++;
        } else {
            test_require(errno == ETIMEDOUT, "producer: %s", strerror(errno));
            z->producer_timeouts++;
        }
    }
    return NULL;
}

/* Cancels a consumer now and then and starts a new one in its place. */
static void churn_run(struct churn *z)
{
    weft_task *prod = weft_go(churn_producer, z);
    ck_assert_ptr_nonnull(prod);
    for (int i = 0; i < CHURN_CONSUMERS; i++)
        z->cons[i] = weft_go(churn_consumer, z);
    unsigned r = 1;
    int64_t end = weft_now() + 120000;
    while (weft_now() < end) {
        int done = 1;
        for (int i = 0; i < CHURN_N && done; i++)
            done = z->seen[i] != 0;
        if (done)
            break;
        r = r * 1103515245u + 12345u;
        weft_sleep(1 + (int)(r >> 16) % 2);
        int i = (int)((r >> 8) % CHURN_CONSUMERS);
        weft_cancel(z->cons[i]);
        ck_assert_int_eq(weft_join(z->cons[i], NULL), 0);
        z->cons[i] = weft_go(churn_consumer, z);
        ck_assert_ptr_nonnull(z->cons[i]);
    }
    ck_assert_int_eq(weft_join(prod, NULL), 0);
    ck_assert_int_eq(weft_chan_close(z->stop), 0);
    for (int i = 0; i < CHURN_CONSUMERS; i++)
        ck_assert_int_eq(weft_join(z->cons[i], NULL), 0);
}

TASK_TEST(select_timeouts_and_cancels_lose_and_duplicate_nothing)
{
    for (size_t cap = 0; cap < 2; cap++) {
        struct churn *z = calloc(1, sizeof *z);
        ck_assert_ptr_nonnull(z);
        z->ch[0] = mk(sizeof(int), cap);
        z->ch[1] = mk(sizeof(int), cap);
        z->stop = mk(1, 0);
        churn_run(z);
        int missing = 0;
        for (int i = 0; i < CHURN_N; i++)
            missing += !z->seen[i];
        ck_assert_msg(missing == 0 && z->dup == 0 && z->received == CHURN_N,
                      "cap %zu: %d missing, %d duplicated, %d received", cap, missing, z->dup,
                      z->received);
        ck_assert_msg(z->cancels > 0, "no consumer was cancelled while waiting");
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(weft_chan_free(z->ch[i]), 0);
        ck_assert_int_eq(weft_chan_free(z->stop), 0);
        free(z);
    }
}

/* ---- a pipeline -------------------------------------------------------------------------- */

enum { PIPE_N = 100000, PIPE_WORKERS = 8 };

struct pipeline {
    weft_chan *jobs, *results;
    int workers_left;
    long count;
    uint64_t sum, xsum;
};

static uint64_t work(uint64_t x)
{
    return x * 2654435761u ^ (x >> 3);
}

static void *pl_producer(void *p)
{
    struct pipeline *pl = p;
    for (uint64_t i = 0; i < PIPE_N; i++)
        test_require(weft_chan_send(pl->jobs, &i, -1) == 0, "send job: %s", strerror(errno));
    weft_chan_close(pl->jobs);
    return NULL;
}

static void *pl_worker(void *p)
{
    struct pipeline *pl = p;
    uint64_t x;
    while (weft_chan_recv(pl->jobs, &x, -1) == 0) {
        uint64_t y = work(x);
        test_require(weft_chan_send(pl->results, &y, -1) == 0, "send result");
    }
    test_require(errno == EPIPE, "worker: %s", strerror(errno));
    if (--pl->workers_left == 0)
        weft_chan_close(pl->results);
    return NULL;
}

static void *pl_consumer(void *p)
{
    struct pipeline *pl = p;
    uint64_t y;
    while (weft_chan_recv(pl->results, &y, -1) == 0) {
        pl->count++;
        pl->sum += y;
        pl->xsum ^= y * 0x9e3779b97f4a7c15u;
    }
    test_require(errno == EPIPE, "consumer: %s", strerror(errno));
    return NULL;
}

static void pipeline_run(size_t cap)
{
    struct pipeline pl = { mk(sizeof(uint64_t), cap), mk(sizeof(uint64_t), cap), PIPE_WORKERS, 0, 0, 0 };
    weft_task *t[PIPE_WORKERS + 2];
    t[0] = weft_go(pl_producer, &pl);
    for (int i = 0; i < PIPE_WORKERS; i++)
        t[1 + i] = weft_go(pl_worker, &pl);
    t[PIPE_WORKERS + 1] = weft_go(pl_consumer, &pl);
    for (int i = 0; i < PIPE_WORKERS + 2; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    uint64_t sum = 0, xsum = 0;
    for (uint64_t i = 0; i < PIPE_N; i++) {
        sum += work(i);
        xsum ^= work(i) * 0x9e3779b97f4a7c15u;
    }
    ck_assert_int_eq(pl.count, PIPE_N);
    ck_assert_uint_eq(pl.sum, sum);
    ck_assert_uint_eq(pl.xsum, xsum);
    ck_assert_int_eq(weft_chan_free(pl.jobs), 0);
    ck_assert_int_eq(weft_chan_free(pl.results), 0);
}

TASK_TEST(pipeline_of_100000_messages_through_8_workers)
{
    pipeline_run(16);
    pipeline_run(0);
}

/* The whispers chain: each task adds one and passes it on. */
static void *whisper(void *p)
{
    weft_chan **lr = p;
    int x;
    if (weft_chan_recv(lr[0], &x, -1) == 0) {
        x++;
        weft_chan_send(lr[1], &x, -1);
    }
    return NULL;
}

TASK_TEST(whispers_chain_of_2000_tasks)
{
    enum { N = 2000 };
    static weft_chan *ch[N + 1];
    static weft_chan *pairs[N][2];
    /* Valgrind follows every live stack on each switch: 300 there (the logic is the same). */
    const int n = RUNNING_ON_VALGRIND ? 300 : N;
    for (int i = 0; i <= n; i++)
        ch[i] = mk(sizeof(int), 0);
    for (int i = 0; i < n; i++) {
        pairs[i][0] = ch[i];
        pairs[i][1] = ch[i + 1];
        ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .detached = 1, .stack_size = WEFT_STACK_MIN }, whisper, pairs[i]));
    }
    int x = 1;
    ck_assert_int_eq(weft_chan_send(ch[0], &x, -1), 0);
    ck_assert_int_eq(weft_chan_recv(ch[n], &x, -1), 0);
    ck_assert_int_eq(x, n + 1);
    for (int i = 0; i <= n; i++)
        ck_assert_int_eq(weft_chan_free(ch[i]), 0);
}

/* ---- EDEADLK and the dump ----------------------------------------------------------------- */

static weft_chan *dl_a, *dl_b;
static intptr_t dl_result[5];

void *chantest_stuck_receiver(void *p);
void *chantest_stuck_sender(void *p);
void *chantest_stuck_selector(void *p);

__attribute__((noinline)) void *chantest_stuck_receiver(void *p)
{
    int x;
    dl_result[(intptr_t)p] = weft_chan_recv(dl_a, &x, -1) == 0 ? 0 : errno;
    return NULL;
}

__attribute__((noinline)) void *chantest_stuck_sender(void *p)
{
    int x = 1;
    dl_result[(intptr_t)p] = weft_chan_send(dl_a, &x, -1) == 0 ? 0 : errno;
    return NULL;
}

__attribute__((noinline)) void *chantest_stuck_selector(void *p)
{
    int x;
    weft_chan_clause cl[2] = { { dl_b, WEFT_CHAN_RECV, &x, 0 }, { dl_a, WEFT_CHAN_RECV, &x, 0 } };
    int r = weft_chan_select(cl, 2, -1);
    dl_result[(intptr_t)p] = r == 0 ? 100 + cl[r].err : r == 1 ? 200 + cl[r].err : -errno;
    return NULL;
}

static weft_task *dl_spawn(const char *name, void *(*fn)(void *), intptr_t i)
{
    dl_result[i] = -1;
    weft_task *t = weft_spawn(&(weft_attr){ .name = name, .detached = 1 }, fn, (void *)i);
    ck_assert_ptr_nonnull(t);
    return t;
}

static char *dump_string(int flags)
{
    return test_dump(flags);
}

static const char json_checker[] =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "for t in sorted(d['tasks'], key=lambda t: t['id']):\n"
    "    w = t['wait'] or {}\n"
    "    print(t['name'], t['state'], w.get('kind'), w.get('op'), w.get('name'), w.get('waiting'),\n"
    "          w.get('obj', '').startswith('0x'))\n";

/* The JSON dump through Python's json module: one line per task. */
static char *json_summary(const char *json)
{
    char dir[] = "/tmp/weft-chan-jsonXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char data[64], script[64], cmd[200];
    snprintf(data, sizeof data, "%s/d.json", dir);
    snprintf(script, sizeof script, "%s/c.py", dir);
    FILE *f = fopen(data, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json, f);
    fclose(f);
    f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json_checker, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "python3 %s %s 2>&1", script, data);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    unlink(data);
    unlink(script);
    rmdir(dir);
    ck_assert_msg(st == 0, "python3 failed:\n%s\n--- json:\n%s", out, json);
    return out;
}

/* Tasks that only wait on channels, with nobody to wake them: weft_run says EDEADLK and
 * the dump shows each one's chan-wait; closing the channels then lets everything end. */
START_TEST(channel_deadlock_is_edeadlk_and_the_dump_shows_it)
{
    dl_a = mk(sizeof(int), 0);
    dl_b = mk(sizeof(int), 2);
    ck_assert_int_eq(weft_chan_set_name(dl_a, "jobs"), 0);
    dl_spawn("rx1", chantest_stuck_receiver, 0);
    dl_spawn("rx2", chantest_stuck_receiver, 1);
    dl_spawn("tx", chantest_stuck_sender, 2);
    dl_spawn("sel", chantest_stuck_selector, 3);
    /* tx meets rx1; rx2 and sel are left waiting for what nobody can send. */
    ck_assert_fails(weft_run(), EDEADLK);
    ck_assert_int_eq(dl_result[0], 0);
    ck_assert_int_eq(dl_result[2], 0);
    char *text = dump_string(WEFT_DUMP_NO_BACKTRACE);
    ck_assert_msg(strstr(text, "\"rx2\" [chan-wait recv \"jobs\", 2 waiting, ") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"sel\" [chan-wait select 0x") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "\"rx1\"") == NULL, "%s", text);
    free(text);
    dl_spawn("rx3", chantest_stuck_receiver, 4);
    ck_assert_fails(weft_run(), EDEADLK);
    text = dump_string(WEFT_DUMP_NO_BACKTRACE);
    ck_assert_msg(strstr(text, "\"rx3\" [chan-wait recv \"jobs\", 3 waiting, ") != NULL, "%s", text);
    free(text);
    text = dump_string(0);      /* with backtraces: the parked functions are named */
    ck_assert_msg(strstr(text, "chantest_stuck_selector") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "chantest_stuck_receiver") != NULL, "%s", text);
    free(text);
    if (system("python3 -c 'import json' >/dev/null 2>&1") == 0) {
        char *json = dump_string(WEFT_DUMP_JSON);
        char *out = json_summary(json);
        ck_assert_msg(strstr(out, "rx2 chan-wait chan recv jobs 3 True") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "rx3 chan-wait chan recv jobs 3 True") != NULL, "%s", out);
        ck_assert_msg(strstr(out, "sel chan-wait chan select None 1 True") != NULL, "%s", out);
        free(json);
    } else {
        fprintf(stderr, "%s: JSON part skipped: no python3\n", __func__);
    }
    ck_assert_fails(weft_chan_free(dl_a), EBUSY);
    ck_assert_fails(weft_chan_free(dl_b), EBUSY);
    ck_assert_int_eq(weft_chan_close(dl_a), 0);     /* wakes all three with EPIPE */
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(dl_result[1], EPIPE);
    ck_assert_int_eq(dl_result[3], 200 + EPIPE);
    ck_assert_int_eq(dl_result[4], EPIPE);
    ck_assert_int_eq(weft_chan_free(dl_a), 0);
    ck_assert_int_eq(weft_chan_free(dl_b), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("chan");
    ADD_TEST(s, make_rejects_bad_sizes, 10);
    ADD_TEST(s, null_and_bad_arguments_fail_einval, 10);
    ADD_TEST(s, outside_a_task_only_what_needs_no_wait, 10);
    ADD_TEST(s, buffered_channel_is_fifo_and_never_blocks_with_room, 10);
    ADD_TEST(s, full_buffer_parks_the_sender_and_keeps_order, 30);
    ADD_TEST(s, large_elements_copied_whole, 10);
    ADD_TEST(s, parked_senders_are_served_in_arrival_order, 10);
    ADD_TEST(s, parked_receivers_are_served_in_arrival_order, 10);
    ADD_TEST(s, unbuffered_send_returns_once_a_receiver_has_it, 10);
    ADD_TEST(s, every_wait_times_out_and_changes_nothing, 30);
    ADD_TEST(s, cancel_wakes_every_kind_of_wait, 10);
    ADD_TEST(s, cancelled_task_still_completes_what_needs_no_wait, 10);
    ADD_TEST(s, close_wakes_parked_receivers_and_senders_with_epipe, 10);
    ADD_TEST(s, free_refused_while_parked_allowed_once_woken, 10);
    ADD_TEST(s, select_completes_the_one_ready_clause, 10);
    ADD_TEST(s, parked_select_wakes_on_the_first_ready_channel, 10);
    ADD_TEST(s, select_reports_a_closed_channel_as_epipe, 10);
    ADD_TEST(s, select_may_name_a_channel_twice, 10);
    ADD_TEST(s, select_chooses_fairly_among_ready_clauses, 60);
    ADD_TEST(s, select_cancel_and_wake_in_one_tick_is_all_or_nothing, 10);
    ADD_TEST(s, select_timeouts_and_cancels_lose_and_duplicate_nothing, 240);
    ADD_TEST(s, pipeline_of_100000_messages_through_8_workers, 240);
    ADD_TEST(s, whispers_chain_of_2000_tasks, 60);
    ADD_TEST(s, channel_deadlock_is_edeadlk_and_the_dump_shows_it, 30);
    return test_run(s);
}

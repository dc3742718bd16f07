/* Channels and select: fixed-size elements copied between the tasks of one thread, handed
 * over directly (unbuffered: a rendezvous) or through a ring buffer, and weft_chan_select
 * over any mix of send and receive clauses. A parked task's clauses and waiter nodes live on
 * its own stack; this file calls the scheduler only (park, wake), never the reactor. */
#include "config.h"
#include "chan.h"
#include "sched.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHAN_NAME_MAX 32
#define SELECT_STACK 8      /* clauses whose waiter nodes fit on the stack; more are malloc'd */
#define INFO_WALK_MAX 100000    /* the dump counts at most this many waiters per queue */

struct weft_chan {
    const struct chan_ops *ops; /* NULL: see chan.h */
    struct list sendq;          /* parked senders' waiter nodes, first come first */
    struct list recvq;          /* parked receivers' */
    size_t elem;                /* element size */
    size_t cap;                 /* ring capacity; 0: unbuffered */
    size_t head, count;         /* the ring: index of the oldest element, elements held */
    int closed;
    char name[CHAN_NAME_MAX];
    unsigned char ring[];       /* cap * elem bytes */
};

/* Invariants, which the hand-offs below rely on: senders park only when the ring is full
 * (so sendq not empty means count == cap), receivers only when it is empty (recvq not empty
 * means count == 0), and nobody parks on a closed channel. */

/* What a parked task waits with, on its stack (t->wait_arg): a lone send or receive waits
 * with its one clause, its node t->wait[0]; a select with a struct chan_wait (chan.h). */

/* ---- parked waiters --------------------------------------------------------------------- */

static inline struct waiter *node_waiter(struct list *node)
{
    return list_entry(node, struct waiter, link);
}

static inline int lone(const struct waiter *w)
{
    return w == &w->task->wait[0];
}

/* The clause a parked task's waiter node (on one of c's queues) stands for. */
static inline weft_chan_clause *node_clause(const struct waiter *w)
{
    const struct weft_task *t = w->task;
    if (fast(lone(w)))
        return t->wait_arg;
    return &((const struct chan_wait *)t->wait_arg)->cl[w - t->extra];
}

/* Wake the task a waiter node belongs to with err, its clause being the one that completed.
 * Waking unlinks every node of the task, on every channel; a lone waiter has only the one. */
static inline void fire(struct sched *s, struct waiter *w, int err)
{
    struct weft_task *t = w->task;
    if (fast(lone(w))) {
        sched_wake_queued(s, t, err);
        return;
    }
    ((struct chan_wait *)t->wait_arg)->fired = (int)(w - t->extra);
    weft_sched_wake(s, t, err);
}

/* May a waker of this thread complete the parked select node w (not a lone waiter, which
 * it always may)? Yes, but for the node of a select that waits on shared channels too and has
 * been claimed meanwhile by a waker of another thread, or has given up: that node is stale,
 * left on the queue until its task runs. A select of this thread's channels only pays one
 * test; one with shared clauses a compare-and-swap; lone waiters nothing (see first). */
static inline int live(struct waiter *w)
{
    struct weft_task *t = w->task;
    struct chan_wait *cw = t->wait_arg;
    if (fast(cw->claim == NULL))
        return 1;
    int want = SEL_WAITING;
    return atomic_compare_exchange_strong(cw->claim, &want, (int)(w - t->extra));
}

/* The first waiter on q that a waker may complete, dropping the stale nodes before it; NULL
 * when there is none. Out of line: stale nodes are rare. */
static __attribute__((noinline)) struct waiter *first_live(struct list *q)
{
    while (!list_empty(q)) {
        struct waiter *w = node_waiter(q->next);
        if (lone(w) || live(w))
            return w;
        list_remove(&w->link);
    }
    return NULL;
}

/* ---- the hand-offs ------------------------------------------------------------------------- */

/* Copy one element: the common sizes inline (a call to memcpy costs a message ~10%). */
static inline void copy_elem(void *to, const void *from, size_t n)
{
    switch (n) {
    case 4: memcpy(to, from, 4); break;
    case 8: memcpy(to, from, 8); break;
    case 16: memcpy(to, from, 16); break;
    default: memcpy(to, from, n); break;
    }
}

/* Hand the element at e to the parked receiver w / take the element of the parked sender w
 * into e (NULL: drop it), and wake it. */
static inline __attribute__((always_inline)) void give(weft_chan *c, struct waiter *w,
                                                       const void *e)
{
    void *to = node_clause(w)->elem;
    if (to)
        copy_elem(to, e, c->elem);
    fire(weft_sched_tls, w, 0);
}

static inline __attribute__((always_inline)) void take(weft_chan *c, struct waiter *w, void *e)
{
    if (e)
        copy_elem(e, node_clause(w)->elem, c->elem);
    fire(weft_sched_tls, w, 0);
}

/* The same for a lone waiter w, known to be one. The hand-offs test for a lone waiter first,
 * in a branch of its own, so that it costs what it did before selects took shared channels;
 * a select's node may be stale (see live). */
static inline __attribute__((always_inline)) void give_lone(weft_chan *c, struct waiter *w,
                                                            const void *e)
{
    struct weft_task *t = w->task;
    void *to = ((weft_chan_clause *)t->wait_arg)->elem;
    if (to)
        copy_elem(to, e, c->elem);
    sched_wake_queued(weft_sched_tls, t, 0);
}

static inline __attribute__((always_inline)) void take_lone(weft_chan *c, struct waiter *w,
                                                            void *e)
{
    struct weft_task *t = w->task;
    if (e)
        copy_elem(e, ((weft_chan_clause *)t->wait_arg)->elem, c->elem);
    sched_wake_queued(weft_sched_tls, t, 0);
}

/* Send the element at e now if that can be done: to the first parked receiver, else into
 * the ring. Returns 0, EPIPE (closed) or EAGAIN (it would have to wait). */
static inline __attribute__((always_inline)) int try_send(weft_chan *c, const void *e)
{
    if (slow(c->closed))
        return EPIPE;
    if (!list_empty(&c->recvq)) {
        struct waiter *w = node_waiter(c->recvq.next);
        if (fast(lone(w))) {
            give_lone(c, w, e);
            return 0;
        }
        if (fast(live(w)) || (w = first_live(&c->recvq)) != NULL) {
            give(c, w, e);
            return 0;
        }
    }
    if (c->count < c->cap) {
        size_t tail = c->head + c->count;
        if (tail >= c->cap)
            tail -= c->cap;
        copy_elem(c->ring + tail * c->elem, e, c->elem);
        c->count++;
        return 0;
    }
    return EAGAIN;
}

/* Receive an element into e (NULL: drop it) now if there is one: the oldest buffered one
 * (then the first parked sender's element takes the freed place at the tail), else the
 * first parked sender's. Returns 0, EPIPE (closed and empty) or EAGAIN. */
static inline __attribute__((always_inline)) int try_recv(weft_chan *c, void *e)
{
    if (c->count) {
        unsigned char *p = c->ring + c->head * c->elem;
        if (e)
            copy_elem(e, p, c->elem);
        if (++c->head == c->cap)
            c->head = 0;
        /* A parked sender means the ring is full: its tail is the place just read. */
        if (!list_empty(&c->sendq)) {
            struct waiter *w = node_waiter(c->sendq.next);
            if (fast(lone(w))) {
                take_lone(c, w, p);
                return 0;
            }
            if (fast(live(w)) || (w = first_live(&c->sendq)) != NULL) {
                take(c, w, p);
                return 0;
            }
        }
        c->count--;
        return 0;
    }
    if (!list_empty(&c->sendq)) {
        struct waiter *w = node_waiter(c->sendq.next);
        if (fast(lone(w))) {
            take_lone(c, w, e);
            return 0;
        }
        if (fast(live(w)) || (w = first_live(&c->sendq)) != NULL) {
            take(c, w, e);
            return 0;
        }
    }
    return c->closed ? EPIPE : EAGAIN;
}

/* Could clause cl complete now (successfully or with EPIPE)? A stale node (see live) may make
 * it look so: completing it then gives EAGAIN, and drops the node. */
static inline __attribute__((always_inline)) int ready(const weft_chan_clause *cl)
{
    const weft_chan *c = cl->chan;
    if (cl->op == WEFT_CHAN_SEND)
        return c->closed || !list_empty(&c->recvq) || c->count < c->cap;
    return c->count || !list_empty(&c->sendq) || c->closed;
}

/* ---- the dump's view ------------------------------------------------------------------- */

static long queue_len(const struct list *q)
{
    long n = 0;
    for (const struct list *it = q->next; it != q && n < INFO_WALK_MAX; it = it->next)
        n++;
    return n;
}

/* Called by the dump, from a signal handler too: reads only. t is parked here, so its
 * wait_arg and wait_obj (the channel of its first clause) are live. */
static void chan_wait_info(const struct weft_task *t, struct wait_info *out)
{
    const weft_chan *c = t->wait_obj;
    const weft_chan_clause *cl = t->wait_arg;
    out->op = t->nextra ? "select" : !cl ? NULL : cl->op == WEFT_CHAN_SEND ? "send" : "recv";
    out->name = c && c->name[0] ? c->name : NULL;
    out->waiting = c ? queue_len(&c->sendq) + queue_len(&c->recvq) : -1;
}

/* Park the running task t with what it waits with (arg: see struct chan_wait) on q (a lone
 * send or receive: t->wait[0] goes on q) or with its select's nodes already linked (q NULL),
 * shown by the dump on cl[0]'s channel. Returns park's code. Inline, with the scheduler's
 * park, so that a send or receive that waits reaches the switch with no call between. */
static inline __attribute__((always_inline)) int
park(struct sched *s, struct weft_task *t, struct list *q, const weft_chan *c, void *arg,
     int64_t deadline)
{
    int e = park_begin(s, t, q, 0, WAIT_CHAN, deadline);
    if (slow(e != 0))
        return e;   /* refused (cancelled, deadline scope passed, no memory for the timer) */
    t->wait_arg = arg;
    t->wait_obj = c;
    t->wait_info = chan_wait_info;
    switch_next(s, t, 0);
    /* Woken: off every queue, wait_obj and wait_info cleared by the waker. */
    t->wait_arg = NULL;
    return t->wake_err;
}

/* The call could not complete at once: ETIMEDOUT when its deadline has passed already (the
 * non-blocking form: the errno every weft call gives for a past deadline, so a caller never
 * needs to tell a deadline that passed before the call from one that passed in it), EPERM
 * outside any task, else 0: it may park. */
static int may_wait(const struct sched *s, int64_t deadline)
{
    if (deadline >= 0 && deadline <= weft_now())
        return ETIMEDOUT;
    if (!s || !s->cur)
        return EPERM;
    return 0;
}

static inline int fail(int e)
{
    errno = e;
    return -1;
}

/* ---- the calls ---------------------------------------------------------------------------- */

weft_chan *weft_chan_make(size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || elem_size > WEFT_CHAN_ELEM_MAX ||
        capacity > (PTRDIFF_MAX - sizeof(weft_chan)) / elem_size) {
        errno = EINVAL;
        return NULL;
    }
    weft_chan *c = malloc(sizeof *c + capacity * elem_size);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->ops = NULL;
    list_init(&c->sendq);
    list_init(&c->recvq);
    c->elem = elem_size;
    c->cap = capacity;
    c->head = c->count = 0;
    c->closed = 0;
    c->name[0] = '\0';
    return c;
}

int weft_chan_set_name(weft_chan *c, const char *name)
{
    if (slow(!c))
        return fail(EINVAL);
    if (slow(c->ops != NULL))
        return c->ops->set_name(c, name);
    /* Written so that a dump reading it meanwhile sees a terminated string at every step. */
    size_t n = name ? strnlen(name, CHAN_NAME_MAX - 1) : 0;
    c->name[0] = '\0';
    c->name[n] = '\0';
    if (n > 1)
        memcpy(c->name + 1, name + 1, n - 1);
    if (n)
        c->name[0] = name[0];
    return 0;
}

/* The rest of a send that could not complete at once (e: try_send's code): wait, or fail.
 * Out of line, so the send that hands its element over at once keeps a small frame. */
static __attribute__((noinline)) int send_wait(weft_chan *c, const void *elem, int64_t deadline,
                                               int e)
{
    struct sched *s = weft_sched_tls;
    if (e == EAGAIN && (e = may_wait(s, deadline)) == 0) {
        weft_chan_clause cl = { c, WEFT_CHAN_SEND, (void *)(uintptr_t)elem, 0 };
        if ((e = park(s, s->cur, &c->sendq, c, &cl, deadline)) == 0)
            return 0;
    }
    return fail(e);
}

int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline)
{
    if (slow(!c || !elem))
        return fail(EINVAL);
    if (slow(c->ops != NULL))
        return c->ops->send(c, elem, deadline);
    int e = try_send(c, elem);
    if (fast(e == 0))
        return 0;
    return send_wait(c, elem, deadline, e);
}

int weft_chan_recv(weft_chan *c, void *elem, int64_t deadline)
{
    if (slow(!c))
        return fail(EINVAL);
    if (slow(c->ops != NULL))
        return c->ops->recv(c, elem, deadline);
    int e = try_recv(c, elem);
    if (fast(e == 0))
        return 0;
    struct sched *s = weft_sched_tls;
    if (e == EAGAIN && (e = may_wait(s, deadline)) == 0) {
        weft_chan_clause cl = { c, WEFT_CHAN_RECV, elem, 0 };
        if ((e = park(s, s->cur, &c->recvq, c, &cl, deadline)) == 0)
            return 0;
    }
    return fail(e);
}

int weft_chan_close(weft_chan *c)
{
    if (slow(!c))
        return fail(EINVAL);
    if (slow(c->ops != NULL))
        return c->ops->close(c);
    if (c->closed)
        return fail(EPIPE);
    c->closed = 1;
    struct sched *s = weft_sched_tls;
    /* Each wake takes the task's nodes off every queue, and first_live drops stale ones, so
     * the loops end. */
    struct waiter *w;
    while ((w = first_live(&c->recvq)) != NULL)
        fire(s, w, EPIPE);
    while ((w = first_live(&c->sendq)) != NULL)
        fire(s, w, EPIPE);
    return 0;
}

int weft_chan_free(weft_chan *c)
{
    if (slow(!c))
        return fail(EINVAL);
    if (slow(c->ops != NULL))
        return c->ops->free(c);
    /* A task woken from here (by a send, a close, a timeout or a cancel) is off the queues
     * and never looks at the channel again, so only a parked one holds it. */
    if (!list_empty(&c->sendq) || !list_empty(&c->recvq))
        return fail(EBUSY);
    free(c);
    return 0;
}

/* ---- select -------------------------------------------------------------------------------- */

/* A per-thread xorshift64 generator: the choice among ready clauses needs to be cheap and
 * uniform, not unpredictable. Seeded from the clock and the thread's address space. */
static TLS uint64_t rng_state;

static uint32_t rand_below(uint32_t n)
{
    uint64_t x = rng_state;
    if (slow(x == 0))
        x = ((uint64_t)weft_now() ^ (uint64_t)(uintptr_t)&rng_state) * 0x9e3779b97f4a7c15u | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return (uint32_t)(((x >> 32) * (uint64_t)n) >> 32);
}

uint32_t chan_rand_below(uint32_t n)
{
    return rand_below(n);
}

static inline int clause_bad(const weft_chan_clause *cl)
{
    return !cl->chan || (cl->op != WEFT_CHAN_SEND && cl->op != WEFT_CHAN_RECV) ||
           (cl->op == WEFT_CHAN_SEND && !cl->elem);
}

/* A clause on a shared channel was seen: check them all, then let the shared channels' side
 * run the select (offload_select.c). Out of line, to keep the local select as it was. */
static __attribute__((noinline)) int select_shared(weft_chan_clause *cl, int n,
                                                   int64_t deadline)
{
    const struct chan_ops *ops = NULL;
    for (int i = 0; i < n; i++) {
        if (clause_bad(&cl[i]))
            return fail(EINVAL);
        if (!ops)
            ops = cl[i].chan->ops;
    }
    return ops->select(cl, n, deadline);
}

/* 1 when the clauses are good and all on this thread's channels; 0 when some clause is bad
 * or on a shared channel (select_shared tells which). */
static int clauses_local(const weft_chan_clause *cl, int n)
{
    for (int i = 0; i < n; i++) {
        if (clause_bad(&cl[i]) || cl[i].chan->ops)
            return 0;
    }
    return 1;
}

static inline __attribute__((always_inline)) int complete(weft_chan_clause *cl)
{
    return cl->op == WEFT_CHAN_SEND ? try_send(cl->chan, cl->elem) : try_recv(cl->chan, cl->elem);
}

int chan_local_ready(const weft_chan_clause *cl)
{
    return ready(cl);
}

int chan_local_complete(weft_chan_clause *cl)
{
    return complete(cl);
}

void chan_local_link(const weft_chan_clause *cl, struct waiter *w)
{
    weft_chan *c = cl->chan;
    list_push_back(cl->op == WEFT_CHAN_SEND ? &c->sendq : &c->recvq, &w->link);
}

int weft_chan_select(weft_chan_clause *cl, int n, int64_t deadline)
{
    if (slow(!cl || n < 1 || n > WEFT_CHAN_SELECT_MAX))
        return fail(EINVAL);
    if (slow(!clauses_local(cl, n)))
        return select_shared(cl, n, deadline);
    /* One pass: each ready clause replaces the choice with probability 1/(ready so far),
     * which leaves every ready clause equally likely. */
again:;
    int pick = -1;
    uint32_t nready = 0;
    for (int i = 0; i < n; i++) {
        if (ready(&cl[i]) && (++nready == 1 || rand_below(nready) == 0))
            pick = i;
    }
    if (pick >= 0) {
        int e = complete(&cl[pick]);    /* 0 or EPIPE: it was ready */
        if (slow(e == EAGAIN))
            goto again;                 /* only stale nodes made it look so: look again */
        cl[pick].err = e;
        return pick;
    }
    struct sched *s = weft_sched_tls;
    int e = may_wait(s, deadline);
    if (e)
        return fail(e);
    struct weft_task *t = s->cur;
    struct waiter wl[SELECT_STACK], *w = wl;
    if (n > SELECT_STACK && !(w = malloc((size_t)n * sizeof *w)))
        return fail(ENOMEM);
    for (int i = 0; i < n; i++) {
        weft_chan *c = cl[i].chan;
        w[i].task = t;
        list_push_back(cl[i].op == WEFT_CHAN_SEND ? &c->sendq : &c->recvq, &w[i].link);
    }
    t->extra = w;
    t->nextra = n;
    struct chan_wait cw = { cl, -1, NULL };
    e = park(s, t, NULL, cl[0].chan, &cw, deadline);
    int fired = cw.fired;
    for (int i = 0; i < n; i++)
        list_remove(&w[i].link);
    t->extra = NULL;
    t->nextra = 0;
    if (w != wl)
        free(w);
    if (e == 0 || e == EPIPE) {
        cl[fired].err = e;
        return fired;
    }
    return fail(e);
}

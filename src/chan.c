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

/* What a parked task waits with, on its stack (t->wait_arg). A lone send or receive waits
 * with its one clause, its node t->wait[0]: wait_arg is the clause itself. A select waits
 * with a struct chan_wait: its clauses, clause i's node t->extra[i] (t->nextra of them), and
 * which clause completed, set by whoever wakes it with a result (0 or EPIPE). */
struct chan_wait {
    weft_chan_clause *cl;
    int fired;
};

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

/* Send the element at e now if that can be done: to the first parked receiver, else into
 * the ring. Returns 0, EPIPE (closed) or EAGAIN (it would have to wait). */
static inline __attribute__((always_inline)) int try_send(weft_chan *c, const void *e)
{
    if (slow(c->closed))
        return EPIPE;
    if (!list_empty(&c->recvq)) {
        struct waiter *w = node_waiter(c->recvq.next);
        void *to = node_clause(w)->elem;
        if (to)
            copy_elem(to, e, c->elem);
        fire(weft_sched_tls, w, 0);
        return 0;
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
        if (!list_empty(&c->sendq)) {
            /* The ring is full, so its tail is the place just read. */
            struct waiter *w = node_waiter(c->sendq.next);
            copy_elem(p, node_clause(w)->elem, c->elem);
            fire(weft_sched_tls, w, 0);
        } else {
            c->count--;
        }
        return 0;
    }
    if (!list_empty(&c->sendq)) {
        struct waiter *w = node_waiter(c->sendq.next);
        if (e)
            copy_elem(e, node_clause(w)->elem, c->elem);
        fire(weft_sched_tls, w, 0);
        return 0;
    }
    return c->closed ? EPIPE : EAGAIN;
}

/* Could clause cl complete now (successfully or with EPIPE)? */
static inline int ready(const weft_chan_clause *cl)
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
    /* Each wake takes the task's nodes off every queue, so the loops end. */
    while (!list_empty(&c->recvq))
        fire(s, node_waiter(c->recvq.next), EPIPE);
    while (!list_empty(&c->sendq))
        fire(s, node_waiter(c->sendq.next), EPIPE);
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

static int clauses_valid(const weft_chan_clause *cl, int n)
{
    if (!cl || n < 1 || n > WEFT_CHAN_SELECT_MAX)
        return 0;
    for (int i = 0; i < n; i++) {
        if (!cl[i].chan || cl[i].chan->ops || (cl[i].op != WEFT_CHAN_SEND && cl[i].op != WEFT_CHAN_RECV) ||
            (cl[i].op == WEFT_CHAN_SEND && !cl[i].elem))
            return 0;
    }
    return 1;
}

static int complete(weft_chan_clause *cl)
{
    return cl->op == WEFT_CHAN_SEND ? try_send(cl->chan, cl->elem) : try_recv(cl->chan, cl->elem);
}

int weft_chan_select(weft_chan_clause *cl, int n, int64_t deadline)
{
    if (slow(!clauses_valid(cl, n)))
        return fail(EINVAL);
    /* One pass: each ready clause replaces the choice with probability 1/(ready so far),
     * which leaves every ready clause equally likely. */
    int pick = -1;
    uint32_t nready = 0;
    for (int i = 0; i < n; i++) {
        if (ready(&cl[i]) && (++nready == 1 || rand_below(nready) == 0))
            pick = i;
    }
    if (pick >= 0) {
        cl[pick].err = complete(&cl[pick]);    /* 0 or EPIPE: it was ready */
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
    struct chan_wait cw = { cl, -1 };
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

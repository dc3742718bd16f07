/* Shared channels: a weft_chan that the tasks of several threads, and plain threads, use.
 * It lives in the offload layer because waking a task of another thread needs that loop's
 * port (offload.c): a lock-free stack of messages and an eventfd on its reactor. A parked
 * waiter's record is on its own stack; the transfer is decided under the channel's mutex by
 * whoever completes the waiter (it copies the element and marks the record done), and a
 * waiter on another loop's thread is then told through its port. A waiter that times out or
 * is cancelled after being chosen sees "done" under the mutex and reports success; and it
 * does not return while the message naming its record is still on its way to its port. */
#include "config.h"
#include "chan.h"
#include "offload_impl.h"

#include <stddef.h>
#include <string.h>
#include <time.h>

/* ---- completing a waiter (under the mutex) ---------------------------------------------- */

/* Take w off its queue with result err; a task of another thread is told after the unlock
 * (weft_xchan_post), with a reference on its port held until then. */
static void complete(struct xchan *c, struct xwait *w, int err, struct xwait **posts)
{
    list_remove(&w->link);
    atomic_fetch_sub(&c->nwait, 1);
    w->err = err;
    w->done = 1;
    if (!w->t && w->sel) {
        /* Under the select's mutex, so that its thread, which tests the claim word under it
         * before it waits, cannot miss this; and under c's, so that it does not leave (and
         * free both) before this is done. */
        pthread_mutex_lock(&w->sel->mu);
        pthread_cond_signal(&w->sel->cv);
        pthread_mutex_unlock(&w->sel->mu);
    } else if (!w->t) {
        pthread_cond_signal(&w->cv);
    } else if (w->s == weft_sched_tls) {
        weft_sched_wake(w->s, w->t, 0);
    } else {
        w->sent = 1;
        atomic_fetch_add(&w->port->refs, 1);
        w->post = *posts;
        *posts = w;
    }
}

/* After the unlock: the record may be gone once pushed, so read it first. */
void weft_xchan_post(struct xwait *w)
{
    while (w) {
        struct xwait *next = w->post;
        struct port *p = w->port;
        if (port_push(p, &w->msg))
            port_signal(p);
        port_unref(p);
        w = next;
    }
}

static struct xwait *first(struct list *q)
{
    return list_entry(q->next, struct xwait, link);
}

/* The first waiter on q that may be completed, dropping before it the records of selects
 * that another clause (or a timeout, or a cancel) has claimed; NULL when there is none. The
 * one returned is claimed already when it is a select's. */
static struct xwait *first_live(struct xchan *c, struct list *q)
{
    while (!list_empty(q)) {
        struct xwait *w = first(q);
        int want = SEL_WAITING;
        if (!w->sel || atomic_compare_exchange_strong(&w->sel->claim, &want, w->idx))
            return w;
        list_remove(&w->link);
        atomic_fetch_sub(&c->nwait, 1);
    }
    return NULL;
}

static int try_send(struct xchan *c, const void *e, struct xwait **posts)
{
    if (c->closed)
        return EPIPE;
    struct xwait *w = first_live(c, &c->recvq);
    if (w) {
        if (w->elem)
            memcpy(w->elem, e, c->elem);
        complete(c, w, 0, posts);
        return 0;
    }
    if (c->count < c->cap) {
        size_t tail = (c->head + c->count) % c->cap;
        memcpy(c->ring + tail * c->elem, e, c->elem);
        c->count++;
        return 0;
    }
    return EAGAIN;
}

static int try_recv(struct xchan *c, void *e, struct xwait **posts)
{
    if (c->count) {
        unsigned char *p = c->ring + c->head * c->elem;
        if (e)
            memcpy(e, p, c->elem);
        if (++c->head == c->cap)
            c->head = 0;
        struct xwait *w = first_live(c, &c->sendq);
        if (w) {                            /* full: its tail is the place just read */
            memcpy(p, w->elem, c->elem);
            complete(c, w, 0, posts);
        } else {
            c->count--;
        }
        return 0;
    }
    struct xwait *w = first_live(c, &c->sendq);
    if (w) {
        if (e)
            memcpy(e, w->elem, c->elem);
        complete(c, w, 0, posts);
        return 0;
    }
    return c->closed ? EPIPE : EAGAIN;
}

/* ---- waiting ------------------------------------------------------------------------------ */

int weft_xchan_try(struct xchan *c, weft_chan_clause *cl, struct xwait **posts)
{
    return cl->op == WEFT_CHAN_SEND ? try_send(c, cl->elem, posts) : try_recv(c, cl->elem, posts);
}

/* The port told this loop the record is done: wake its task if it still waits for that. */
void weft_xchan_reaped(struct job *j)
{
    struct xwait *w = (struct xwait *)(void *)((char *)j - offsetof(struct xwait, msg));
    weft_sched_wake(w->s, w->t, 0);     /* no-op unless parked (woken already, say) */
}

static void xwait_info(const struct weft_task *t, struct wait_info *out)
{
    const struct xchan *c = t->wait_obj;
    out->op = t->wait_op;
    out->name = c->name;
    out->waiting = atomic_load(&c->nwait);
}

/* A task waits with w linked on q (the mutex held, released here). */
void weft_xwait_await(struct sched *s, struct weft_task *t, struct xwait *w, const void *obj,
                      wait_info_fn *info)
{
    unsigned char had = 0;
    int64_t scope = t->deadline;
    t->deadline = -1;
    while (!w->msg.reaped) {
        /* A cancel may come while this waits, and a park of a cancelled task fails at once:
         * the flag is set aside before every park, or this would spin and the loop, which
         * brings the message, would never run again. */
        had |= t->flags & TF_CANCELLED;
        t->flags &= (unsigned char)~TF_CANCELLED;
        t->wait_obj = obj;
        t->wait_info = info;
        int64_t until = -1;
        if (slow(weft_offload_port != w->port)) {
            /* The run is ending and the port's reaper has left (a daemon cancelled with it):
             * nobody else will deliver the message, so take it here, looking again each
             * millisecond until its sender has pushed it. */
            weft_port_drain(w->port);
            if (w->msg.reaped)
                break;
            until = weft_now() + 1;
        }
        weft_sched_park(s, NULL, 0, WAIT_XCHAN, until);
    }
    t->flags |= had;
    t->deadline = scope;
}

static int task_wait(struct xchan *c, struct xwait *w, struct sched *s, const char *op,
                     int64_t deadline)
{
    struct weft_task *t = s->cur;
    struct port *p = w->port;
    pthread_mutex_unlock(&c->mu);
    t->wait_obj = c;
    t->wait_op = op;
    t->wait_info = xwait_info;
    int e;
    for (;;) {
        e = weft_sched_park(s, NULL, 0, WAIT_XCHAN, deadline);
        pthread_mutex_lock(&c->mu);
        if (w->done || e != 0)
            break;
        pthread_mutex_unlock(&c->mu);  /* woken with no result: cannot happen; wait on */
    }
    int sent = w->sent;
    if (w->done) {
        e = w->err;
    } else {
        list_remove(&w->link);
        atomic_fetch_sub(&c->nwait, 1);
    }
    pthread_mutex_unlock(&c->mu);
    if (sent) {
        weft_xwait_await(s, t, w, c, xwait_info);   /* the message names w: it is on its way */
    } else {
        weft_port_release(p);
    }
    port_unref(p);      /* wait_on's reference: the reaper may have left with the run */
    t->wait_obj = NULL;
    t->wait_info = NULL;
    return e;
}

/* A thread outside any task blocks on w->cv (the mutex held, released here). */
static int thread_wait(struct xchan *c, struct xwait *w, int64_t deadline)
{
    int e = 0;
    struct timespec ts = { (time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000 };
    while (!w->done) {
        if (deadline < 0) {
            pthread_cond_wait(&w->cv, &c->mu);
        } else if (pthread_cond_timedwait(&w->cv, &c->mu, &ts) == ETIMEDOUT && !w->done) {
            list_remove(&w->link);
            atomic_fetch_sub(&c->nwait, 1);
            e = ETIMEDOUT;
            break;
        }
    }
    if (w->done)
        e = w->err;
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&w->cv);
    return e;
}

/* One send or receive: try; else wait on q (the mutex held on entry, released here). */
static int wait_on(struct xchan *c, struct list *q, void *elem, const char *op,
                   int64_t deadline)
{
    if (deadline >= 0 && deadline <= weft_now()) {
        pthread_mutex_unlock(&c->mu);
        return ETIMEDOUT;
    }
    struct sched *s = weft_sched_tls;
    struct xwait w;
    w.elem = elem;
    w.sel = NULL;
    w.done = w.err = w.sent = 0;
    w.t = s ? s->cur : NULL;
    w.s = s;
    if (w.t) {
        if (w.t->flags & TF_CANCELLED) {
            pthread_mutex_unlock(&c->mu);
            return ECANCELED;
        }
        pthread_mutex_unlock(&c->mu);      /* the port may spawn its reaper */
        struct port *p = weft_port_get(s);
        if (!p)
            return errno;
        weft_port_hold(p);
        atomic_fetch_add(&p->refs, 1);     /* a daemon cancelled as weft_run ends may wake
                                             * after the reaper has left and dropped its own */
        w.port = p;
        w.msg.reap = weft_xchan_reaped;
        w.msg.waiter = w.t;
        w.msg.reaped = 0;
        pthread_mutex_lock(&c->mu);
        /* Things may have changed meanwhile: try again before waiting. */
        struct xwait *posts = NULL;
        int e = q == &c->sendq ? try_send(c, elem, &posts) : try_recv(c, elem, &posts);
        if (e != EAGAIN) {
            pthread_mutex_unlock(&c->mu);
            weft_xchan_post(posts);
            weft_port_release(p);
            port_unref(p);
            return e;
        }
        list_push_back(q, &w.link);
        atomic_fetch_add(&c->nwait, 1);
        return task_wait(c, &w, s, op, deadline);
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &ca);
    pthread_condattr_destroy(&ca);
    w.port = NULL;
    list_push_back(q, &w.link);
    atomic_fetch_add(&c->nwait, 1);
    return thread_wait(c, &w, deadline);
}

/* ---- the calls -------------------------------------------------------------------------- */

static int x_send(weft_chan *ch, const void *elem, int64_t deadline)
{
    struct xchan *c = X(ch);
    struct xwait *posts = NULL;
    pthread_mutex_lock(&c->mu);
    int e = try_send(c, elem, &posts);
    if (e != EAGAIN) {
        pthread_mutex_unlock(&c->mu);
        weft_xchan_post(posts);
    } else {
        e = wait_on(c, &c->sendq, (void *)(uintptr_t)elem, "send", deadline);
    }
    return e ? fail(e) : 0;
}

static int x_recv(weft_chan *ch, void *elem, int64_t deadline)
{
    struct xchan *c = X(ch);
    struct xwait *posts = NULL;
    pthread_mutex_lock(&c->mu);
    int e = try_recv(c, elem, &posts);
    if (e != EAGAIN) {
        pthread_mutex_unlock(&c->mu);
        weft_xchan_post(posts);
    } else {
        e = wait_on(c, &c->recvq, elem, "recv", deadline);
    }
    return e ? fail(e) : 0;
}

static int x_close(weft_chan *ch)
{
    struct xchan *c = X(ch);
    struct xwait *posts = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->closed) {
        pthread_mutex_unlock(&c->mu);
        return fail(EPIPE);
    }
    c->closed = 1;
    struct xwait *w;
    while ((w = first_live(c, &c->recvq)) != NULL)
        complete(c, w, EPIPE, &posts);
    while ((w = first_live(c, &c->sendq)) != NULL)
        complete(c, w, EPIPE, &posts);
    pthread_mutex_unlock(&c->mu);
    weft_xchan_post(posts);
    return 0;
}

static int x_free(weft_chan *ch)
{
    struct xchan *c = X(ch);
    pthread_mutex_lock(&c->mu);
    int busy = !list_empty(&c->sendq) || !list_empty(&c->recvq);
    pthread_mutex_unlock(&c->mu);
    if (busy)
        return fail(EBUSY);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return 0;
}

static int x_set_name(weft_chan *ch, const char *name)
{
    struct xchan *c = X(ch);
    char buf[sizeof c->name];
    size_t n = name ? strnlen(name, XNAME_MAX - 1) : 0;
    memcpy(buf, name ? name : "", n);
    memcpy(buf + n, n ? " [shared]" : "[shared]", n ? 10 : 9);
    pthread_mutex_lock(&c->mu);
    /* The dump may read it meanwhile: a terminated string at every step. */
    size_t len = strlen(buf);
    c->name[0] = '\0';
    c->name[len] = '\0';
    memcpy(c->name + 1, buf + 1, len - 1);
    c->name[0] = buf[0];
    pthread_mutex_unlock(&c->mu);
    return 0;
}

static const struct chan_ops xops = { x_send, x_recv, x_close, x_free, x_set_name,
                                       weft_xchan_select };

weft_chan *weft_chan_make_shared(size_t elem_size, size_t capacity)
{
    if (elem_size == 0 || elem_size > WEFT_CHAN_ELEM_MAX ||
        capacity > (PTRDIFF_MAX - sizeof(struct xchan)) / elem_size) {
        errno = EINVAL;
        return NULL;
    }
    struct xchan *c = malloc(sizeof *c + capacity * elem_size);
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->ops = &xops;
    pthread_mutex_init(&c->mu, NULL);
    list_init(&c->sendq);
    list_init(&c->recvq);
    c->elem = elem_size;
    c->cap = capacity;
    c->head = c->count = 0;
    c->closed = 0;
    atomic_init(&c->nwait, 0);
    strcpy(c->name, "[shared]");
    return (weft_chan *)(void *)c;
}

/* weft_chan_select with clauses on shared channels, in any mix with this thread's channels.
 * The select locks every shared channel it names at once, in address order, to look for a
 * ready clause and, finding none, to link a waiter per clause; a parked select is then ended
 * exactly once, by whoever wins its claim word (struct xsel): a waker on any thread, which
 * completes that one clause, or the select itself on a timeout or a cancel, which completes
 * none. The losers leave their element in place and go on to the next waiter. This thread's
 * channels' side (stale nodes, the waiter queues) is chan.c's. */
#include "config.h"
#include "chan.h"
#include "offload_impl.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XSEL_STACK 4    /* clauses whose records fit on the stack; more are malloc'd */

static int addr_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return (x > y) - (x < y);
}

static void lock_all(struct xchan **lk, int n)
{
    for (int i = 0; i < n; i++)
        pthread_mutex_lock(&lk[i]->mu);
}

static void unlock_all(struct xchan **lk, int n)
{
    for (int i = n; i-- > 0;)
        pthread_mutex_unlock(&lk[i]->mu);
}

static inline int shared(const weft_chan_clause *cl)
{
    return chan_ops(cl->chan) != NULL;
}

/* Could clause cl complete now (its channel's mutex held, when shared)? */
static int ready(const weft_chan_clause *cl)
{
    if (!shared(cl))
        return chan_local_ready(cl);
    const struct xchan *c = X(cl->chan);
    if (cl->op == WEFT_CHAN_SEND)
        return c->closed || !list_empty(&c->recvq) || c->count < c->cap;
    return c->count || !list_empty(&c->sendq) || c->closed;
}

/* Complete one ready clause, chosen as chan.c's select chooses (each ready clause replaces
 * the choice with probability 1/(ready so far)); its index, or -1 when none is ready. Every
 * shared channel is locked. A clause that looked ready only for a stale waiter (a select
 * claimed elsewhere) gives EAGAIN and loses that waiter: look again. */
static int try_now(weft_chan_clause *cl, int n, struct xwait **posts)
{
    for (;;) {
        int pick = -1;
        uint32_t nready = 0;
        for (int i = 0; i < n; i++) {
            if (ready(&cl[i]) && (++nready == 1 || chan_rand_below(nready) == 0))
                pick = i;
        }
        if (pick < 0)
            return -1;
        weft_chan_clause *p = &cl[pick];
        int e = shared(p) ? weft_xchan_try(X(p->chan), p, posts) : chan_local_complete(p);
        if (e != EAGAIN) {
            p->err = e;
            return pick;
        }
    }
}

static void xsel_info(const struct weft_task *t, struct wait_info *out)
{
    const struct xchan *c = t->wait_obj;
    out->op = "select";
    out->name = c->name;
    out->waiting = atomic_load(&c->nwait);
}

/* Link a waiter for every clause: rec[i] on a shared channel, w[i] on one of this thread's. */
static void link_all(weft_chan_clause *cl, int n, struct xwait *rec, struct waiter *w,
                     struct xsel *sel, struct sched *s, struct weft_task *t, struct port *p)
{
    for (int i = 0; i < n; i++) {
        list_init(&w[i].link);
        list_init(&rec[i].link);
        w[i].task = t;
        if (!shared(&cl[i])) {
            chan_local_link(&cl[i], &w[i]);
            continue;
        }
        struct xwait *r = &rec[i];
        struct xchan *c = X(cl[i].chan);
        r->elem = cl[i].elem;
        r->t = t;
        r->s = s;
        r->port = p;
        r->sel = sel;
        r->idx = i;
        r->done = r->err = r->sent = 0;
        r->msg.reap = weft_xchan_reaped;
        r->msg.waiter = t;
        r->msg.reaped = 0;
        list_push_back(cl[i].op == WEFT_CHAN_SEND ? &c->sendq : &c->recvq, &r->link);
        atomic_fetch_add(&c->nwait, 1);
    }
}

/* The task parks until a waker claims a clause, or its deadline or a cancel; returns park's
 * code. Woken with nothing claimed (no waker does that), it links its nodes again, waits on. */
static int task_park(weft_chan_clause *cl, int n, struct waiter *w, struct xsel *sel,
                     struct sched *s, struct weft_task *t, struct xchan *shown, int64_t deadline)
{
    struct chan_wait cw = { cl, -1, &sel->claim };
    t->extra = w;
    t->nextra = n;
    t->wait_arg = &cw;
    int e;
    for (;;) {
        t->wait_obj = shown;
        t->wait_info = xsel_info;
        e = weft_sched_park(s, NULL, 0, WAIT_XCHAN, deadline);
        if (e != 0 || atomic_load(&sel->claim) != SEL_WAITING)
            break;
        for (int i = 0; i < n; i++)
            if (!shared(&cl[i]) && !list_linked(&w[i].link))
                chan_local_link(&cl[i], &w[i]);
    }
    /* A refused park leaves them linked; nothing of this thread ran meanwhile. */
    for (int i = 0; i < n; i++)
        list_remove(&w[i].link);
    t->extra = NULL;
    t->nextra = 0;
    t->wait_arg = NULL;
    t->wait_obj = NULL;
    t->wait_info = NULL;
    return e;
}

/* A thread outside any task blocks on sel->cv until a clause is claimed or the deadline. */
static int thread_park(struct xsel *sel, int64_t deadline)
{
    int e = 0;
    struct timespec ts = { (time_t)(deadline / 1000), (long)(deadline % 1000) * 1000000 };
    pthread_mutex_lock(&sel->mu);
    while (atomic_load(&sel->claim) == SEL_WAITING) {
        if (deadline < 0) {
            pthread_cond_wait(&sel->cv, &sel->mu);
        } else if (pthread_cond_timedwait(&sel->cv, &sel->mu, &ts) == ETIMEDOUT) {
            e = ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&sel->mu);
    return e;
}

int weft_xchan_select(weft_chan_clause *cl, int n, int64_t deadline)
{
    struct sched *s = weft_sched_tls;
    struct weft_task *t = s ? s->cur : NULL;
    struct xwait rs[XSEL_STACK];
    struct waiter ws[XSEL_STACK];
    struct xchan *ls[XSEL_STACK];
    struct xwait *rec = rs;
    struct waiter *w = ws;
    struct xchan **lk = ls;
    void *mem = NULL;
    if (n > XSEL_STACK) {
        mem = malloc((size_t)n * (sizeof *rec + sizeof *w + sizeof *lk));
        if (!mem)
            return fail(ENOMEM);
        rec = mem;
        w = (struct waiter *)(void *)(rec + n);
        lk = (struct xchan **)(void *)(w + n);
    }
    int nlk = 0, nlocal = 0;
    struct xchan *shown = NULL;     /* the dump's: the first shared clause's channel */
    for (int i = 0; i < n; i++) {
        if (!shared(&cl[i])) {
            nlocal++;
            continue;
        }
        lk[nlk++] = X(cl[i].chan);
        if (!shown)
            shown = X(cl[i].chan);
    }
    qsort(lk, (size_t)nlk, sizeof *lk, addr_cmp);
    int m = 0;
    for (int i = 0; i < nlk; i++)       /* a channel in several clauses is locked once */
        if (m == 0 || lk[m - 1] != lk[i])
            lk[m++] = lk[i];
    nlk = m;

    struct xwait *posts = NULL;
    struct port *p = NULL;
    int e = 0;
    lock_all(lk, nlk);
    int pick = try_now(cl, n, &posts);
    if (pick < 0) {
        if (deadline >= 0 && deadline <= weft_now())
            e = ETIMEDOUT;
        else if (!t && nlocal)
            e = EPERM;              /* this thread's channels wait only in a task */
        else if (t && (t->flags & TF_CANCELLED))
            e = ECANCELED;
        else if (t) {
            unlock_all(lk, nlk);    /* the port may spawn its reaper */
            if (!(p = weft_port_get(s))) {
                e = errno;
                goto out;
            }
            weft_port_hold(p);
            atomic_fetch_add(&p->refs, 1);  /* as a lone wait's (offload_chan.c wait_on) */
            lock_all(lk, nlk);
            pick = try_now(cl, n, &posts);  /* things may have changed meanwhile */
        }
    }
    if (pick >= 0 || e) {
        unlock_all(lk, nlk);
        weft_xchan_post(posts);
        if (p) {
            weft_port_release(p);
            port_unref(p);
        }
        goto out;
    }

    /* Nothing is ready: wait, every shared channel locked until the records are linked. */
    struct xsel sel;
    atomic_init(&sel.claim, SEL_WAITING);
    if (!t) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&sel.cv, &ca);
        pthread_condattr_destroy(&ca);
        pthread_mutex_init(&sel.mu, NULL);
    }
    link_all(cl, n, rec, w, &sel, s, t, p);
    unlock_all(lk, nlk);
    e = t ? task_park(cl, n, w, &sel, s, t, shown, deadline) : thread_park(&sel, deadline);

    /* End the select: win the claim (no clause completes), or learn which clause did. */
    int want = SEL_WAITING;
    if (!atomic_compare_exchange_strong(&sel.claim, &want, SEL_GONE))
        pick = want;
    int sent = 0;
    lock_all(lk, nlk);              /* a waker that claimed a clause has finished with it */
    for (int i = 0; i < n; i++) {
        if (list_linked(&rec[i].link)) {
            list_remove(&rec[i].link);
            atomic_fetch_sub(&X(cl[i].chan)->nwait, 1);
        }
    }
    if (pick >= 0 && shared(&cl[pick])) {
        cl[pick].err = rec[pick].err;
        sent = rec[pick].sent;
    } else if (pick >= 0) {
        cl[pick].err = e;           /* a waker of this thread woke the task with its result */
    }
    unlock_all(lk, nlk);
    if (!t) {
        pthread_cond_destroy(&sel.cv);
        pthread_mutex_destroy(&sel.mu);
    } else {
        if (sent) {
            weft_xwait_await(s, t, &rec[pick], shown, xsel_info);
            t->wait_obj = NULL;
            t->wait_info = NULL;
        } else {
            weft_port_release(p);
        }
        port_unref(p);      /* the reaper may have left with the run */
    }
out:
    free(mem);
    if (pick >= 0)
        return pick;
    return fail(e);
}

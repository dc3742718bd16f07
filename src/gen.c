/* Generators: a task that yields values to the task (or main context) driving it with
 * weft_gen_send, and receives the value sent next. A round trip is two direct switches
 * (weft_sched_switch_to), never through the run queue; a generator that blocks parks as any
 * task does, and its caller waits parked in send (WAIT_GEN) meanwhile. The switching itself,
 * deadlines and cancellation are the scheduler's. */
#include "config.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

enum gen_status {
    GS_NEW,             /* made; fn not started */
    GS_SUSPENDED,       /* parked in yield (xfer: the value yielded) */
    GS_RESUMING,        /* a send or close has set xfer and is switching to it */
    GS_RUNNING,         /* running a round: for g->caller, or on its own (its caller left) */
    GS_DONE,            /* fn returned (result), or never ran: closed or cancelled first */
};

/* A generator's state; its task's arg. The handle given out is its task's handle, so a
 * closed generator's handle goes stale exactly as a joined task's does. */
struct gen {
    void *(*fn)(void *);
    void *arg;
    struct weft_task *task;     /* the generator's task record */
    struct weft_task *caller;   /* the task parked in send or close for this round; NULL none */
    void *xfer;                 /* the value in flight: sent in, or yielded out */
    void *result;               /* fn's return value, once GS_DONE */
    unsigned char status;
    unsigned char main_drives;  /* the main context is the caller */
    unsigned char pending;      /* suspended with a value whose round's caller left */
    unsigned char closing;      /* weft_gen_close has begun: yields fail with ECANCELED */
    unsigned char orphan;       /* closed without waiting: freed when fn returns */
};

static void *gen_task(void *arg);

/* ---- the dump's view ---------------------------------------------------------------------- */

/* What the dump shows for a task parked on a generator: its caller in send or close (the
 * generator's task named as the holder), or the generator itself in yield. Reads only. */
static void gen_wait_info(const struct weft_task *t, struct wait_info *w)
{
    const struct gen *g = t->wait_obj;
    const struct weft_task *gt = g->task;
    w->name = gt->name[0] ? gt->name : NULL;
    if (t == gt) {
        w->op = g->status == GS_NEW ? "start" : "yield";
    } else {
        w->op = g->closing ? "close" : "send";
        w->holder = gt->id;
        w->waiting = 1;
    }
}

static inline void wait_on(struct weft_task *t, struct gen *g)
{
    t->wait_obj = g;
    t->wait_info = gen_wait_info;
}

/* A wait that failed at once leaves what wait_on set (a wake clears it): clear it, so the
 * dump of a task that runs on, or has ended, never reads a generator freed since. */
static inline void wait_off(struct weft_task *t)
{
    t->wait_obj = NULL;
    t->wait_info = NULL;
}

/* Is c parked waiting for g's round (in send or close)? */
static inline int waits_for(const struct weft_task *c, const struct gen *g)
{
    return c && c->state == TS_WAITING && c->wait_kind == WAIT_GEN && c->wait_obj == g;
}

/* ---- handles ------------------------------------------------------------------------------ */

/* The generator h names, and its scheduler; NULL with errno EINVAL (h NULL, or not a
 * generator's) or EPIPE (closed: the handle is stale). */
static inline struct gen *gen_of(const weft_gen *h, struct sched **sp)
{
    if (slow(!h)) {
        errno = EINVAL;
        return NULL;
    }
    struct sched *s = weft_sched_tls;
    struct weft_task *t = s ? handle_rec(s, (const weft_task *)h) : NULL;
    if (slow(!t)) {
        errno = EPIPE;
        return NULL;
    }
    if (slow(t->fn != gen_task)) {
        errno = EINVAL;
        return NULL;
    }
    *sp = s;
    return t->arg;
}

weft_gen *weft_gen_make_at(const weft_attr *attr, void *(*fn)(void *), void *arg,
                           const char *file, int line)
{
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    struct gen *g = calloc(1, sizeof *g);
    if (!g) {
        errno = ENOMEM;
        return NULL;
    }
    /* Detached while it lives, so nobody joins or detaches it (EINVAL); gen_task keeps the
     * record at the end for weft_gen_result. A daemon: a suspended generator is not a
     * thread of its own, and does not keep weft_run going. */
    weft_attr a = attr ? *attr : (weft_attr){ 0 };
    a.detached = 1;
    a.daemon = 1;
    a.run_now = 0;
    g->fn = fn;
    g->arg = arg;
    g->status = GS_NEW;
    weft_task *h = weft_spawn_at(&a, gen_task, g, file, line);
    if (!h) {
        int e = errno;
        free(g);
        errno = e;
        return NULL;
    }
    g->task = task_of(h);
    return (weft_gen *)h;
}

/* ---- the generator's side ----------------------------------------------------------------- */

/* The generator's task: wait for the first send unless one started it, run fn, then hand
 * the end to whoever waits in send or close. */
/* The generator's end, fn's value in hand: wake whoever waits in send or close. */
static void gen_end(struct sched *s, struct weft_task *t, struct gen *g)
{
    g->status = GS_DONE;
    g->pending = 0;
    if (waits_for(g->caller, g))
        weft_sched_wake(s, g->caller, 0);
    /* A main caller is woken by the end itself: it set s->main_joins to this task. */
    if (g->orphan)
        free(g);                    /* detached still: the record goes when the task ends */
    else
        t->flags &= (unsigned char)~TF_DETACHED;   /* kept until weft_gen_close */
}

/* fn called weft_exit: the generator ends as if fn had returned value. */
static void gen_exit(struct weft_task *t, void *value)
{
    struct gen *g = t->arg;
    t->exit_hook = NULL;
    g->result = value;
    gen_end(weft_sched_tls, t, g);
}

static void *gen_task(void *arg)
{
    struct gen *g = arg;
    struct sched *s = weft_sched_tls;
    struct weft_task *t = s->cur;
    int e = 0;
    if (g->status == GS_NEW) {      /* run from the run queue before anyone sent */
        wait_on(t, g);
        e = weft_sched_park(s, NULL, 0, WAIT_GEN, -1);
        if (e)
            wait_off(t);
    }
    if (!e && !g->closing && !(t->flags & TF_CANCELLED)) {
        g->status = GS_RUNNING;
        t->exit_hook = gen_exit;
        g->result = g->fn(g->arg);
        t->exit_hook = NULL;
    }
    gen_end(s, t, g);
    return NULL;
}

int weft_gen_yield(void *out, void **in)
{
    struct sched *s = weft_sched_tls;
    struct weft_task *t = s ? s->cur : NULL;
    if (slow(!t || t->fn != gen_task)) {
        errno = EPERM;
        return -1;
    }
    struct gen *g = t->arg;
    if (slow(g->closing)) {
        errno = ECANCELED;
        return -1;
    }
    struct weft_task *c = g->caller;
    g->xfer = out;
    g->status = GS_SUSPENDED;
    wait_on(t, g);
    int e;
    if (fast(waits_for(c, g))) {
        e = weft_sched_switch_fast(s, t, WAIT_GEN, c);
    } else if (g->main_drives) {
        e = weft_sched_switch_to(s, WAIT_GEN, -1, NULL);
    } else {
        g->pending = 1;             /* the round's caller left: the next send collects out */
        e = weft_sched_park(s, NULL, 0, WAIT_GEN, -1);
    }
    /* Back: resumed by a send or a close (0), woken by a cancel or the deadline scope while
     * suspended, or the park failed at once (the caller still waits; out is not delivered). */
    g->status = GS_RUNNING;
    if (slow(e != 0)) {
        g->pending = 0;
        wait_off(t);
        errno = e;
        return -1;
    }
    if (slow(g->closing)) {
        errno = ECANCELED;
        return -1;
    }
    if (in)
        *in = g->xfer;
    return 0;
}

/* ---- the caller's side -------------------------------------------------------------------- */

/* One round for the running task or the main context: resume g with in (or, for close,
 * with the closing flag set) and wait until it yields or ends. Returns 0 with *out the value
 * yielded, or -1 and errno. */
static inline __attribute__((always_inline)) int
gen_round(struct sched *s, struct gen *g, void *in, void **out, int closing)
{
    struct weft_task *me = s->cur, *gt = g->task;
    if (slow(me == gt)) {
        errno = EDEADLK;
        return -1;
    }
    if (slow(g->caller || g->main_drives)) {
        errno = EBUSY;
        return -1;
    }
    if (!closing) {
        if (slow(g->status == GS_DONE || g->closing)) {
            errno = EPIPE;
            return -1;
        }
        if (slow(g->pending)) {     /* a retry of the round its caller left: it is done */
            g->pending = 0;
            if (out)
                *out = g->xfer;
            return 0;
        }
    }
    int e = 0;
    if (me) {
        g->caller = me;
        wait_on(me, g);
    } else {
        g->main_drives = 1;
        s->main_joins = gt;         /* its end hands the thread straight back to main */
    }
    if (fast(g->status != GS_RUNNING)) {
        unsigned char prev = g->status;
        g->xfer = in;
        g->status = GS_RESUMING;
        e = weft_sched_switch_fast(s, me, WAIT_GEN, gt);
        if (slow(e != 0) && g->status == GS_RESUMING) {
            g->status = prev;       /* the caller could not wait: nothing was switched */
            g->caller = NULL;
            wait_off(me);
            errno = e;
            return -1;
        }
    } else if (me) {                /* running on its own since its caller left: wait */
        e = weft_sched_park(s, NULL, 0, WAIT_GEN, -1);
    }
    if (!me) {
        while (e == 0 && g->status == GS_RUNNING)  /* it blocked: run the others meanwhile */
            e = weft_sched_run(s, gt, -1, 0);
        s->main_joins = NULL;
        g->main_drives = 0;
    }
    g->caller = NULL;
    if (slow(e != 0)) {             /* interrupted: the round goes on without its caller */
        if (me)
            wait_off(me);
        errno = e;
        return -1;
    }
    if (slow(g->status == GS_DONE)) {
        errno = EPIPE;
        return -1;
    }
    if (out)
        *out = g->xfer;
    return 0;
}

int weft_gen_send(weft_gen *h, void *in, void **out)
{
    struct sched *s;
    struct gen *g = gen_of(h, &s);
    return fast(g != NULL) ? gen_round(s, g, in, out, 0) : -1;
}

int weft_gen_next(weft_gen *h, void **out)
{
    return weft_gen_send(h, NULL, out);
}

int weft_gen_result(const weft_gen *h, void **value)
{
    struct sched *s;
    struct gen *g = gen_of(h, &s);
    if (!g)
        return -1;
    if (g->closing) {
        errno = EPIPE;
        return -1;
    }
    if (g->status != GS_DONE) {
        errno = EAGAIN;
        return -1;
    }
    if (value)
        *value = g->result;
    return 0;
}

int weft_gen_close(weft_gen *h)
{
    struct sched *s;
    struct gen *g = gen_of(h, &s);
    if (!g)
        return -1;
    struct weft_task *gt = g->task;
    if (s->cur == gt) {
        errno = EDEADLK;
        return -1;
    }
    if (g->caller || g->main_drives) {
        errno = EBUSY;
        return -1;
    }
    if (g->closing) {               /* closed already, and finishing on its own */
        errno = EPIPE;
        return -1;
    }
    g->closing = 1;
    if (g->status != GS_DONE) {
        g->pending = 0;
        if (g->status == GS_RUNNING)    /* mid-round, nobody waiting: stop its blocking call */
            weft_task_cancel(s, gt);
        int saved = errno;
        gen_round(s, g, NULL, NULL, 1);
        errno = saved;
        if (g->status != GS_DONE) {
            /* The caller could not wait (cancelled, its deadline scope passed, or nothing
             * could wake the generator): it finishes on its own, unable to block, and is
             * freed when fn returns. */
            g->orphan = 1;
            weft_task_cancel(s, gt);
            return 0;
        }
    }
    weft_sched_release(s, gt);
    free(g);
    return 0;
}

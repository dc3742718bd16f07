/* The offload layer's call: weft_offload parks the calling task while a pool thread
 * (offload_pool.c) runs fn. Each scheduler thread that uses the pool has a port: an eventfd
 * on its reactor and a lock-free stack of completed jobs, reaped in batches by a background
 * task. The file calls and name lookups are offload_fs.c, offload_dns.c, offload_net.c. */
#include "config.h"
#include "offload.h"
#include "offload_impl.h"
#include "reactor.h"

#include <sys/eventfd.h>
#include <unistd.h>

TLS struct port *weft_offload_port;

/* ---- the port: completions back on the scheduler's thread ------------------------------- */

/* Wake the waiters of every completion posted so far, oldest first. */
static void port_reap(struct port *p)
{
    struct job *j = atomic_exchange(&p->done, NULL), *fifo = NULL;
    while (j) {
        struct job *n = j->next;
        j->next = fifo;
        fifo = j;
        j = n;
    }
    for (j = fifo; j; j = fifo) {
        fifo = j->next;
        p->inflight--;
        j->reaped = 1;
        if (j->reap)
            j->reap(j);         /* the message's owner keeps it */
        else if (j->waiter)
            weft_sched_wake(p->s, j->waiter, 0);   /* the waiter frees it */
        else
            job_free(j);
    }
    weft_pool_kick();
}

void weft_port_drain(struct port *p)
{
    port_reap(p);
}

static void reaper_info(const struct weft_task *t, struct wait_info *out)
{
    (void)t;
    out->op = "idle";
}

static void *reaper(void *arg)
{
    struct port *p = arg;
    struct sched *s = p->s;
    for (;;) {
        if (p->inflight == 0 && atomic_load(&p->done) == NULL) {
            p->idle = 1;
            s->cur->wait_obj = p;
            s->cur->wait_info = reaper_info;
            int e = weft_sched_park(s, NULL, 0, WAIT_USER, -1);
            p->idle = 0;
            if (e == ECANCELED)
                break;
            continue;
        }
        /* The fd is never read: its registration is edge-triggered, and every write of an
         * eventfd is an edge, however large its count (a 64-bit count never fills). So a
         * batch costs the pool one write and the loop no read; a completion posted after the
         * stack was looked at wakes the next park. */
        if (atomic_load(&p->done)) {
            port_reap(p);
            continue;
        }
        struct fdent *f = weft_fd_get(s, p->efd);
        int e = f ? weft_reactor_arm(s, f, p->efd, p->rearm) : errno;
        p->rearm = 0;
        if (e == 0) {
            s->cur->wait_fd = p->efd;
            s->cur->wait_events = WEFT_READ;
            e = weft_reactor_wait(s, f, p->efd, DIR_READ, 0, -1, f->seq);
        }
        if (e == ECANCELED)
            break;
        /* EAGAIN: woken after a fork; anything else (ENOMEM): try again shortly rather than
         * spin. */
        if (e != 0 && e != EBADF && e != EAGAIN && weft_sleep(1) < 0)
            break;
    }
    /* weft_run is ending: no task waits here any more, only jobs left behind. */
    weft_offload_port = NULL;
    weft_fd_forget(p->efd);
    port_reap(p);
    port_unref(p);
    return NULL;
}

struct port *weft_port_get(struct sched *s)
{
    struct port *p = weft_offload_port;
    if (fast(p != NULL))
        return p;
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        int e = errno;
        free(p);
        errno = e;
        return NULL;
    }
    atomic_init(&p->refs, 1);
    atomic_init(&p->done, NULL);
    p->s = s;
    weft_task *h = weft_spawn_system(reaper, p, "weft-offload");
    if (!h) {
        int e = errno;
        weft_sys_close(p->efd);
        free(p);
        errno = e;
        return NULL;
    }
    p->reaper = handle_rec(s, h);
    weft_offload_port = p;
    return p;
}

void weft_port_hold(struct port *p)
{
    p->inflight++;
    if (p->idle)
        weft_sched_wake(p->s, p->reaper, 0);
}

void weft_port_release(struct port *p)
{
    p->inflight--;
}

/* ---- the call ---------------------------------------------------------------------------- */

static void offload_info(const struct weft_task *t, struct wait_info *out)
{
    out->op = t->wait_op;
}

/* The call; give: on a failure before the job is queued, discard(arg) here (see offload.h). */
static int offload_call(const char *op, void (*fn)(void *), void *arg, void (*discard)(void *),
                        int64_t deadline, int give)
{
    if (slow(!fn)) {
        errno = EINVAL;
        return -1;
    }
    struct sched *s = weft_sched_tls;
    struct weft_task *t = s ? s->cur : NULL;
    if (!t) {
        fn(arg);                /* no task to park: the thread is the caller's to block */
        return 0;
    }
    int e = 0;
    int64_t scope = t->deadline >= 0 && (deadline < 0 || t->deadline < deadline) ? t->deadline
                                                                                  : deadline;
    if (t->flags & TF_CANCELLED)
        e = ECANCELED;
    else if (scope >= 0 && scope <= weft_now())
        e = ETIMEDOUT;
    if (e) {                    /* fails before anything is queued: fn never runs */
        if (give && discard)
            discard(arg);
        errno = e;
        return -1;
    }
    struct port *p = weft_port_get(s);
    struct job *j = p ? malloc(sizeof *j) : NULL;
    if (!j) {
        e = errno;
        if (give && discard)
            discard(arg);
        errno = e;
        return -1;
    }
    j->reap = NULL;
    j->fn = fn;
    j->arg = arg;
    j->discard = discard;
    j->op = op;
    j->port = p;
    j->waiter = t;
    j->err = 0;
    j->reaped = 0;
    atomic_init(&j->state, JOB_QUEUED);
    atomic_fetch_add(&p->refs, 1);
    if ((e = weft_pool_submit(j)) != 0) {
        job_free(j);
        if (give && discard)
            discard(arg);
        errno = e;
        return -1;
    }
    p->inflight++;
    if (p->idle)
        weft_sched_wake(s, p->reaper, 0);
    t->wait_obj = (const void *)(uintptr_t)fn;
    t->wait_op = op;
    t->wait_info = offload_info;
    e = weft_sched_park(s, NULL, 0, WAIT_OFFLOAD, deadline);
    t->wait_obj = NULL;
    t->wait_info = NULL;
    if (e != 0) {
        int st = JOB_QUEUED;
        if (atomic_compare_exchange_strong(&j->state, &st, JOB_ABANDONED) ||
            (st == JOB_RUNNING && atomic_compare_exchange_strong(&j->state, &st, JOB_ABANDONED))) {
            p->inflight--;      /* the pool frees it, and gives arg to discard */
            errno = e;
            return -1;
        }
        /* It completed as the wait ended: the call succeeded after all. */
        if (!j->reaped) {
            j->waiter = NULL;   /* still on the port: the reaper frees it */
            if (j->err) {
                errno = j->err;
                return -1;
            }
            return 0;
        }
    }
    e = j->err;
    job_free(j);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

int weft_offload_op(const char *op, void (*fn)(void *), void *arg, void (*discard)(void *),
                    int64_t deadline)
{
    return offload_call(op, fn, arg, discard, deadline, 0);
}

int weft_offload_give(const char *op, void (*fn)(void *), void *arg, void (*discard)(void *),
                      int64_t deadline)
{
    return offload_call(op, fn, arg, discard, deadline, 1);
}

int weft_offload_ex(void (*fn)(void *), void *arg, void (*discard)(void *), int64_t deadline)
{
    return weft_offload_op("call", fn, arg, discard, deadline);
}

int weft_offload(void (*fn)(void *), void *arg, int64_t deadline)
{
    return weft_offload_op("call", fn, arg, NULL, deadline);
}

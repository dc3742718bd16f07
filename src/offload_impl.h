/* The offload layer's shared internals: a job's record and life, a scheduler thread's port,
 * and the small steps both sides take on them. offload.c has the port and the call;
 * offload_pool.c the threads. */
#ifndef WEFT_OFFLOAD_IMPL_H
#define WEFT_OFFLOAD_IMPL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "chan.h"
#include "sched.h"
#include "sys.h"

/* A job's life: QUEUED -> RUNNING -> DONE (posted to its port) by the pool; a waiter that
 * leaves early turns QUEUED or RUNNING into ABANDONED, and the pool then gives arg to discard
 * and frees the job itself. */
enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_ABANDONED };

struct port;

struct job {
    struct job *next;           /* the pool's queue, then the port's stack of completions */
    /* NULL for a pool job; else the port's other message, a shared channel's wake
     * (offload_chan.c): the reaper calls it, on the port's thread, instead of waking waiter. */
    void (*reap)(struct job *);
    void (*fn)(void *);
    void *arg;
    void (*discard)(void *);
    const char *op;
    struct port *port;
    struct weft_task *waiter;   /* the parked task; NULL once it left a completed job behind */
    _Atomic int state;
    int err;                    /* 0, or ECANCELED: the job was lost to a fork */
    int reaped;                 /* the reaper has taken it off the port (loop thread only) */
};

struct port {
    _Atomic(struct job *) done; /* completions, newest first */
    _Atomic long refs;          /* the reaper's, and one per job not yet freed */
    int efd;                    /* written when a completion lands on an empty stack */
    int idle;                   /* the reaper is parked off the fd: nothing is in flight */
    int rearm;                  /* a fork gave efd a new file: register it again */
    long inflight;              /* jobs whose completion will be posted here (loop thread) */
    struct sched *s;
    struct weft_task *reaper;
};

/* This thread's port, or NULL (offload.c). */
extern TLS struct port *weft_offload_port;

static inline void port_unref(struct port *p)
{
    if (atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    /* Every job holds a reference, so the stack is empty: only the fd is left. */
    weft_sys_close(p->efd);
    free(p);
}

static inline void job_free(struct job *j)
{
    struct port *p = j->port;
    free(j);
    port_unref(p);
}

/* The pool is done with an abandoned job: give its arg back, free it. */
static inline void job_drop(struct job *j)
{
    if (j->discard)
        j->discard(j->arg);
    job_free(j);
}

/* Push j onto its port's stack; returns whether the stack was empty (write the fd then). */
static inline int port_push(struct port *p, struct job *j)
{
    struct job *top = atomic_load(&p->done);
    do
        j->next = top;
    while (!atomic_compare_exchange_weak(&p->done, &top, j));
    return top == NULL;
}

static inline void port_signal(struct port *p)
{
    uint64_t one = 1;
    while (weft_sys_write(p->efd, &one, sizeof one) < 0 && errno == EINTR) {
    }
}

/* offload.c: this thread's port, made (with its reaper) at the first use; NULL + errno. */
struct port *weft_port_get(struct sched *s);
/* offload.c: a task of this thread waits for a message on p: keep the reaper on the fd until
 * weft_port_release (or the message's reap, which releases it). Loop thread only. */
void weft_port_hold(struct port *p);
void weft_port_release(struct port *p);
/* offload.c: deliver what is on p's stack now, as its reaper does. For a waiter whose port's
 * reaper has left with the end of a run. Loop thread only. */
void weft_port_drain(struct port *p);

/* offload_pool.c: queue j; 0, or EAGAIN when no thread could be started and none runs. */
int weft_pool_submit(struct job *j);
/* offload_pool.c: after a fork, start threads for the jobs the child kept (the reaper's
 * call, on the scheduler's thread); cheap when there is nothing to do. */
void weft_pool_kick(void);

/* ---- shared channels (offload_chan.c; their select, offload_select.c) ---------------------- */

#define XNAME_MAX 32

/* A select's own record when it waits on shared channels: its claim word (chan.h), and for a
 * thread outside any task what it blocks on (wakers signal cv under mu and under the
 * channel's mutex). */
struct xsel {
    _Atomic int claim;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/* A waiter parked on a shared channel, on its own stack: a lone send or receive, or one
 * clause of a select (sel, idx: its record and the clause's index). */
struct xwait {
    struct job msg;             /* the port's message; msg.waiter is the parked task */
    struct list link;           /* on the channel's sendq or recvq */
    struct xwait *post;         /* the waker's list of messages to post after unlocking */
    void *elem;                 /* send: the element; receive: where it goes (NULL: drop) */
    struct weft_task *t;        /* NULL: a thread outside any task, blocked on cv */
    struct sched *s;
    struct port *port;
    struct xsel *sel;           /* NULL: a lone send or receive */
    int idx;
    pthread_cond_t cv;          /* a lone wait's; a select's is in sel */
    int done, err, sent;        /* under the channel's mutex */
};

struct xchan {
    const struct chan_ops *ops; /* first: see chan.h */
    pthread_mutex_t mu;
    struct list sendq, recvq;
    size_t elem, cap, head, count;
    int closed;
    _Atomic long nwait;         /* for the dump, which takes no lock */
    char name[XNAME_MAX + 10];  /* "NAME [shared]", for the dump */
    unsigned char ring[];
};

static inline struct xchan *X(weft_chan *c)
{
    return (struct xchan *)(void *)c;
}

static inline int fail(int e)
{
    errno = e;
    return -1;
}

/* Complete clause cl on c now if it can (c's mutex held): 0, EPIPE or EAGAIN; the waiters it
 * completed on other threads go on *posts, for weft_xchan_post once the mutex is released. */
int weft_xchan_try(struct xchan *c, weft_chan_clause *cl, struct xwait **posts);
void weft_xchan_post(struct xwait *posts);
/* A waiter's message reached its loop: wake its task (the message's reap). */
void weft_xchan_reaped(struct job *j);
/* The message naming w, a record of the running task t, is on its way to this loop's port:
 * wait for it, uncancellably, shown in the dump as waiting on obj (info); a cancel or the
 * deadline scope is kept for the task's next call. */
void weft_xwait_await(struct sched *s, struct weft_task *t, struct xwait *w, const void *obj,
                      wait_info_fn *info);
/* weft_chan_select with a clause on a shared channel (offload_select.c). */
int weft_xchan_select(weft_chan_clause *cl, int n, int64_t deadline);

#endif

/* The scheduler layer: the task record, the per-thread scheduler, and the calls the layers
 * below it in DESIGN.md's table build on (park, wake, spawn of weft's own tasks). Stacks,
 * timers and contexts are the layers above; the loop polls its event source through
 * struct poller, which the reactor fills in. */
#ifndef WEFT_SCHED_H
#define WEFT_SCHED_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "weft.h"
#include "compiler.h"
#include "ctx.h"
#include "list.h"
#include "stack.h"
#include "timer.h"

enum task_state {
    TS_RUNNABLE,        /* on the run queue */
    TS_RUNNING,
    TS_WAITING,         /* parked; wait_kind says on what */
    TS_DONE,            /* ended, not yet joined */
    TS_FREE,            /* record on the free list (joined, or detached and ended) */
};

/* What a parked task waits on: the dump prints these, with wait_obj / wait_fd. */
enum wait_kind {
    WAIT_NONE,
    WAIT_IO,            /* wait_fd, wait_events */
    WAIT_SLEEP,
    WAIT_JOIN,          /* wait_obj: the task joined */
    WAIT_CHAN,          /* the sync layer's kinds: wait_obj, and wait_info says more */
    WAIT_LOCK,
    WAIT_OFFLOAD,
    WAIT_COND,
    WAIT_WG,
    WAIT_SEM,
    WAIT_GEN,
    WAIT_USER,          /* the public park (weft_park): wait_info gives the user's reason */
    WAIT_PROC,          /* a child process (proc.c): wait_info gives the pid and command */
    WAIT_SIGNAL,        /* signals (signal.c): wait_info gives the set */
    WAIT_XCHAN,         /* a shared channel (offload_chan.c): another thread may end it */
    WAIT_KIND_COUNT     /* at most 32: wait_external tests a bit mask */
};

struct weft_task;

/* What the dump says about a wait of the sync layer's kinds. The layer that parks a task
 * points t->wait_info at a function filling this in; the dump calls it, from a signal
 * handler too, so it only reads memory (no locks, no allocation, no errno). */
struct wait_info {
    const char *op;             /* "send", "recv", "select", ... or the user's reason; NULL */
    const char *name;           /* the object's name; NULL: the dump shows wait_obj */
    uint64_t holder;            /* id of the task holding what this one waits for; 0 none */
    long waiting;               /* tasks waiting on the same object, this one too; -1 unknown */
};
typedef void wait_info_fn(const struct weft_task *t, struct wait_info *out);

/* Is a wait of this kind ended by something outside the scheduler (an fd, a pool thread, a
 * child, a signal)? Such waits are counted in nexternal: while there are any, a loop where no
 * task can run is idle, not deadlocked. */
#define WAIT_EXTERNAL_MASK \
    ((1u << WAIT_IO) | (1u << WAIT_OFFLOAD) | (1u << WAIT_PROC) | (1u << WAIT_SIGNAL) | \
     (1u << WAIT_XCHAN))
static inline int wait_external(int kind)
{
    return ((WAIT_EXTERNAL_MASK >> kind) & 1u) != 0;   /* one test on every park and wake */
}

enum task_flag {
    TF_DETACHED = 1,
    TF_CANCELLED = 2,
    TF_SYSTEM = 4,      /* weft's own background task (debug server): not counted as alive,
                           cancelled by weft_run once the user's tasks are all done */
    TF_DAEMON = 8,      /* weft_attr.daemon: treated as TF_SYSTEM is, but shown in the dump */
};

#define TF_BACKGROUND (TF_SYSTEM | TF_DAEMON)   /* not counted as alive */

/* One entry of the scheduler's handle table. A public weft_task * is not a record's address
 * but ((uint64_t)gen << 32) | (slot + 1): it names rec while the slot's gen still matches.
 * Releasing the record bumps gen, so every handle to it goes stale at once. */
struct task_slot {
    struct weft_task *rec;      /* the slot's record while it is in use; NULL between uses */
    uint32_t gen;
    uint32_t next;              /* between uses: the next free slot (FIFO), or SLOT_NONE */
};

#define SLOT_NONE UINT32_MAX

#define WEFT_NAME_MAX 32

/* A task's place on a wait queue. A task has two, so weft_fdwait can wait on both of an
 * fd's queues at once; the back pointer tells a waker which task a node belongs to. */
struct waiter {
    struct list link;
    struct weft_task *task;
};

/* A task's record lives at the top of its own stack (sched.c's spawn): the page its first
 * frames touch anyway, so a parked task costs one page, record included. */
struct weft_task {
    struct ctx ctx;             /* first: the asm switch stores the stack pointer here */
    struct list rq;             /* run queue link; free-list link when TS_FREE */
    struct waiter wait[2];      /* on the queue(s) the task is parked on (fd, joiners, ...) */
    struct waiter *extra;       /* more, on the parked task's stack (weft_poll); nextra of them */
    int nextra;
    struct timer timer;         /* armed while parked with a deadline */
    struct list joiners;        /* the task joining this one (at most one) */
    struct list all;            /* the registry: every task not yet freed */
    struct stack stack;
    void *(*fn)(void *);
    void *arg;
    void *result;
    void *data;                 /* the user's pointer (weft_set_data) */
    /* Set by a layer whose wrapper is the task's entry (a task group's member, a generator):
     * weft_exit(value) runs it first, so the wrapper's ending happens as if fn had returned
     * value. NULL otherwise. */
    void (*exit_hook)(struct weft_task *t, void *value);
    weft_task *handle;          /* what weft_self and weft_spawn give out for this task */
    uint64_t id;
    uint64_t parent;            /* id of the spawning task; 0 for the main context */
    uint64_t switches;          /* times switched in */
    int64_t created;            /* weft_now() at spawn */
    int64_t last_run;           /* loop time when last switched in (the loop's clock) */
    int64_t deadline;           /* per-task deadline scope; -1 none */
    int64_t wait_deadline;      /* deadline of the current wait; -1 none */
    const void *wait_obj;
    wait_info_fn *wait_info;    /* set by the parking layer for its kinds; NULL otherwise */
    const char *wait_op;        /* what the sync layer's wait_info reports as op (weft_park's
                                   reason); read only while wait_info is set */
    void *wait_arg;             /* the parking layer's own record of the wait (chan.c: the
                                   clauses, on the parked task's stack); set and cleared there */
    const char *file;           /* spawn site */
    int line;
    uint32_t slot;              /* its entry in the handle table, for the record's life */
    int wait_fd;
    int wait_events;            /* WEFT_READ / WEFT_WRITE */
    int wake_err;               /* set by the waker: 0, ETIMEDOUT, ECANCELED, EBADF, ... */
    unsigned char state;
    unsigned char wait_kind;
    unsigned char flags;
    char name[WEFT_NAME_MAX];
};

struct reactor;
struct sched;

/* A timer that calls a function instead of waking a task: the delayed calls' (after.c).
 * They have timers of their own (s->calls), so a task's deadline stays a bare timer and the
 * task timers' firing loop is unchanged. fire runs when the timer is due, from the loop or
 * from a busy poll between two switches: it may spawn tasks and arm timers, never switch. */
struct sched_call {
    struct timer timer;
    void (*fire)(struct sched *s, struct sched_call *c);
};

/* The event source the loop waits on when no task can run. The reactor fills s->poller in
 * when it is made (the loop never calls the reactor by name): poll waits up to timeout_ms
 * (-1: forever, 0: not at all) and wakes the tasks whose events came; release frees it
 * when the scheduler goes; after_fork runs in a forked child (async-signal-safe calls only)
 * so the child's source is its own. */
struct poller {
    void (*poll)(struct sched *s, int timeout_ms);
    void (*release)(struct sched *s);
    void (*after_fork)(struct sched *s);
};

struct sched {
    struct weft_task *cur;      /* running task; NULL while the main context runs */
    struct ctx main;            /* the context that called weft_run / weft_join */
    struct list runq;
    size_t nrunq;               /* tasks on runq */
    struct list all;            /* registry, oldest first */
    struct task_slot *slots;    /* the handle table: grows, never shrinks, freed at teardown */
    uint32_t nslots;
    uint32_t slots_used;        /* slots given out at least once */
    uint32_t free_head, free_tail; /* released slots, reused oldest first; SLOT_NONE: none */
    uint32_t nfree;             /* slots on that list */
    struct timers timers;
    struct weft_task *dead;     /* ended detached task whose record and stack are released
                                   after the next switch */
    struct weft_task *main_joins; /* the task the main context waits for in weft_join, or NULL */
    int64_t main_deadline;      /* the deadline it waits with; -1 none */
    int main_due;               /* main runs next: main_joins ended or main_deadline passed */
    int main_wake;              /* a task handed the thread to main (weft_sched_switch_to):
                                   weft_sched_run returns 0 at its next look */
    const struct poller *poller;/* NULL until the reactor exists: the loop then just sleeps */
    struct reactor *reactor;    /* the reactor's state, made at the first IO wait (opaque here) */
    uint64_t next_id;
    uint64_t switches;          /* total switches: the watchdog's sign of progress */
    size_t ntasks;              /* records not yet freed */
    size_t nalive;              /* tasks not yet ended, TF_BACKGROUND ones aside */
    size_t nexternal;           /* tasks waiting on something outside the scheduler (IO, ...) */
    unsigned ticks;             /* switches since the reactor was last polled */
    int64_t loop_now;           /* weft_now() as of the last poll */
    int in_loop;
    struct timers calls;        /* armed struct sched_calls (off the hot fields, at the end);
                                   they keep weft_run going */
};

extern TLS struct sched *weft_sched_tls;

/* ---- handles: what the public weft_task * names (the table is sched.c's) ---- */

/* The record h names in s, or NULL when h is NULL, stale, or not one of s's handles. */
static inline struct weft_task *handle_rec(const struct sched *s, const weft_task *h)
{
    uint64_t v = (uint64_t)(uintptr_t)h;
    uint32_t i = (uint32_t)v - 1;       /* NULL wraps to SLOT_NONE: out of range */
    if (slow(i >= s->nslots) || slow(s->slots[i].gen != (uint32_t)(v >> 32)))
        return NULL;
    return s->slots[i].rec;
}

/* The record h names in this thread's scheduler; NULL with errno EINVAL when it names none. */
static inline struct weft_task *task_of(const weft_task *h)
{
    struct sched *s = weft_sched_tls;
    struct weft_task *t = fast(s != NULL) ? handle_rec(s, h) : NULL;
    if (slow(!t))
        errno = EINVAL;
    return t;
}

/* The running task's record, or NULL outside any task. */
static inline struct weft_task *self_rec(void)
{
    struct sched *s = weft_sched_tls;
    return s ? s->cur : NULL;
}

/* The record h names, or the running task's when h is NULL; NULL with errno EINVAL (h stale)
 * or EPERM (h NULL outside any task). */
static inline struct weft_task *task_or_self(const weft_task *h)
{
    if (h)
        return task_of(h);
    struct weft_task *t = self_rec();
    if (slow(!t))
        errno = EPERM;
    return t;
}

/* The thread's scheduler, created on first use; NULL with errno ENOMEM when that fails. */
struct sched *weft_sched_make(void);   /* task.c: the first use on a thread */
static inline struct sched *weft_sched_get(void)
{
    struct sched *s = weft_sched_tls;
    return fast(s != NULL) ? s : weft_sched_make();
}

/* The deadline ms milliseconds from now, rounded up so that it is never less than ms away
 * (weft_now() truncates); saturates. */
int64_t weft_deadline_after(int64_t ms);

/* Spawn one of weft's own background tasks (TF_SYSTEM, detached); NULL and errno on failure. */
weft_task *weft_spawn_system(void *(*fn)(void *), void *arg, const char *name);

/* Park the running task: its wait[0] on 'queue' (tail, or head when 'front'), until woken or until
 * 'deadline' (-1: none). Returns the waker's code: 0, or an errno value (ETIMEDOUT when the
 * deadline passed, ECANCELED, EBADF, ENOMEM, ...). Fails at once with ECANCELED if the task
 * was cancelled, ETIMEDOUT if the deadline (or the task's deadline scope) has passed. */
int weft_sched_park(struct sched *s, struct list *queue, int front, int kind, int64_t deadline);
/* Make a parked task runnable with code err; no-op unless it is parked. (Inline: below.) */
static inline void weft_sched_wake(struct sched *s, struct weft_task *t, int err);
/* Wake the first task on a wait queue with err; returns whether there was one. */
int weft_sched_wake_one(struct sched *s, struct list *queue, int err);
/* The direct switch a generator's send and yield make (gen.c): park the running task on no
 * queue with 'kind' (as weft_sched_park does: its deadline scope applies, and a cancelled
 * task or a deadline already past fails at once, switching nothing), then run task 'to' at
 * once instead of the run queue's head. 'to' is parked (it resumes as if woken with code 0)
 * or runnable (taken off the run queue: not started yet, or woken and not yet run; it
 * resumes with its wake code). 'to' NULL: the main context, which must be waiting for this
 * task (in this call, or in weft_sched_run, which then returns 0). From the main context
 * (s->cur NULL) nothing is parked: main just runs 'to' until switched back to. Returns when
 * the caller runs again: its wake code (0 from the main context). Switch counts and s->cur
 * are kept as for any switch; the run queue and the poll of switch_next are skipped, so a
 * caller and generator handing values to each other are, to the others, one busy task. */
int weft_sched_switch_to(struct sched *s, int kind, int64_t deadline, struct weft_task *to);
/* Run t at once from the running task (run_now's spawn): t must be runnable on the run queue
 * (spawned, not yet started); the caller goes to the run queue's front and this returns when
 * it runs again. Nothing happens outside a task or when t is not runnable. */
void weft_sched_run_now(struct sched *s, struct weft_task *t);
/* Run tasks from the main context until 'until' ends or the deadline passes; 'until' NULL:
 * until no task is alive, background ones aside, and when 'drain', nothing is runnable
 * either. Returns 0, ETIMEDOUT, or EDEADLK when nothing could ever wake anyone. */
int weft_sched_run(struct sched *s, struct weft_task *until, int64_t deadline, int drain);
/* Give t's record and handle back (t joined, or detached and ended): its handles go stale,
 * and its stack, which holds the record, goes back to the pool. */
void weft_sched_release(struct sched *s, struct weft_task *t);
/* Free the task records (each with its stack) and the handle table (for weft_sched_destroy),
 * keeping the generations given out so that a handle outlives its scheduler as a stale one. */
void weft_sched_free_records(struct sched *s);
/* The page size, set at the first scheduler's creation. */
extern size_t weft_page_size;
/* Free the scheduler (nothing may be running on it): stacks, records, timers, the poller. */
void weft_sched_destroy(struct sched *s);
/* The stack layer's overflow hook (task.c): if the fault at addr, with the faulting stack
 * pointer sp (0 when not known), is a task's stack overflow (the running task's, or the one
 * switching out, whose switch ran out of stack), print which task (async-signal-safe) and
 * return 1; else 0. */
int weft_task_overflow_report(const void *addr, uintptr_t sp);
/* Print the overflow report line for t, saying how it was found (async-signal-safe). */
void weft_task_overflow_print(const struct weft_task *t, const void *addr, const char *how);
/* Cancel t (task.c): mark it, and wake it with ECANCELED if it is parked. */
void weft_task_cancel(struct sched *s, struct weft_task *t);
/* Fire the timers due at 'now': wake the tasks, call the sched_calls' hooks. */
void weft_sched_fire_timers(struct sched *s, int64_t now);

/* ---- the hot paths, inline so that the sync layer's calls reach the switch directly ---- */

/* The cold halves (sched.c): release what the task that ended left behind (s->dead), and
 * report a task whose stack canary is gone. */
void weft_sched_reap(struct sched *s);
_Noreturn void weft_sched_canary_abort(struct weft_task *t);

/* The run queue, FIFO, with its length kept for weft_runnable. */
static inline void sched_runq_push(struct sched *s, struct weft_task *t)
{
    list_push_back(&s->runq, &t->rq);
    s->nrunq++;
}

/* What the dump and the watchdog see of a switch: t runs now. */
static inline void sched_switch_in(struct sched *s, struct weft_task *t)
{
    t->state = TS_RUNNING;
    t->switches++;
    t->last_run = s->loop_now;
    s->cur = t;
    s->switches++;
}

/* First thing in whichever context runs after a switch. */
static inline void sched_after_switch(struct sched *s)
{
    if (slow(s->dead != NULL))
        weft_sched_reap(s);
}

static inline void sched_canary_check(struct weft_task *t)
{
    if (slow(t->stack.guard == GUARD_CANARY) && !weft_stack_canary_ok(&t->stack))
        weft_sched_canary_abort(t);
}

/* Take the parked task t off what it waits on, with code err: runnable, not yet queued.
 * wait[0] is unlinked always (a waiter on a queue uses it); wait[1], extra nodes and the
 * timer only serve fd waits, poll, select and deadlines, so they are looked at first. */
static inline void sched_unpark(struct sched *s, struct weft_task *t, int err)
{
    list_remove(&t->wait[0].link);
    if (slow(list_linked(&t->wait[1].link)))
        list_remove(&t->wait[1].link);
    for (int i = 0; i < t->nextra; i++)
        list_remove(&t->extra[i].link);
    if (timer_armed(&t->timer))     /* most waits have no deadline: skip the call */
        weft_timer_cancel(&s->timers, &t->timer);
    if (wait_external(t->wait_kind))
        s->nexternal--;
    t->wait_kind = WAIT_NONE;
    t->wait_obj = NULL;
    t->wait_info = NULL;
    t->wake_err = err;
    t->state = TS_RUNNABLE;
}

#define SCHED_POLL_EVERY 64     /* switches between non-blocking polls while tasks stay busy */

/* Once in SCHED_POLL_EVERY switches: fire due timers, poll IO without blocking (sched.c). */
void weft_sched_poll_busy(struct sched *s);

static inline struct list *sched_runq_pop(struct sched *s)
{
    struct list *n = list_pop_front(&s->runq);
    if (fast(n != NULL))
        s->nrunq--;
    return n;
}

/* The running task cur has queued or parked itself (or ended: 'leaving'); run the next
 * runnable task, or the main context when there is none or when main's weft_join is done
 * (main_due). Returns when cur runs again. Inlined into its callers (yield, park, finish,
 * and the sync layer's parks through sched_park): the hot path is one call deep. */
static inline __attribute__((always_inline)) void
switch_next(struct sched *s, struct weft_task *cur, int leaving)
{
    if (slow(++s->ticks >= SCHED_POLL_EVERY))
        weft_sched_poll_busy(s);
    sched_canary_check(cur);
    struct list *n = slow(s->main_due) ? NULL : sched_runq_pop(s);
    struct ctx *to;
    if (fast(n != NULL)) {
        struct weft_task *next = list_entry(n, struct weft_task, rq);
        sched_switch_in(s, next);     /* resuming cur counts too: it did yield (the watchdog) */
        if (next == cur)
            return;
        to = &next->ctx;
    } else {
        s->cur = NULL;
        to = &s->main;
    }
    ctx_switch(&cur->ctx, to, leaving);
    sched_after_switch(s);
}

/* Mark the running task t parked (on 'queue' unless NULL) until woken or the deadline; 0, or
 * the code weft_sched_park fails with at once (nothing is changed then). */
static inline __attribute__((always_inline)) int
park_begin(struct sched *s, struct weft_task *t, struct list *queue, int front, int kind,
           int64_t deadline)
{
    if (slow(t->flags & TF_CANCELLED))
        return ECANCELED;
    /* Deadlines are the rarer case, and theirs is the longer path (a clock read, a timer). */
    if (slow(t->deadline >= 0) && (deadline < 0 || t->deadline < deadline))
        deadline = t->deadline;
    if (slow(deadline >= 0)) {
        if (deadline <= weft_now())
            return ETIMEDOUT;
        if (weft_timer_add(&s->timers, &t->timer, deadline) != 0)
            return ENOMEM;
    }
    if (queue) {
        if (front)
            list_push_front(queue, &t->wait[0].link);
        else
            list_push_back(queue, &t->wait[0].link);
    }
    t->state = TS_WAITING;
    t->wait_kind = (unsigned char)kind;
    t->wait_deadline = deadline;
    if (wait_external(kind))
        s->nexternal++;
    return 0;
}

/* weft_sched_park, inline: the sync layer's parks reach the switch with no call between. */
static inline __attribute__((always_inline)) int
sched_park(struct sched *s, struct list *queue, int front, int kind, int64_t deadline)
{
    struct weft_task *t = s->cur;
    int e = park_begin(s, t, queue, front, kind, deadline);
    if (slow(e != 0))
        return e;
    switch_next(s, t, 0);
    return t->wake_err;
}

static inline void weft_sched_wake(struct sched *s, struct weft_task *t, int err)
{
    if (t->state != TS_WAITING)
        return;
    sched_unpark(s, t, err);
    sched_runq_push(s, t);
}

/* weft_sched_wake for a task known to be parked on one queue through wait[0] alone (no
 * wait[1], no extra nodes) with a kind that is not external (a lone channel send or
 * receive): the same state changes as sched_unpark and the push, minus the checks that
 * cannot hold. */
static inline void sched_wake_queued(struct sched *s, struct weft_task *t, int err)
{
    list_remove(&t->wait[0].link);
    if (slow(timer_armed(&t->timer)))
        weft_timer_cancel(&s->timers, &t->timer);
    t->wait_kind = WAIT_NONE;
    t->wait_obj = NULL;
    t->wait_info = NULL;
    t->wake_err = err;
    t->state = TS_RUNNABLE;
    sched_runq_push(s, t);
}

/* weft_sched_switch_to(s, kind, -1, to) from the running task t, its common case inline: t
 * is not cancelled, has no deadline scope and no canary stack, and 'to' is parked with the
 * same kind (the kind must be one that parks on no queue: WAIT_GEN); anything else takes
 * the full call. kind is a sync kind (never WAIT_IO or WAIT_OFFLOAD, which
 * weft_sched_park counts as external). The same state changes as the full call, in the
 * same order, so the dump and the switch counts cannot tell them apart. */
static inline __attribute__((always_inline)) int
weft_sched_switch_fast(struct sched *s, struct weft_task *t, int kind, struct weft_task *to)
{
    if (slow(!t || !to || (t->flags & TF_CANCELLED) || t->deadline >= 0 ||
             t->stack.guard == GUARD_CANARY || to->state != TS_WAITING ||
             to->wait_kind != kind))
        return weft_sched_switch_to(s, kind, -1, to);
    t->state = TS_WAITING;
    t->wait_kind = (unsigned char)kind;
    t->wait_deadline = -1;
    /* 'to' parked with the same kind, which only this direct switch and parks on no queue
     * use: sched_unpark's work, less the nodes and the external count it cannot have. */
    if (slow(timer_armed(&to->timer)))
        weft_timer_cancel(&s->timers, &to->timer);
    to->wait_kind = WAIT_NONE;
    to->wait_obj = NULL;
    to->wait_info = NULL;
    to->wake_err = 0;
    sched_switch_in(s, to);
    ctx_switch_direct(&t->ctx, &to->ctx);
    sched_after_switch(s);
    return t->wake_err;
}


#endif

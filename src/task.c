/* The scheduler's creation and teardown, and the public calls on tasks that are not on the
 * switch path: time, weft_run and weft_main, names, the user's pointer, the run-queue count,
 * join, detach, cancel, sleeps and the task deadline scope; and the stack-overflow report.
 * Spawning, switching, parking and the loop are sched.c's; so are the records and handles.
 *
 * Layers: this file calls only the layers above it (context, stacks, timers), with one
 * exception, dump.h: a scheduler's creation and end are told to the introspection layer
 * (weft_dump_sched_created/destroyed), so the signal dump and the watchdog know every
 * scheduler thread from its first moment and WEFT_DEBUG and the like apply to each. A hook
 * the introspection layer set would be set only once some of its code had run, which
 * nothing guarantees before the first scheduler (a static link pulls its objects in only
 * when the program names one of them); these two calls are cold and happen once each. */
#include "config.h"
#include "sched.h"
#include "dump.h"
#include "sigfmt.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_key_t sched_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

/* ---- scheduler lifetime ------------------------------------------------------------------- */

void weft_sched_destroy(struct sched *s)
{
    weft_dump_sched_destroyed(s);
    if (s->poller)
        s->poller->release(s);
    weft_timers_free(&s->timers);
    struct timer *tm;           /* calls still armed (a daemon's): their owners see them stopped */
    while ((tm = weft_timer_first(&s->calls)) != NULL)
        weft_timer_cancel(&s->calls, tm);
    weft_timers_free(&s->calls);
    weft_sched_free_records(s);
    weft_stack_thread_fini();
    weft_sched_tls = NULL;
    pthread_setspecific(sched_key, NULL);
    free(s);
}

static void key_dtor(void *p)
{
    if (p)
        weft_sched_destroy(p);
}

/* In a forked child only the forking thread lives on, with its scheduler: its event source
 * must be its own, not the parent's. Registered before any other layer's fork handler (at
 * the first scheduler), so it runs first in the child. */
static void after_fork_child(void)
{
    struct sched *s = weft_sched_tls;
    if (s && s->poller && s->poller->after_fork)
        s->poller->after_fork(s);
}

static void make_key(void)
{
    pthread_key_create(&sched_key, key_dtor);
    pthread_atfork(NULL, NULL, after_fork_child);
    weft_page_size = (size_t)sysconf(_SC_PAGESIZE);
}

struct sched *weft_sched_make(void)
{
    struct sched *s;
    pthread_once(&key_once, make_key);
    s = calloc(1, sizeof *s);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    list_init(&s->runq);
    list_init(&s->all);
    s->free_head = s->free_tail = SLOT_NONE;
    s->next_id = 1;
    s->loop_now = weft_now();
    weft_timers_start(&s->timers, s->loop_now);     /* the wheels begin at the present */
    weft_timers_start(&s->calls, s->loop_now);
    s->main_deadline = -1;
    weft_stack_set_overflow_hook(weft_task_overflow_report);
    if (weft_stack_thread_init() != 0) {
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    pthread_setspecific(sched_key, s);
    weft_sched_tls = s;
    weft_dump_sched_created(s);
    return s;
}

/* ---- time --------------------------------------------------------------------------------- */

int64_t weft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* weft_now() rounded up: a deadline of now_ceil() + ms is never less than ms away. */
static int64_t now_ceil(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + (ts.tv_nsec + 999999) / 1000000;
}

int64_t weft_deadline_after(int64_t ms)
{
    int64_t now = now_ceil();
    return ms > INT64_MAX - now ? INT64_MAX : now + ms;   /* saturate */
}

/* Print the overflow report for t (async-signal-safe: it runs in the SIGSEGV handler). */
void weft_task_overflow_print(const struct weft_task *t, const void *addr, const char *how)
{
    static const char *const guard_names[] = { "?", "madvise guard", "mprotect guard", "canary" };
    struct sigbuf b;
    b.len = 0;
    b.fd = STDERR_FILENO;
    weft_sigbuf_str(&b, "weft: stack overflow in task ");
    weft_sigbuf_u64(&b, t->id);
    weft_sigbuf_str(&b, " \"");
    weft_sigbuf_str(&b, t->name);
    weft_sigbuf_str(&b, "\" spawned at ");
    weft_sigbuf_str(&b, t->file ? t->file : "?");
    weft_sigbuf_str(&b, ":");
    weft_sigbuf_i64(&b, t->line);
    weft_sigbuf_str(&b, ", stack ");
    weft_sigbuf_u64(&b, t->stack.size);
    weft_sigbuf_str(&b, " bytes (");
    weft_sigbuf_str(&b, guard_names[t->stack.guard & 3]);
    weft_sigbuf_str(&b, "): ");
    weft_sigbuf_str(&b, how);
    if (addr) {
        weft_sigbuf_str(&b, " at ");
        weft_sigbuf_hex(&b, (uintptr_t)addr);
    }
    weft_sigbuf_str(&b, "\n");
    weft_sigbuf_flush(&b);
}

/* The stack layer's overflow hook: the fault address and the faulting stack pointer (0 when
 * not known); if a task's stack overflowed (the running task's, or the one switching out,
 * whose switch ran out of stack), print which task (async-signal-safe) and return 1. */
int weft_task_overflow_report(const void *addr, uintptr_t sp)
{
    struct sched *s = weft_sched_tls;
    if (!s)
        return 0;
    const struct weft_task *cur = s->cur, *hit = NULL;
    if (cur && weft_stack_guard_hit(&cur->stack, addr, sp))
        hit = cur;
    /* A switch makes the next task current before the swap saves registers on the one going
     * out, so when those pushes hit its guard, s->cur is not the task that overflowed. Look
     * for it among the others (ended ones gave their stack back) rather than have every
     * switch note it; the walk is bounded in case the list is damaged. It also tells whether
     * sp is on another task's stack, which rules out a frame of cur's past its guard. */
    int sp_elsewhere = 0;
    size_t left = s->ntasks;
    for (const struct list *it = s->all.next; !hit && sp && it != &s->all && left > 0;
         it = it->next, left--) {
        const struct weft_task *t = list_entry(it, struct weft_task, all);
        if (t == cur || t->state == TS_DONE)
            continue;
        if (weft_stack_guard_hit(&t->stack, addr, sp))
            hit = t;
        sp_elsewhere |= weft_stack_holds(&t->stack, sp);
    }
    if (hit) {
        weft_task_overflow_print(hit, addr, "guard page hit");
        return 1;
    }
    if (cur && !sp_elsewhere && weft_stack_frame_past_guard(&cur->stack, addr, sp)) {
        weft_task_overflow_print(cur, addr, "frame past the guard");
        return 1;
    }
    return 0;
}

/* ---- running the scheduler ---------------------------------------------------------------- */

/* Cancel every background task that has not ended nor been cancelled; returns how many. */
static size_t cancel_background(struct sched *s)
{
    size_t n = 0;
    struct list *it;
    list_for_each(it, &s->all) {
        struct weft_task *t = list_entry(it, struct weft_task, all);
        if ((t->flags & TF_BACKGROUND) && !(t->flags & TF_CANCELLED) && t->state != TS_DONE) {
            weft_task_cancel(s, t);
            n++;
        }
    }
    return n;
}

int weft_run(void)
{
    struct sched *s = weft_sched_tls;
    if (!s)
        return 0;
    if (s->cur) {
        errno = EPERM;
        return -1;
    }
    int e = weft_sched_run(s, NULL, -1, 0);
    if (e) {
        errno = e;
        return -1;
    }
    /* Only background tasks (daemons, weft's own) are left: cancel them, and let them finish.
     * A cancelled task cannot park, so one round ends them, unless they spawn more. */
    while (cancel_background(s)) {
        if ((e = weft_sched_run(s, NULL, -1, 1)) != 0) {
            errno = e;
            return -1;
        }
    }
    if (s->ntasks == 0)
        weft_sched_destroy(s);
    return 0;
}

int weft_main_attr(const weft_attr *attr, void *(*fn)(void *), void *arg)
{
    struct sched *s = weft_sched_tls;
    if (s && s->cur) {
        errno = EPERM;
        return -1;
    }
    weft_attr a = attr ? *attr : (weft_attr){ 0 };
    a.detached = 1;
    a.daemon = 0;
    if (!a.name)
        a.name = "main";
    if (!weft_spawn_at(&a, fn, arg, "weft_main", 0))
        return -1;
    return weft_run();
}

int weft_main(void *(*fn)(void *), void *arg)
{
    return weft_main_attr(NULL, fn, arg);
}

/* ---- the task calls ------------------------------------------------------------------------ */

weft_task *weft_self(void)
{
    struct sched *s = weft_sched_tls;
    return s && s->cur ? s->cur->handle : NULL;
}

uint64_t weft_id(const weft_task *h)
{
    const struct weft_task *t = h ? task_of(h) : self_rec();
    return t ? t->id : 0;
}

int weft_set_name(weft_task *h, const char *name)
{
    struct weft_task *t = task_or_self(h);
    if (!t)
        return -1;
    t->name[0] = '\0';
    if (name) {
        strncpy(t->name, name, WEFT_NAME_MAX - 1);
        t->name[WEFT_NAME_MAX - 1] = '\0';
    }
    return 0;
}

const char *weft_name(const weft_task *h)
{
    const struct weft_task *t = h ? task_of(h) : self_rec();
    return t ? t->name : NULL;
}

int weft_set_data(weft_task *h, void *p)
{
    struct weft_task *t = task_or_self(h);
    if (!t)
        return -1;
    t->data = p;
    return 0;
}

void *weft_data(const weft_task *h)
{
    const struct weft_task *t = task_or_self(h);
    return t ? t->data : NULL;
}

int weft_runnable(void)
{
    struct sched *s = weft_sched_tls;
    if (!s)
        return 0;
    return s->nrunq > INT_MAX ? INT_MAX : (int)s->nrunq;
}

int weft_join(weft_task *t, void **value)
{
    return weft_join_until(t, value, -1);
}

/* Is someone joining t already: a task parked on it, or the main context? */
static int being_joined(const struct sched *s, const struct weft_task *t)
{
    return !list_empty(&t->joiners) || t == s->main_joins;
}

int weft_join_until(weft_task *h, void **value, int64_t deadline)
{
    struct weft_task *t = task_of(h);
    if (slow(!t))
        return -1;
    struct sched *s = weft_sched_tls;
    if (slow(t == s->cur)) {        /* whoever else may be joining us */
        errno = EDEADLK;
        return -1;
    }
    if (slow((t->flags & TF_DETACHED) || being_joined(s, t))) {
        errno = EINVAL;
        return -1;
    }
    if (t->state != TS_DONE) {
        int e;
        if (s->cur) {
            s->cur->wait_obj = t;
            e = weft_sched_park(s, &t->joiners, 0, WAIT_JOIN, deadline);
        } else if (deadline >= 0 && deadline <= weft_now()) {
            e = ETIMEDOUT;
        } else {
            s->main_joins = t;
            s->main_deadline = deadline;
            e = weft_sched_run(s, t, deadline, 0);
            s->main_joins = NULL;
            s->main_deadline = -1;
        }
        if (e) {
            errno = e;
            return -1;
        }
    }
    if (value)
        *value = t->result;
    weft_sched_release(s, t);
    return 0;
}

int weft_detach(weft_task *h)
{
    struct weft_task *t = task_of(h);
    if (!t)
        return -1;
    struct sched *s = weft_sched_tls;
    if ((t->flags & TF_DETACHED) || being_joined(s, t)) {
        errno = EINVAL;
        return -1;
    }
    t->flags |= TF_DETACHED;
    if (t->state == TS_DONE)
        weft_sched_release(s, t);
    return 0;
}

/* Mark t cancelled and wake it if it is parked; nothing for an ended task. */
void weft_task_cancel(struct sched *s, struct weft_task *t)
{
    if (t->state == TS_DONE)
        return;
    t->flags |= TF_CANCELLED;
    if (t->state == TS_WAITING)
        weft_sched_wake(s, t, ECANCELED);
}

int weft_cancel(weft_task *h)
{
    struct weft_task *t = task_of(h);
    if (!t)
        return -1;
    weft_task_cancel(weft_sched_tls, t);
    return 0;
}

int weft_sleep(int64_t ms)
{
    if (ms <= 0) {
        struct sched *s = weft_sched_tls;
        if (!s || !s->cur)
            return 0;
        return weft_yield();
    }
    return weft_sleep_until(weft_deadline_after(ms));
}

int weft_sleep_until(int64_t deadline)
{
    struct sched *s = weft_sched_tls;
    if (!s || !s->cur) {
        if (deadline < 0) {
            errno = EINVAL;   /* sleeping the thread forever is never what was meant */
            return -1;
        }
        struct timespec ts = { .tv_sec = deadline / 1000, .tv_nsec = (deadline % 1000) * 1000000 };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        return 0;
    }
    /* A timeout is success, unless the task's deadline scope ended the sleep early. */
    int64_t scope = s->cur->deadline;
    int cut = scope >= 0 && (deadline < 0 || scope < deadline);
    int e = weft_sched_park(s, NULL, 0, WAIT_SLEEP, deadline);
    if (e == 0 || (e == ETIMEDOUT && !cut))
        return 0;
    errno = e;
    return -1;
}

int64_t weft_set_task_deadline(int64_t deadline)
{
    struct sched *s = weft_sched_tls;
    if (!s || !s->cur)
        return -1;
    int64_t old = s->cur->deadline;
    s->cur->deadline = deadline < 0 ? -1 : deadline;
    return old;
}

/* The library's version, as configure had it (PACKAGE_VERSION, which configure.ac takes from
 * WEFT_VERSION in weft.h): a program compares it with the WEFT_VERSION it was built with. */
const char *weft_version(void)
{
    return PACKAGE_VERSION;
}

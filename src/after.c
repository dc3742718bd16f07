/* Delayed calls (weft_after, weft_at): a timer that, when due, runs fn(arg) as a new task.
 * An armed timer is one entry of the scheduler's call timers (struct sched_call), not a task:
 * no stack until it fires, and pushing it back re-keys the entry. The timers and
 * its firing are the scheduler's; this file owns the records and their states. */
#include "config.h"
#include "sched.h"

#include <errno.h>
#include <stdlib.h>

struct weft_timer {
    struct sched_call call;     /* first: armed while call.timer is */
    struct sched *s;            /* the scheduler it is armed in; NULL when not armed */
    void *(*fn)(void *);
    void *arg;
    const char *file;           /* where it was armed: the spawned task's spawn site */
    int line;
    int fired;                  /* fired since it was last armed */
};

#define RETRY_MS 10             /* a firing whose task could not be spawned tries again */

/* The hook the scheduler calls when the timer is due: the task, detached, named "timer". */
static void fire(struct sched *s, struct sched_call *c)
{
    weft_timer *t = (weft_timer *)(void *)c;
    weft_attr a = { .detached = 1, .name = "timer" };
    if (slow(!weft_spawn_at(&a, t->fn, t->arg, t->file, t->line))) {
        if (weft_timer_add(&s->calls, &t->call.timer, weft_now() + RETRY_MS) == 0)
            return;
    }
    t->s = NULL;
    t->fired = 1;
}

/* Arm t in this thread's scheduler for deadline; 0 or -1 with errno. */
static int arm(weft_timer *t, int64_t deadline)
{
    struct sched *s = weft_sched_get();
    if (slow(!s))
        return -1;
    if (weft_timer_add(&s->calls, &t->call.timer, deadline) != 0)
        return -1;
    t->s = s;
    t->fired = 0;
    return 0;
}

weft_timer *weft_timer_at(int64_t deadline, void *(*fn)(void *), void *arg, const char *file,
                          int line)
{
    if (slow(!fn || deadline < 0)) {
        errno = EINVAL;
        return NULL;
    }
    weft_timer *t = malloc(sizeof *t);
    if (slow(!t))
        return NULL;
    t->call.timer.idx = 0;
    t->call.fire = fire;
    t->fn = fn;
    t->arg = arg;
    t->file = file;
    t->line = line;
    if (slow(arm(t, deadline) != 0)) {
        int e = errno;
        free(t);
        errno = e;
        return NULL;
    }
    return t;
}

weft_timer *weft_timer_after(int64_t ms, void *(*fn)(void *), void *arg, const char *file,
                             int line)
{
    if (slow(ms < 0)) {
        errno = EINVAL;
        return NULL;
    }
    return weft_timer_at(weft_deadline_after(ms), fn, arg, file, line);
}

/* t is armed in another thread's scheduler: only that thread may touch it. */
static int foreign(const weft_timer *t)
{
    return timer_armed(&t->call.timer) && t->s != weft_sched_tls;
}

int weft_timer_reset(weft_timer *t, int64_t deadline)
{
    if (slow(!t || deadline < 0)) {
        errno = EINVAL;
        return -1;
    }
    if (slow(foreign(t))) {
        errno = EPERM;
        return -1;
    }
    if (fast(timer_armed(&t->call.timer))) {
        weft_timer_rekey(&t->s->calls, &t->call.timer, deadline);
        return 0;
    }
    return arm(t, deadline);
}

int weft_timer_stop(weft_timer *t)
{
    if (slow(!t)) {
        errno = EINVAL;
        return -1;
    }
    if (slow(foreign(t))) {
        errno = EPERM;
        return -1;
    }
    int fired = t->fired;
    if (timer_armed(&t->call.timer))
        weft_timer_cancel(&t->s->calls, &t->call.timer);
    free(t);
    return fired;
}

int weft_timer_fired(const weft_timer *t)
{
    if (slow(!t)) {
        errno = EINVAL;
        return -1;
    }
    return t->fired;
}

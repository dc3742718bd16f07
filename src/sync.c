/* The sync primitives on the wait queue of park.c: mutex (FIFO hand-off), condition
 * variable, wait group and counting semaphore. Each hands what a waiter waits for straight
 * to it when it wakes it, so a woken waiter never competes again, and one that timed out or
 * was cancelled is off the queue already (the scheduler took it off). Task groups: group.c. */
#include "config.h"
#include "sync.h"

#include <errno.h>
#include <limits.h>

/* Fail with e: -1 and errno. */
static inline int fail(int e)
{
    errno = e;
    return -1;
}

/* The running task's record, or NULL outside any task. */
static inline struct weft_task *running(struct sched **sp)
{
    struct sched *s = weft_sched_tls;
    *sp = s;
    return s ? s->cur : NULL;
}

static int destroy(weft_waitq *q, int busy)
{
    if (!wq_ok(q))
        return -1;
    if (busy || q->n_ != 0)
        return fail(EBUSY);
    q->dead_ = WQ_DEAD;
    return 0;
}

static int init(weft_waitq *q, const char *name)
{
    return weft_waitq_init(q, name);
}

/* ---- mutex --------------------------------------------------------------------------------- */

int weft_mutex_init(weft_mutex *m, const char *name)
{
    if (!m)
        return fail(EINVAL);
    m->owner_ = NULL;
    m->owner_id_ = 0;
    return init(&m->q_, name);
}

int weft_mutex_destroy(weft_mutex *m)
{
    return destroy(m ? &m->q_ : NULL, m && m->owner_ != NULL);
}

static inline void take(weft_mutex *m, const struct weft_task *t)
{
    m->owner_ = t->handle;
    m->owner_id_ = t->id;
}

int weft_mutex_lock(weft_mutex *m, int64_t deadline)
{
    if (slow(!wq_ok(m ? &m->q_ : NULL)))
        return -1;
    struct sched *s;
    struct weft_task *t = running(&s);
    if (slow(!t))
        return fail(EPERM);
    if (fast(m->owner_ == NULL)) {
        take(m, t);
        return 0;
    }
    if (slow(m->owner_ == t->handle))
        return fail(EDEADLK);
    int e = weft_wq_park(s, &m->q_, 0, WAIT_LOCK, "lock", deadline);
    if (slow(e != 0))
        return fail(e);
    return 0;                   /* the unlocker made us the owner */
}

int weft_mutex_unlock(weft_mutex *m)
{
    if (slow(!wq_ok(m ? &m->q_ : NULL)))
        return -1;
    struct sched *s;
    struct weft_task *t = running(&s);
    if (slow(!t || m->owner_ != t->handle))
        return fail(EPERM);
    struct weft_task *next = weft_wq_wake_one(s, &m->q_);
    if (next) {
        take(m, next);
    } else {
        m->owner_ = NULL;
        m->owner_id_ = 0;
    }
    return 0;
}

uint64_t weft_mutex_holder(const weft_mutex *m)
{
    return m ? m->owner_id_ : 0;
}

/* Lock m whatever comes: no deadline, and a cancel neither ends the wait nor is lost. A
 * waiter a cancel took off the queue goes back at its head: it was there before the ones
 * behind it. */
static void relock(struct sched *s, struct weft_task *t, weft_mutex *m)
{
    int front = 0;
    while (m->owner_ != NULL) {
        if (weft_wq_park_hard(s, &m->q_, front, WAIT_LOCK, "relock") == 0)
            return;             /* handed over */
        front = 1;
    }
    take(m, t);
}

/* ---- condition variable ----------------------------------------------------------------- */

int weft_cond_init(weft_cond *c, const char *name)
{
    if (!c)
        return fail(EINVAL);
    c->mutex_ = NULL;
    return init(&c->q_, name);
}

int weft_cond_destroy(weft_cond *c)
{
    return destroy(c ? &c->q_ : NULL, 0);
}

int weft_cond_wait(weft_cond *c, weft_mutex *m, int64_t deadline)
{
    if (slow(!wq_ok(c ? &c->q_ : NULL) || !wq_ok(m ? &m->q_ : NULL)))
        return -1;
    struct sched *s;
    struct weft_task *t = running(&s);
    if (slow(!t || m->owner_ != t->handle))
        return fail(EPERM);
    if (slow(c->q_.n_ > 0 && c->mutex_ != m))
        return fail(EINVAL);
    /* What would fail at once does so before m is let go. */
    if (slow(t->flags & TF_CANCELLED))
        return fail(ECANCELED);
    if (t->deadline >= 0 && (deadline < 0 || t->deadline < deadline))
        deadline = t->deadline;
    if (slow(deadline_past(deadline)))
        return fail(ETIMEDOUT);
    c->mutex_ = m;
    /* Unlock and park with no switch between: nobody can signal in the gap. */
    struct weft_task *next = weft_wq_wake_one(s, &m->q_);
    if (next) {
        take(m, next);
    } else {
        m->owner_ = NULL;
        m->owner_id_ = 0;
    }
    int e = weft_wq_park(s, &c->q_, 0, WAIT_COND, "wait", deadline);
    relock(s, t, m);
    if (slow(e != 0))
        return fail(e);
    return 0;
}

static int cond_wake(weft_cond *c, int all)
{
    if (slow(!wq_ok(c ? &c->q_ : NULL)))
        return -1;
    struct sched *s = weft_sched_tls;
    if (!s || list_empty(wq_list(&c->q_)))
        return 0;
    if (!all)
        return weft_wq_wake_one(s, &c->q_) != NULL;
    long n = weft_wq_wake_all(s, &c->q_);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int weft_cond_signal(weft_cond *c)
{
    return cond_wake(c, 0);
}

int weft_cond_broadcast(weft_cond *c)
{
    return cond_wake(c, 1);
}

/* ---- wait group -------------------------------------------------------------------------- */

int weft_wg_init(weft_wg *wg, const char *name)
{
    if (!wg)
        return fail(EINVAL);
    wg->count_ = 0;
    return init(&wg->q_, name);
}

int weft_wg_destroy(weft_wg *wg)
{
    return destroy(wg ? &wg->q_ : NULL, 0);
}

int weft_wg_add(weft_wg *wg, long n)
{
    if (slow(!wq_ok(wg ? &wg->q_ : NULL)))
        return -1;
    long c = wg->count_;
    if (slow(n < 0 ? n < -c : c > LONG_MAX - n))   /* c >= 0: -c cannot overflow */
        return fail(n < 0 ? EINVAL : EOVERFLOW);
    wg->count_ = c + n;
    if (wg->count_ == 0 && wg->q_.n_ > 0)
        weft_wq_wake_all(weft_sched_tls, &wg->q_);
    return 0;
}

int weft_wg_done(weft_wg *wg)
{
    return weft_wg_add(wg, -1);
}

int weft_wg_wait(weft_wg *wg, int64_t deadline)
{
    if (slow(!wq_ok(wg ? &wg->q_ : NULL)))
        return -1;
    if (wg->count_ == 0)
        return 0;
    struct sched *s;
    struct weft_task *t = running(&s);
    if (slow(!t))
        return fail(deadline_past(deadline) ? ETIMEDOUT : EPERM);
    int e = weft_wq_park(s, &wg->q_, 0, WAIT_WG, "wait", deadline);
    return slow(e != 0) ? fail(e) : 0;
}

/* ---- semaphore --------------------------------------------------------------------------- */

int weft_sem_init(weft_sem *sem, long count, const char *name)
{
    if (!sem || count < 0)
        return fail(EINVAL);
    sem->count_ = count;
    return init(&sem->q_, name);
}

int weft_sem_destroy(weft_sem *sem)
{
    return destroy(sem ? &sem->q_ : NULL, 0);
}

int weft_sem_acquire(weft_sem *sem, int64_t deadline)
{
    if (slow(!wq_ok(sem ? &sem->q_ : NULL)))
        return -1;
    if (fast(sem->count_ > 0)) {        /* a free permit means nobody waits: release hands off */
        sem->count_--;
        return 0;
    }
    struct sched *s;
    struct weft_task *t = running(&s);
    if (slow(!t))
        return fail(deadline_past(deadline) ? ETIMEDOUT : EPERM);
    int e = weft_wq_park(s, &sem->q_, 0, WAIT_SEM, "acquire", deadline);
    return slow(e != 0) ? fail(e) : 0;  /* 0: the releaser gave us its permit */
}

int weft_sem_release(weft_sem *sem)
{
    if (slow(!wq_ok(sem ? &sem->q_ : NULL)))
        return -1;
    if (sem->q_.n_ > 0 && weft_wq_wake_one(weft_sched_tls, &sem->q_))
        return 0;
    if (slow(sem->count_ == LONG_MAX))
        return fail(EOVERFLOW);
    sem->count_++;
    return 0;
}

long weft_sem_value(const weft_sem *sem)
{
    if (!sem)
        return fail(EINVAL);
    return sem->count_;
}

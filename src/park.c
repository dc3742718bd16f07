/* The sync layer's base: a wait queue of parked tasks (weft_waitq), the public park/unpark
 * pair on it, and what the dump says of a task parked by this layer. The primitives
 * (sync.c, group.c) stand on the same calls; parking and waking are the scheduler's. */
#include "config.h"
#include "sync.h"

#include <errno.h>
#include <limits.h>

/* The dump's view of a task parked by this layer (see struct wait_info): only reads memory,
 * as it may run in a signal handler. Every primitive starts with its weft_waitq, which is
 * what t->wait_obj points at. */
void weft_wq_info(const struct weft_task *t, struct wait_info *out)
{
    const weft_waitq *q = t->wait_obj;
    out->op = t->wait_op;
    out->name = q->name;
    out->waiting = q->n_;
    out->holder = t->wait_kind == WAIT_LOCK ? ((const weft_mutex *)(const void *)q)->owner_id_ : 0;
}

int weft_wq_park_hard(struct sched *s, weft_waitq *q, int front, int kind, const char *op)
{
    struct weft_task *t = s->cur;
    unsigned char had = t->flags & TF_CANCELLED;
    int64_t scope = t->deadline;
    t->flags &= (unsigned char)~TF_CANCELLED;
    t->deadline = -1;
    int e = weft_wq_park(s, q, front, kind, op, -1);
    t->flags |= had;            /* a cancel that came meanwhile has set the flag itself */
    t->deadline = scope;
    return e;
}

long weft_wq_wake_all(struct sched *s, weft_waitq *q)
{
    long n = 0;
    while (weft_wq_wake_one(s, q))
        n++;
    return n;
}

/* ---- the public pair ----------------------------------------------------------------------- */

int weft_waitq_init(weft_waitq *q, const char *name)
{
    if (!q) {
        errno = EINVAL;
        return -1;
    }
    q->q_[0] = q->q_[1] = NULL;
    q->n_ = 0;
    q->name = name;
    q->dead_ = 0;
    return 0;
}

int weft_park(weft_waitq *q, const char *reason, int64_t deadline)
{
    if (slow(!wq_ok(q)))
        return -1;
    struct sched *s = weft_sched_tls;
    if (slow(!s || !s->cur)) {
        errno = EPERM;
        return -1;
    }
    int e = weft_wq_park(s, q, 0, WAIT_USER, reason, deadline);
    if (slow(e != 0)) {
        errno = e;
        return -1;
    }
    return 0;
}

/* Wake one or all of q's tasks; the count, as an int. */
static int unpark(weft_waitq *q, int all)
{
    if (slow(!wq_ok(q)))
        return -1;
    struct sched *s = weft_sched_tls;
    if (!s || list_empty(wq_list(q)))   /* no scheduler: nobody can be parked */
        return 0;
    if (!all)
        return weft_wq_wake_one(s, q) != NULL;
    long n = weft_wq_wake_all(s, q);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int weft_unpark_one(weft_waitq *q)
{
    return unpark(q, 0);
}

int weft_unpark_all(weft_waitq *q)
{
    return unpark(q, 1);
}

long weft_waitq_waiting(const weft_waitq *q)
{
    if (!q) {
        errno = EINVAL;
        return -1;
    }
    return q->n_;
}

/* The sync layer's shared internals: a public wait queue seen as a scheduler wait list, and
 * parking on one with what the dump should say. park.c has them and the public pair
 * (weft_park, weft_unpark_*); sync.c and group.c build the primitives on them. */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include "sched.h"

#define WQ_DEAD 0xdeadu         /* weft_waitq.dead_ after a destroy call */

/* q's tasks as a scheduler wait list, made an empty list on first use (all zero is empty). */
static inline struct list *wq_list(weft_waitq *q)
{
    struct list *l = (struct list *)(void *)q->q_;
    if (slow(l->next == NULL))
        list_init(l);
    return l;
}

/* Is q (the start of a primitive) usable: not NULL, not destroyed? Sets EINVAL when not. */
static inline int wq_ok(const weft_waitq *q)
{
    if (slow(q == NULL || q->dead_ == WQ_DEAD)) {
        errno = EINVAL;
        return 0;
    }
    return 1;
}

/* Is a deadline already past (a try, then)? */
static inline int deadline_past(int64_t deadline)
{
    return deadline >= 0 && deadline <= weft_now();
}

/* What the dump says of a task parked by this layer (park.c). */
wait_info_fn weft_wq_info;

/* Park the running task on q (at the tail, or the head when 'front') with wait kind 'kind',
 * op for the dump, and obj (the primitive q starts). Returns 0 when a waker of this layer
 * woke it (having taken it off q and counted it out), else the errno: the task is then off
 * q and counted out too, and its wait fields are clear. Inline: every wait's slow path. */
static inline __attribute__((always_inline)) int
weft_wq_park(struct sched *s, weft_waitq *q, int front, int kind,
             const char *op, int64_t deadline)
{
    struct weft_task *t = s->cur;
    struct list *l = wq_list(q);
    t->wait_obj = q;
    t->wait_op = op;
    t->wait_info = weft_wq_info;
    q->n_++;
    int e = sched_park(s, l, front, kind, deadline);
    if (slow(e != 0)) {
        /* Woken by a timer or a cancel (the scheduler took it off q), or never parked. */
        q->n_--;
        t->wait_obj = NULL;
        t->wait_info = NULL;
    }
    return e;
}

/* weft_wq_park, but neither a cancel nor the task's deadline scope ends the wait (a cancel
 * that comes meanwhile wakes it with ECANCELED and stays pending): for what must complete.
 * No deadline, so the only codes are 0 and ECANCELED. */
int weft_wq_park_hard(struct sched *s, weft_waitq *q, int front, int kind, const char *op);
/* Take the first task off q, count it out and make it runnable with code 0; returns its
 * record, or NULL when none waits. */
static inline struct weft_task *weft_wq_wake_one(struct sched *s, weft_waitq *q)
{
    struct list *l = wq_list(q);
    if (list_empty(l))
        return NULL;
    struct weft_task *t = list_entry(l->next, struct waiter, link)->task;
    q->n_--;
    weft_sched_wake(s, t, 0);
    return t;
}

/* The same for every task on q; returns how many. */
long weft_wq_wake_all(struct sched *s, weft_waitq *q);

#endif

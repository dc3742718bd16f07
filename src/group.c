/* Task groups (structured concurrency): members spawned through a small record of this
 * file, which runs the user's function and then counts the member out; failure and cancel
 * cancel every member, and a wait lasts until each has ended. Spawning and cancelling are
 * the scheduler's; waiting is park.c's. */
#include "config.h"
#include "sync.h"

#include <errno.h>
#include <stdlib.h>

/* One member: what to run, and its place on the group's list until it ends. */
struct member {
    struct list link;
    weft_group *g;
    void *(*fn)(void *);
    void *arg;
    weft_task *task;
};

static inline int fail(int e)
{
    errno = e;
    return -1;
}

static struct list *members(weft_group *g)
{
    struct list *l = (struct list *)(void *)g->members_;
    if (slow(l->next == NULL))
        list_init(l);
    return l;
}

int weft_group_init(weft_group *g, const char *name)
{
    if (!g)
        return fail(EINVAL);
    g->members_[0] = g->members_[1] = NULL;
    g->n_ = 0;
    g->err_ = 0;
    return weft_waitq_init(&g->q_, name);
}

int weft_group_destroy(weft_group *g)
{
    if (!wq_ok(g ? &g->q_ : NULL))
        return -1;
    if (g->n_ != 0 || g->q_.n_ != 0)
        return fail(EBUSY);
    g->q_.dead_ = WQ_DEAD;
    return 0;
}

long weft_group_size(const weft_group *g)
{
    if (!g)
        return fail(EINVAL);
    return g->n_;
}

/* A member's body: the user's function, then out of the group; the last one out wakes the
 * waiters. Its return value is not a verdict (weft_group_fail is). */
static void member_end(struct member *mb)
{
    weft_group *g = mb->g;
    list_remove(&mb->link);
    free(mb);
    if (--g->n_ == 0)
        weft_wq_wake_all(weft_sched_tls, &g->q_);
}

/* A member that calls weft_exit leaves the group all the same. */
static void member_exit(struct weft_task *t, void *value)
{
    (void)value;
    t->exit_hook = NULL;
    member_end(t->arg);
}

static void *member_main(void *p)
{
    struct member *mb = p;
    weft_sched_tls->cur->exit_hook = member_exit;
    mb->fn(mb->arg);
    weft_sched_tls->cur->exit_hook = NULL;
    member_end(mb);
    return NULL;
}

weft_task *weft_group_spawn_at(weft_group *g, const weft_attr *attr, void *(*fn)(void *),
                               void *arg, const char *file, int line)
{
    if (!wq_ok(g ? &g->q_ : NULL))
        return NULL;
    if (!fn) {
        errno = EINVAL;
        return NULL;
    }
    if (g->err_) {
        errno = ECANCELED;
        return NULL;
    }
    struct member *mb = malloc(sizeof *mb);
    if (!mb) {
        errno = ENOMEM;
        return NULL;
    }
    weft_attr a = attr ? *attr : (weft_attr){ 0 };
    a.detached = 1;
    int now = a.run_now;
    a.run_now = 0;              /* the member runs once its record is filled in, below */
    weft_task *h = weft_spawn_at(&a, member_main, mb, file, line);
    if (!h) {
        int e = errno;
        free(mb);
        errno = e;
        return NULL;
    }
    mb->g = g;
    mb->fn = fn;
    mb->arg = arg;
    mb->task = h;
    list_push_back(members(g), &mb->link);
    g->n_++;
    if (now) {
        struct sched *s = weft_sched_tls;
        weft_sched_run_now(s, handle_rec(s, h));
    }
    return h;
}

int weft_group_fail(weft_group *g, int err)
{
    if (!wq_ok(g ? &g->q_ : NULL))
        return -1;
    if (err <= 0)
        return fail(EINVAL);
    if (g->err_)
        return 0;               /* the first failure stands; its cancels are made */
    g->err_ = err;
    struct sched *s = weft_sched_tls;
    struct list *it;
    list_for_each(it, members(g)) {
        struct member *mb = list_entry(it, struct member, link);
        struct weft_task *t = handle_rec(s, mb->task);
        if (t)
            weft_task_cancel(s, t);     /* wakes it; nothing runs until we switch */
    }
    return 0;
}

int weft_group_cancel(weft_group *g)
{
    return weft_group_fail(g, ECANCELED);
}

/* Is t one of g's members? */
static int is_member(weft_group *g, const struct weft_task *t)
{
    struct list *it;
    list_for_each(it, members(g))
        if (list_entry(it, struct member, link)->task == t->handle)
            return 1;
    return 0;
}

int weft_group_wait(weft_group *g, int64_t deadline)
{
    if (!wq_ok(g ? &g->q_ : NULL))
        return -1;
    struct sched *s = weft_sched_tls;
    struct weft_task *t = s ? s->cur : NULL;
    if (g->n_ > 0 && !t)
        return fail(EPERM);
    if (g->n_ > 0 && is_member(g, t))
        return fail(EDEADLK);
    while (g->n_ > 0) {         /* a member may spawn more before we run again: look again */
        int e = weft_wq_park(s, &g->q_, 0, WAIT_WG, "group", deadline);
        if (e == 0)
            continue;
        if (e != ETIMEDOUT && e != ECANCELED)
            return fail(e);     /* ENOMEM: nothing was waited for; the members run on */
        weft_group_fail(g, e);  /* no member outlives the wait: end them, then wait */
        while (g->n_ > 0)
            weft_wq_park_hard(s, &g->q_, 0, WAIT_WG, "group");
    }
    return g->err_ ? fail(g->err_) : 0;
}

/* The scheduler's core: task records and handles, spawn, switch, yield and exit, park and
 * wake, the direct switch generators use, and the loop behind weft_run (the scheduler's
 * creation and teardown and the colder task calls are task.c's). Stacks come from stack.c,
 * deadlines from timer.c; IO readiness comes from whatever filled in s->poller (the reactor,
 * when it is made), which the loop polls. What each task waits on is kept here for the dump.
 * Tasks switch directly to the next runnable task; the main context runs only to block.
 * This file calls only the layers above it (context, stacks, timers). */
#include "config.h"
#include "sched.h"
#include "sys.h"

#include <errno.h>
#if defined(WEFT_ASAN)
#include <sanitizer/lsan_interface.h>
/* A record on a stack (mmap'd memory, which LeakSanitizer does not scan) is announced as a
 * root: what only a task's record points to (its argument, what it waits on) is not leaked. */
#define rec_announce(t) __lsan_register_root_region((t), REC_ROOM)
#define rec_withdraw(t) __lsan_unregister_root_region((t), REC_ROOM)
#else
#define rec_announce(t) ((void)(t))
#define rec_withdraw(t) ((void)(t))
#endif

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOTS_FIRST 64      /* handle table entries at first; it doubles when full */
#define SLOTS_SPARE 64      /* free slots kept aside before one is reused (slot_bind) */
/* Room for the record at the top of each stack, a cache-line multiple (the stack below it
 * keeps its 16-byte alignment). */
#define REC_ROOM ((sizeof(struct weft_task) + 63) & ~(size_t)63)

_Static_assert(sizeof(uintptr_t) == sizeof(uint64_t), "a handle is a 64-bit value in a pointer");

TLS struct sched *weft_sched_tls;

size_t weft_page_size;

static void task_entry(void);

/* ---- scheduler lifetime (the rest is task.c's) ----------------------------------------------- */

/* The generation a new scheduler's slots start at: above every one the thread's earlier
 * schedulers gave out, so a handle kept across weft_run's teardown is stale too. */
static TLS uint32_t gen_floor;

void weft_sched_free_records(struct sched *s)
{
    /* Each record is on its task's stack: read the next link before the stack goes. */
    for (struct list *it = s->all.next, *next; it != &s->all; it = next) {
        next = it->next;
        struct weft_task *t = list_entry(it, struct weft_task, all);
        ctx_release(&t->ctx);
        rec_withdraw(t);
        struct stack st = t->stack;
        weft_stack_free(&st);
    }
    list_init(&s->all);
    for (uint32_t i = 0; i < s->nslots; i++)
        if (s->slots[i].gen >= gen_floor)
            gen_floor = s->slots[i].gen + 1;
    free(s->slots);
}

/* ---- handles ----------------------------------------------------------------------------- */

static inline weft_task *handle_make(uint32_t slot, uint32_t gen)
{
    return (weft_task *)(uintptr_t)(((uint64_t)gen << 32) | ((uint64_t)slot + 1));
}

/* A slot never used before: the table grows when full. SLOT_NONE when there is no memory. */
static __attribute__((noinline)) uint32_t slot_new(struct sched *s)
{
    if (s->slots_used == s->nslots) {
        uint32_t old = s->nslots;
        if (old > UINT32_MAX / 4)
            return SLOT_NONE;
        uint32_t n = old ? old * 2 : SLOTS_FIRST;
        struct task_slot *sl = realloc(s->slots, (size_t)n * sizeof *sl);
        if (!sl)
            return SLOT_NONE;
        for (uint32_t i = old; i < n; i++) {
            sl[i].rec = NULL;
            sl[i].gen = gen_floor;
            sl[i].next = SLOT_NONE;
        }
        s->slots = sl;
        s->nslots = n;
    }
    return s->slots_used++;
}

/* A spawn takes a slot and names the record through it with the slot's current generation;
 * the release bumps the generation, so every handle to the ended task goes stale at once.
 * Released slots are reused FIFO, and only once more than SLOTS_SPARE are free, so a slot's
 * generation only comes round again after 2^32 tasks have had that slot, each time after
 * at least SLOTS_SPARE others: a handle goes on naming no task for at least 2^38 spawns. */
static inline int slot_bind(struct sched *s, struct weft_task *t)
{
    uint32_t i = s->free_head;
    if (fast(s->nfree > SLOTS_SPARE)) {
        s->free_head = s->slots[i].next;
        s->nfree--;
    } else if ((i = slot_new(s)) == SLOT_NONE) {
        if (s->nfree == 0)
            return -1;
        i = s->free_head;   /* no memory for a new slot: an old one will do */
        s->free_head = s->slots[i].next;
        s->nfree--;
    }
    if (s->nfree == 0)
        s->free_tail = SLOT_NONE;
    struct task_slot *sl = &s->slots[i];
    sl->rec = t;
    t->slot = i;
    t->handle = handle_make(i, sl->gen);
    return 0;
}

static inline void slot_release(struct sched *s, struct weft_task *t)
{
    uint32_t i = t->slot;
    struct task_slot *sl = &s->slots[i];
    sl->rec = NULL;
    sl->gen++;
    sl->next = SLOT_NONE;
    if (s->free_tail == SLOT_NONE)
        s->free_head = i;
    else
        s->slots[s->free_tail].next = i;
    s->free_tail = i;
    s->nfree++;
}

/* ---- task records ------------------------------------------------------------------------ */

/* The record is on the stack it gives back: the pool copies t->stack out (the stack stays
 * mapped while pooled), and an unmap reads its fields before the call, so t->stack is handed
 * over as it is, with no copy of its own first. */
static inline __attribute__((always_inline)) void release(struct sched *s, struct weft_task *t)
{
    slot_release(s, t);
    list_remove(&t->all);
    t->state = TS_FREE;
    s->ntasks--;
    ctx_release(&t->ctx);
    rec_withdraw(t);
    weft_stack_free(&t->stack);
}

void weft_sched_release(struct sched *s, struct weft_task *t)
{
    release(s, t);
}

/* ---- switching ---------------------------------------------------------------------------- */

_Noreturn __attribute__((cold, noinline)) void weft_sched_canary_abort(struct weft_task *t)
{
    weft_task_overflow_print(t, NULL, "canary overwritten");
    abort();
}

/* Release the detached task that switched away for good: its record and its stack (a
 * joinable one keeps both until joined). Runs first thing in whichever context comes next. */
__attribute__((noinline)) void weft_sched_reap(struct sched *s)
{
    struct weft_task *t = s->dead;
    s->dead = NULL;
    release(s, t);
}

/* While tasks stay runnable, look at timers and IO without blocking now and then (sched.h's
 * switch_next). Kept out of line: it runs once in SCHED_POLL_EVERY switches, and inlined it
 * costs every switch a wider register save. */
__attribute__((noinline, cold)) void weft_sched_poll_busy(struct sched *s)
{
    s->ticks = 0;
    s->loop_now = weft_now();
    weft_sched_fire_timers(s, s->loop_now);
    if (s->nexternal && s->poller)
        s->poller->poll(s, 0);
    if (s->main_deadline >= 0 && s->loop_now >= s->main_deadline)
        s->main_due = 1;
}

/* ---- park and wake ---------------------------------------------------------------------- */

int weft_sched_park(struct sched *s, struct list *queue, int front, int kind, int64_t deadline)
{
    return sched_park(s, queue, front, kind, deadline);
}

/* The direct switch of generators (see sched.h). Inlined park_begin and unpark keep it as
 * short as a yield: no run queue, no poll. */
int weft_sched_switch_to(struct sched *s, int kind, int64_t deadline, struct weft_task *to)
{
    struct weft_task *t = s->cur;
    if (fast(t != NULL)) {
        int e = park_begin(s, t, NULL, 0, kind, deadline);
        if (slow(e != 0))
            return e;
        sched_canary_check(t);
    }
    struct ctx *from = fast(t != NULL) ? &t->ctx : &s->main;
    if (slow(!to)) {
        s->cur = NULL;
        s->main_wake = 1;
        ctx_switch(from, &s->main, 0);
    } else {
        if (fast(to->state == TS_WAITING)) {
            sched_unpark(s, to, 0);
        } else {                    /* runnable: not started yet, or woken and not yet run */
            list_remove(&to->rq);
            s->nrunq--;
        }
        sched_switch_in(s, to);
        ctx_switch(from, &to->ctx, 0);
    }
    sched_after_switch(s);
    if (fast(t != NULL))
        return t->wake_err;
    s->main_wake = s->main_due = 0;     /* main runs again: what it was due for is seen to */
    return 0;
}

int weft_sched_wake_one(struct sched *s, struct list *queue, int err)
{
    if (list_empty(queue))
        return 0;
    weft_sched_wake(s, list_entry(queue->next, struct waiter, link)->task, err);
    return 1;
}

static __attribute__((noinline)) void fire_calls(struct sched *s, int64_t now)
{
    struct timer *tm;
    while ((tm = weft_timer_pop_due(&s->calls, now)) != NULL) {
        struct sched_call *c = (struct sched_call *)((char *)tm - offsetof(struct sched_call, timer));
        c->fire(s, c);
    }
}

void weft_sched_fire_timers(struct sched *s, int64_t now)
{
    struct timer *tm;
    while ((tm = weft_timer_pop_due(&s->timers, now)) != NULL)
        weft_sched_wake(s, (struct weft_task *)((char *)tm - offsetof(struct weft_task, timer)), ETIMEDOUT);
    if (slow(s->calls.n != 0))
        fire_calls(s, now);
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* Nothing can run: wait for the event source (IO, and what comes through it) or the next
 * timer, up to ms (-1: forever). Without an event source only timers can wake anyone. */
static void idle_wait(struct sched *s, int ms)
{
    if (s->poller) {
        s->poller->poll(s, ms);
    } else if (ms > 0) {
        struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
        weft_sys_nanosleep(&ts, NULL);
    }
}

int weft_sched_run(struct sched *s, struct weft_task *until, int64_t deadline, int drain)
{
    for (;;) {
        s->main_due = 0;
        if (slow(s->main_wake) || (until && until->state == TS_DONE)) {
            s->main_wake = 0;       /* a task handed the thread back: weft_sched_switch_to */
            return 0;
        }
        if (!until && !drain && s->nalive == 0 && s->calls.n == 0)
            return 0;           /* busy background tasks don't count; armed calls do */
        if (deadline >= 0 && s->loop_now >= deadline)
            return ETIMEDOUT;
        struct list *n = sched_runq_pop(s);
        if (n) {
            struct weft_task *t = list_entry(n, struct weft_task, rq);
            sched_switch_in(s, t);
            ctx_switch(&s->main, &t->ctx, 0);
            sched_after_switch(s);
            continue;
        }
        if (!until && s->nalive == 0 && (drain || s->calls.n == 0))
            return 0;
        int64_t now = weft_now();
        s->loop_now = now;
        weft_sched_fire_timers(s, now);
        if (!list_empty(&s->runq))
            continue;
        if (deadline >= 0 && now >= deadline)
            return ETIMEDOUT;
        struct timer *first = weft_timer_first(&s->timers);
        struct timer *call = weft_timer_first(&s->calls);
        if (call && (!first || call->when < first->when))
            first = call;
        int64_t wake = first ? first->when : -1;
        if (deadline >= 0 && (wake < 0 || deadline < wake))
            wake = deadline;
        if (wake < 0 && s->nexternal == 0)
            return EDEADLK;
        int64_t ms = wake < 0 ? -1 : wake - now;
        weft_stack_pool_trim();     /* about to block: give back the excess stack memory */
        idle_wait(s, ms > INT_MAX ? INT_MAX : (int)ms);
        s->loop_now = weft_now();   /* the tasks it woke are switched in as of now */
    }
}

/* ---- tasks -------------------------------------------------------------------------------- */

static _Noreturn void task_finish(struct sched *s, struct weft_task *t, void *value)
{
    t->result = value;
    t->state = TS_DONE;
    if (!(t->flags & TF_BACKGROUND) && --s->nalive == 0)
        s->main_due = 1;        /* weft_run may be done, however busy the background is */
    if (!list_empty(&t->joiners))
        weft_sched_wake(s, list_entry(t->joiners.next, struct waiter, link)->task, 0);
    if (t->flags & TF_DETACHED)
        s->dead = t;            /* freed once off its stack; a joinable one, by the join */
    if (t == s->main_joins)
        s->main_due = 1;
    switch_next(s, t, 1);
    abort();    /* a finished task is never switched back to */
}

static void task_entry(void)
{
    struct sched *s = weft_sched_tls;
    ctx_entered(&s->main);
    sched_after_switch(s);
    struct weft_task *t = s->cur;
    task_finish(s, t, t->fn(t->arg));
}

/* Run t, runnable and on no queue, from the running task cur at once: cur goes to the front
 * of the run queue, so it resumes as soon as t blocks, yields or ends. */
static inline __attribute__((always_inline)) void
run_now(struct sched *s, struct weft_task *cur, struct weft_task *t)
{
    sched_canary_check(cur);
    cur->state = TS_RUNNABLE;
    list_push_front(&s->runq, &cur->rq);
    s->nrunq++;
    sched_switch_in(s, t);
    ctx_switch(&cur->ctx, &t->ctx, 0);
    sched_after_switch(s);
}

void weft_sched_run_now(struct sched *s, struct weft_task *t)
{
    struct weft_task *cur = s->cur;
    if (!cur || t->state != TS_RUNNABLE || t == cur)
        return;
    list_remove(&t->rq);
    s->nrunq--;
    run_now(s, cur, t);
}

/* weft_spawn_at with extra task flags (TF_SYSTEM); the handle, or NULL and errno. Inlined
 * into both callers: spawn is on the hot path. */
static inline __attribute__((always_inline)) weft_task *
spawn(const weft_attr *attr, void *(*fn)(void *), void *arg, const char *file, int line,
      unsigned flags)
{
    size_t size = WEFT_STACK_DEFAULT;
    int now = 0;
    const char *name = NULL;
    if (slow(!fn)) {
        errno = EINVAL;
        return NULL;
    }
    if (attr) {
        _Static_assert(sizeof attr->reserved == 3 * sizeof(int), "weft_attr.reserved: 3 ints");
        if (slow(attr->reserved[0] | attr->reserved[1] | attr->reserved[2])) {
            errno = EINVAL;
            return NULL;
        }
        if (attr->stack_size) {
            if (attr->stack_size < WEFT_STACK_MIN || attr->stack_size > WEFT_STACK_MAX) {
                errno = EINVAL;
                return NULL;
            }
            size = attr->stack_size;
        }
        now = attr->run_now;
        if (attr->detached)
            flags |= TF_DETACHED;
        if (attr->daemon)
            flags |= TF_DAEMON;
        name = attr->name;
    }
    struct sched *s = weft_sched_get();
    if (slow(!s))
        return NULL;
    if (slow(size != WEFT_STACK_DEFAULT))  /* the default is a page multiple already */
        size = (size + weft_page_size - 1) & ~(weft_page_size - 1);
    struct stack st;
    if (slow(weft_stack_alloc(&st, size) != 0)) {
        errno = ENOMEM;
        return NULL;
    }
    struct weft_task *t = (struct weft_task *)(stack_lo(&st) + size - REC_ROOM);
    if (slow(slot_bind(s, t) != 0)) {
        weft_stack_free(&st);
        errno = ENOMEM;
        return NULL;
    }
    t->stack = st;
    rec_announce(t);
    /* The record's memory is fresh or a past record's: everything is set here. A parked
     * task's wait links are unlinked (self-linked), its timer disarmed, its joiners empty. */
    for (int k = 0; k < 2; k++) {
        list_init(&t->wait[k].link);
        t->wait[k].task = t;
    }
    list_init(&t->joiners);
    t->timer.idx = 0;
    t->extra = NULL;
    t->nextra = 0;
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
    t->ctx = (struct ctx){ 0 };     /* the sanitizers' fields start empty */
#endif
    t->fn = fn;
    t->arg = arg;
    t->result = NULL;
    t->data = NULL;
    t->exit_hook = NULL;
    t->id = s->next_id++;
    t->parent = s->cur ? s->cur->id : 0;
    t->switches = 0;
    t->created = s->loop_now;
    t->last_run = -1;
    t->deadline = -1;
    t->wait_deadline = -1;
    t->wait_obj = NULL;
    t->wait_info = NULL;
    t->file = file;
    t->line = line;
    t->wait_fd = -1;
    t->wait_events = 0;
    t->wake_err = 0;
    t->wait_kind = WAIT_NONE;
    t->flags = (unsigned char)flags;
    t->name[0] = '\0';
    if (name) {
        strncpy(t->name, name, WEFT_NAME_MAX - 1);
        t->name[WEFT_NAME_MAX - 1] = '\0';
    }
    weft_ctx_make(&t->ctx, stack_lo(&st), size - REC_ROOM, task_entry);
    ctx_set_stack(&t->ctx, stack_lo(&st), size - REC_ROOM);
    list_push_back(&s->all, &t->all);
    s->ntasks++;
    if (!(flags & TF_BACKGROUND))
        s->nalive++;
    t->state = TS_RUNNABLE;
    weft_task *h = t->handle;   /* t may be gone once a run-now task has ended */
    if (slow(now) && s->cur)
        run_now(s, s->cur, t);
    else
        sched_runq_push(s, t);
    return h;
}

weft_task *weft_spawn_at(const weft_attr *attr, void *(*fn)(void *), void *arg, const char *file, int line)
{
    return spawn(attr, fn, arg, file, line, 0);
}

weft_task *weft_spawn_system(void *(*fn)(void *), void *arg, const char *name)
{
    weft_attr a = { .detached = 1, .name = name };
    return spawn(&a, fn, arg, __FILE__, __LINE__, TF_SYSTEM);
}

int weft_yield(void)
{
    struct sched *s = weft_sched_tls;
    if (slow(!s || !s->cur)) {
        errno = EPERM;
        return -1;
    }
    struct weft_task *t = s->cur;
    t->state = TS_RUNNABLE;
    sched_runq_push(s, t);
    switch_next(s, t, 0);
    /* A cancelled task yields all the same: a loop polling on weft_yield lets the others run. */
    if (slow(t->flags & TF_CANCELLED)) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

int weft_exit(void *value)
{
    struct sched *s = weft_sched_tls;
    if (!s || !s->cur) {
        errno = EPERM;
        return -1;
    }
    struct weft_task *t = s->cur;
    if (t->exit_hook)
        t->exit_hook(t, value);
    task_finish(s, t, value);
}

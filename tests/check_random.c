/* Randomized schedules: for each seed, a few hundred tasks on one scheduler run a random mix
 * of episodes (a few cooperating tasks each, started together and interleaved by random
 * yields and short sleeps): spawn, join, detach, cancel, sleep, fd waits on pipes and
 * socketpairs made ready by other tasks, weft_close of an fd others wait on, fd and task
 * deadlines, channels and select, mutex, cond, semaphore, wait group and wait queue. Each
 * episode is built so that what every call must return does not depend on the order the
 * tasks happen to run in (a wake-up comes only once its waiter is known to be parked, a
 * deadline is already past, or far away, or shorter than a wait nobody ends), and every call
 * is checked as it returns: no lost wake-up (every wait that should end does, and the run
 * ends with weft_run returning 0), no double or spurious wake (tokens handed out per wake
 * never go negative), every wait ending with its errno. After each seed: every task ended and
 * was joined or detached, no fd is left open (/proc/self/fd) or registered with epoll. Leaks
 * are ASan's and Valgrind's to find.
 *
 * A failure names the seed. WEFT_RANDOM_SEED=N runs seed N alone; WEFT_RANDOM_SEEDS=COUNT
 * sets how many seeds run (from WEFT_RANDOM_FIRST, default 1). The operations a seed makes
 * come from xorshift generators, one per task, seeded from the seed and the task's lineage
 * (not from the order tasks run in); the scheduler's interleaving is deterministic too, but
 * for the rare 1 ms sleeps, whose wake-ups depend on the clock: a run that sleeps may
 * interleave differently, and the choices a task makes from what it sees (a try-lock
 * when the mutex is free or not) may differ with it. */
#include "iotest.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#define SEEDS_DEFAULT 2000
#define SEEDS_VALGRIND 200
#define CHUNKS 8            /* test functions the seeds are shared among (own timeouts) */
#define MAX_ACT 24          /* tasks of one episode */
#define MAX_LEADS 120

/* ---- generators, the run's record, checks -------------------------------------------------- */

static uint64_t xs_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static unsigned rnd(uint64_t *s, unsigned n)
{
    return (unsigned)(xs_next(s) % n);
}

/* A generator state for stream k of seed (splitmix64 of both; never zero). */
static uint64_t stream(uint64_t seed, uint64_t k)
{
    uint64_t z = seed * 0x9e3779b97f4a7c15ull + k * 0xbf58476d1ce4e5b9ull + 0x94d049bb133111ebull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return z ? z : 1;
}

static struct run {
    uint64_t seed, rng;
    long ops;               /* weft calls checked */
    int tasks;              /* spawned */
    int detached, detached_ended;
    int failed;
    int root_done;
    int64_t safety;         /* every task's deadline scope: a wait nobody ends fails here */
    char msg[768];
} R;

struct ep;
struct actor {
    struct ep *ep;
    void (*fn)(struct actor *);
    int id, role;
    uint64_t rng;
    weft_task *h;
    int joinable, reaped;   /* reaped: joined or detached */
    int may_cancel;         /* a cancel victim: its yields and sleeps may fail with ECANCELED */
    int armed;              /* set just before the call another task is to end */
    int ended;
    long got;               /* a result for the lead to check */
};

static const char *const ep_names[] = {
    "basic", "join", "cancel", "pipe", "close", "fd-deadline", "task-deadline",
    "chan", "chan-close", "mutex", "cond", "sem", "wg", "park", "epipe",
};
enum { EP_BASIC, EP_JOIN, EP_CANCEL, EP_PIPE, EP_CLOSE, EP_FDDL, EP_TASKDL, EP_CHAN,
       EP_CHAN_CLOSE, EP_MUTEX, EP_COND, EP_SEM, EP_WG, EP_PARK, EP_EPIPE, EP_COUNT };

struct ep {
    int type, variant;
    struct actor *lead;
    struct actor *act[MAX_ACT];
    int nact;
    weft_wg alive;          /* the lead's helpers not yet ended */
    int fds[2];             /* the episode's pipe or socketpair (-1: closed) */
    int never[2];           /* one nobody ever writes */
    weft_chan *c, *c2;
    weft_mutex m;
    weft_cond cv;
    weft_sem sem;
    weft_wg wg;
    weft_waitq q;
    int gate;
    int n, k, cap;
    long count, items, in_cs, tokens, armed;
    unsigned char seen[128];
};

static void fail_at(const struct actor *a, int line, const char *fmt, ...)
{
    if (R.failed++)
        return;
    int n = snprintf(R.msg, sizeof R.msg,
                     "seed %llu (rerun: WEFT_RANDOM_SEED=%llu), line %d, task %d (%s episode, "
                     "variant %d, role %d): ",
                     (unsigned long long)R.seed, (unsigned long long)R.seed, line, a ? a->id : 0,
                     a && a->ep ? ep_names[a->ep->type] : "root", a && a->ep ? a->ep->variant : 0,
                     a ? a->role : 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(R.msg + n, sizeof R.msg - (size_t)n, fmt, ap);
    va_end(ap);
}
#define FAIL(a, ...) fail_at((a), __LINE__, __VA_ARGS__)
#define REQUIRE(a, cond)                                                                    \
    do {                                                                                    \
        if (!(cond))                                                                        \
            FAIL((a), "invariant broken: %s", #cond);                                       \
    } while (0)

/* A call returned r (errno e at its return); it had to return want, or, if want_err, fail
 * with want_err. Returns r. */
static long chk(struct actor *a, int line, const char *what, long r, long want, int want_err)
{
    int e = errno;
    R.ops++;
    if (want_err ? (r == -1 && e == want_err) : r == want)
        return r;
    fail_at(a, line, "%s%s: got %ld (%s), expected %ld (%s)",
            !want_err && r == -1 && e == ETIMEDOUT ? "lost wake-up: " : "", what, r,
            r == -1 ? strerror(e) : "-", want_err ? -1L : want, want_err ? strerror(want_err) : "-");
    return r;
}
#define CK(a, want, werr, expr) chk((a), __LINE__, #expr, (long)(expr), (want), (werr))
#define OK(a, expr) CK((a), 0, 0, expr)

/* A call that may fail with ECANCELED when a is a cancel victim. */
static void ok_or_cancelled(struct actor *a, int line, const char *what, int r)
{
    int e = errno;
    R.ops++;
    if (r != 0 && !(a->may_cancel && r == -1 && e == ECANCELED))
        fail_at(a, line, "%s: got %d (%s)", what, r, strerror(e));
}

/* Random yields, now and then a 1 ms sleep. */
static void jitter(struct actor *a)
{
    for (unsigned n = rnd(&a->rng, 4); n > 0; n--)
        ok_or_cancelled(a, __LINE__, "weft_yield()", weft_yield());
    if (rnd(&a->rng, 40) == 0)
        ok_or_cancelled(a, __LINE__, "weft_sleep(1)", weft_sleep(1));
}

/* Yield until *p >= v (another task's doing). */
static void await_long(struct actor *a, int line, const volatile long *p, long v)
{
    for (long i = 0; *p < v; i++) {
        if (i > 10000000) {
            fail_at(a, line, "waited for ever: %ld, wanted %ld", *p, v);
            return;
        }
        weft_yield();
    }
}
static void await_int(struct actor *a, int line, const volatile int *p, int v)
{
    for (long i = 0; *p < v; i++) {
        if (i > 10000000) {
            fail_at(a, line, "waited for ever: %d, wanted %d", *p, v);
            return;
        }
        weft_yield();
    }
}
#define AWAIT(a, p, v) _Generic(*(p), long: await_long, int: await_int)((a), __LINE__, (p), (v))

/* ---- tasks ------------------------------------------------------------------------------------ */

static void *actor_main(void *p)
{
    struct actor *a = p;
    weft_set_task_deadline(R.safety);
    a->fn(a);
    a->ended = 1;
    if (!a->joinable)
        R.detached_ended++;
    if (a != a->ep->lead)
        OK(a, weft_wg_done(&a->ep->alive));
    return (void *)(intptr_t)a->id;
}

/* key: where the actor's generator comes from, its lineage (a draw of its spawner's
 * generator; the root's for a lead), never the order tasks happen to run in. */
static struct actor *new_actor(struct ep *ep, void (*fn)(struct actor *), int role, int joinable,
                               uint64_t key)
{
    struct actor *a = calloc(1, sizeof *a);
    if (!a || ep->nact == MAX_ACT) {
        FAIL(ep->lead, "no room for an actor");
        free(a);
        return NULL;
    }
    a->ep = ep;
    a->fn = fn;
    a->role = role;
    a->id = ++R.tasks;
    a->rng = stream(R.seed, key);
    a->joinable = joinable;
    a->reaped = !joinable;
    ep->act[ep->nact++] = a;
    return a;
}

static void start(struct actor *parent, struct actor *a)
{
    a->h = weft_spawn(&(weft_attr){ .name = "actor", .detached = !a->joinable }, actor_main, a);
    R.ops++;
    if (!a->h) {
        FAIL(parent, "weft_spawn: %s", strerror(errno));
        return;
    }
    if (!a->joinable)
        R.detached++;
}

/* Spawn a helper of parent's episode; joinable -1: either, at random. */
static struct actor *spawn_actor(struct actor *parent, void (*fn)(struct actor *), int role, int joinable)
{
    struct ep *ep = parent->ep;
    if (joinable < 0)
        joinable = (int)rnd(&parent->rng, 2);
    struct actor *a = new_actor(ep, fn, role, joinable, xs_next(&parent->rng));
    if (!a)
        return NULL;
    OK(parent, weft_wg_add(&ep->alive, 1));
    start(parent, a);
    return a;
}

/* Join a (by the task that spawned it, or the lead) and check its value. */
static void join_actor(struct actor *by, struct actor *a)
{
    void *v = NULL;
    OK(by, weft_join(a->h, &v));
    if (v != (void *)(intptr_t)a->id)
        FAIL(by, "join of task %d gave %p", a->id, v);
    a->reaped = 1;
}

/* The lead's end of an episode: every helper has ended; join those nobody has. */
static void finish(struct actor *lead)
{
    struct ep *ep = lead->ep;
    OK(lead, weft_wg_wait(&ep->alive, -1));
    for (int i = 0; i < ep->nact; i++) {
        struct actor *a = ep->act[i];
        if (a == lead)
            continue;
        REQUIRE(lead, a->ended);
        if (!a->reaped)
            join_actor(lead, a);
    }
}

static void make_fds(struct actor *a, int fds[2], int sock)
{
    int r = sock ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) : pipe2(fds, O_CLOEXEC);
    if (r != 0) {
        FAIL(a, "pipe/socketpair: %s", strerror(errno));
        fds[0] = fds[1] = -1;
    }
}

static void close_fds(struct actor *a, int fds[2])
{
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0) {
            OK(a, weft_close(fds[i]));
            fds[i] = -1;
        }
}

/* ---- episodes: basic, join --------------------------------------------------------------------- */

static void basic_leaf(struct actor *a)
{
    jitter(a);
    OK(a, weft_sleep(0));
    jitter(a);
    OK(a, weft_sleep_until(weft_now() - 1));    /* the time has come: 0 */
    if (rnd(&a->rng, 3) == 0)
        OK(a, weft_sleep(1));
    jitter(a);
}

static void basic_mid(struct actor *a)
{
    struct actor *kids[3];
    int n = (int)rnd(&a->rng, 3) + 1;
    for (int i = 0; i < n; i++)
        kids[i] = spawn_actor(a, basic_leaf, 2, -1);
    jitter(a);
    for (int i = 0; i < n; i++) {
        if (!kids[i] || !kids[i]->joinable)
            continue;
        if (rnd(&a->rng, 3) == 0) {
            OK(a, weft_detach(kids[i]->h));
            kids[i]->reaped = 1;
        } else {
            join_actor(a, kids[i]);
        }
    }
}

static void ep_basic(struct actor *lead)
{
    int n = (int)rnd(&lead->rng, 5) + 1;
    for (int i = 0; i < n; i++)
        spawn_actor(lead, rnd(&lead->rng, 2) ? basic_leaf : basic_mid, 1, -1);
    basic_leaf(lead);
    finish(lead);
}

/* A child held at a gate until the lead opens it. */
static void gated(struct actor *a)
{
    struct ep *ep = a->ep;
    while (!ep->gate)
        ok_or_cancelled(a, __LINE__, "weft_park(gate)", weft_park(&ep->q, "gate", -1));
}

static void open_gate(struct actor *a)
{
    a->ep->gate = 1;
    long w = weft_waitq_waiting(&a->ep->q);
    CK(a, w, 0, weft_unpark_all(&a->ep->q));
}

static void ep_join(struct actor *lead)
{
    struct ep *ep = lead->ep;
    struct actor *c = spawn_actor(lead, gated, 1, 1);
    if (!c)
        return;
    jitter(lead);
    CK(lead, -1, ETIMEDOUT, weft_join_until(c->h, NULL, weft_now() - 1));  /* still gated */
    CK(lead, -1, EDEADLK, weft_join(weft_self(), NULL));
    if (ep->variant & 1) {      /* a timed join that cannot succeed: times out after ~1 ms */
        CK(lead, -1, ETIMEDOUT, weft_join_until(c->h, NULL, weft_now() + 1));
    }
    struct actor *d = spawn_actor(lead, basic_leaf, 2, 1);
    if (d) {
        OK(lead, weft_detach(d->h));
        d->reaped = 1;
        if (!d->ended)
            CK(lead, -1, EINVAL, weft_detach(d->h));
    }
    jitter(lead);
    open_gate(lead);
    join_actor(lead, c);
    CK(lead, -1, EINVAL, weft_join(c->h, NULL));    /* stale now */
    CK(lead, -1, EINVAL, weft_cancel(c->h));
    finish(lead);
}

/* ---- cancel ------------------------------------------------------------------------------------ */

enum { V_SLEEP, V_FDWAIT, V_READ, V_RECV, V_SEND, V_SELECT, V_LOCK, V_COND, V_SEM, V_WG,
       V_JOIN, V_PARK, V_COUNT };

static void victim(struct actor *a)
{
    struct ep *ep = a->ep;
    char b;
    long v = 0;
    a->may_cancel = 1;
    jitter(a);
    struct actor *child = NULL;
    if (ep->variant == V_JOIN)
        child = spawn_actor(a, gated, 2, 1);
    if (ep->variant == V_COND)
        OK(a, weft_mutex_lock(&ep->m, -1));     /* free: taken even when cancelled */
    a->armed = 1;
    switch (ep->variant) {
    case V_SLEEP: CK(a, -1, ECANCELED, weft_sleep_until(-1)); break;
    case V_FDWAIT: CK(a, -1, ECANCELED, weft_fdwait(ep->never[0], WEFT_READ, -1)); break;
    case V_READ: CK(a, -1, ECANCELED, weft_read(ep->never[0], &b, 1)); break;
    case V_RECV: CK(a, -1, ECANCELED, weft_chan_recv(ep->c, &v, -1)); break;
    case V_SEND: v = 7; CK(a, -1, ECANCELED, weft_chan_send(ep->c, &v, -1)); break;
    case V_SELECT: {
        weft_chan_clause cl[2] = { { ep->c, WEFT_CHAN_RECV, &v, 0 }, { ep->c2, WEFT_CHAN_RECV, &v, 0 } };
        CK(a, -1, ECANCELED, weft_chan_select(cl, 2, -1));
        break;
    }
    case V_LOCK: CK(a, -1, ECANCELED, weft_mutex_lock(&ep->m, -1)); break;
    case V_COND:
        CK(a, -1, ECANCELED, weft_cond_wait(&ep->cv, &ep->m, -1));
        CK(a, (long)weft_id(NULL), 0, (long)weft_mutex_holder(&ep->m));
        OK(a, weft_mutex_unlock(&ep->m));
        break;
    case V_SEM: CK(a, -1, ECANCELED, weft_sem_acquire(&ep->sem, -1)); break;
    case V_WG: CK(a, -1, ECANCELED, weft_wg_wait(&ep->wg, -1)); break;
    case V_JOIN:
        if (child) {
            CK(a, -1, ECANCELED, weft_join(child->h, NULL));
            OK(a, weft_detach(child->h));
            child->reaped = 1;
        }
        break;
    case V_PARK: CK(a, -1, ECANCELED, weft_park(&ep->q, "victim", -1)); break;
    }
    /* Sticky: a wait fails at once from now on; what can complete at once still does. */
    CK(a, -1, ECANCELED, weft_sleep(1));
    CK(a, -1, ECANCELED, weft_yield());
    if (ep->variant == V_RECV && ep->cap) {
        OK(a, weft_chan_recv(ep->c, &v, -1));   /* the lead sent one after the cancel */
        REQUIRE(a, v == 42);
    }
}

static void ep_cancel(struct actor *lead)
{
    struct ep *ep = lead->ep;
    int var = ep->variant;
    ep->cap = var == V_RECV ? (int)rnd(&lead->rng, 2) : 0;
    if (var == V_FDWAIT || var == V_READ)
        make_fds(lead, ep->never, (int)rnd(&lead->rng, 2));
    if (var == V_RECV || var == V_SEND || var == V_SELECT) {
        ep->c = weft_chan_make(sizeof(long), (size_t)ep->cap);
        ep->c2 = weft_chan_make(sizeof(long), 0);
        REQUIRE(lead, ep->c && ep->c2);
    }
    if (var == V_LOCK)
        OK(lead, weft_mutex_lock(&ep->m, -1));
    if (var == V_WG)
        OK(lead, weft_wg_add(&ep->wg, 1));
    /* Early: cancelled before it runs, for waits nothing else would end. */
    int early = (var == V_SLEEP || var == V_FDWAIT || var == V_READ || var == V_SELECT || var == V_PARK) &&
                rnd(&lead->rng, 2);
    struct actor *v = spawn_actor(lead, victim, 1, -1);
    if (!v)
        return;
    if (!early) {
        AWAIT(lead, &v->armed, 1);
        for (unsigned n = rnd(&lead->rng, 3); n > 0; n--)
            OK(lead, weft_yield());
    }
    REQUIRE(lead, !v->ended);
    OK(lead, weft_cancel(v->h));
    OK(lead, weft_cancel(v->h));    /* twice: nothing more */
    long x = 42;
    if (var == V_RECV && ep->cap)
        OK(lead, weft_chan_send(ep->c, &x, -1));    /* room: completes at once */
    if (var == V_LOCK)
        OK(lead, weft_mutex_unlock(&ep->m));
    if (var == V_JOIN)
        open_gate(lead);
    jitter(lead);
    finish(lead);
    /* The cancelled wait left the primitive as if it had never waited. */
    switch (var) {
    case V_SEND: CK(lead, -1, ETIMEDOUT, weft_chan_recv(ep->c, &x, 0)); break;
    case V_SEM:
        CK(lead, 0, 0, weft_sem_value(&ep->sem));
        CK(lead, 0, 0, weft_waitq_waiting(&ep->sem.q_));
        break;
    case V_WG:
        CK(lead, 0, 0, weft_waitq_waiting(&ep->wg.q_));
        OK(lead, weft_wg_done(&ep->wg));
        break;
    case V_LOCK: case V_COND: CK(lead, 0, 0, (long)weft_mutex_holder(&ep->m)); break;
    }
}

/* ---- fds: readiness, close, deadlines, EPIPE ---------------------------------------------------- */

/* One byte from the episode's read end, by a wrapper read, after an fd wait, or by readv. */
static void pipe_reader(struct actor *a)
{
    struct ep *ep = a->ep;
    int fd = ep->fds[0];
    unsigned char b = 0;
    jitter(a);
    long r;
    switch (rnd(&a->rng, 3)) {
    case 0:
        r = weft_read(fd, &b, 1);
        break;
    case 1:
        CK(a, WEFT_READ, 0, weft_fdwait(fd, WEFT_READ, rnd(&a->rng, 2) ? -1 : weft_now() + 60000));
        r = weft_read(fd, &b, 1);
        break;
    default: {
        struct iovec iov = { &b, 1 };
        r = weft_readv(fd, &iov, 1);
        break;
    }
    }
    R.ops++;
    if (r == 1) {
        ep->seen[b]++;
        ep->count++;
    } else if (r == 0) {
        ep->items++;    /* EOFs */
    } else {
        FAIL(a, "read: %ld (%s)", r, strerror(errno));
    }
}

static void pipe_writer(struct actor *a)
{
    struct ep *ep = a->ep;
    CK(a, WEFT_WRITE, 0, weft_fdwait(ep->fds[1], WEFT_WRITE, -1));     /* empty: writable */
    for (int i = 0; i < ep->k; i++) {
        jitter(a);
        unsigned char b = (unsigned char)i;
        if (ep->cap && rnd(&a->rng, 2))     /* a socketpair: send works too */
            CK(a, 1, 0, weft_send(ep->fds[1], &b, 1, 0));
        else
            CK(a, 1, 0, weft_write(ep->fds[1], &b, 1));
    }
    jitter(a);
    OK(a, weft_close(ep->fds[1]));     /* EOF for the one reader too many */
    ep->fds[1] = -1;
}

static void ep_pipe(struct actor *lead)
{
    struct ep *ep = lead->ep;
    int sock = ep->variant & 1;
    make_fds(lead, ep->fds, sock);
    ep->cap = sock;
    ep->k = (int)rnd(&lead->rng, 4) + 1;
    CK(lead, -1, ETIMEDOUT, weft_fdwait(ep->fds[0], WEFT_READ, weft_now() - 1));   /* empty */
    for (int i = 0; i <= ep->k; i++)
        spawn_actor(lead, pipe_reader, 1, -1);
    spawn_actor(lead, pipe_writer, 2, -1);
    finish(lead);
    REQUIRE(lead, ep->count == ep->k && ep->items == 1);
    for (int i = 0; i < ep->k; i++)
        if (ep->seen[i] != 1)
            FAIL(lead, "byte %d read %d times", i, ep->seen[i]);
    close_fds(lead, ep->fds);
}

static void close_waiter(struct actor *a)
{
    struct ep *ep = a->ep;
    char b;
    jitter(a);
    int how = (int)rnd(&a->rng, 3);
    ep->armed++;
    switch (how) {
    case 0: CK(a, -1, EBADF, weft_fdwait(ep->fds[0], WEFT_READ, -1)); break;
    case 1: CK(a, -1, EBADF, weft_read(ep->fds[0], &b, 1)); break;
    default: {
        struct pollfd p = { ep->fds[0], POLLIN, 0 };
        CK(a, 1, 0, weft_poll(&p, 1, -1));
        REQUIRE(a, p.revents == POLLNVAL);
        break;
    }
    }
}

static void ep_close(struct actor *lead)
{
    struct ep *ep = lead->ep;
    make_fds(lead, ep->fds, ep->variant & 1);
    ep->k = (int)rnd(&lead->rng, 3) + 1;
    for (int i = 0; i < ep->k; i++)
        spawn_actor(lead, close_waiter, 1, -1);
    AWAIT(lead, &ep->armed, ep->k);
    jitter(lead);       /* they are parked: nothing can wake them but the close */
    int fd = ep->fds[0];
    ep->fds[0] = -1;
    OK(lead, weft_close(fd));
    finish(lead);
    close_fds(lead, ep->fds);
}

/* Variant 0: a read deadline set while parked ends the wait, and fails the next read even
 * with data there; cleared, the data comes. 1: a far deadline set while parked changes
 * nothing. 2: a short fd deadline on a pipe nobody writes (fdwait or read). 3: a socket's
 * write deadline does not end a read, and fails a write at once. */
static void fddl_reader(struct actor *a)
{
    struct ep *ep = a->ep;
    int fd = ep->fds[0];
    char b;
    jitter(a);
    switch (ep->variant) {
    case 0:
        a->armed = 1;
        CK(a, -1, ETIMEDOUT, weft_read(fd, &b, 1));
        ep->count = 1;
        AWAIT(a, &ep->gate, 1);
        CK(a, -1, ETIMEDOUT, weft_read(fd, &b, 1));     /* data there, deadline past */
        ep->count = 2;
        AWAIT(a, &ep->gate, 2);
        CK(a, 1, 0, weft_read(fd, &b, 1));
        break;
    case 1:
    case 3:
        a->armed = 1;
        CK(a, 1, 0, weft_read(fd, &b, 1));
        break;
    case 2:
        if (rnd(&a->rng, 2))
            CK(a, -1, ETIMEDOUT, weft_read(fd, &b, 1));
        else
            CK(a, -1, ETIMEDOUT, weft_fdwait(fd, WEFT_READ, -1));
        break;
    }
}

static void ep_fddl(struct actor *lead)
{
    struct ep *ep = lead->ep;
    int var = ep->variant;
    make_fds(lead, ep->fds, var == 3 || (int)rnd(&lead->rng, 2));
    int rfd = ep->fds[0], wfd = ep->fds[1];
    char b = 'x';
    if (var == 2)
        OK(lead, weft_fd_set_deadline(rfd, WEFT_READ, weft_now() + 1 + (int64_t)rnd(&lead->rng, 2)));
    if (var == 3)
        OK(lead, weft_fd_set_deadline(rfd, WEFT_WRITE, weft_now() - 1));
    struct actor *r = spawn_actor(lead, fddl_reader, 1, -1);
    if (var != 2 && r)
        AWAIT(lead, &r->armed, 1);
    jitter(lead);
    switch (var) {
    case 0:
        OK(lead, weft_fd_set_deadline(rfd, WEFT_READ, weft_now() - 1));
        CK(lead, 1, 0, weft_write(wfd, &b, 1));
        AWAIT(lead, &ep->count, 1);
        ep->gate = 1;
        AWAIT(lead, &ep->count, 2);
        OK(lead, weft_fd_set_deadline(rfd, WEFT_READ, -1));
        ep->gate = 2;
        break;
    case 1:
        OK(lead, weft_fd_set_deadline(rfd, WEFT_READ | WEFT_WRITE, weft_now() + 600000));
        jitter(lead);
        CK(lead, 1, 0, weft_write(wfd, &b, 1));
        OK(lead, weft_fd_set_deadline(rfd, WEFT_READ | WEFT_WRITE, -1));
        break;
    case 3:
        CK(lead, -1, ETIMEDOUT, weft_write(rfd, &b, 1));
        CK(lead, 1, 0, weft_write(wfd, &b, 1));
        break;
    }
    finish(lead);
    CK(lead, -1, EINVAL, weft_fd_set_deadline(rfd, 0, -1));
    close_fds(lead, ep->fds);
    CK(lead, -1, EBADF, weft_fd_set_deadline(rfd, WEFT_READ, -1));
}

/* A deadline scope ending waits nobody ends: a short one (1-2 ms), or one already past. */
static void taskdl_waiter(struct actor *a)
{
    struct ep *ep = a->ep;
    char b;
    long v;
    jitter(a);
    int64_t scope = rnd(&a->rng, 3) ? weft_now() + 1 + (int64_t)rnd(&a->rng, 2) : weft_now() - 1;
    CK(a, R.safety, 0, weft_set_task_deadline(scope));
    switch (rnd(&a->rng, 7)) {
    case 0: CK(a, -1, ETIMEDOUT, weft_sleep_until(-1)); break;
    case 1: CK(a, -1, ETIMEDOUT, weft_fdwait(ep->never[0], WEFT_READ, -1)); break;
    case 2: CK(a, -1, ETIMEDOUT, weft_read(ep->never[0], &b, 1)); break;
    case 3: CK(a, -1, ETIMEDOUT, weft_chan_recv(ep->c, &v, -1)); break;
    case 4: CK(a, -1, ETIMEDOUT, weft_mutex_lock(&ep->m, -1)); break;
    case 5: CK(a, -1, ETIMEDOUT, weft_sem_acquire(&ep->sem, -1)); break;
    case 6: CK(a, -1, ETIMEDOUT, weft_park(&ep->q, "scope", -1)); break;
    }
    CK(a, scope, 0, weft_set_task_deadline(R.safety));
    OK(a, weft_sleep(0));
}

static void ep_taskdl(struct actor *lead)
{
    struct ep *ep = lead->ep;
    make_fds(lead, ep->never, (int)rnd(&lead->rng, 2));
    ep->c = weft_chan_make(sizeof(long), rnd(&lead->rng, 2));
    REQUIRE(lead, ep->c != NULL);
    OK(lead, weft_mutex_lock(&ep->m, -1));
    int n = (int)rnd(&lead->rng, 4) + 1;
    for (int i = 0; i < n; i++)
        spawn_actor(lead, taskdl_waiter, 1, -1);
    jitter(lead);
    OK(lead, weft_wg_wait(&ep->alive, -1));
    OK(lead, weft_mutex_unlock(&ep->m));
    CK(lead, 0, 0, weft_waitq_waiting(&ep->q));
    finish(lead);
}

/* Variant 0: EPIPE writing to a pipe or socket whose reader has gone. 1: a writer parked on
 * a full socket gets EPIPE when the peer closes. 2: a reader parked on a socket gets EOF
 * when the peer closes. */
static void epipe_actor(struct actor *a)
{
    struct ep *ep = a->ep;
    char b = 'y';
    jitter(a);
    a->armed = 1;
    if (ep->variant == 1)
        CK(a, -1, EPIPE, weft_write(ep->fds[0], &b, 1));
    else
        CK(a, 0, 0, weft_read(ep->fds[0], &b, 1));
}

static void ep_epipe(struct actor *lead)
{
    struct ep *ep = lead->ep;
    char b = 'z';
    if (ep->variant == 0) {
        int sock = (int)rnd(&lead->rng, 2);
        make_fds(lead, ep->fds, sock);
        OK(lead, weft_close(ep->fds[0]));
        ep->fds[0] = -1;
        jitter(lead);
        CK(lead, -1, EPIPE, weft_write(ep->fds[1], &b, 1));
        if (sock)
            CK(lead, -1, EPIPE, weft_send(ep->fds[1], &b, 1, 0));
        close_fds(lead, ep->fds);
        finish(lead);
        return;
    }
    make_fds(lead, ep->fds, 1);
    if (ep->variant == 1) {     /* fill the socket so the writer parks */
        int sz = 4096;
        setsockopt(ep->fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        char buf[1024];
        memset(buf, 0, sizeof buf);
        while (send(ep->fds[0], buf, sizeof buf, MSG_DONTWAIT) > 0)
            ;
        while (send(ep->fds[0], buf, 1, MSG_DONTWAIT) > 0)
            ;
    }
    struct actor *a = spawn_actor(lead, epipe_actor, 1, -1);
    if (a)
        AWAIT(lead, &a->armed, 1);
    jitter(lead);
    OK(lead, weft_close(ep->fds[1]));
    ep->fds[1] = -1;
    finish(lead);
    close_fds(lead, ep->fds);
}

/* ---- channels ---------------------------------------------------------------------------------- */

static void chan_producer(struct actor *a)
{
    struct ep *ep = a->ep;
    for (int i = 0; i < ep->k; i++) {
        long v = a->role * 16 + i;      /* role: 1 + producer index */
        jitter(a);
        switch (rnd(&a->rng, 3)) {
        case 0: OK(a, weft_chan_send(ep->c, &v, -1)); break;
        case 1: {
            weft_chan_clause cl = { ep->c, WEFT_CHAN_SEND, &v, -1 };
            OK(a, weft_chan_select(&cl, 1, -1));
            REQUIRE(a, cl.err == 0);
            break;
        }
        default:    /* non-blocking tries: a failed one sent nothing */
            for (;;) {
                errno = 0;
                int r = weft_chan_send(ep->c, &v, 0);
                R.ops++;
                if (r == 0)
                    break;
                if (errno != ETIMEDOUT) {
                    FAIL(a, "try send: %s", strerror(errno));
                    break;
                }
                weft_yield();
            }
        }
    }
    OK(a, weft_wg_done(&ep->wg));
}

static void chan_consumer(struct actor *a)
{
    struct ep *ep = a->ep;
    for (;;) {
        long v = -1;
        jitter(a);
        int r, e;
        if (rnd(&a->rng, 2)) {
            errno = 0;
            r = weft_chan_recv(ep->c, &v, -1);
            e = r ? errno : 0;
        } else {    /* c2 never gets anything; clauses in a random order */
            int first = (int)rnd(&a->rng, 2);
            weft_chan_clause cl[2];
            cl[first] = (weft_chan_clause){ ep->c, WEFT_CHAN_RECV, &v, -1 };
            cl[!first] = (weft_chan_clause){ ep->c2, WEFT_CHAN_RECV, NULL, -1 };
            errno = 0;
            r = weft_chan_select(cl, 2, -1);
            if (r != first) {
                FAIL(a, "select gave %d (%s), expected clause %d", r, r < 0 ? strerror(errno) : "-", first);
                return;
            }
            e = cl[first].err;
            r = e ? -1 : 0;
        }
        R.ops++;
        if (r != 0) {
            if (e != EPIPE)
                FAIL(a, "receive: %s", strerror(e));
            return;
        }
        if (v < 16 || v >= 16 * 8 || v % 16 >= ep->k) {
            FAIL(a, "received %ld", v);
            return;
        }
        ep->seen[v]++;
        ep->count++;
    }
}

static void ep_chan(struct actor *lead)
{
    struct ep *ep = lead->ep;
    ep->cap = (int)rnd(&lead->rng, 4);
    ep->c = weft_chan_make(sizeof(long), (size_t)ep->cap);
    ep->c2 = weft_chan_make(sizeof(long), rnd(&lead->rng, 2));
    REQUIRE(lead, ep->c && ep->c2);
    if (!ep->c || !ep->c2)
        return;
    long x;
    CK(lead, -1, ETIMEDOUT, weft_chan_recv(ep->c, &x, weft_now() - 1));
    int np = (int)rnd(&lead->rng, 3) + 1, nc = (int)rnd(&lead->rng, 3) + 1;
    ep->k = (int)rnd(&lead->rng, 5) + 1;
    OK(lead, weft_wg_add(&ep->wg, np));
    for (int i = 0; i < nc; i++)
        spawn_actor(lead, chan_consumer, 100 + i, -1);
    for (int i = 0; i < np; i++)
        spawn_actor(lead, chan_producer, 1 + i, -1);
    OK(lead, weft_wg_wait(&ep->wg, -1));
    jitter(lead);
    OK(lead, weft_chan_close(ep->c));
    CK(lead, -1, EPIPE, weft_chan_close(ep->c));
    finish(lead);
    REQUIRE(lead, ep->count == np * ep->k);
    for (int p = 1; p <= np; p++)
        for (int i = 0; i < ep->k; i++)
            if (ep->seen[p * 16 + i] != 1)
                FAIL(lead, "value %d received %d times", p * 16 + i, ep->seen[p * 16 + i]);
    CK(lead, -1, EPIPE, weft_chan_send(ep->c, &x, -1));
}

/* Senders (and receivers) parked on a channel when it closes wake with EPIPE. */
static void chan_close_waiter(struct actor *a)
{
    struct ep *ep = a->ep;
    long v = a->id;
    jitter(a);
    ep->armed++;
    if (ep->variant)
        CK(a, -1, EPIPE, weft_chan_send(ep->c, &v, -1));
    else
        CK(a, -1, EPIPE, weft_chan_recv(ep->c, &v, -1));
}

static void ep_chan_close(struct actor *lead)
{
    struct ep *ep = lead->ep;
    ep->c = weft_chan_make(sizeof(long), 0);
    REQUIRE(lead, ep->c != NULL);
    if (!ep->c)
        return;
    int n = (int)rnd(&lead->rng, 4) + 1;
    for (int i = 0; i < n; i++)
        spawn_actor(lead, chan_close_waiter, 1, -1);
    AWAIT(lead, &ep->armed, n);
    CK(lead, -1, EBUSY, weft_chan_free(ep->c));
    jitter(lead);
    OK(lead, weft_chan_close(ep->c));
    finish(lead);
    long x;
    CK(lead, -1, EPIPE, weft_chan_recv(ep->c, &x, -1));
}

/* ---- locks ------------------------------------------------------------------------------------ */

static void mutex_worker(struct actor *a)
{
    struct ep *ep = a->ep;
    for (int i = 0; i < ep->k; i++) {
        jitter(a);
        if (rnd(&a->rng, 3) == 0) {     /* a try: fails exactly when someone holds it */
            uint64_t holder = weft_mutex_holder(&ep->m);
            if (holder) {
                CK(a, -1, ETIMEDOUT, weft_mutex_lock(&ep->m, weft_now() - 1));
                continue;
            }
            OK(a, weft_mutex_lock(&ep->m, weft_now() - 1));
        } else {
            OK(a, weft_mutex_lock(&ep->m, -1));
        }
        CK(a, (long)weft_id(NULL), 0, (long)weft_mutex_holder(&ep->m));
        CK(a, -1, EDEADLK, weft_mutex_lock(&ep->m, -1));
        REQUIRE(a, ep->in_cs == 0);
        ep->in_cs = 1;
        ep->count++;
        jitter(a);
        ep->in_cs = 0;
        OK(a, weft_mutex_unlock(&ep->m));
    }
}

static void ep_mutex(struct actor *lead)
{
    struct ep *ep = lead->ep;
    ep->k = (int)rnd(&lead->rng, 4) + 1;
    int n = (int)rnd(&lead->rng, 5) + 1;
    for (int i = 0; i < n; i++)
        spawn_actor(lead, mutex_worker, 1, -1);
    CK(lead, -1, EPERM, weft_mutex_unlock(&ep->m));
    finish(lead);
    REQUIRE(lead, ep->count <= n * ep->k);
    CK(lead, 0, 0, (long)weft_mutex_holder(&ep->m));
    OK(lead, weft_mutex_destroy(&ep->m));
}

static void cond_consumer(struct actor *a)
{
    struct ep *ep = a->ep;
    jitter(a);
    OK(a, weft_mutex_lock(&ep->m, -1));
    CK(a, -1, ETIMEDOUT, weft_cond_wait(&ep->cv, &ep->m, weft_now() - 1));
    CK(a, (long)weft_id(NULL), 0, (long)weft_mutex_holder(&ep->m));
    OK(a, weft_mutex_unlock(&ep->m));
    for (int i = 0; i < ep->k; i++) {
        jitter(a);
        OK(a, weft_mutex_lock(&ep->m, -1));
        while (ep->items == 0)
            OK(a, weft_cond_wait(&ep->cv, &ep->m, -1));
        CK(a, (long)weft_id(NULL), 0, (long)weft_mutex_holder(&ep->m));
        ep->items--;
        ep->count++;
        OK(a, weft_mutex_unlock(&ep->m));
    }
}

static void cond_producer(struct actor *a)
{
    struct ep *ep = a->ep;
    for (int i = 0; i < ep->n * ep->k; i++) {
        jitter(a);
        int locked = (int)rnd(&a->rng, 2);
        if (locked)
            OK(a, weft_mutex_lock(&ep->m, -1));
        ep->items++;
        long w = weft_waitq_waiting(&ep->cv.q_);
        if (rnd(&a->rng, 3) == 0)
            CK(a, w, 0, weft_cond_broadcast(&ep->cv));
        else
            CK(a, w > 0, 0, weft_cond_signal(&ep->cv));
        if (locked)
            OK(a, weft_mutex_unlock(&ep->m));
    }
}

static void ep_cond(struct actor *lead)
{
    struct ep *ep = lead->ep;
    ep->n = (int)rnd(&lead->rng, 4) + 1;
    ep->k = (int)rnd(&lead->rng, 3) + 1;
    for (int i = 0; i < ep->n; i++)
        spawn_actor(lead, cond_consumer, 1, -1);
    spawn_actor(lead, cond_producer, 2, -1);
    finish(lead);
    REQUIRE(lead, ep->count == ep->n * ep->k && ep->items == 0);
    OK(lead, weft_cond_destroy(&ep->cv));
    OK(lead, weft_mutex_destroy(&ep->m));
}

static void sem_worker(struct actor *a)
{
    struct ep *ep = a->ep;
    for (int i = 0; i < ep->k; i++) {
        jitter(a);
        if (rnd(&a->rng, 3) == 0) {     /* a try: fails exactly when no permit is free */
            long v = weft_sem_value(&ep->sem);
            if (v == 0) {
                CK(a, -1, ETIMEDOUT, weft_sem_acquire(&ep->sem, weft_now() - 1));
                continue;
            }
            OK(a, weft_sem_acquire(&ep->sem, weft_now() - 1));
        } else {
            OK(a, weft_sem_acquire(&ep->sem, -1));
        }
        ep->in_cs++;
        REQUIRE(a, ep->in_cs <= ep->cap);
        jitter(a);
        ep->in_cs--;
        OK(a, weft_sem_release(&ep->sem));
    }
}

static void ep_sem(struct actor *lead)
{
    struct ep *ep = lead->ep;
    ep->cap = (int)rnd(&lead->rng, 3) + 1;
    ep->k = (int)rnd(&lead->rng, 4) + 1;
    OK(lead, weft_sem_init(&ep->sem, ep->cap, "sem"));
    int n = (int)rnd(&lead->rng, 6) + 1;
    for (int i = 0; i < n; i++)
        spawn_actor(lead, sem_worker, 1, -1);
    finish(lead);
    CK(lead, ep->cap, 0, weft_sem_value(&ep->sem));
    OK(lead, weft_sem_destroy(&ep->sem));
}

static void wg_worker(struct actor *a)
{
    jitter(a);
    a->ep->count++;
    OK(a, weft_wg_done(&a->ep->wg));
}

static void wg_waiter(struct actor *a)
{
    struct ep *ep = a->ep;
    jitter(a);
    if (ep->count < ep->n)
        CK(a, -1, ETIMEDOUT, weft_wg_wait(&ep->wg, weft_now() - 1));
    OK(a, weft_wg_wait(&ep->wg, -1));
    REQUIRE(a, ep->count == ep->n);
}

static void ep_wg(struct actor *lead)
{
    struct ep *ep = lead->ep;
    ep->n = (int)rnd(&lead->rng, 5) + 1;
    OK(lead, weft_wg_add(&ep->wg, ep->n));
    int w = (int)rnd(&lead->rng, 3) + 1;
    for (int i = 0; i < w; i++)
        spawn_actor(lead, wg_waiter, 1, -1);
    for (int i = 0; i < ep->n; i++)
        spawn_actor(lead, wg_worker, 2, -1);
    finish(lead);
    CK(lead, -1, EINVAL, weft_wg_done(&ep->wg));    /* below zero */
    OK(lead, weft_wg_destroy(&ep->wg));
}

/* Each wake hands over one token; a parker woken without one was woken twice, or for
 * nothing. */
static void parker(struct actor *a)
{
    struct ep *ep = a->ep;
    for (int i = 0; i < ep->k; i++) {
        jitter(a);
        OK(a, weft_park(&ep->q, "token", -1));
        if (ep->tokens <= 0) {
            FAIL(a, "woken with no token handed out (a double or spurious wake)");
            return;
        }
        ep->tokens--;
        ep->count++;
    }
}

static void ep_park(struct actor *lead)
{
    struct ep *ep = lead->ep;
    int n = (int)rnd(&lead->rng, 5) + 1;
    ep->k = (int)rnd(&lead->rng, 3) + 1;
    for (int i = 0; i < n; i++)
        spawn_actor(lead, parker, 1, -1);
    CK(lead, -1, ETIMEDOUT, weft_park(&ep->q, "try", weft_now() - 1));
    long total = (long)n * ep->k;
    for (long given = 0; given < total && !R.failed;) {
        jitter(lead);
        long w = weft_waitq_waiting(&ep->q);
        if (w == 0)
            continue;
        if (rnd(&lead->rng, 3) == 0) {
            ep->tokens += w;
            CK(lead, w, 0, weft_unpark_all(&ep->q));
            given += w;
        } else {
            ep->tokens++;
            CK(lead, 1, 0, weft_unpark_one(&ep->q));
            given++;
        }
    }
    finish(lead);
    REQUIRE(lead, ep->tokens == 0 && ep->count == total);
    CK(lead, 0, 0, weft_unpark_one(&ep->q));
}

/* ---- a seed ------------------------------------------------------------------------------------ */

static void lead_main(struct actor *lead)
{
    struct ep *ep = lead->ep;
    jitter(lead);
    switch (ep->type) {
    case EP_BASIC: ep_basic(lead); break;
    case EP_JOIN: ep_join(lead); break;
    case EP_CANCEL: ep_cancel(lead); break;
    case EP_PIPE: ep_pipe(lead); break;
    case EP_CLOSE: ep_close(lead); break;
    case EP_FDDL: ep_fddl(lead); break;
    case EP_TASKDL: ep_taskdl(lead); break;
    case EP_CHAN: ep_chan(lead); break;
    case EP_CHAN_CLOSE: ep_chan_close(lead); break;
    case EP_MUTEX: ep_mutex(lead); break;
    case EP_COND: ep_cond(lead); break;
    case EP_SEM: ep_sem(lead); break;
    case EP_WG: ep_wg(lead); break;
    case EP_PARK: ep_park(lead); break;
    case EP_EPIPE: ep_epipe(lead); break;
    }
    /* Whatever the episode left: nobody waits on anything of it now. */
    if (ep->c)
        OK(lead, weft_chan_free(ep->c));
    if (ep->c2)
        OK(lead, weft_chan_free(ep->c2));
    close_fds(lead, ep->fds);
    close_fds(lead, ep->never);
    CK(lead, 0, 0, weft_waitq_waiting(&ep->q));
}

static const int variants[EP_COUNT] = {
    [EP_BASIC] = 1, [EP_JOIN] = 2, [EP_CANCEL] = V_COUNT, [EP_PIPE] = 2, [EP_CLOSE] = 2,
    [EP_FDDL] = 4, [EP_TASKDL] = 1, [EP_CHAN] = 1, [EP_CHAN_CLOSE] = 2, [EP_MUTEX] = 1,
    [EP_COND] = 1, [EP_SEM] = 1, [EP_WG] = 1, [EP_PARK] = 1, [EP_EPIPE] = 3,
};

/* How many fds epoll has registered (the one epoll fd of the process), or -1. */
static int epoll_registered(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1, n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l > 0 && (link[l] = 0, strcmp(link, "anon_inode:[eventpoll]") == 0))
            found = atoi(e->d_name), n++;
    }
    closedir(d);
    if (n != 1)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", found);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int regs = 0;
    while (fgets(line, sizeof line, f))
        regs += strncmp(line, "tfd:", 4) == 0;
    fclose(f);
    return regs;
}

static void list_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], link[128];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t l = readlink(path, link, sizeof link - 1);
        if (l > 0) {
            link[l] = 0;
            fprintf(stderr, "fd %s: %s\n", e->d_name, link);
        }
    }
    if (d)
        closedir(d);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static struct ep *leads[MAX_LEADS];

static void *root(void *arg)
{
    (void)arg;
    weft_set_task_deadline(R.safety);
    int nl = 30 + (int)rnd(&R.rng, 60);
    for (int i = 0; i < nl; i++) {
        struct ep *ep = calloc(1, sizeof *ep);
        if (!ep) {
            FAIL(NULL, "no memory");
            nl = i;
            break;
        }
        ep->type = (int)rnd(&R.rng, EP_COUNT);
        ep->variant = (int)rnd(&R.rng, (unsigned)variants[ep->type]);
        ep->fds[0] = ep->fds[1] = ep->never[0] = ep->never[1] = -1;
        leads[i] = ep;
        ep->lead = new_actor(ep, lead_main, 0, 1, xs_next(&R.rng));
        if (ep->lead)
            start(NULL, ep->lead);
        if (rnd(&R.rng, 4) == 0)
            weft_yield();
    }
    for (int i = 0; i < nl; i++) {
        struct ep *ep = leads[i];
        if (ep->lead && ep->lead->h)
            join_actor(NULL, ep->lead);
        for (int k = 0; k < ep->nact; k++)
            free(ep->act[k]);
        free(ep);
    }
    int regs = epoll_registered();
    if (regs > 0)
        FAIL(NULL, "%d fds still registered with epoll", regs);
    R.root_done = 1;
    return NULL;
}

static long total_ops, total_tasks;

static void run_seed(uint64_t seed)
{
    memset(&R, 0, sizeof R);
    R.seed = seed;
    R.rng = stream(seed, 0);
    R.safety = weft_now() + (RUNNING_ON_VALGRIND ? 60000 : 10000);
    int fds = count_fds();
    /* Detached, so that nothing is left when weft_run returns: it releases the scheduler
     * (the epoll fd included) and the fd count can be compared. */
    ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .name = "root", .detached = 1 }, root, NULL));
    errno = 0;
    int r = weft_run();
    if (r != 0 && !R.failed)
        FAIL(NULL, "weft_run: %d (%s): a lost wake-up left tasks waiting", r, strerror(errno));
    if (!R.failed && !R.root_done)
        FAIL(NULL, "the root task did not end");
    if (!R.failed && R.detached_ended != R.detached)
        FAIL(NULL, "%d of %d detached tasks ended", R.detached_ended, R.detached);
    int now = count_fds();
    if (!R.failed && now != fds) {
        FAIL(NULL, "%d fds open before the seed, %d after", fds, now);
        if (getenv("WEFT_RANDOM_DEBUG"))
            list_fds();
    }
    ck_assert_msg(!R.failed, "%s", R.msg);
    total_ops += R.ops;
    total_tasks += R.tasks + 1;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 10) : dflt;
}

START_TEST(random_schedules)
{
    uint64_t one = env_u64("WEFT_RANDOM_SEED", 0);
    uint64_t first = one ? one : env_u64("WEFT_RANDOM_FIRST", 1);
    uint64_t n = one ? 1 : env_u64("WEFT_RANDOM_SEEDS", RUNNING_ON_VALGRIND ? SEEDS_VALGRIND : SEEDS_DEFAULT);
    uint64_t lo = n * (uint64_t)_i / CHUNKS, hi = n * (uint64_t)(_i + 1) / CHUNKS;
    int64_t t0 = weft_now();
    long tasks0 = total_tasks, ops0 = total_ops;
    for (uint64_t k = lo; k < hi; k++)
        run_seed(first + k);
    if (hi > lo)
        fprintf(stderr, "check_random: seeds %llu..%llu: %ld tasks, %ld checked calls, %lld ms\n",
                (unsigned long long)(first + lo), (unsigned long long)(first + hi - 1),
                total_tasks - tasks0, total_ops - ops0, (long long)(weft_now() - t0));
}
END_TEST

/* The generator is what makes a seed replay: the same seed, the same streams. */
START_TEST(seeds_replay)
{
    uint64_t a = stream(77, 3), b = stream(77, 3), c = stream(78, 3);
    ck_assert_uint_eq(a, b);
    ck_assert_uint_ne(a, c);
    for (int i = 0; i < 100; i++)
        ck_assert_uint_eq(xs_next(&a), xs_next(&b));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("random");
    TCase *tc = test_case(s, "random_schedules", RUNNING_ON_VALGRIND ? 1200 : 240);
    tcase_add_loop_test(tc, random_schedules, 0, CHUNKS);
    ADD_TEST(s, seeds_replay, 10);
    return test_run(s);
}

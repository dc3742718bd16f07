/* The reactor: an fd table indexed by fd, each fd registered with epoll once, a FIFO of parked
 * tasks per (fd, direction), per-fd deadlines, and the poll that wakes tasks. It knows fds and
 * readiness only; what a read or an accept means is the wrappers' business (io.c).
 *
 * Edge-triggered, registered once for both directions: parking costs no epoll_ctl. That is
 * safe because a wrapper always tries its call before parking, and an edge comes for every
 * change after the EAGAIN it saw. An edge wakes one waiter; when that one has used it
 * (weft_reactor_pass) the next tries, so two waiters on one fd neither both wake for one
 * byte nor miss data left over. (One-shot would need an epoll_ctl per wait.) An fd whose
 * close the layer above may not see (f->rearm) is re-armed at each park instead, which also
 * registers a new file behind an old number. */
#include "config.h"
#include "reactor.h"
#include "sys.h"

#include <errno.h>
#include <stdatomic.h>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define FD_CHUNK 1024
#define MAX_EVENTS 256

struct reactor {
    int epfd;
    size_t nchunks;
    struct fdent **chunks;
    struct epoll_event events[MAX_EVENTS];
};

/* The IO layer's; every scheduler thread sets it (to the same function) at its first fd. */
static _Atomic(weft_fd_release_hook) release_hook;

void weft_reactor_on_release(weft_fd_release_hook fn)
{
    atomic_store_explicit(&release_hook, fn, memory_order_relaxed);
}

static int upper_used(const struct fdent *f)
{
    for (size_t i = 0; i < sizeof f->upper; i++)
        if (f->upper[i])
            return 1;
    return 0;
}

static void reactor_poll(struct sched *s, int timeout_ms);
static void reactor_free(struct sched *s);
static void reactor_after_fork(struct sched *s);
static const struct poller epoll_poller = { reactor_poll, reactor_free, reactor_after_fork };

static struct reactor *reactor_get(struct sched *s)
{
    if (fast(s->reactor != NULL))
        return s->reactor;
    struct reactor *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        int e = errno;
        free(r);
        errno = e;
        return NULL;
    }
    s->reactor = r;
    s->poller = &epoll_poller;     /* the loop waits here from now on */
    return r;
}

/* The poller's release: the epoll fd and the fd table go with the scheduler. */
static void reactor_free(struct sched *s)
{
    struct reactor *r = s->reactor;
    if (!r)
        return;
    /* The layer above gives back what it changed of each fd it knew (the IO layer: the
     * O_NONBLOCK it set), before the table goes. */
    for (size_t i = 0; i < r->nchunks; i++) {
        for (int k = 0; r->chunks[i] && k < FD_CHUNK; k++) {
            struct fdent *f = &r->chunks[i][k];
            weft_fd_release_hook hook = atomic_load_explicit(&release_hook, memory_order_relaxed);
            if (hook && upper_used(f))
                hook((int)(i * FD_CHUNK + (size_t)k), f);
        }
        free(r->chunks[i]);
    }
    free(r->chunks);
    weft_sys_close(r->epfd);
    free(r);
    s->reactor = NULL;
}

/* The entry for fd, or NULL if it was never made (create == 0) or memory ran out. */
static struct fdent *fd_entry(struct reactor *r, int fd, int create)
{
    size_t c = (size_t)fd / FD_CHUNK;
    if (fast(c < r->nchunks && r->chunks[c]))
        return &r->chunks[c][fd % FD_CHUNK];
    if (!create)
        return NULL;
    if (c >= r->nchunks) {
        size_t n = r->nchunks ? r->nchunks : 4;
        while (n <= c)
            n *= 2;
        struct fdent **chunks = realloc(r->chunks, n * sizeof *chunks);
        if (!chunks)
            return NULL;
        memset(chunks + r->nchunks, 0, (n - r->nchunks) * sizeof *chunks);
        r->chunks = chunks;
        r->nchunks = n;
    }
    struct fdent *ch = calloc(FD_CHUNK, sizeof *ch);
    if (!ch)
        return NULL;
    for (int i = 0; i < FD_CHUNK; i++) {
        list_init(&ch[i].waiters[0]);
        list_init(&ch[i].waiters[1]);
        ch[i].deadline[0] = ch[i].deadline[1] = -1;
    }
    r->chunks[c] = ch;
    return &ch[fd % FD_CHUNK];
}

struct fdent *weft_fd_get(struct sched *s, int fd)
{
    struct reactor *r;
    struct fdent *f;
    if (slow(fd < 0)) {
        errno = EBADF;
        return NULL;
    }
    if (slow(!(r = reactor_get(s))))
        return NULL;    /* errno from calloc or epoll_create1 (EMFILE, ...) */
    if (fast((f = fd_entry(r, fd, 0)) != NULL))
        return f;
    /* First sight of fd's chunk: check that fd is open before the table grows to it, so a
     * bad number (weft_read(INT_MAX, ...)) costs no memory. */
    if (weft_sys_fcntl(fd, F_GETFD, 0) < 0)
        return NULL;
    if (!(f = fd_entry(r, fd, 1)))
        errno = ENOMEM;
    return f;
}

struct fdent *weft_fd_lookup(struct sched *s, int fd)
{
    if (!s || !s->reactor || fd < 0)
        return NULL;
    return fd_entry(s->reactor, fd, 0);
}

static int reactor_register(struct sched *s, struct fdent *f, int fd)
{
    struct reactor *r = s->reactor;
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    ev.data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)f->seq << 32;
    if (epoll_ctl(r->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        /* EEXIST: the fd number was closed behind weft's back and reused; re-arm it. */
        if (errno != EEXIST || epoll_ctl(r->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
            return errno;
    }
    f->registered = 1;
    return 0;
}

int weft_reactor_arm(struct sched *s, struct fdent *f, int fd, int rearm)
{
    if (slow(!f->registered))
        return reactor_register(s, f, fd);
    if (fast(!rearm && !f->rearm))
        return 0;
    /* MOD re-arms the edge (an event comes if fd is ready now) and fails with ENOENT when
     * the file under this number is not the one registered: a plain close(2) and a reuse
     * of the number, which removed the old file from the set. Register the new one. */
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET;
    ev.data.u64 = (uint64_t)(uint32_t)fd | (uint64_t)f->seq << 32;
    if (epoll_ctl(s->reactor->epfd, EPOLL_CTL_MOD, fd, &ev) == 0)
        return 0;
    if (errno != ENOENT)
        return errno;
    return reactor_register(s, f, fd);
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

int weft_reactor_wait(struct sched *s, struct fdent *f, int fd, int dir, int front, int64_t deadline,
                      uint32_t seq)
{
    int e = weft_reactor_arm(s, f, fd, 0);
    if (slow(e != 0))
        return e;
    struct weft_task *t = s->cur;
    t->wait_fd = fd;
    t->wait_events = dir == DIR_READ ? WEFT_READ : WEFT_WRITE;
    e = weft_sched_park(s, &f->waiters[dir], front, WAIT_IO, earliest(deadline, f->deadline[dir]));
    /* Woken for readiness or not, the fd may have been closed (and its number reused)
     * before this task ran again: never touch the new file. */
    return slow(f->seq != seq) ? EBADF : e;
}

/* The loop's poll (struct poller): wait for IO events up to timeout_ms and wake their tasks. */
static void reactor_poll(struct sched *s, int timeout_ms)
{
    struct reactor *r = s->reactor;
    int n = epoll_wait(r->epfd, r->events, MAX_EVENTS, timeout_ms);
    for (int i = 0; i < n; i++) {
        uint64_t data = r->events[i].data.u64;
        uint32_t ev = r->events[i].events;
        struct fdent *f = fd_entry(r, (int)(uint32_t)data, 0);
        if (!f || !f->registered || f->seq != (uint32_t)(data >> 32))
            continue;   /* a late event for an fd closed since */
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) {
            /* Data may be there now. After a hang-up, an error or urgent data, a short
             * read no longer proves the socket empty (EOF comes with no new event). */
            f->rd_event = 1;
            f->rd_final |= (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR | EPOLLPRI)) != 0;
            weft_sched_wake_one(s, &f->waiters[DIR_READ], 0);
        }
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            weft_sched_wake_one(s, &f->waiters[DIR_WRITE], 0);
    }
}

/* ---- public calls --------------------------------------------------------------------------- */

static int ready_now(int fd, int events)
{
    struct pollfd p = { .fd = fd, .events = (short)(((events & WEFT_READ) ? POLLIN : 0) |
                                                    ((events & WEFT_WRITE) ? POLLOUT : 0)) };
    int n;
    while ((n = weft_sys_poll(&p, 1, 0)) < 0 && errno == EINTR)
        ;
    if (n < 0)
        return -1;
    if (p.revents & POLLNVAL) {
        errno = EBADF;
        return -1;
    }
    int got = 0;
    if (p.revents & (POLLIN | POLLHUP | POLLERR | POLLRDHUP))
        got |= events & WEFT_READ;
    if (p.revents & (POLLOUT | POLLHUP | POLLERR))
        got |= events & WEFT_WRITE;
    return got;
}

int weft_fdwait(int fd, int events, int64_t deadline)
{
    struct sched *s = weft_sched_tls;
    if (events <= 0 || (events & ~(WEFT_READ | WEFT_WRITE))) {
        errno = EINVAL;
        return -1;
    }
    if (!s || !s->cur) {
        errno = EPERM;
        return -1;
    }
    struct weft_task *t = s->cur;
    struct fdent *f = weft_fd_get(s, fd);
    if (!f)
        return -1;
    uint32_t seq = f->seq;
    for (;;) {
        /* A level check first: the reactor is edge-triggered, and the user's fd may have
         * become ready before anyone waited. */
        int got = ready_now(fd, events);
        if (got != 0)
            return got;
        /* weft does not see every fd this call is given (a pipe closed with close(2) and
         * its number reused): re-arm, so the file under the number now is the one waited on. */
        int e = weft_reactor_arm(s, f, fd, 1);
        if (e) {
            errno = e;
            return -1;
        }
        int first = (events & WEFT_READ) ? DIR_READ : DIR_WRITE;
        if (events == (WEFT_READ | WEFT_WRITE))
            list_push_back(&f->waiters[DIR_WRITE], &t->wait[1].link);
        t->wait_fd = fd;
        t->wait_events = events;
        /* The fd's deadlines for the directions waited on only: a write deadline does not
         * end a wait for reading. */
        int64_t d = deadline;
        if (events & WEFT_READ)
            d = earliest(d, f->deadline[DIR_READ]);
        if (events & WEFT_WRITE)
            d = earliest(d, f->deadline[DIR_WRITE]);
        e = weft_sched_park(s, &f->waiters[first], 0, WAIT_IO, d);
        list_remove(&t->wait[1].link);     /* when park failed before parking */
        if (slow(f->seq != seq))
            e = EBADF;                      /* closed since: the number is not ours now */
        if (e != 0 && e != EAGAIN) {        /* EAGAIN: the fd's deadline changed */
            errno = e;
            return -1;
        }
        /* Woken by readiness: let other waiters see it too (they re-check, as we do). */
        if (events & WEFT_READ)
            weft_reactor_pass(s, f, DIR_READ);
        if (events & WEFT_WRITE)
            weft_reactor_pass(s, f, DIR_WRITE);
    }
}

int weft_fd_set_deadline(int fd, int dirs, int64_t deadline)
{
    struct sched *s = weft_sched_get();
    if (dirs <= 0 || (dirs & ~(WEFT_READ | WEFT_WRITE))) {
        errno = EINVAL;
        return -1;
    }
    if (!s)
        return -1;
    if (weft_sys_fcntl(fd, F_GETFD, 0) < 0)
        return -1;
    struct fdent *f = weft_fd_get(s, fd);
    if (!f)
        return -1;
    for (int d = 0; d < 2; d++) {
        if (!(dirs & (d == DIR_READ ? WEFT_READ : WEFT_WRITE)))
            continue;
        f->deadline[d] = deadline < 0 ? -1 : deadline;
        /* Parked tasks re-park under the new deadline: wake them to try again. */
        while (weft_sched_wake_one(s, &f->waiters[d], EAGAIN))
            ;
    }
    return 0;
}

/* Wake everything parked on fd with EBADF and forget the fd (weft_close calls this). */
void weft_reactor_forget(struct sched *s, int fd)
{
    struct fdent *f;
    if (!s || !s->reactor || fd < 0 || !(f = fd_entry(s->reactor, fd, 0)))
        return;
    if (f->registered)
        epoll_ctl(s->reactor->epfd, EPOLL_CTL_DEL, fd, NULL);
    for (int d = 0; d < 2; d++) {
        while (weft_sched_wake_one(s, &f->waiters[d], EBADF))
            ;
        f->deadline[d] = -1;
    }
    f->registered = 0;
    f->rearm = 0;
    f->rd_event = 0;
    f->rd_final = 0;
    memset(f->upper, 0, sizeof f->upper);
    f->seq++;
}

/* The poller's after_fork, in a forked child (one thread; only async-signal-safe calls): the
 * epoll instance is still the parent's, shared, so the two would take each other's
 * edge-triggered events and the child's epoll_ctl calls would change the parent's set. Give
 * the child an instance of its own with every fd that was registered (tasks copied into the
 * child may be parked on them); the parent's is left as it was. */
static void reactor_after_fork(struct sched *s)
{
    struct reactor *r = s->reactor;
    if (!r)
        return;
    weft_sys_close(r->epfd);
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    for (size_t i = 0; i < r->nchunks; i++) {
        for (int k = 0; r->chunks[i] && k < FD_CHUNK; k++) {
            struct fdent *f = &r->chunks[i][k];
            if (!f->registered)
                continue;
            f->registered = 0;      /* registered again at the next park if this fails */
            if (r->epfd >= 0)
                reactor_register(s, f, (int)(i * FD_CHUNK + (size_t)k));
        }
    }
}

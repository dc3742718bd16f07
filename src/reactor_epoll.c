/* The reactor: an fd table indexed by fd, each fd registered with epoll once, a FIFO of parked
 * tasks per (fd, direction), per-fd deadlines, and the poll that wakes tasks. It knows fds and
 * readiness only; what a read or an accept means is the wrappers' business (io.c).
 *
 * Edge-triggered, registered once for both directions: parking costs no epoll_ctl. That is
 * safe because a wrapper always tries its call before parking, and an edge comes for every
 * change after the EAGAIN it saw. An edge wakes one waiter; when that one has used it
 * (weft_reactor_pass) the next tries, so two waiters on one fd neither both wake for one
 * byte nor miss data left over. (One-shot would need an epoll_ctl per wait.) */
#include "config.h"
#include "reactor.h"
#include "sys.h"

#include <errno.h>

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
    return r;
}

void weft_reactor_free(struct sched *s)
{
    struct reactor *r = s->reactor;
    if (!r)
        return;
    /* The fds weft made non-blocking go back to the user as they came (or as the user set
     * them since, through the wrapped fcntl), so plain calls after weft_run block again and
     * a later run does not mistake weft's O_NONBLOCK for the user's. */
    for (size_t i = 0; i < r->nchunks; i++) {
        for (int k = 0; r->chunks[i] && k < FD_CHUNK; k++) {
            struct fdent *f = &r->chunks[i][k];
            if (!f->known || !f->switched || f->user_nonblock)
                continue;
            int fd = (int)(i * FD_CHUNK + (size_t)k);
            int fl = weft_sys_fcntl(fd, F_GETFL, 0);
            if (fl >= 0 && (fl & O_NONBLOCK))
                weft_sys_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
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

/* Learn what fd is: a socket (of which type and protocol) or not, and whether the user set
 * O_NONBLOCK. A non-socket is switched to O_NONBLOCK now; a socket keeps its flags. */
static int fd_learn(struct fdent *f, int fd)
{
    int fl = weft_sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return -1;
    struct stat st;
    int type = 0, proto = 0;
    socklen_t tl = sizeof type, pl = sizeof proto;
    f->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    f->stream = f->is_socket && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
    f->tcp = f->stream && getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) == 0 && proto == IPPROTO_TCP;
    f->rearm = !f->is_socket;
    f->user_nonblock = (fl & O_NONBLOCK) != 0;
    f->switched = 0;
    if (!f->is_socket && !f->user_nonblock) {
        if (weft_sys_fcntl(fd, F_SETFL, (unsigned long)(unsigned)(fl | O_NONBLOCK)) < 0)
            return -1;
        f->switched = 1;
    }
    f->known = 1;
    return 0;
}

struct fdent *weft_fd_get(struct sched *s, int fd, int learn)
{
    struct reactor *r;
    struct fdent *f;
    if (slow(fd < 0)) {
        errno = EBADF;
        return NULL;
    }
    if (slow(!(r = reactor_get(s))))
        return NULL;    /* errno from calloc or epoll_create1 (EMFILE, ...) */
    if (slow(!(f = fd_entry(r, fd, 0)))) {
        /* First sight of fd's chunk: check that fd is open before the table grows to it,
         * so a bad number (weft_read(INT_MAX, ...)) costs no memory. */
        if (weft_sys_fcntl(fd, F_GETFD, 0) < 0)
            return NULL;
        if (!(f = fd_entry(r, fd, 1))) {
            errno = ENOMEM;
            return NULL;
        }
    }
    if (fast(f->known) || !learn)
        return f;
    return fd_learn(f, fd) == 0 ? f : NULL;
}

struct fdent *weft_fd_known(struct sched *s, int fd)
{
    struct fdent *f;
    if (!s || !s->reactor || fd < 0 || !(f = fd_entry(s->reactor, fd, 0)) || !f->known)
        return NULL;
    return f;
}

void weft_fd_adopt(struct sched *s, int fd, int user_nonblock, int nonblock, int tcp, int stream)
{
    struct fdent *f = weft_fd_get(s, fd, 0);
    if (f && slow(f->known || f->registered)) {
        /* fd is new from the kernel, so this record is of a file closed with close(2)
         * behind weft's back: forget it, or the new file would never be registered (and
         * would inherit the old one's deadlines). */
        weft_reactor_forget(s, fd);
    }
    if (f) {
        f->known = 1;
        f->is_socket = 1;
        f->stream = (unsigned char)(stream != 0);
        f->tcp = (unsigned char)(tcp != 0);
        f->rearm = 0;
        f->user_nonblock = (unsigned char)(user_nonblock != 0);
        f->switched = nonblock && !user_nonblock;   /* the user sees a blocking socket */
    }
}

int weft_fd_nonblock(struct fdent *f, int fd)
{
    int fl = weft_sys_fcntl(fd, F_GETFL, 0);
    if (slow(fl < 0))
        return -1;
    if (fast(fl & O_NONBLOCK))
        return 0;
    /* Blocking underneath: whatever weft remembered, the user (or the new file behind a
     * stale record) wants a blocking fd, so calls park. */
    if (weft_sys_fcntl(fd, F_SETFL, (unsigned long)(unsigned)(fl | O_NONBLOCK)) < 0)
        return -1;
    f->user_nonblock = 0;
    f->switched = 1;
    return 0;
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

void weft_reactor_poll(struct sched *s, int timeout_ms)
{
    struct reactor *r = s->reactor;
    if (!r) {
        if (timeout_ms > 0) {
            struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };
            weft_sys_nanosleep(&ts, NULL);
        }
        return;
    }
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
            f->rd_empty = 0;
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
    struct fdent *f = weft_fd_get(s, fd, 0);
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
    struct fdent *f = weft_fd_get(s, fd, 0);
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
    f->known = 0;
    f->rearm = 0;
    f->user_nonblock = 0;
    f->is_socket = 0;
    f->stream = 0;
    f->tcp = 0;
    f->switched = 0;
    f->rd_empty = 0;
    f->rd_final = 0;
    f->seq++;
}

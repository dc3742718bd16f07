/* The IO wrappers: libc's calls with libc's signatures, which park the task on the reactor
 * instead of blocking the thread. Each tries its call first and parks only on EAGAIN, so the
 * common case costs the syscall and nothing else. Readiness, deadlines and waking are the
 * reactor's (reactor_epoll.c); sockets by address are net.c's. */
#include "config.h"
#include "internal.h"

#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One wrapper call in progress. */
struct io {
    struct sched *s;
    struct fdent *f;
    int fd;
    int woken;      /* parked once and woken by readiness: pass it on when done */
    int nowait;     /* MSG_DONTWAIT: this call never parks */
};

/* 1: inside a task, io is set up; 0: outside any task, make the plain call; -1: errno set. */
static inline int io_begin(struct io *io, int fd, int dir)
{
    struct sched *s = weft_sched_tls;
    if (slow(!s || !s->cur))
        return 0;
    struct fdent *f = weft_fd_get(s, fd, 1);
    if (slow(!f))
        return -1;
    /* Go's rule: once an fd deadline has passed, calls fail at once, data or not. */
    if (slow(f->deadline[dir] >= 0) && f->deadline[dir] <= weft_now()) {
        errno = ETIMEDOUT;
        return -1;
    }
    io->s = s;
    io->f = f;
    io->fd = fd;
    io->woken = 0;
    io->nowait = 0;
    return 1;
}

/* After an attempt that returned r: 0 when the call is over (return r; errno is the call's,
 * or the reason the wait ended), 1 to try again after the task was parked and woken. */
static inline int io_retry(struct io *io, ssize_t r, int dir)
{
    if (fast(r >= 0) || errno != EAGAIN || io->f->user_nonblock || io->nowait) {
        if (slow(io->woken))
            weft_reactor_pass(io->s, io->f, dir);
        return 0;
    }
    int e = weft_reactor_wait(io->s, io->f, io->fd, dir, io->woken, -1);
    if (e == 0 || e == EAGAIN) {   /* readiness, or the fd's deadline changed */
        io->woken = e == 0;
        return 1;
    }
    errno = e;
    return 0;
}

/* dontwait: the call's flags ask for MSG_DONTWAIT (EAGAIN, never a park). */
#define IO_CALL(dir, dontwait, plain, call)               \
    struct io io;                                         \
    int in = io_begin(&io, fd, dir);                      \
    if (in <= 0)                                          \
        return in < 0 ? -1 : (plain);                     \
    io.nowait = (dontwait) != 0;                          \
    ssize_t r;                                            \
    do                                                    \
        r = (call);                                       \
    while (io_retry(&io, r, dir));                        \
    return r

/* Writes to a pipe or a file, and sendfile (no MSG_NOSIGNAL there), run with SIGPIPE held
 * back, so a closed reader gives EPIPE instead of killing the process; a SIGPIPE the call
 * raised is taken off the pending set. Costs two sigmask calls: only off the socket path. */
struct sigpipe_hold {
    sigset_t set, old;
    int was_pending;
};

static void sigpipe_hold(struct sigpipe_hold *h)
{
    sigset_t pending;
    sigemptyset(&h->set);
    sigaddset(&h->set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &h->set, &h->old);
    h->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
}

static ssize_t sigpipe_release(struct sigpipe_hold *h, ssize_t r)
{
    int e = errno;
    if (r < 0 && e == EPIPE && !h->was_pending) {
        struct timespec zero = { 0, 0 };
        sigtimedwait(&h->set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &h->old, NULL);
    errno = e;
    return r;
}

/* 'vec' picks writev(iov, iovcnt) over write(buf, n), whatever iov is (NULL is EFAULT). */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n, int vec, const struct iovec *iov, int iovcnt)
{
    struct sigpipe_hold h;
    sigpipe_hold(&h);
    return sigpipe_release(&h, vec ? weft_sys_writev(fd, iov, iovcnt) : weft_sys_write(fd, buf, n));
}

static ssize_t sendfile_nosigpipe(int out_fd, int in_fd, off_t *offset, size_t count)
{
    struct sigpipe_hold h;
    sigpipe_hold(&h);
    return sigpipe_release(&h, weft_sys_sendfile(out_fd, in_fd, offset, count));
}

/* A short read from a TCP socket has emptied its receive queue (the kernel stops early only
 * at urgent data, a FIN or an error, which all come with an event: rd_final), and data
 * arriving after it brings an edge-triggered event. So until that event, the next weft_read
 * parks at once instead of making a read(2) that would fail with EAGAIN: one syscall less
 * per request-response exchange. (Not for Unix sockets: they also stop at passed fds.)
 * A task that is cancelled or past its deadline reads anyway: data already there is its. */
static inline int io_park_first(const struct io *io)
{
    const struct weft_task *t = io->s->cur;
    return io->f->rd_empty && !io->f->user_nonblock && !(t->flags & TF_CANCELLED) &&
           (t->deadline < 0 || t->deadline > weft_now());
}

ssize_t weft_read(int fd, void *buf, size_t n)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_READ);
    if (in <= 0)
        return in < 0 ? -1 : weft_sys_read(fd, buf, n);
    if (io_park_first(&io)) {
        int e = weft_reactor_wait(io.s, io.f, fd, DIR_READ, 0, -1);
        if (e != 0 && e != EAGAIN) {
            errno = e;
            return -1;
        }
        io.woken = e == 0;
    }
    ssize_t r;
    do
        r = weft_sys_read(fd, buf, n);
    while (io_retry(&io, r, DIR_READ));
    io.f->rd_empty = r > 0 && (size_t)r < n && io.f->tcp && !io.f->rd_final;
    return r;
}

ssize_t weft_write(int fd, const void *buf, size_t n)
{
    IO_CALL(DIR_WRITE, 0, weft_sys_write(fd, buf, n),
            io.f->is_socket ? weft_sys_send(fd, buf, n, MSG_NOSIGNAL) : write_nosigpipe(fd, buf, n, 0, NULL, 0));
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt)
{
    IO_CALL(DIR_READ, 0, weft_sys_readv(fd, iov, iovcnt), weft_sys_readv(fd, iov, iovcnt));
}

static ssize_t writev_socket(int fd, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX) {   /* sendmsg says EMSGSIZE: keep writev's EINVAL */
        errno = EINVAL;
        return -1;
    }
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    return weft_sys_sendmsg(fd, &m, MSG_NOSIGNAL);
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt)
{
    IO_CALL(DIR_WRITE, 0, weft_sys_writev(fd, iov, iovcnt),
            io.f->is_socket ? writev_socket(fd, iov, iovcnt) : write_nosigpipe(fd, NULL, 0, 1, iov, iovcnt));
}

ssize_t weft_recv(int fd, void *buf, size_t n, int flags)
{
    IO_CALL(DIR_READ, flags & MSG_DONTWAIT, weft_sys_recv(fd, buf, n, flags), weft_sys_recv(fd, buf, n, flags));
}

ssize_t weft_send(int fd, const void *buf, size_t n, int flags)
{
    IO_CALL(DIR_WRITE, flags & MSG_DONTWAIT, weft_sys_send(fd, buf, n, flags), weft_sys_send(fd, buf, n, flags | MSG_NOSIGNAL));
}

ssize_t weft_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *addrlen)
{
    IO_CALL(DIR_READ, flags & MSG_DONTWAIT, weft_sys_recvfrom(fd, buf, n, flags, addr, addrlen), weft_sys_recvfrom(fd, buf, n, flags, addr, addrlen));
}

ssize_t weft_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t addrlen)
{
    IO_CALL(DIR_WRITE, flags & MSG_DONTWAIT, weft_sys_sendto(fd, buf, n, flags, addr, addrlen),
            weft_sys_sendto(fd, buf, n, flags | MSG_NOSIGNAL, addr, addrlen));
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
    IO_CALL(DIR_READ, flags & MSG_DONTWAIT, weft_sys_recvmsg(fd, msg, flags), weft_sys_recvmsg(fd, msg, flags));
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    IO_CALL(DIR_WRITE, flags & MSG_DONTWAIT, weft_sys_sendmsg(fd, msg, flags), weft_sys_sendmsg(fd, msg, flags | MSG_NOSIGNAL));
}

ssize_t weft_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    int fd = out_fd;
    IO_CALL(DIR_WRITE, 0, weft_sys_sendfile(out_fd, in_fd, offset, count), sendfile_nosigpipe(out_fd, in_fd, offset, count));
}

int weft_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_READ);
    if (in <= 0)
        return in < 0 ? -1 : weft_sys_accept4(fd, addr, addrlen, flags);
    int r;
    do
        r = weft_sys_accept4(fd, addr, addrlen, flags | SOCK_NONBLOCK);
    while (io_retry(&io, r, DIR_READ));
    if (r >= 0)
        weft_fd_adopt(io.s, r, flags & SOCK_NONBLOCK, io.f->tcp);
    return r;
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return weft_accept4(fd, addr, addrlen, 0);
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_WRITE);
    if (in <= 0)
        return in < 0 ? -1 : weft_sys_connect(fd, addr, addrlen);
    if (weft_sys_connect(fd, addr, addrlen) == 0)
        return 0;
    if (errno != EINPROGRESS || io.f->user_nonblock)
        return -1;
    /* In progress: wait until writable, then SO_ERROR says how it ended. */
    for (;;) {
        int e = weft_reactor_wait(io.s, io.f, fd, DIR_WRITE, io.woken, -1);
        if (e != 0 && e != EAGAIN) {
            errno = e;
            return -1;
        }
        io.woken = e == 0;
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        if (weft_sys_poll(&p, 1, 0) <= 0)
            continue;   /* woken early (a deadline changed): not done yet */
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (io.woken)
            weft_reactor_pass(io.s, io.f, DIR_WRITE);
        if (err) {
            errno = err;
            return -1;
        }
        return 0;
    }
}

int weft_close(int fd)
{
    weft_reactor_forget(weft_sched_tls, fd);
    return weft_sys_close(fd);
}

ssize_t weft_read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = weft_read(fd, (char *)buf + got, n - got);
        if (r == 0)
            break;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return got ? (ssize_t)got : -1;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

ssize_t weft_write_full(int fd, const void *buf, size_t n)
{
    size_t put = 0;
    while (put < n) {
        ssize_t r = weft_write(fd, (const char *)buf + put, n - put);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return put ? (ssize_t)put : -1;
        }
        put += (size_t)r;
    }
    return (ssize_t)put;
}

/* poll(2) for tasks: a non-blocking poll first; if nothing is ready, park on the queues of
 * every fd at once (waiter nodes owned by this call), then poll again. */
struct poll_wait {
    struct fdent *f;
    int dir;
};

int weft_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    struct sched *s = weft_sched_tls;
    if (!s || !s->cur || timeout_ms == 0)
        return weft_sys_poll(fds, nfds, timeout_ms);
    if (nfds > 65536) {
        errno = EINVAL;
        return -1;
    }
    struct weft_task *t = s->cur;
    int64_t deadline = timeout_ms < 0 ? -1 : weft_now() + timeout_ms;
    int cut = t->deadline >= 0 && (deadline < 0 || t->deadline < deadline);
    struct waiter wl[16], *w = wl;
    struct poll_wait pl[16], *pw = pl;
    if (nfds > 8) {
        w = malloc(2 * nfds * sizeof *w);
        pw = malloc(2 * nfds * sizeof *pw);
        if (!w || !pw) {
            free(w);
            free(pw);
            errno = ENOMEM;
            return -1;
        }
    }
    int result;
    for (;;) {
        int n = weft_sys_poll(fds, nfds, 0);
        if (n != 0) {
            result = n;
            break;
        }
        int nw = 0, e = 0;
        for (nfds_t i = 0; i < nfds && !e; i++) {
            if (fds[i].fd < 0)
                continue;
            struct fdent *f = weft_fd_get(s, fds[i].fd, 0);
            if (!f) {
                e = errno;
                break;
            }
            if ((e = weft_reactor_register(s, f, fds[i].fd)) != 0)
                break;
            /* Errors and hang-ups wake readers, so wait for reading unless only POLLOUT. */
            int dirs = (fds[i].events & POLLOUT) ? 2 : 0;
            if ((fds[i].events & (POLLIN | POLLPRI | POLLRDHUP)) || !dirs)
                dirs |= 1;
            for (int d = 0; d < 2; d++) {
                if (!(dirs & (1 << d)))
                    continue;
                w[nw].task = t;
                list_push_back(&f->waiters[d], &w[nw].link);
                pw[nw].f = f;
                pw[nw].dir = d;
                nw++;
            }
        }
        if (!e) {
            t->extra = w;
            t->nextra = nw;
            t->wait_fd = nfds ? fds[0].fd : -1;
            t->wait_events = 0;
            e = weft_sched_park(s, NULL, 0, WAIT_IO, deadline);
        }
        t->extra = NULL;
        t->nextra = 0;
        for (int i = 0; i < nw; i++) {
            list_remove(&w[i].link);
            if (e == 0)     /* woken by readiness: others on those fds may want it too */
                weft_reactor_pass(s, pw[i].f, pw[i].dir);
        }
        if (e == ETIMEDOUT && !cut) {
            result = 0;     /* the poll's own timeout: nothing ready */
            break;
        }
        /* EBADF: weft_close closed one of the fds; poll again, which reports POLLNVAL for
         * it as poll(2) does (EBADF is no poll errno). EAGAIN: an fd deadline changed. */
        if (e != 0 && e != EAGAIN && e != EBADF) {
            errno = e;
            result = -1;
            break;
        }
    }
    if (w != wl) {
        free(w);
        free(pw);
    }
    return result;
}

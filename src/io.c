/* The IO wrappers: libc's calls with libc's signatures, which park the task on the reactor
 * instead of blocking the thread. Each tries its call first and parks only on EAGAIN, so the
 * common case costs the syscall and nothing else. Readiness, deadlines and waking are the
 * reactor's (reactor_epoll.c); sockets by address are net.c's. */
#include "config.h"
#include "io.h"
#include "sys.h"

#include <errno.h>

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* One wrapper call in progress. */
struct io {
    struct sched *s;
    struct fdent *f;
    struct fdio *x; /* fdio(f) */
    int fd;
    uint32_t seq;   /* f->seq when the call began: a change means the fd was closed */
    int woken;      /* parked once and woken by readiness: pass it on when done */
    int nowait;     /* MSG_DONTWAIT: this call never parks */
};

/* 1: inside a task, io is set up; 0: outside any task, make the plain call; -1: errno set. */
static inline int io_begin(struct io *io, int fd, int dir)
{
    struct sched *s = weft_sched_tls;
    if (slow(!s || !s->cur))
        return 0;
    struct fdent *f = weft_io_fd(s, fd);
    if (slow(!f))
        return -1;
    /* Go's rule: once an fd deadline has passed, calls fail at once, data or not. */
    if (slow(f->deadline[dir] >= 0) && f->deadline[dir] <= weft_now()) {
        errno = ETIMEDOUT;
        return -1;
    }
    io->s = s;
    io->f = f;
    io->x = fdio(f);
    io->fd = fd;
    io->seq = f->seq;
    io->woken = 0;
    io->nowait = 0;
    return 1;
}

/* A socket call said ENOTSOCK on a record of a socket: the number was closed with close(2)
 * and now holds another file. Forget the stale record (its waiters get EBADF), learn the
 * file that is there now, and let the call try again on it. 0, or -1 with errno. */
static __attribute__((noinline, cold)) int io_relearn(struct io *io)
{
    weft_reactor_forget(io->s, io->fd);
    struct fdent *f = weft_io_fd(io->s, io->fd);
    if (!f)
        return -1;
    io->f = f;
    io->x = fdio(f);
    io->seq = f->seq;
    io->woken = 0;
    return 0;
}

/* Park for dir until woken; 0 to try again, or -1 with errno (the reason the wait ended). */
static int io_park(struct io *io, int dir)
{
    int e = weft_reactor_wait(io->s, io->f, io->fd, dir, io->woken, -1, io->seq);
    /* The fd's deadline changed: moved into the past, it ends the call now, as it would
     * at the call's start, even if data came meanwhile. */
    if (e == EAGAIN && io->f->deadline[dir] >= 0 && io->f->deadline[dir] <= weft_now())
        e = ETIMEDOUT;
    if (e == 0 || e == EAGAIN) {   /* readiness, or the fd's deadline changed */
        io->woken = e == 0;
        return 0;
    }
    errno = e;
    return -1;
}

/* After an attempt that returned r: 0 when the call is over (return r; errno is the call's,
 * or the reason the wait ended), 1 to try again after the task was parked and woken. */
static inline int io_retry(struct io *io, ssize_t r, int dir)
{
    if (fast(r >= 0))
        goto done;
    if (errno == EAGAIN && !io->x->user_nonblock && !io->nowait)
        return io_park(io, dir) == 0;
    if (slow(errno == ENOTSOCK) && io->x->is_socket) {
        if (io_relearn(io) != 0)
            return 0;
        return 1;
    }
done:
    if (slow(io->woken))
        weft_reactor_pass(io->s, io->f, dir);
    return 0;
}

/* A call that has no per-call MSG_DONTWAIT (a pipe's read, accept, connect, sendfile) needs
 * the fd in O_NONBLOCK, which the user or a stale record may have undone: checked first. */
#define NB(io, call) (slow(weft_io_nonblock((io)->f, (io)->fd) != 0) ? -1 : (call))

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
 * at urgent data, a FIN or an error, which all come with an event: the reactor's rd_final),
 * and data arriving after it brings an edge-triggered event (rd_event, cleared at the short
 * read). So until that event, the next weft_read
 * parks at once instead of making a read(2) that would fail with EAGAIN: one syscall less
 * per request-response exchange. (Not for Unix sockets: they also stop at passed fds.)
 * A task that is cancelled or past its deadline reads anyway: data already there is its. */
static inline int io_park_first(const struct io *io)
{
    const struct weft_task *t = io->s->cur;
    return io->x->rd_short && !io->f->rd_event && !io->f->rd_final && !io->x->user_nonblock && !(t->flags & TF_CANCELLED) &&
           (t->deadline < 0 || t->deadline > weft_now());
}

/* Sockets are read and written with MSG_DONTWAIT, whatever their O_NONBLOCK says, so a
 * socket call never blocks the thread, even on a record left stale by a plain close(2). */
#define SOCK_RD MSG_DONTWAIT
#define SOCK_WR (MSG_DONTWAIT | MSG_NOSIGNAL)

ssize_t weft_read(int fd, void *buf, size_t n)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_READ);
    if (in <= 0 || slow(n == 0))   /* read(2) of 0 bytes never blocks; recv's would */
        return in < 0 ? -1 : weft_sys_read(fd, buf, n);
    if (io_park_first(&io) && io_park(&io, DIR_READ) != 0)
        return -1;
    ssize_t r;
    do
        r = io.x->is_socket ? weft_sys_recv(fd, buf, n, SOCK_RD) : NB(&io, weft_sys_read(fd, buf, n));
    while (io_retry(&io, r, DIR_READ));
    io.x->rd_short = r > 0 && (size_t)r < n && io.x->tcp && !io.f->rd_final;
    if (io.x->rd_short)
        io.f->rd_event = 0;
    return r;
}

ssize_t weft_write(int fd, const void *buf, size_t n)
{
    IO_CALL(DIR_WRITE, 0, weft_sys_write(fd, buf, n),
            io.x->is_socket ? weft_sys_send(fd, buf, n, SOCK_WR) : NB(&io, write_nosigpipe(fd, buf, n, 0, NULL, 0)));
}

/* readv and writev on a socket, as recvmsg and sendmsg (which say EMSGSIZE where readv and
 * writev say EINVAL: keep theirs). */
static ssize_t iov_socket(int fd, const struct iovec *iov, int iovcnt, int wr)
{
    if (iovcnt < 0 || iovcnt > IOV_MAX) {
        errno = EINVAL;
        return -1;
    }
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
    return wr ? weft_sys_sendmsg(fd, &m, SOCK_WR) : weft_sys_recvmsg(fd, &m, SOCK_RD);
}

/* No byte asked for: readv(2) returns 0 at once there, where a socket's recvmsg would wait. */
static int iov_empty(const struct iovec *iov, int iovcnt)
{
    if (!iov || iovcnt <= 0 || iovcnt > IOV_MAX)
        return 0;
    for (int i = 0; i < iovcnt; i++)
        if (iov[i].iov_len)
            return 0;
    return 1;
}

ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt)
{
    IO_CALL(DIR_READ, 0, weft_sys_readv(fd, iov, iovcnt),
            !io.x->is_socket ? NB(&io, weft_sys_readv(fd, iov, iovcnt))
            : slow(iov_empty(iov, iovcnt)) ? weft_sys_readv(fd, iov, iovcnt) : iov_socket(fd, iov, iovcnt, 0));
}

ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt)
{
    IO_CALL(DIR_WRITE, 0, weft_sys_writev(fd, iov, iovcnt),
            io.x->is_socket ? iov_socket(fd, iov, iovcnt, 1) : NB(&io, write_nosigpipe(fd, NULL, 0, 1, iov, iovcnt)));
}

/* One recvfrom in a task: parks until data, EOF or an error. */
static ssize_t io_recvfrom(struct io *io, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *addrlen)
{
    ssize_t r;
    do
        r = weft_sys_recvfrom(io->fd, buf, n, flags | SOCK_RD, addr, addrlen);
    while (io_retry(io, r, DIR_READ));
    return r;
}

/* MSG_WAITALL asks a blocking receive on a stream socket for all n bytes; the kernel drops it
 * for a non-blocking one, so it is done here: receive until n bytes, EOF or an error. A
 * short count after an error returns what came before it (the error is lost, as with
 * libc's call; the next call reports it). Datagram and seqpacket sockets take one message. */
static inline int waitall(const struct io *io, int flags)
{
    return (flags & MSG_WAITALL) && !(flags & (MSG_DONTWAIT | MSG_PEEK)) && io->x->stream &&
           !io->x->user_nonblock;
}

ssize_t weft_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *addrlen)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_READ);
    if (in <= 0)
        return in < 0 ? -1 : weft_sys_recvfrom(fd, buf, n, flags, addr, addrlen);
    io.nowait = (flags & MSG_DONTWAIT) != 0;
    if (!io.x->is_socket || fast(!waitall(&io, flags)))
        return io_recvfrom(&io, buf, n, flags, addr, addrlen);
    size_t got = 0;
    do {
        ssize_t r = io_recvfrom(&io, (char *)buf + got, n - got, flags & ~MSG_WAITALL,
                                got ? NULL : addr, got ? NULL : addrlen);
        if (r <= 0)
            return got ? (ssize_t)got : r;
        got += (size_t)r;
    } while (got < n && io.x->stream);
    return (ssize_t)got;
}

ssize_t weft_recv(int fd, void *buf, size_t n, int flags)
{
    return weft_recvfrom(fd, buf, n, flags, NULL, NULL);
}

ssize_t weft_send(int fd, const void *buf, size_t n, int flags)
{
    IO_CALL(DIR_WRITE, flags & MSG_DONTWAIT, weft_sys_send(fd, buf, n, flags), weft_sys_send(fd, buf, n, flags | SOCK_WR));
}

ssize_t weft_sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr, socklen_t addrlen)
{
    IO_CALL(DIR_WRITE, flags & MSG_DONTWAIT, weft_sys_sendto(fd, buf, n, flags, addr, addrlen),
            weft_sys_sendto(fd, buf, n, flags | SOCK_WR, addr, addrlen));
}

static ssize_t io_recvmsg(struct io *io, struct msghdr *msg, int flags)
{
    ssize_t r;
    do
        r = weft_sys_recvmsg(io->fd, msg, flags | SOCK_RD);
    while (io_retry(io, r, DIR_READ));
    return r;
}

#define WAITALL_STACK_IOV 16

/* recvmsg with MSG_WAITALL on a stream socket (see waitall): the iovec is filled call by call.
 * Ancillary data ends the loop once some has come, as the kernel's own wait ends at data
 * that carries it, so control messages are never merged or lost. */
static ssize_t recvmsg_waitall(struct io *io, struct msghdr *msg, int flags)
{
    size_t cnt = msg->msg_iovlen, want = 0;
    if (cnt > IOV_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    for (size_t i = 0; i < cnt; i++)
        want += msg->msg_iov[i].iov_len;
    struct iovec stack_iov[WAITALL_STACK_IOV], *iov = stack_iov;
    if (cnt > WAITALL_STACK_IOV && !(iov = malloc(cnt * sizeof *iov))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(iov, msg->msg_iov, cnt * sizeof *iov);
    struct msghdr m = *msg;
    m.msg_iov = iov;
    size_t got = 0, first = 0;
    int mflags = 0;
    socklen_t namelen = 0;
    ssize_t r = 0;
    for (;;) {
        r = io_recvmsg(io, &m, flags & ~MSG_WAITALL);
        if (r <= 0)
            break;
        if (!got)
            namelen = m.msg_namelen;
        got += (size_t)r;
        mflags |= m.msg_flags;
        if (got >= want || m.msg_controllen > 0 || !io->x->stream)
            break;
        /* Advance past what was filled; later calls take no address. */
        size_t left = (size_t)r;
        while (left && left >= iov[first].iov_len)
            left -= iov[first++].iov_len;
        iov[first].iov_base = (char *)iov[first].iov_base + left;
        iov[first].iov_len -= left;
        m.msg_iov = iov + first;
        m.msg_iovlen = cnt - first;
        m.msg_name = NULL;
        m.msg_namelen = 0;
        m.msg_controllen = msg->msg_controllen;
    }
    int e = errno;
    if (iov != stack_iov)
        free(iov);
    if (!got) {
        errno = e;
        return r;
    }
    msg->msg_namelen = namelen;
    msg->msg_controllen = m.msg_controllen;
    msg->msg_flags = mflags | (m.msg_flags & MSG_CTRUNC);
    return (ssize_t)got;
}

ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_READ);
    if (in <= 0)
        return in < 0 ? -1 : weft_sys_recvmsg(fd, msg, flags);
    io.nowait = (flags & MSG_DONTWAIT) != 0;
    if (slow(msg && io.x->is_socket && waitall(&io, flags)))
        return recvmsg_waitall(&io, msg, flags);
    return io_recvmsg(&io, msg, flags);
}

ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    IO_CALL(DIR_WRITE, flags & MSG_DONTWAIT, weft_sys_sendmsg(fd, msg, flags), weft_sys_sendmsg(fd, msg, flags | SOCK_WR));
}

ssize_t weft_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    int fd = out_fd;
    IO_CALL(DIR_WRITE, 0, weft_sys_sendfile(out_fd, in_fd, offset, count),
            NB(&io, sendfile_nosigpipe(out_fd, in_fd, offset, count)));
}

int weft_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_READ);
    if (in <= 0)
        return in < 0 ? -1 : weft_sys_accept4(fd, addr, addrlen, flags);
    int r;
    do
        r = NB(&io, weft_sys_accept4(fd, addr, addrlen, flags));
    while (io_retry(&io, r, DIR_READ));
    if (r >= 0)     /* the new socket is as the caller asked: blocking unless SOCK_NONBLOCK */
        weft_io_adopt(io.s, r, flags & SOCK_NONBLOCK, flags & SOCK_NONBLOCK, io.x->tcp, io.x->stream);
    return r;
}

int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen)
{
    return weft_accept4(fd, addr, addrlen, 0);
}

/* A Unix socket's connect fails with EAGAIN at once, non-blocking, when the listener's backlog
 * is full, where a blocking connect waits for room. No event announces room, so the task
 * sleeps and tries again, 1 ms at first, doubling to 32 ms, until its deadline (the fd's
 * write deadline, the task's scope) or a cancel ends the wait. 0 to try again, or -1. */
#define UNIX_RETRY_MAX_MS 32

static int unix_backoff(struct io *io, int64_t *delay)
{
    struct weft_task *t = io->s->cur;
    int64_t fdl = io->f->deadline[DIR_WRITE];
    int64_t wake = weft_deadline_after(*delay);
    if (fdl >= 0 && fdl < wake)
        wake = fdl;
    if (*delay < UNIX_RETRY_MAX_MS)
        *delay *= 2;
    t->wait_fd = io->fd;
    t->wait_events = WEFT_WRITE;
    int e = weft_sched_park(io->s, NULL, 0, WAIT_IO, wake);
    int64_t now = weft_now();
    if (e == ETIMEDOUT && !(fdl >= 0 && fdl <= now) && !(t->deadline >= 0 && t->deadline <= now))
        e = 0;      /* our own retry timer */
    if (slow(io->f->seq != io->seq))
        e = EBADF;
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    struct io io;
    int in = io_begin(&io, fd, DIR_WRITE);
    if (in <= 0)
        return in < 0 ? -1 : weft_sys_connect(fd, addr, addrlen);
    int64_t delay = 1;
    for (;;) {
        if (NB(&io, weft_sys_connect(fd, addr, addrlen)) == 0)
            return 0;
        if (errno == EAGAIN && addr && addrlen >= sizeof addr->sa_family && addr->sa_family == AF_UNIX &&
            !io.x->user_nonblock) {
            if (unix_backoff(&io, &delay) != 0)
                return -1;
            continue;
        }
        break;
    }
    if (errno != EINPROGRESS || io.x->user_nonblock)
        return -1;
    /* In progress: wait until writable, then SO_ERROR says how it ended. */
    for (;;) {
        if (io_park(&io, DIR_WRITE) != 0)
            return -1;
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
        if (r == 0) {
            errno = 0;          /* the short count is EOF's, not what another task left */
            break;
        }
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

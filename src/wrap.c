/* Link-time wrapping: __wrap_read and the rest, for code linked with the flags weft-wrap-flags
 * prints (-Wl,--wrap=read,...). The linker sends that link's calls to read here (the program's
 * objects and static archives; shared libraries keep calling libc), and each goes on to weft's
 * wrapper, which parks the task, or outside any task makes the plain call. The wrappers are
 * io.c's and poll.c's (name lookups offload_dns.c's), the fd table the reactor's; this file adds
 * what --wrap and posix.h
 * need beyond them: fcntl's view of O_NONBLOCK, sleeps, and glibc's _FORTIFY_SOURCE entries.
 * Like every file of libweft it never calls a wrapped name itself (see sys.h). */
#include "config.h"
#include "io.h"
#include "sys.h"

#include <errno.h>

#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <time.h>

/* Exported, not declared in any header: only the linker calls these. */
#define WRAP(ret, name, params) WEFT_API ret __wrap_##name params; WEFT_API ret __wrap_##name params

WRAP(ssize_t, read, (int fd, void *buf, size_t n))
{
    return weft_read(fd, buf, n);
}

WRAP(ssize_t, write, (int fd, const void *buf, size_t n))
{
    return weft_write(fd, buf, n);
}

WRAP(ssize_t, readv, (int fd, const struct iovec *iov, int iovcnt))
{
    return weft_readv(fd, iov, iovcnt);
}

WRAP(ssize_t, writev, (int fd, const struct iovec *iov, int iovcnt))
{
    return weft_writev(fd, iov, iovcnt);
}

WRAP(ssize_t, recv, (int fd, void *buf, size_t n, int flags))
{
    return weft_recv(fd, buf, n, flags);
}

WRAP(ssize_t, send, (int fd, const void *buf, size_t n, int flags))
{
    return weft_send(fd, buf, n, flags);
}

WRAP(ssize_t, recvfrom, (int fd, void *buf, size_t n, int flags, struct sockaddr *addr, socklen_t *addrlen))
{
    return weft_recvfrom(fd, buf, n, flags, addr, addrlen);
}

WRAP(ssize_t, sendto, (int fd, const void *buf, size_t n, int flags, const struct sockaddr *addr,
                       socklen_t addrlen))
{
    return weft_sendto(fd, buf, n, flags, addr, addrlen);
}

WRAP(ssize_t, recvmsg, (int fd, struct msghdr *msg, int flags))
{
    return weft_recvmsg(fd, msg, flags);
}

WRAP(ssize_t, sendmsg, (int fd, const struct msghdr *msg, int flags))
{
    return weft_sendmsg(fd, msg, flags);
}

WRAP(int, accept, (int fd, struct sockaddr *addr, socklen_t *addrlen))
{
    return weft_accept(fd, addr, addrlen);
}

WRAP(int, accept4, (int fd, struct sockaddr *addr, socklen_t *addrlen, int flags))
{
    return weft_accept4(fd, addr, addrlen, flags);
}

WRAP(int, connect, (int fd, const struct sockaddr *addr, socklen_t addrlen))
{
    return weft_connect(fd, addr, addrlen);
}

WRAP(int, poll, (struct pollfd *fds, nfds_t nfds, int timeout_ms))
{
    return weft_poll(fds, nfds, timeout_ms);
}

WRAP(int, close, (int fd))
{
    return weft_close(fd);
}

WRAP(ssize_t, sendfile, (int out_fd, int in_fd, off_t *offset, size_t count))
{
    return weft_sendfile(out_fd, in_fd, offset, count);
}

/* What sendfile is called under -D_FILE_OFFSET_BITS=64 (hiredis's pkg-config adds that). */
WRAP(ssize_t, sendfile64, (int out_fd, int in_fd, off64_t *offset, size_t count))
{
    if (sizeof(off_t) == sizeof(off64_t) || !offset)
        return weft_sendfile(out_fd, in_fd, (off_t *)offset, count);
    if (*offset < 0 || (uint64_t)*offset > (uint64_t)LONG_MAX) {   /* 32-bit off_t */
        errno = EOVERFLOW;
        return -1;
    }
    off_t off = (off_t)*offset;
    ssize_t r = weft_sendfile(out_fd, in_fd, &off, count);
    *offset = off;
    return r;
}

/* ---- fcntl: O_NONBLOCK as the caller set it ----------------------------------------------- */

/* weft remembers whether the caller wants an fd it knows non-blocking (if so its calls return
 * EAGAIN instead of parking). Code that changes O_NONBLOCK itself (hiredis connects
 * non-blocking, then clears the flag) must change that memory, and F_GETFL must show the
 * caller's flag. A socket gets the caller's flags as they are (its calls say MSG_DONTWAIT,
 * so a blocking socket never blocks a task's thread); any other fd stays O_NONBLOCK
 * underneath, switched back when weft lets it go. Other commands pass through. The argument
 * is read as glibc's fcntl reads it: one word, whatever the command. */
static int fcntl_as_caller(int fd, int cmd, unsigned long arg)
{
    struct fdent *e;
    if ((cmd != F_GETFL && cmd != F_SETFL) || !(e = weft_io_known(weft_sched_tls, fd)))
        return weft_sys_fcntl(fd, cmd, arg);
    struct fdio *f = fdio(e);
    if (cmd == F_GETFL) {
        int fl = weft_sys_fcntl(fd, F_GETFL, 0);
        if (fl >= 0)
            fl = f->user_nonblock ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
        return fl;
    }
    int want = (int)arg;
    int nb = (want & O_NONBLOCK) != 0;
    int r = weft_sys_fcntl(fd, F_SETFL, (unsigned long)(unsigned)(f->is_socket ? want : want | O_NONBLOCK));
    if (r == 0) {
        f->user_nonblock = (unsigned char)nb;
        f->switched = !f->is_socket && !nb;    /* O_NONBLOCK is weft's now: undone at teardown */
    }
    return r;
}

int weft_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return fcntl_as_caller(fd, cmd, arg);
}

WEFT_API int __wrap_fcntl(int fd, int cmd, ...);
WEFT_API int __wrap_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return fcntl_as_caller(fd, cmd, arg);
}

/* What fcntl is called under -D_FILE_OFFSET_BITS=64 (glibc 2.28 and later). On 64-bit it is
 * the same call; 32-bit file locks through the wrapper are not supported (docs/wrap.md). */
WEFT_API int __wrap_fcntl64(int fd, int cmd, ...);
WEFT_API int __wrap_fcntl64(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    unsigned long arg = va_arg(ap, unsigned long);
    va_end(ap);
    return fcntl_as_caller(fd, cmd, arg);
}

WRAP(int, select, (int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv))
{
    return weft_select(nfds, rd, wr, ex, tv);
}

/* ---- sleeps ----------------------------------------------------------------------------- */

/* In a task, sleeping parks the task (whole milliseconds, rounded up; a cancelled task wakes
 * with ECANCELED); outside any task it sleeps the thread, as libc does. */
static int64_t ts_to_ms(const struct timespec *ts)
{
    if (ts->tv_sec > INT64_MAX / 4000)
        return INT64_MAX / 4;
    return (int64_t)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
}

/* Park the running task for ms; 0, or -1 with errno and *left the milliseconds not slept. */
static int task_sleep(int64_t ms, int64_t *left)
{
    int64_t start = weft_now();
    if (weft_sleep(ms) == 0)
        return 0;
    int e = errno;
    int64_t l = ms - (weft_now() - start);
    *left = l > 0 ? l : 0;
    errno = e;
    return -1;
}

int weft_nanosleep(const struct timespec *req, struct timespec *rem)
{
    if (!weft_self())
        return weft_sys_nanosleep(req, rem);
    if (!req) {
        errno = EFAULT;
        return -1;
    }
    if (req->tv_sec < 0 || req->tv_nsec < 0 || req->tv_nsec >= 1000000000) {
        errno = EINVAL;
        return -1;
    }
    int64_t left;
    if (task_sleep(ts_to_ms(req), &left) == 0)
        return 0;
    if (rem) {
        rem->tv_sec = (time_t)(left / 1000);
        rem->tv_nsec = (long)(left % 1000) * 1000000;
    }
    return -1;
}

int weft_usleep(useconds_t usec)
{
    int64_t left;
    if (weft_self())
        return task_sleep(((int64_t)usec + 999) / 1000, &left);
    struct timespec ts = { (time_t)(usec / 1000000), (long)(usec % 1000000) * 1000 };
    return weft_sys_nanosleep(&ts, NULL);
}

unsigned weft_sleep_sec(unsigned seconds)
{
    int64_t left;
    if (weft_self()) {
        if (task_sleep((int64_t)seconds * 1000, &left) == 0)
            return 0;
        return (unsigned)((left + 999) / 1000);
    }
    struct timespec ts = { (time_t)seconds, 0 }, rem;
    if (weft_sys_nanosleep(&ts, &rem) == 0)
        return 0;
    return (unsigned)rem.tv_sec + (rem.tv_nsec >= 500000000);
}

WRAP(int, nanosleep, (const struct timespec *req, struct timespec *rem))
{
    return weft_nanosleep(req, rem);
}

WRAP(int, usleep, (useconds_t usec))
{
    return weft_usleep(usec);
}

WRAP(unsigned, sleep, (unsigned seconds))
{
    return weft_sleep_sec(seconds);
}

/* ---- glibc's _FORTIFY_SOURCE entries ------------------------------------------------------ */

/* With -D_FORTIFY_SOURCE (Ubuntu's compiler turns it on at -O), a read into a buffer of known
 * size calls __read_chk, not read; likewise recv, recvfrom and poll. These check the size as
 * glibc does, then take the wrapper. */
#ifdef __GLIBC__
extern void __chk_fail(void) __attribute__((noreturn));
#define chk_fail() __chk_fail()
#else
#define chk_fail() abort()
#endif

WRAP(ssize_t, __read_chk, (int fd, void *buf, size_t n, size_t buflen))
{
    if (n > buflen)
        chk_fail();
    return weft_read(fd, buf, n);
}

WRAP(ssize_t, __recv_chk, (int fd, void *buf, size_t n, size_t buflen, int flags))
{
    if (n > buflen)
        chk_fail();
    return weft_recv(fd, buf, n, flags);
}

WRAP(ssize_t, __recvfrom_chk, (int fd, void *buf, size_t n, size_t buflen, int flags,
                               struct sockaddr *addr, socklen_t *addrlen))
{
    if (n > buflen)
        chk_fail();
    return weft_recvfrom(fd, buf, n, flags, addr, addrlen);
}

WRAP(int, __poll_chk, (struct pollfd *fds, nfds_t nfds, int timeout_ms, size_t fdslen))
{
    if (fdslen / sizeof *fds < nfds)
        chk_fail();
    return weft_poll(fds, nfds, timeout_ms);
}

/* Name lookups: on the offload pool (offload_dns.c), which finds libc's own with dlsym. */
WRAP(int, getaddrinfo, (const char *node, const char *service, const struct addrinfo *hints,
                        struct addrinfo **res))
{
    return weft_getaddrinfo(node, service, hints, res);
}

WRAP(int, getnameinfo, (const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
                        char *serv, socklen_t servlen, int flags))
{
    return weft_getnameinfo(sa, salen, host, hostlen, serv, servlen, flags);
}

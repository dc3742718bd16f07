/* The system calls weft makes on fds, as direct syscall(2)s under weft_sys_* names; the
 * wrapping itself (which libc names a program may route to weft) is wrap.c's.
 *
 * Why not libc's read, write, ...: a program may link with -Wl,--wrap=read,... (weft-wrap-flags)
 * so that its own and its archives' calls reach weft. --wrap rewrites every undefined reference
 * to read in the objects of that link, and with the static libweft.a weft's objects are among
 * them: a weft_read that called read would call __wrap_read, which calls weft_read. (With the
 * shared library the references are bound at run time, untouched by --wrap, but it is the same
 * code.) __real_read exists only in a wrapped link, and glibc's __read aliases only in glibc,
 * so weft names none of them: it enters the kernel itself, one syscall per call, as libc does.
 * Rule: no file of libweft calls a name that weft-wrap-flags lists; tests/wrap-symbols.test
 * checks libweft.a for such references. */
#ifndef WEFT_SYS_H
#define WEFT_SYS_H

#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static inline ssize_t weft_sys_read(int fd, void *buf, size_t n)
{
    return syscall(SYS_read, (long)fd, buf, n);
}

static inline ssize_t weft_sys_write(int fd, const void *buf, size_t n)
{
    return syscall(SYS_write, (long)fd, buf, n);
}

static inline ssize_t weft_sys_readv(int fd, const struct iovec *iov, int iovcnt)
{
    return syscall(SYS_readv, (long)fd, iov, (long)iovcnt);
}

static inline ssize_t weft_sys_writev(int fd, const struct iovec *iov, int iovcnt)
{
    return syscall(SYS_writev, (long)fd, iov, (long)iovcnt);
}

static inline ssize_t weft_sys_recvfrom(int fd, void *buf, size_t n, int flags,
                                        struct sockaddr *addr, socklen_t *addrlen)
{
    return syscall(SYS_recvfrom, (long)fd, buf, n, (long)flags, addr, addrlen);
}

static inline ssize_t weft_sys_sendto(int fd, const void *buf, size_t n, int flags,
                                      const struct sockaddr *addr, socklen_t addrlen)
{
    return syscall(SYS_sendto, (long)fd, buf, n, (long)flags, addr, (long)addrlen);
}

/* recv and send are recvfrom and sendto without an address, as in the kernel. */
static inline ssize_t weft_sys_recv(int fd, void *buf, size_t n, int flags)
{
    return weft_sys_recvfrom(fd, buf, n, flags, NULL, NULL);
}

static inline ssize_t weft_sys_send(int fd, const void *buf, size_t n, int flags)
{
    return weft_sys_sendto(fd, buf, n, flags, NULL, 0);
}

static inline ssize_t weft_sys_recvmsg(int fd, struct msghdr *msg, int flags)
{
    return syscall(SYS_recvmsg, (long)fd, msg, (long)flags);
}

static inline ssize_t weft_sys_sendmsg(int fd, const struct msghdr *msg, int flags)
{
    return syscall(SYS_sendmsg, (long)fd, msg, (long)flags);
}

/* accept is accept4 with no flags. */
static inline int weft_sys_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
    return (int)syscall(SYS_accept4, (long)fd, addr, addrlen, (long)flags);
}

static inline int weft_sys_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
    return (int)syscall(SYS_connect, (long)fd, addr, (long)addrlen);
}

static inline int weft_sys_close(int fd)
{
    return (int)syscall(SYS_close, (long)fd);
}

static inline int weft_sys_pipe2(int fds[2], int flags)
{
    return (int)syscall(SYS_pipe2, fds, (long)flags);
}

/* Commands whose argument is an int or a pointer of the kernel's layout (64-bit: all). */
static inline int weft_sys_fcntl(int fd, int cmd, unsigned long arg)
{
    return (int)syscall(SYS_fcntl, (long)fd, (long)cmd, arg);
}

static inline ssize_t weft_sys_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
#ifdef SYS_sendfile64
    if (sizeof(off_t) != sizeof(long))     /* 32-bit with a 64-bit off_t */
        return syscall(SYS_sendfile64, (long)out_fd, (long)in_fd, offset, count);
#endif
    return syscall(SYS_sendfile, (long)out_fd, (long)in_fd, offset, count);
}

/* Newer architectures (aarch64) have only ppoll. */
static inline int weft_sys_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
#ifdef SYS_poll
    return (int)syscall(SYS_poll, fds, nfds, (long)timeout_ms);
#else
    struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000 };
    return (int)syscall(SYS_ppoll, fds, nfds, timeout_ms < 0 ? NULL : &ts, NULL, (long)(_NSIG / 8));
#endif
}

static inline int weft_sys_nanosleep(const struct timespec *req, struct timespec *rem)
{
#ifdef SYS_nanosleep
    return (int)syscall(SYS_nanosleep, req, rem);
#else
    return (int)syscall(SYS_clock_nanosleep, (long)CLOCK_REALTIME, 0L, req, rem);
#endif
}

#endif

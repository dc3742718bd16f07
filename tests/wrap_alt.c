/* Calls that reach libc under other names than their own, as much third-party code is built:
 * with -D_FORTIFY_SOURCE=2 a read into a buffer of known size is __read_chk (likewise recv,
 * recvfrom, poll), and with -D_FILE_OFFSET_BITS=64 fcntl and sendfile are fcntl64 and
 * sendfile64. Built apart with those flags so check_wrap can test that the wrapped link sends
 * them to weft too; sizes come from the caller, so the compiler cannot prove a call safe and
 * keep the plain one (tests/wrap-symbols.test checks the names are really referenced). */
#include <fcntl.h>
#include <netdb.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wrap_alt.h"

char fortify_buf[64];

ssize_t fortified_read(int fd, size_t n)
{
    return read(fd, fortify_buf, n);
}

ssize_t fortified_recv(int fd, size_t n)
{
    return recv(fd, fortify_buf, n, 0);
}

ssize_t fortified_recvfrom(int fd, size_t n)
{
    return recvfrom(fd, fortify_buf, n, 0, NULL, NULL);
}

int fortified_poll(int fd, short events, int timeout_ms, nfds_t n, short *revents)
{
    struct pollfd p[1] = { { .fd = fd, .events = events } };
    int r = poll(p, n, timeout_ms);
    *revents = p[0].revents;
    return r;
}

int lfs_fcntl(int fd, int cmd, int arg)
{
    return fcntl(fd, cmd, arg);
}

ssize_t lfs_sendfile(int out_fd, int in_fd, long long *offset, size_t count)
{
    off_t off = (off_t)*offset;
    ssize_t r = sendfile(out_fd, in_fd, &off, count);
    *offset = (long long)off;
    return r;
}

/* A client library's name lookups, as an archive linked with the wrap flags makes them. */
int archive_lookup(const char *node, struct addrinfo **res)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM };
    return getaddrinfo(node, "80", &hints, res);
}

int archive_name_of(const struct sockaddr *sa, socklen_t len, char *host, size_t n)
{
    return getnameinfo(sa, len, host, (socklen_t)n, NULL, 0, NI_NUMERICHOST);
}

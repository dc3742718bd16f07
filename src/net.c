/* Sockets by address: TCP, Unix stream and UDP, listening and dialling. This file takes
 * numeric hosts (and "localhost") only: the public TCP and UDP helpers, which also take host
 * names, are offload_net.c's, in the offload layer, since a lookup runs on the pool; they
 * come here for the sockets. The sockets are weft's own, non-blocking from birth; io.c does
 * the waiting. */
#include "config.h"
#include "io.h"
#include "sys.h"

#include <errno.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Fill ss from a numeric host (NULL: the wildcard when 'passive'); 0, or -1 with EINVAL. */
static int addr_parse(const char *host, int port, int passive, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    if (port < 0 || port > 65535 || (!host && !passive)) {
        errno = EINVAL;
        return -1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (!host || strcmp(host, "::") == 0) {
        v6->sin6_family = AF_INET6;
        v6->sin6_addr = in6addr_any;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return 0;
    }
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        return 0;
    }
    const char *h = host;
    char buf[INET6_ADDRSTRLEN + 2];
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']' && hl - 2 < sizeof buf) {
        memcpy(buf, host + 1, hl - 2);
        buf[hl - 2] = '\0';
        h = buf;
    }
    if (inet_pton(AF_INET6, h, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return 0;
    }
    errno = EINVAL;     /* not a numeric address: no name lookup on the loop */
    return -1;
}

/* A new non-blocking, close-on-exec socket that the reactor knows as weft's own. */
static int new_socket(int family, int type)
{
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sched *s = weft_sched_get();
    if (s)
        weft_io_adopt(s, fd, 0, 1, type == SOCK_STREAM && family != AF_UNIX, type == SOCK_STREAM);
    return fd;
}

/* WEFT_NONBLOCK: from now on the user's calls on fd get EAGAIN instead of parking. */
static void keep_nonblocking(int fd)
{
    struct fdent *f = weft_io_known(weft_sched_tls, fd);
    if (f) {
        fdio(f)->user_nonblock = 1;
        fdio(f)->switched = 0;
    }
}

/* A Unix connect to a full backlog fails with EAGAIN at once on a non-blocking socket, where
 * a blocking connect waits for room; outside any task, wait here the same way (the task
 * path is weft_connect's): sleep 1 ms, doubling to 32, and try again until the deadline. */
static int unix_connect_wait(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    long delay = 1;
    for (;;) {
        if (weft_sys_connect(fd, sa, len) == 0)
            return 0;
        if (errno != EAGAIN)
            return -1;
        int64_t left = deadline < 0 ? delay : deadline - weft_now();
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        long ms = left < delay ? (long)left : delay;
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
        weft_sys_nanosleep(&ts, NULL);
        if (delay < 32)
            delay *= 2;
    }
}

static int fail_close(int fd)
{
    int e = errno;
    weft_close(fd);
    errno = e;
    return -1;
}

/* Connect fd, parking until done or the deadline; outside any task, poll for it. */
static int connect_until(int fd, const struct sockaddr *sa, socklen_t len, int64_t deadline)
{
    if (deadline >= 0 && deadline <= weft_now()) {
        errno = ETIMEDOUT;  /* past already: fail even where connect would not wait (Unix) */
        return -1;
    }
    if (weft_self()) {
        int64_t old = weft_set_task_deadline(-1);
        int64_t d = old < 0 ? deadline : deadline < 0 ? old : (old < deadline ? old : deadline);
        weft_set_task_deadline(d);
        int r = weft_connect(fd, sa, len);
        int e = errno;
        weft_set_task_deadline(old);
        errno = e;
        return r;
    }
    if (sa->sa_family == AF_UNIX)
        return unix_connect_wait(fd, sa, len, deadline);
    if (weft_sys_connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return -1;
    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - weft_now();
        if (deadline >= 0 && left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int n = weft_sys_poll(&p, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            continue;
        int err = 0;
        socklen_t el = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
            return -1;
        if (err) {
            errno = err;
            return -1;
        }
        return 0;
    }
}

/* A weft socket of 'type' for sa, set up for its role: the one path every helper takes.
 * Returns the fd, or -1 with errno (the socket closed). */
int weft_net_open(const struct sockaddr *sa, socklen_t len, int type, enum weft_net_role role,
                  int flags, int backlog, int64_t deadline)
{
    int fd = new_socket(sa->sa_family, type);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0, inet = sa->sa_family != AF_UNIX;
    int ok = 1;
    if (inet && (flags & WEFT_REUSEPORT) && (role == WEFT_NET_LISTEN || role == WEFT_NET_BIND))
        ok = setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) == 0;
    if (ok && inet && type == SOCK_STREAM && (flags & WEFT_NODELAY))
        ok = setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
    if (ok && inet && (role == WEFT_NET_LISTEN || role == WEFT_NET_BIND))
        ok = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0;
    /* The IPv6 wildcard takes IPv4 too. */
    if (ok && sa->sa_family == AF_INET6 && (role == WEFT_NET_LISTEN || role == WEFT_NET_BIND) &&
        IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr))
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    switch (role) {
    case WEFT_NET_LISTEN:
        ok = ok && bind(fd, sa, len) == 0 && listen(fd, backlog > 0 ? backlog : SOMAXCONN) == 0;
        break;
    case WEFT_NET_BIND:
        ok = ok && bind(fd, sa, len) == 0;
        break;
    case WEFT_NET_DIAL:
        ok = ok && connect_until(fd, sa, len, deadline) == 0;
        break;
    case WEFT_NET_CONNECT:
        ok = ok && weft_sys_connect(fd, sa, len) == 0;
        break;
    }
    if (!ok)
        return fail_close(fd);
    if (flags & WEFT_NONBLOCK)
        keep_nonblocking(fd);
    return fd;
}

int weft_net_numeric(const char *host)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int e = errno, r = addr_parse(host, 0, 1, &ss, &len) == 0;
    errno = e;
    return r;
}

int weft_net_open_inet(const char *host, int port, int type, enum weft_net_role role, int flags,
                       int backlog, int64_t deadline)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int passive = role == WEFT_NET_LISTEN || role == WEFT_NET_BIND;
    if (flags & ~(WEFT_REUSEPORT | WEFT_NODELAY | WEFT_NONBLOCK)) {
        errno = EINVAL;
        return -1;
    }
    if (addr_parse(host, port, passive, &ss, &len) != 0)
        return -1;
    int fd = weft_net_open((struct sockaddr *)&ss, len, type, role, flags, backlog, deadline);
    if (fd < 0 && !host && errno == EAFNOSUPPORT) {
        addr_parse("0.0.0.0", port, passive, &ss, &len);
        fd = weft_net_open((struct sockaddr *)&ss, len, type, role, flags, backlog, deadline);
    }
    return fd;
}

static int sock_open_unix(const char *path, enum weft_net_role role, int backlog, int64_t deadline)
{
    struct sockaddr_un sun;
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof sun.sun_path) {
        errno = n == 0 ? EINVAL : ENAMETOOLONG;
        return -1;
    }
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return weft_net_open((struct sockaddr *)&sun, len, SOCK_STREAM, role, 0, backlog, deadline);
}

int weft_unix_listen(const char *path, int backlog)
{
    return sock_open_unix(path, WEFT_NET_LISTEN, backlog, -1);
}

int weft_unix_dial(const char *path, int64_t deadline)
{
    return sock_open_unix(path, WEFT_NET_DIAL, 0, deadline);
}

int weft_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    errno = EAFNOSUPPORT;
    return -1;
}

/* Sockets by address: TCP, Unix stream and UDP, listening and dialling. Hosts are numeric
 * addresses (and "localhost"): resolving a name would block the thread, so it waits for the
 * offload pool. The sockets are weft's own, non-blocking from birth; io.c does the waiting. */
#include "config.h"
#include "internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
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
        weft_fd_adopt(s, fd, 0);
    return fd;
}

static int fail_close(int fd)
{
    int e = errno;
    weft_close(fd);
    errno = e;
    return -1;
}

static int set_flags(int fd, int flags, int tcp)
{
    int one = 1;
    if ((flags & WEFT_REUSEPORT) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        return -1;
    if (tcp && (flags & WEFT_NODELAY) && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        return -1;
    return 0;
}

int weft_tcp_listen(const char *host, int port, int backlog, int flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (addr_parse(host, port, 1, &ss, &len) != 0)
        return -1;
    int fd = new_socket(ss.ss_family, SOCK_STREAM);
    if (fd < 0 && !host && (errno == EAFNOSUPPORT)) {
        /* No IPv6 on this host: the wildcard is IPv4's. */
        struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof ss);
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        v4->sin_addr.s_addr = htonl(INADDR_ANY);
        len = sizeof *v4;
        fd = new_socket(AF_INET, SOCK_STREAM);
    }
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 || set_flags(fd, flags, 1) != 0)
        return fail_close(fd);
    if (ss.ss_family == AF_INET6 && !host)   /* the wildcard takes IPv4 too */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0)
        return fail_close(fd);
    return fd;
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
    if (connect(fd, sa, len) == 0)
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
        int n = poll(&p, 1, left > 0x7fffffff ? 0x7fffffff : (int)left);
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

int weft_tcp_dial(const char *host, int port, int flags, int64_t deadline)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (addr_parse(host, port, 0, &ss, &len) != 0)
        return -1;
    int fd = new_socket(ss.ss_family, SOCK_STREAM);
    if (fd < 0)
        return -1;
    if (set_flags(fd, flags & WEFT_NODELAY, 1) != 0 || connect_until(fd, (struct sockaddr *)&ss, len, deadline) != 0)
        return fail_close(fd);
    return fd;
}

static int unix_addr(const char *path, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= sizeof sun->sun_path) {
        errno = path ? ENAMETOOLONG : EINVAL;
        if (n == 0)
            errno = EINVAL;
        return -1;
    }
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

int weft_unix_listen(const char *path, int backlog)
{
    struct sockaddr_un sun;
    socklen_t len;
    if (unix_addr(path, &sun, &len) != 0)
        return -1;
    int fd = new_socket(AF_UNIX, SOCK_STREAM);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sun, len) != 0 || listen(fd, backlog > 0 ? backlog : SOMAXCONN) != 0)
        return fail_close(fd);
    return fd;
}

int weft_unix_dial(const char *path, int64_t deadline)
{
    struct sockaddr_un sun;
    socklen_t len;
    if (unix_addr(path, &sun, &len) != 0)
        return -1;
    int fd = new_socket(AF_UNIX, SOCK_STREAM);
    if (fd < 0)
        return -1;
    if (connect_until(fd, (struct sockaddr *)&sun, len, deadline) != 0)
        return fail_close(fd);
    return fd;
}

int weft_udp_bind(const char *host, int port, int flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (addr_parse(host, port, 1, &ss, &len) != 0)
        return -1;
    int fd = new_socket(ss.ss_family, SOCK_DGRAM);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 || set_flags(fd, flags, 0) != 0)
        return fail_close(fd);
    if (ss.ss_family == AF_INET6 && !host)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0)
        return fail_close(fd);
    return fd;
}

int weft_udp_connect(const char *host, int port, int flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (addr_parse(host, port, 0, &ss, &len) != 0)
        return -1;
    int fd = new_socket(ss.ss_family, SOCK_DGRAM);
    if (fd < 0)
        return -1;
    if (set_flags(fd, flags, 0) != 0 || connect(fd, (struct sockaddr *)&ss, len) != 0)
        return fail_close(fd);
    return fd;
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

/* The TCP and UDP helpers (weft_tcp_listen, weft_tcp_dial, weft_udp_bind, weft_udp_connect):
 * a numeric host goes straight to net.c's sockets; a host name is looked up on the offload
 * pool (weft_getaddrinfo) and each address it gives is tried in turn, within the deadline.
 * They live in the offload layer because the lookup does: net.c, in the IO layer above it,
 * knows nothing of the pool. */
#include "config.h"
#include "io.h"
#include "offload.h"
#include "weft.h"

#include <errno.h>

#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* The errno for an EAI_ code. */
static int gai_errno(int r)
{
    switch (r) {
    case EAI_SYSTEM:
        return errno;
    case EAI_MEMORY:
        return ENOMEM;
    case EAI_AGAIN:
        return EAGAIN;
    case EAI_NONAME:
    case EAI_FAIL:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
#ifdef EAI_ADDRFAMILY
    case EAI_ADDRFAMILY:
#endif
        return EHOSTUNREACH;
    default:
        return EINVAL;
    }
}

/* A host that looks like an address but is not one (digits and dots only, or any ':', '['
 * or ']'): EINVAL, not a lookup; getaddrinfo would read "1.2.3" as 1.2.0.3. */
static int malformed_address(const char *host)
{
    if (strpbrk(host, ":[]"))
        return 1;
    return host[strspn(host, "0123456789.")] == '\0';
}

static int open_host(const char *host, int port, int type, enum weft_net_role role, int flags,
                     int backlog, int64_t deadline)
{
    if (weft_net_numeric(host))
        return weft_net_open_inet(host, port, type, role, flags, backlog, deadline);
    if (flags & ~(WEFT_REUSEPORT | WEFT_NODELAY | WEFT_NONBLOCK) || port < 0 || port > 65535 ||
        !*host || malformed_address(host)) {
        errno = EINVAL;
        return -1;
    }
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type;
    hints.ai_flags = AI_NUMERICSERV | (role == WEFT_NET_LISTEN || role == WEFT_NET_BIND ? AI_PASSIVE : 0);
    int r = weft_getaddrinfo_until(host, service, &hints, &res, deadline);
    if (r != 0) {
        errno = gai_errno(r);
        return -1;
    }
    /* Each address in the order getaddrinfo gives them (RFC 6724's); the first error is the
     * one reported, unless the deadline or a cancel ends the tries. */
    int fd = -1, first = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = weft_net_open(ai->ai_addr, ai->ai_addrlen, type, role, flags, backlog, deadline);
        if (fd >= 0)
            break;
        if (!first)
            first = errno;
        if (errno == ETIMEDOUT || errno == ECANCELED) {
            first = errno;
            break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        errno = first ? first : EHOSTUNREACH;
    return fd;
}

int weft_tcp_listen(const char *host, int port, int backlog, int flags)
{
    return open_host(host, port, SOCK_STREAM, WEFT_NET_LISTEN, flags, backlog, -1);
}

int weft_tcp_dial(const char *host, int port, int flags, int64_t deadline)
{
    return open_host(host, port, SOCK_STREAM, WEFT_NET_DIAL, flags & ~WEFT_REUSEPORT, 0, deadline);
}

int weft_udp_bind(const char *host, int port, int flags)
{
    return open_host(host, port, SOCK_DGRAM, WEFT_NET_BIND, flags, 0, -1);
}

int weft_udp_connect(const char *host, int port, int flags)
{
    return open_host(host, port, SOCK_DGRAM, WEFT_NET_CONNECT, flags, 0, -1);
}

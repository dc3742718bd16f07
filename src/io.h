/* The IO layer's view of an fd (the wrappers in io.c, the sockets of net.c, the wrapped libc
 * names of wrap.c): what the fd is (a socket, of which kind), whether its user wants it
 * non-blocking, and what weft changed of it. Kept in the reactor's record (fdent.upper),
 * which the reactor zeroes when it forgets the fd and otherwise never reads. */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include "reactor.h"

struct fdio {
    unsigned char known;        /* learnt: the fields below are valid */
    unsigned char user_nonblock;/* the user wants O_NONBLOCK: wrappers never park */
    unsigned char is_socket;    /* calls use MSG_DONTWAIT (and MSG_NOSIGNAL for writes) */
    unsigned char stream;       /* a SOCK_STREAM socket: MSG_WAITALL loops */
    unsigned char tcp;          /* a TCP socket: a short read leaves its receive queue empty */
    unsigned char switched;     /* weft set O_NONBLOCK on the user's fd: undone at teardown */
    unsigned char rd_short;     /* a short read emptied it (see io_park_first in io.c) */
};

_Static_assert(sizeof(struct fdio) <= sizeof(((struct fdent *)0)->upper), "fdio fits in fdent.upper");

static inline struct fdio *fdio(struct fdent *f) { return (struct fdio *)(void *)f->upper; }

/* The record of fd for a wrapper, learnt on first sight: whether it is a socket (and of which
 * type and protocol) and whether the user set O_NONBLOCK; a non-socket is switched to
 * O_NONBLOCK. NULL with errno (EBADF, ENOMEM, or fcntl's). */
struct fdent *weft_io_fd(struct sched *s, int fd);
/* The record of fd if a wrapper has learnt it since it was last closed, else NULL. */
struct fdent *weft_io_known(struct sched *s, int fd);
/* Mark fd as a weft-made socket (accepted, dialled, listening), skipping the syscalls of
 * learning: user_nonblock as given; nonblock: the fd is O_NONBLOCK now (weft's doing unless
 * user_nonblock); tcp: it is a TCP socket; stream: SOCK_STREAM. */
void weft_io_adopt(struct sched *s, int fd, int user_nonblock, int nonblock, int tcp, int stream);
/* Make sure fd is O_NONBLOCK before a call that has no per-call flag (accept, connect,
 * sendfile, any call on a non-socket): one F_GETFL, and F_SETFL when the flag was cleared
 * behind weft (a plain fcntl, or a new file behind a stale record; the user then wants it
 * blocking). Returns 0, or -1 with errno. */
int weft_io_nonblock(struct fdent *f, int fd);

/* The sockets of net.c, for the TCP and UDP helpers (offload_net.c), which resolve names. */
enum weft_net_role { WEFT_NET_LISTEN, WEFT_NET_BIND, WEFT_NET_DIAL, WEFT_NET_CONNECT };
/* Whether host is one net.c takes without a lookup: NULL, "localhost", a numeric IPv4 or
 * IPv6 address (in brackets or not). */
int weft_net_numeric(const char *host);
/* A weft socket of 'type' for sa, set up for its role (bound and listening, bound,
 * connected until the deadline, or connected at once: UDP). The fd, or -1 with errno. */
int weft_net_open(const struct sockaddr *sa, socklen_t len, int type, enum weft_net_role role,
                  int flags, int backlog, int64_t deadline);
/* weft_net_open for a numeric host (NULL: the IPv6 wildcard, or IPv4's without IPv6);
 * EINVAL for unknown flags, a port out of range or a host that is not numeric. */
int weft_net_open_inet(const char *host, int port, int type, enum weft_net_role role, int flags,
                       int backlog, int64_t deadline);

#endif

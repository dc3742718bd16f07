/* weft/posix.h: port a translation unit to weft by including this after the system headers.
 * It maps the blocking calls to their weft wrappers, which have the same signatures, so
 * read(fd, buf, n) becomes weft_read(fd, buf, n): the same calls as --wrap (docs/wrap.md). The maps are function-like macros: they
 * rename calls, not other uses of the names, but they do rename a call through a struct
 * member of the same name (ops->read(...)); include weft.h instead in such a file.
 * Code you cannot recompile is wrapped at link time instead: see docs/wrap.md. */
#ifndef WEFT_POSIX_H
#define WEFT_POSIX_H

#include <weft.h>

#define read(fd, buf, n) weft_read(fd, buf, n)
#define write(fd, buf, n) weft_write(fd, buf, n)
#define readv(fd, iov, cnt) weft_readv(fd, iov, cnt)
#define writev(fd, iov, cnt) weft_writev(fd, iov, cnt)
#define recv(fd, buf, n, fl) weft_recv(fd, buf, n, fl)
#define send(fd, buf, n, fl) weft_send(fd, buf, n, fl)
#define recvfrom(fd, buf, n, fl, a, al) weft_recvfrom(fd, buf, n, fl, a, al)
#define sendto(fd, buf, n, fl, a, al) weft_sendto(fd, buf, n, fl, a, al)
#define recvmsg(fd, m, fl) weft_recvmsg(fd, m, fl)
#define sendmsg(fd, m, fl) weft_sendmsg(fd, m, fl)
#define accept(fd, a, al) weft_accept(fd, a, al)
#define accept4(fd, a, al, fl) weft_accept4(fd, a, al, fl)
#define connect(fd, a, al) weft_connect(fd, a, al)
#define sendfile(o, i, off, n) weft_sendfile(o, i, off, n)
#define poll(fds, n, ms) weft_poll(fds, n, ms)
#define close(fd) weft_close(fd)
#define fcntl(fd, ...) weft_fcntl(fd, __VA_ARGS__)
#define select(n, r, w, e, tv) weft_select(n, r, w, e, tv)
#define sleep(s) weft_sleep_sec(s)
#define usleep(us) weft_usleep(us)
#define nanosleep(req, rem) weft_nanosleep(req, rem)
#define getaddrinfo(node, serv, hints, res) weft_getaddrinfo(node, serv, hints, res)
#define getnameinfo(sa, salen, host, hostlen, serv, servlen, fl) \
    weft_getnameinfo(sa, salen, host, hostlen, serv, servlen, fl)

#endif

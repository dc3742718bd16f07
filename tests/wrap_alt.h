/* Calls that reach libc under other names than their own (wrap_alt.c), for check_wrap. */
#ifndef WEFT_TEST_WRAP_ALT_H
#define WEFT_TEST_WRAP_ALT_H

#include <poll.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

extern char fortify_buf[64];
/* read(fd, fortify_buf, n), recv and recvfrom into it: __read_chk, __recv_chk, __recvfrom_chk. */
ssize_t fortified_read(int fd, size_t n);
ssize_t fortified_recv(int fd, size_t n);
ssize_t fortified_recvfrom(int fd, size_t n);
/* poll on one fd (n: 1, or more to trip the check): __poll_chk; *revents gets the result. */
int fortified_poll(int fd, short events, int timeout_ms, nfds_t n, short *revents);
/* fcntl with an int argument, and sendfile, under -D_FILE_OFFSET_BITS=64: fcntl64, sendfile64. */
int lfs_fcntl(int fd, int cmd, int arg);
ssize_t lfs_sendfile(int out_fd, int in_fd, long long *offset, size_t count);
/* getaddrinfo(node, "80") for a stream socket, and getnameinfo(NI_NUMERICHOST) of sa,
 * from an archive: the lookups of a client library built without weft. */
struct addrinfo;
int archive_lookup(const char *node, struct addrinfo **res);
int archive_name_of(const struct sockaddr *sa, socklen_t len, char *host, size_t n);

#endif

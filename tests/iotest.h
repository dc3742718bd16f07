/* Helpers shared by the IO suites (check_io, check_reactor, check_net): a test body that runs
 * as a task, one-shot operations run as tasks (so a test can park one and poke it), plain
 * libc pipes and sockets, and filling a pipe or socket until a write would block. The
 * assertions themselves stay in the suites. */
#ifndef WEFT_IOTEST_H
#define WEFT_IOTEST_H

#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND (RUNNING_ON_VALGRIND != 0)
#else
#define UNDER_VALGRIND 0
#endif

/* Add test fn to s in a test case of its own with a timeout of secs. */
#define ADD_TEST(s, fn, secs) tcase_add_test(test_case((s), #fn, (secs)), fn)

/* A test whose body runs as a task under a fresh scheduler; weft_run must end cleanly. */
#define TASK_TEST(name)                                                                     \
    static void name##_body(void);                                                          \
    static void *name##_task(void *a_)                                                      \
    {                                                                                       \
        (void)a_;                                                                           \
        name##_body();                                                                      \
        return NULL;                                                                        \
    }                                                                                       \
    START_TEST(name)                                                                        \
    {                                                                                       \
        ck_assert_ptr_nonnull(weft_go(name##_task, NULL));                                  \
        ck_assert_int_eq(weft_run(), 0);                                                    \
    }                                                                                       \
    END_TEST                                                                                \
    static void name##_body(void)

/* Say why a test (or part of one) did not run, and let it pass. */
#define SKIP(...)                                                                           \
    do {                                                                                    \
        fprintf(stderr, "SKIP %s: ", __func__);                                             \
        fprintf(stderr, __VA_ARGS__);                                                       \
        fputc('\n', stderr);                                                                \
    } while (0)

/* Let freshly spawned or woken tasks run until they park again. */
static inline void settle(void)
{
    for (int i = 0; i < 8; i++)
        weft_yield();
}

/* ---- one-shot operations as tasks -------------------------------------------------------- */

enum op_kind { OP_READ, OP_WRITE, OP_ACCEPT, OP_CONNECT, OP_POLL, OP_FDWAIT, OP_READ_FULL };

/* One call made by a task: its inputs, then its result, errno and when it returned. */
struct op {
    enum op_kind kind;
    int fd;
    char *buf;
    size_t n;
    int events;                 /* fdwait events; poll: POLLIN etc. */
    int64_t deadline;           /* fdwait deadline; poll: timeout in ms */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct pollfd pfd;
    ssize_t r;
    int err;
    int done;
    int64_t started, ended;
};

static inline void *op_run(void *p)
{
    struct op *o = p;
    o->started = weft_now();
    errno = 0;
    switch (o->kind) {
    case OP_READ: o->r = weft_read(o->fd, o->buf, o->n); break;
    case OP_READ_FULL: o->r = weft_read_full(o->fd, o->buf, o->n); break;
    case OP_WRITE: o->r = weft_write(o->fd, o->buf, o->n); break;
    case OP_ACCEPT: o->r = weft_accept(o->fd, NULL, NULL); break;
    case OP_CONNECT: o->r = weft_connect(o->fd, (struct sockaddr *)&o->addr, o->addrlen); break;
    case OP_POLL:
        o->pfd.fd = o->fd;
        o->pfd.events = (short)o->events;
        o->pfd.revents = 0;
        o->r = weft_poll(&o->pfd, 1, (int)o->deadline);
        break;
    case OP_FDWAIT: o->r = weft_fdwait(o->fd, o->events, o->deadline); break;
    }
    o->err = errno;
    o->ended = weft_now();
    o->done = 1;
    return NULL;
}

/* Start o as a task and let it run until it parks (or ends). */
static inline weft_task *op_start(struct op *o)
{
    o->done = 0;
    o->r = -2;
    weft_task *t = weft_go(op_run, o);
    ck_assert_ptr_nonnull(t);
    settle();
    return t;
}

static inline void op_join(weft_task *t)
{
    ck_assert_int_eq(weft_join(t, NULL), 0);
}

/* o must have ended with -1 and errno err. */
#define ck_assert_op_failed(o, e)                                                           \
    ck_assert_msg((o)->done && (o)->r == -1 && (o)->err == (e),                             \
                  "op: done %d, r %zd, errno %s; expected %s", (o)->done, (o)->r,           \
                  strerror((o)->err), strerror(e))

/* ---- plain libc fds ------------------------------------------------------------------------ */

static inline void make_pipe(int p[2])
{
    ck_assert_int_eq(pipe(p), 0);
}

static inline void make_socketpair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
}

static inline int is_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    return (fl & O_NONBLOCK) != 0;
}

static inline void set_nonblocking(int fd, int on)
{
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK), 0);
}

/* Write until the next write would block; the fd's flags are left as they were. Returns the
 * bytes written. */
static inline size_t fill_fd(int fd)
{
    static char junk[65536];
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    size_t total = 0, chunk = sizeof junk;
    for (;;) {
        ssize_t r = send(fd, junk, chunk, MSG_NOSIGNAL);
        if (r < 0 && errno == ENOTSOCK)
            r = write(fd, junk, chunk);
        if (r > 0) {
            total += (size_t)r;
            continue;
        }
        ck_assert_msg(r < 0 && errno == EAGAIN, "fill: %s", strerror(errno));
        if (chunk == 1)
            break;
        chunk = 1;
    }
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl), 0);
    return total;
}

/* Read and discard until the next read would block; flags left as they were. */
static inline size_t drain_fd(int fd)
{
    char junk[65536];
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_ge(fl, 0);
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
    size_t total = 0;
    ssize_t r;
    while ((r = read(fd, junk, sizeof junk)) > 0)
        total += (size_t)r;
    ck_assert_int_eq(fcntl(fd, F_SETFL, fl), 0);
    return total;
}

static inline struct sockaddr_in loopback4(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return a;
}

static inline int sock_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* A blocking TCP listener on 127.0.0.1 made with libc; its port in *port. */
static inline int plain_listener(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int one = 1;
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a = loopback4(0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, backlog), 0);
    *port = sock_port(fd);
    return fd;
}

/* A blocking libc connect to 127.0.0.1:port (completes at once when the backlog has room). */
static inline int plain_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = loopback4(port);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* A connected pair of blocking TCP sockets over loopback. */
static inline void make_tcp_pair(int sv[2])
{
    int port;
    int l = plain_listener(4, &port);
    sv[0] = plain_connect(port);
    sv[1] = accept(l, NULL, NULL);
    ck_assert_int_ge(sv[1], 0);
    ck_assert_int_eq(close(l), 0);
}

/* A port on 127.0.0.1 that nobody listens on (bound, then released). */
static inline int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = loopback4(0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    int port = sock_port(fd);
    ck_assert_int_eq(close(fd), 0);
    return port;
}

/* A listener whose accept queue is full (backlog 0, one connection never accepted), so a
 * further SYN is dropped and a connect to it stays in progress. *filler is that connection.
 * Returns the listener, or -1 when a probe connect completed anyway (the trick does not work
 * on this kernel): the caller then skips the hanging part. */
static inline int hanging_listener(int *port, int *filler)
{
    int l = plain_listener(0, port);
    *filler = plain_connect(*port);
    int probe = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(probe, 0);
    struct sockaddr_in a = loopback4(*port);
    int r = connect(probe, (struct sockaddr *)&a, sizeof a);
    ck_assert(r == 0 || errno == EINPROGRESS);
    struct pollfd p = { .fd = probe, .events = POLLOUT };
    int n = r == 0 ? 1 : poll(&p, 1, 100);
    ck_assert_int_eq(close(probe), 0);
    if (n != 0) {
        ck_assert_int_eq(close(*filler), 0);
        ck_assert_int_eq(close(l), 0);
        return -1;
    }
    return l;
}

/* Fill buf with a pattern that depends on seed and position. */
static inline void pattern(char *buf, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)((i * 31u + seed * 7u + (i >> 8)) & 0xff);
}

/* A task that counts how often it got to run while others were parked: proof that a wait
 * parked the task, not the thread. Stop it with k->stop = 1. */
struct ticker {
    volatile int stop;
    long ticks;
};

static inline void *tick(void *p)
{
    struct ticker *k = p;
    while (!k->stop) {
        k->ticks++;
        weft_sleep(1);
    }
    return NULL;
}

#endif

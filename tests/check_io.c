/* The IO wrappers (io.c) as drop-in libc calls: each wrapper's normal and error paths,
 * partial transfers, EOF, ECONNRESET and EPIPE without SIGPIPE, blocking and non-blocking
 * fds, calls outside any task, weft_read_full / weft_write_full, and bad input. Parking
 * mechanics (close, cancel, deadlines, FIFO, poll, fdwait) are check_reactor's; the net
 * helpers are check_net's. */
#include "iotest.h"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/uio.h>

/* ---- helpers --------------------------------------------------------------------------- */

/* Write n bytes of buf to fd with plain write(2) after ms milliseconds (a task). */
struct later {
    int fd;
    const char *buf;
    size_t n;
    int64_t ms;
    int close_after;
    weft_task *task;
};

static void *later_write(void *p)
{
    struct later *l = p;
    weft_sleep(l->ms);
    if (l->n)
        ck_assert_int_eq(write(l->fd, l->buf, l->n), (ssize_t)l->n);
    if (l->close_after)
        ck_assert_int_eq(weft_close(l->fd), 0);
    return NULL;
}

static weft_task *write_later(struct later *l, int fd, const char *buf, size_t n, int64_t ms)
{
    l->fd = fd;
    l->buf = buf;
    l->n = n;
    l->ms = ms;
    l->close_after = 0;
    weft_task *t = weft_go(later_write, l);
    ck_assert_ptr_nonnull(t);
    l->task = t;
    return t;
}


/* A temporary file of n pattern bytes; returns an fd open for reading at offset 0. */
static int temp_file(size_t n, char **content)
{
    char path[] = "/tmp/weft-io-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(unlink(path), 0);
    char *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    pattern(buf, n, 5);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
    *content = buf;
    return fd;
}

static void set_linger0(int fd)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
}

/* SIGPIPE at its default action and unblocked, as in a program that never touched it. */
static void sigpipe_default(void)
{
    ck_assert(signal(SIGPIPE, SIG_DFL) != SIG_ERR);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &set, NULL), 0);
}

/* SIGPIPE is neither blocked nor pending: a wrapper left the mask as it found it. */
static void assert_sigpipe_clean(void)
{
    sigset_t cur, pend;
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    ck_assert(!sigismember(&cur, SIGPIPE));
    ck_assert_int_eq(sigpending(&pend), 0);
    ck_assert(!sigismember(&pend, SIGPIPE));
}

/* IOV_MAX + 1 valid one-byte vectors: one too many, every one of them readable. */
static struct iovec *too_many_iovs(void)
{
    static struct iovec iov[IOV_MAX + 1];
    static char bytes[IOV_MAX + 1];
    for (int i = 0; i <= IOV_MAX; i++)
        iov[i] = (struct iovec){ &bytes[i], 1 };
    return iov;
}

/* ---- read / write ---------------------------------------------------------------------- */

TASK_TEST(read_returns_available_data_without_parking)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(write(p[1], "hello", 5), 5);
    char buf[64];
    ck_assert_int_eq(weft_read(p[0], buf, 3), 3);
    ck_assert_int_eq(memcmp(buf, "hel", 3), 0);
    ck_assert_int_eq(weft_read(p[0], buf, sizeof buf), 2);   /* partial: what is there */
    ck_assert_int_eq(memcmp(buf, "lo", 2), 0);
    ck_assert_int_eq(weft_read(p[0], buf, 0), 0);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(blocking_fd_is_made_nonblocking_and_task_parks)
{
    int p[2];
    make_pipe(p);
    ck_assert(!is_nonblocking(p[0]));
    struct ticker k = { 0, 0 };
    weft_task *tk = weft_go(tick, &k);
    struct later l;
    weft_task *w = write_later(&l, p[1], "x", 1, 60);
    char c = 0;
    int64_t t0 = weft_now();
    long before = k.ticks;
    ck_assert_int_eq(weft_read(p[0], &c, 1), 1);
    ck_assert_elapsed(t0, 50, 3000);
    ck_assert_int_eq(c, 'x');
    ck_assert(is_nonblocking(p[0]));       /* switched on first use */
    ck_assert_msg(k.ticks - before >= 2, "ticker ran %ld times while the reader was parked",
                  k.ticks - before);        /* the thread was not blocked */
    k.stop = 1;
    op_join(tk);
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(read_returns_zero_at_eof)
{
    int p[2];
    make_pipe(p);
    struct later l;
    weft_task *w = write_later(&l, p[1], "ab", 2, 20);
    l.close_after = 1;
    char buf[8];
    ck_assert_int_eq(weft_read(p[0], buf, sizeof buf), 2);
    ck_assert_int_eq(weft_read(p[0], buf, sizeof buf), 0);  /* parked, then EOF */
    ck_assert_int_eq(weft_read(p[0], buf, sizeof buf), 0);  /* and again at once */
    op_join(w);
    weft_close(p[0]);
}

static int zero_read_flag;
static void *set_zero_read_flag(void *p)
{
    (void)p;
    zero_read_flag = 1;
    return NULL;
}

/* read(2) and readv(2) of 0 bytes return 0 at once, on an empty socket too (where recv and
 * recvmsg of 0 bytes with MSG_DONTWAIT say EAGAIN): the wrappers must not park the task. */
TASK_TEST(read_of_zero_bytes_returns_at_once)
{
    int fds[2][2];
    char c;
    make_socketpair(fds[0]);
    make_pipe(fds[1]);
    for (int k = 0; k < 2; k++) {
        zero_read_flag = 0;
        weft_task *t = weft_go(set_zero_read_flag, NULL);
        ck_assert_int_eq(weft_read(fds[k][0], &c, 0), 0);
        struct iovec iov[2] = { { &c, 0 }, { NULL, 0 } };
        ck_assert_int_eq(weft_readv(fds[k][0], iov, 2), 0);     /* readv(2) likewise */
        ck_assert_int_eq(zero_read_flag, 0);    /* nothing else ran: they did not park */
        ck_assert_int_eq(weft_join(t, NULL), 0);
        weft_close(fds[k][0]);
        weft_close(fds[k][1]);
    }
}

TASK_TEST(read_passes_libc_errors_through)
{
    int p[2];
    make_pipe(p);
    char buf[8];
    ck_assert_fails(weft_read(p[1], buf, sizeof buf), EBADF);   /* write end */
    int d = open("/", O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(d, 0);
    ck_assert_fails(weft_read(d, buf, sizeof buf), EISDIR);
    weft_close(d);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(write_partial_transfers_and_parks_when_full)
{
    int sv[2];
    make_socketpair(sv);
    int small = 4096;
    ck_assert_int_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    size_t n = 1 << 20;
    char *out = malloc(n), *in = malloc(n);
    ck_assert(out && in);
    pattern(out, n, 1);
    struct op rd = { .kind = OP_READ_FULL, .fd = sv[1], .buf = in, .n = n };
    weft_task *r = op_start(&rd);
    size_t put = 0;
    int shorts = 0, calls = 0;
    while (put < n) {
        ssize_t w = weft_write(sv[0], out + put, n - put);
        ck_assert_int_gt(w, 0);
        calls++;
        shorts += (size_t)w < n - put;
        put += (size_t)w;
    }
    ck_assert_int_gt(shorts, 0);           /* some writes were partial */
    op_join(r);
    ck_assert_int_eq(rd.r, (ssize_t)n);
    ck_assert_int_eq(memcmp(in, out, n), 0);
    free(out);
    free(in);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(write_passes_libc_errors_through)
{
    int p[2];
    make_pipe(p);
    ck_assert_fails(weft_write(p[0], "x", 1), EBADF);           /* read end */
    int fd = open("/dev/full", O_WRONLY);
    if (fd >= 0) {
        ck_assert_fails(weft_write(fd, "x", 1), ENOSPC);
        weft_close(fd);
    }
    weft_close(p[0]);
    weft_close(p[1]);
}

/* ---- readv / writev -------------------------------------------------------------------- */

TASK_TEST(readv_scatters_and_parks_until_data)
{
    int p[2];
    make_pipe(p);
    struct later l;
    weft_task *w = write_later(&l, p[1], "abcdefg", 7, 20);
    char a[3], b[10];
    struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
    ck_assert_int_eq(weft_readv(p[0], iov, 2), 7);
    ck_assert_int_eq(memcmp(a, "abc", 3), 0);
    ck_assert_int_eq(memcmp(b, "defg", 4), 0);
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(readv_rejects_bad_iovcnt)
{
    int p[2];
    make_pipe(p);
    char a[4];
    struct iovec iov[1] = { { a, sizeof a } };
    ck_assert_fails(weft_readv(p[0], iov, -1), EINVAL);
    ck_assert_fails(weft_readv(p[0], too_many_iovs(), IOV_MAX + 1), EINVAL);
    ck_assert_fails(weft_readv(p[1], iov, 1), EBADF);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(writev_gathers_on_pipe_and_socket)
{
    int p[2], sv[2];
    make_pipe(p);
    make_socketpair(sv);
    struct iovec iov[3] = { { "ab", 2 }, { "", 0 }, { "cde", 3 } };
    char buf[8];
    ck_assert_int_eq(weft_writev(p[1], iov, 3), 5);
    ck_assert_int_eq(weft_read(p[0], buf, sizeof buf), 5);
    ck_assert_int_eq(memcmp(buf, "abcde", 5), 0);
    ck_assert_int_eq(weft_writev(sv[0], iov, 3), 5);
    ck_assert_int_eq(weft_read(sv[1], buf, sizeof buf), 5);
    ck_assert_int_eq(memcmp(buf, "abcde", 5), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(writev_rejects_bad_iovcnt)
{
    int p[2], sv[2];
    make_pipe(p);
    make_socketpair(sv);
    struct iovec iov[1] = { { "x", 1 } };
    ck_assert_fails(weft_writev(p[1], iov, -1), EINVAL);
    ck_assert_fails(weft_writev(sv[0], iov, -1), EINVAL);     /* socket path: sendmsg */
    ck_assert_fails(weft_writev(p[1], too_many_iovs(), IOV_MAX + 1), EINVAL);
    ck_assert_fails(weft_writev(sv[0], too_many_iovs(), IOV_MAX + 1), EINVAL);   /* not EMSGSIZE */
    ck_assert_fails(weft_writev(p[0], iov, 1), EBADF);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- recv / send ----------------------------------------------------------------------- */

TASK_TEST(recv_parks_and_honours_flags)
{
    int sv[2];
    make_socketpair(sv);
    struct later l;
    weft_task *w = write_later(&l, sv[0], "wxyz", 4, 20);
    char buf[8];
    ck_assert_int_eq(weft_recv(sv[1], buf, 2, MSG_PEEK), 2);
    ck_assert_int_eq(memcmp(buf, "wx", 2), 0);
    ck_assert_int_eq(weft_recv(sv[1], buf, sizeof buf, 0), 4);
    ck_assert_int_eq(memcmp(buf, "wxyz", 4), 0);
    op_join(w);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- MSG_WAITALL: all n bytes, as the blocking call waits for them ------------------------- */

/* Five bytes now, five more 30 ms later (on the TCP pair as well as a Unix one). */
static void halves(int fd, struct later *l)
{
    ck_assert_int_eq(write(fd, "01234", 5), 5);
    write_later(l, fd, "56789", 5, 30);
}

TASK_TEST(recv_waitall_waits_for_all_bytes)
{
    for (int tcp = 0; tcp < 2; tcp++) {
        int sv[2];
        if (tcp)
            make_tcp_pair(sv);
        else
            make_socketpair(sv);
        struct later l;
        char buf[16] = { 0 };
        halves(sv[0], &l);
        ck_assert_int_eq(weft_recv(sv[1], buf, 10, MSG_WAITALL), 10);
        ck_assert_int_eq(memcmp(buf, "0123456789", 10), 0);
        ck_assert_int_eq(weft_join(l.task, NULL), 0);
        /* recvfrom too */
        struct later l2;
        halves(sv[0], &l2);
        memset(buf, 0, sizeof buf);
        ck_assert_int_eq(weft_recvfrom(sv[1], buf, 10, MSG_WAITALL, NULL, NULL), 10);
        ck_assert_int_eq(memcmp(buf, "0123456789", 10), 0);
        ck_assert_int_eq(weft_join(l2.task, NULL), 0);
        weft_close(sv[0]);
        weft_close(sv[1]);
    }
}

TASK_TEST(recvmsg_waitall_fills_every_iovec)
{
    int sv[2];
    make_socketpair(sv);
    struct later l;
    halves(sv[0], &l);
    char a[3], b[7];
    struct iovec iov[2] = { { a, sizeof a }, { b, sizeof b } };
    struct msghdr m = { .msg_iov = iov, .msg_iovlen = 2 };
    ck_assert_int_eq(weft_recvmsg(sv[1], &m, MSG_WAITALL), 10);
    ck_assert_int_eq(memcmp(a, "012", 3), 0);
    ck_assert_int_eq(memcmp(b, "3456789", 7), 0);
    ck_assert_int_eq(iov[0].iov_len, 3);       /* the caller's iovec is left as it was */
    ck_assert_int_eq(weft_join(l.task, NULL), 0);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(recv_waitall_returns_the_short_count_at_eof_or_deadline)
{
    int sv[2];
    char buf[16];
    make_socketpair(sv);
    struct later l;
    ck_assert_int_eq(write(sv[0], "01234", 5), 5);
    write_later(&l, sv[0], NULL, 0, 30);
    l.close_after = 1;
    ck_assert_int_eq(weft_recv(sv[1], buf, 10, MSG_WAITALL), 5);     /* then EOF */
    ck_assert_int_eq(weft_join(l.task, NULL), 0);
    weft_close(sv[1]);
    /* A deadline in the middle: the bytes that came are returned, none lost. */
    make_socketpair(sv);
    ck_assert_int_eq(write(sv[0], "abc", 3), 3);
    ck_assert_ok(weft_fd_set_deadline(sv[1], WEFT_READ, weft_now() + 50));
    ck_assert_int_eq(weft_recv(sv[1], buf, 10, MSG_WAITALL), 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    ck_assert_fails(weft_recv(sv[1], buf, 10, MSG_WAITALL), ETIMEDOUT);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

static void *waitall_reader(void *p)
{
    int fd = *(int *)p;
    char buf[10];
    ssize_t r = weft_recv(fd, buf, sizeof buf, MSG_WAITALL);
    return (void *)(intptr_t)(r >= 0 ? r : -errno);
}

TASK_TEST(recv_waitall_cancelled_returns_what_came)
{
    int sv[2];
    make_socketpair(sv);
    weft_task *t = weft_go(waitall_reader, &sv[1]);
    settle();
    ck_assert_int_eq(write(sv[0], "xyz", 3), 3);
    weft_sleep(10);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, 3);
    /* Nothing came: the cancel is the result. */
    t = weft_go(waitall_reader, &sv[1]);
    settle();
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, -ECANCELED);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(recv_waitall_on_a_datagram_socket_takes_one_message)
{
    int sv[2];
    ck_assert_ok(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
    ck_assert_int_eq(send(sv[0], "abc", 3, 0), 3);
    ck_assert_int_eq(send(sv[0], "defg", 4, 0), 4);
    char buf[16];
    ck_assert_int_eq(weft_recv(sv[1], buf, sizeof buf, MSG_WAITALL), 3);
    ck_assert_int_eq(weft_recv(sv[1], buf, sizeof buf, MSG_WAITALL), 4);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(recv_with_msg_dontwait_does_not_park)
{
    int sv[2];
    make_socketpair(sv);
    char buf[8] = { 0 };
    int64_t t0 = weft_now();
    ck_assert_fails(weft_recv(sv[1], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    ck_assert_fails(weft_recvfrom(sv[1], buf, sizeof buf, MSG_DONTWAIT, NULL, NULL), EAGAIN);
    struct iovec iov = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    ck_assert_fails(weft_recvmsg(sv[1], &m, MSG_DONTWAIT), EAGAIN);
    ck_assert_elapsed(t0, 0, 1000);
    fill_fd(sv[0]);
    ck_assert_fails(weft_send(sv[0], "x", 1, MSG_DONTWAIT), EAGAIN);
    ck_assert_fails(weft_sendto(sv[0], "x", 1, MSG_DONTWAIT, NULL, 0), EAGAIN);
    iov.iov_len = 1;
    ck_assert_fails(weft_sendmsg(sv[0], &m, MSG_DONTWAIT), EAGAIN);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(recv_and_send_on_a_pipe_fail_with_enotsock)
{
    int p[2];
    make_pipe(p);
    char buf[4];
    ck_assert_fails(weft_recv(p[0], buf, sizeof buf, 0), ENOTSOCK);
    ck_assert_fails(weft_send(p[1], "x", 1, 0), ENOTSOCK);
    ck_assert_fails(weft_recvfrom(p[0], buf, sizeof buf, 0, NULL, NULL), ENOTSOCK);
    ck_assert_fails(weft_sendto(p[1], "x", 1, 0, NULL, 0), ENOTSOCK);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(send_parks_when_full_and_delivers_everything)
{
    int sv[2];
    make_tcp_pair(sv);
    size_t filled = fill_fd(sv[0]);
    struct op rd = { .kind = OP_READ_FULL, .fd = sv[1], .n = filled + 3 };
    rd.buf = malloc(rd.n);
    ck_assert_ptr_nonnull(rd.buf);
    weft_task *r = weft_go(op_run, &rd);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_send(sv[0], "end", 3, 0), 3);     /* parks until the reader drains */
    ck_assert_elapsed(t0, 0, 5000);
    op_join(r);
    ck_assert_int_eq(rd.r, (ssize_t)rd.n);
    ck_assert_int_eq(memcmp(rd.buf + filled, "end", 3), 0);
    free(rd.buf);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(send_on_unconnected_tcp_socket_fails)
{
    sigpipe_default();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_fails(weft_send(fd, "x", 1, 0), EPIPE);
    assert_sigpipe_clean();
    weft_close(fd);
}

/* ---- recvfrom / sendto ----------------------------------------------------------------- */

static int udp_socket(int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = loopback4(0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    *port = sock_port(fd);
    return fd;
}

struct dgram_later {
    int fd, port;
};

static void *send_dgram_later(void *p)
{
    struct dgram_later *d = p;
    weft_sleep(20);
    struct sockaddr_in a = loopback4(d->port);
    ck_assert_int_eq(weft_sendto(d->fd, "ping", 4, 0, (struct sockaddr *)&a, sizeof a), 4);
    return NULL;
}

TASK_TEST(recvfrom_parks_and_reports_the_sender)
{
    int pa, pb;
    int a = udp_socket(&pa), b = udp_socket(&pb);
    struct dgram_later d = { b, pa };
    weft_task *w = weft_go(send_dgram_later, &d);
    char buf[16];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ck_assert_int_eq(weft_recvfrom(a, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    ck_assert_int_eq(flen, sizeof from);
    ck_assert_int_eq(ntohs(from.sin_port), pb);
    /* reply to the reported address */
    ck_assert_int_eq(weft_sendto(a, "pong", 4, 0, (struct sockaddr *)&from, flen), 4);
    ck_assert_int_eq(weft_recvfrom(b, buf, sizeof buf, 0, NULL, NULL), 4);
    ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
    op_join(w);
    weft_close(a);
    weft_close(b);
}

TASK_TEST(sendto_passes_libc_errors_through)
{
    int pa;
    int a = udp_socket(&pa);
    struct sockaddr_in to = loopback4(pa);
    ck_assert_fails(weft_sendto(a, "x", 1, 0, (struct sockaddr *)&to, 3), EINVAL);
    ck_assert_fails(weft_sendto(a, "x", 1, 0, NULL, 0), EDESTADDRREQ);
    static char big[70000];
    ck_assert_fails(weft_sendto(a, big, sizeof big, 0, (struct sockaddr *)&to, sizeof to), EMSGSIZE);
    weft_close(a);
}

/* ---- recvmsg / sendmsg ----------------------------------------------------------------- */

struct fd_sender {
    int sock, payload;
};

static void *send_fd_later(void *p)
{
    struct fd_sender *s = p;
    weft_sleep(20);
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = { "fd", 2 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &s->payload, sizeof(int));
    ck_assert_int_eq(weft_sendmsg(s->sock, &m, 0), 2);
    return NULL;
}

TASK_TEST(recvmsg_parks_and_receives_an_fd)
{
    int sv[2], p[2];
    make_socketpair(sv);
    make_pipe(p);
    struct fd_sender s = { sv[0], p[1] };
    weft_task *w = weft_go(send_fd_later, &s);
    char buf[8], cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf };
    ck_assert_int_eq(weft_recvmsg(sv[1], &m, MSG_CMSG_CLOEXEC), 2);
    ck_assert_int_eq(memcmp(buf, "fd", 2), 0);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->cmsg_type, SCM_RIGHTS);
    int got;
    memcpy(&got, CMSG_DATA(c), sizeof got);
    ck_assert_int_ge(got, 0);
    ck_assert_int_eq(weft_write(got, "!", 1), 1);             /* the passed pipe end works */
    ck_assert_int_eq(weft_read(p[0], buf, 1), 1);
    ck_assert_int_eq(buf[0], '!');
    op_join(w);
    weft_close(got);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(recvmsg_and_sendmsg_pass_libc_errors_through)
{
    int p[2], sv[2];
    make_pipe(p);
    make_socketpair(sv);
    char buf[4] = { 0 };
    struct iovec iov = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    ck_assert_fails(weft_recvmsg(p[0], &m, 0), ENOTSOCK);
    ck_assert_fails(weft_sendmsg(p[1], &m, 0), ENOTSOCK);
    m.msg_iov = too_many_iovs();
    m.msg_iovlen = (size_t)IOV_MAX + 1;
    ck_assert_fails(weft_sendmsg(sv[0], &m, 0), EMSGSIZE);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- accept / accept4 ------------------------------------------------------------------ */

struct dialer {
    int port;
    int64_t ms;
    int fd;
};

static void *dial_later(void *p)
{
    struct dialer *d = p;
    weft_sleep(d->ms);
    d->fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(d->fd, 0);
    struct sockaddr_in a = loopback4(d->port);
    ck_assert_int_eq(weft_connect(d->fd, (struct sockaddr *)&a, sizeof a), 0);
    return NULL;
}

TASK_TEST(accept_parks_until_a_connection_arrives)
{
    int port;
    int l = plain_listener(8, &port);
    struct ticker k = { 0, 0 };
    weft_task *tk = weft_go(tick, &k);
    struct dialer d = { port, 50, -1 };
    weft_task *w = weft_go(dial_later, &d);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    int64_t t0 = weft_now();
    int c = weft_accept(l, (struct sockaddr *)&peer, &plen);
    ck_assert_int_ge(c, 0);
    ck_assert_elapsed(t0, 40, 3000);
    ck_assert_int_ge(k.ticks, 2);     /* the thread was not blocked */
    ck_assert_int_eq(plen, sizeof peer);
    ck_assert_int_eq(peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    op_join(w);
    ck_assert_int_eq(weft_write(d.fd, "hi", 2), 2);
    char buf[2];
    ck_assert_int_eq(weft_read(c, buf, 2), 2);
    k.stop = 1;
    op_join(tk);
    weft_close(c);
    weft_close(d.fd);
    weft_close(l);
}

TASK_TEST(accept_passes_libc_errors_through)
{
    int p[2];
    make_pipe(p);
    ck_assert_fails(weft_accept(p[0], NULL, NULL), ENOTSOCK);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    ck_assert_fails(weft_accept(s, NULL, NULL), EINVAL);        /* not listening */
    int port;
    int l = plain_listener(4, &port);
    /* Unknown flag. qemu-user drops flags it does not know before the kernel sees them; there
     * accept4 would wait for a connection instead, so check that first, without parking. */
    int nb = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = loopback4(0);
    ck_assert(nb >= 0 && bind(nb, (struct sockaddr *)&a, sizeof a) == 0 && listen(nb, 1) == 0);
    errno = 0;
    if (accept4(nb, NULL, NULL, 0x40000000) == -1 && errno == EINVAL)
        ck_assert_fails(weft_accept4(l, NULL, NULL, 0x40000000), EINVAL);
    else
        SKIP("accept4 with an unknown flag gives %s here, not EINVAL (an emulator?)", strerror(errno));
    close(nb);
    weft_close(l);
    weft_close(s);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(accept4_sock_nonblock_keeps_eagain_semantics)
{
    int port;
    int l = plain_listener(8, &port);
    int c1 = plain_connect(port), c2 = plain_connect(port);
    int a1 = weft_accept4(l, NULL, NULL, SOCK_NONBLOCK);
    int a2 = weft_accept4(l, NULL, NULL, 0);
    ck_assert_int_ge(a1, 0);
    ck_assert_int_ge(a2, 0);
    char c;
    /* the user asked for a non-blocking socket: EAGAIN, no parking */
    int64_t t0 = weft_now();
    ck_assert_fails(weft_read(a1, &c, 1), EAGAIN);
    ck_assert_elapsed(t0, 0, 1000);
    ck_assert(is_nonblocking(a1));
    /* the user did not: the task parks until data comes */
    struct later lw;
    weft_task *w = write_later(&lw, c2, "z", 1, 40);
    t0 = weft_now();
    ck_assert_int_eq(weft_read(a2, &c, 1), 1);
    ck_assert_elapsed(t0, 30, 3000);
    ck_assert_int_eq(c, 'z');
    op_join(w);
    weft_close(a1);
    weft_close(a2);
    weft_close(c1);
    weft_close(c2);
    weft_close(l);
}

TASK_TEST(accept4_honours_sock_cloexec)
{
    int port;
    int l = plain_listener(8, &port);
    int c1 = plain_connect(port), c2 = plain_connect(port);
    int a1 = weft_accept4(l, NULL, NULL, SOCK_CLOEXEC);
    int a2 = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a1, 0);
    ck_assert_int_ge(a2, 0);
    ck_assert(fcntl(a1, F_GETFD) & FD_CLOEXEC);
    ck_assert(!(fcntl(a2, F_GETFD) & FD_CLOEXEC));
    weft_close(a1);
    weft_close(a2);
    weft_close(c1);
    weft_close(c2);
    weft_close(l);
}

/* ---- connect --------------------------------------------------------------------------- */

TASK_TEST(connect_succeeds_on_a_blocking_socket)
{
    int port;
    int l = plain_listener(8, &port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = loopback4(port);
    ck_assert_int_eq(weft_connect(s, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert(is_nonblocking(s));
    int c = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(weft_write(s, "ok", 2), 2);
    char buf[2];
    ck_assert_int_eq(weft_read(c, buf, 2), 2);
    ck_assert_int_eq(memcmp(buf, "ok", 2), 0);
    weft_close(c);
    weft_close(s);
    weft_close(l);
}

TASK_TEST(connect_to_closed_port_fails_with_econnrefused)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = loopback4(closed_port());
    ck_assert_fails(weft_connect(s, (struct sockaddr *)&a, sizeof a), ECONNREFUSED);
    weft_close(s);
}

TASK_TEST(connect_on_user_nonblocking_socket_returns_einprogress)
{
    int port;
    int l = plain_listener(8, &port);
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = loopback4(port);
    int r = weft_connect(s, (struct sockaddr *)&a, sizeof a);
    ck_assert(r == 0 || errno == EINPROGRESS);
    ck_assert_int_eq(weft_fdwait(s, WEFT_WRITE, weft_now() + 3000), WEFT_WRITE);
    weft_close(s);
    weft_close(l);
}

TASK_TEST(connect_passes_libc_errors_through)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = loopback4(80);
    ck_assert_fails(weft_connect(s, (struct sockaddr *)&a, 3), EINVAL);
    struct sockaddr_in6 v6;
    memset(&v6, 0, sizeof v6);
    v6.sin6_family = AF_INET6;
    ck_assert_fails(weft_connect(s, (struct sockaddr *)&v6, sizeof v6), EAFNOSUPPORT);
    int p[2];
    make_pipe(p);
    ck_assert_fails(weft_connect(p[0], (struct sockaddr *)&a, sizeof a), ENOTSOCK);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(s);
}

/* ---- sendfile -------------------------------------------------------------------------- */

TASK_TEST(sendfile_sends_a_file_and_advances_the_offset)
{
    size_t n = 1 << 20;
    char *content;
    int f = temp_file(n, &content);
    int sv[2];
    make_tcp_pair(sv);
    struct op rd = { .kind = OP_READ_FULL, .fd = sv[1], .n = n };
    rd.buf = malloc(n);
    ck_assert_ptr_nonnull(rd.buf);
    weft_task *r = weft_go(op_run, &rd);
    off_t off = 0;
    while ((size_t)off < n) {
        off_t before = off;
        ssize_t w = weft_sendfile(sv[0], f, &off, n - (size_t)off);
        ck_assert_int_gt(w, 0);
        ck_assert_int_eq(off, before + w);
    }
    ck_assert_int_eq(off, (off_t)n);
    ck_assert_int_eq(lseek(f, 0, SEEK_CUR), 0);             /* with an offset: file position kept */
    op_join(r);
    ck_assert_int_eq(rd.r, (ssize_t)n);
    ck_assert_int_eq(memcmp(rd.buf, content, n), 0);
    /* without an offset, the file position advances */
    ck_assert_int_eq(weft_sendfile(sv[0], f, NULL, 100), 100);
    ck_assert_int_eq(lseek(f, 0, SEEK_CUR), 100);
    ck_assert_int_eq(weft_read_full(sv[1], rd.buf, 100), 100);
    ck_assert_int_eq(memcmp(rd.buf, content, 100), 0);
    free(rd.buf);
    free(content);
    weft_close(f);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(sendfile_passes_libc_errors_through)
{
    int sv[2], p[2];
    make_socketpair(sv);
    make_pipe(p);
    off_t off = 0;
    ck_assert_fails(weft_sendfile(sv[0], sv[1], &off, 10), ESPIPE);   /* a socket is no file */
    ck_assert_fails(weft_sendfile(sv[0], sv[1], NULL, 10), EINVAL);
    ck_assert_fails(weft_sendfile(sv[0], p[1], NULL, 10), EBADF);     /* in_fd not readable */
    ck_assert_fails(weft_sendfile(-1, p[0], NULL, 10), EBADF);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- close ----------------------------------------------------------------------------- */

TASK_TEST(close_closes_and_rejects_bad_fds)
{
    int p[2];
    make_pipe(p);
    char c;
    ck_assert_int_eq(weft_write(p[1], "x", 1), 1);      /* known to the reactor */
    ck_assert_int_eq(weft_close(p[1]), 0);
    ck_assert_int_eq(fcntl(p[1], F_GETFD), -1);
    ck_assert_fails(weft_close(p[1]), EBADF);
    ck_assert_fails(weft_close(-1), EBADF);
    ck_assert_int_eq(weft_read(p[0], &c, 1), 1);
    ck_assert_int_eq(weft_read(p[0], &c, 1), 0);
    ck_assert_int_eq(weft_close(p[0]), 0);
}

/* ---- read_full / write_full ------------------------------------------------------------ */

struct dribble {
    int fd;
    const char *buf;
    size_t n, piece;
    int close_after;
};

static void *dribble_task(void *p)
{
    struct dribble *d = p;
    for (size_t off = 0; off < d->n; off += d->piece) {
        size_t k = d->n - off < d->piece ? d->n - off : d->piece;
        ck_assert_int_eq(weft_write_full(d->fd, d->buf + off, k), (ssize_t)k);
        weft_sleep(2);
    }
    if (d->close_after)
        ck_assert_int_eq(weft_close(d->fd), 0);
    return NULL;
}

TASK_TEST(read_full_collects_partial_transfers)
{
    int p[2];
    make_pipe(p);
    char out[1000], in[1000];
    pattern(out, sizeof out, 3);
    struct dribble d = { p[1], out, sizeof out, 77, 0 };
    weft_task *w = weft_go(dribble_task, &d);
    ck_assert_int_eq(weft_read_full(p[0], in, sizeof in), (ssize_t)sizeof in);
    ck_assert_int_eq(memcmp(in, out, sizeof in), 0);
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(read_full_returns_short_count_at_eof)
{
    int p[2];
    make_pipe(p);
    char out[300], in[1000];
    pattern(out, sizeof out, 4);
    struct dribble d = { p[1], out, sizeof out, 100, 1 };
    weft_task *w = weft_go(dribble_task, &d);
    errno = ENOTTY;             /* as another task may leave it while this one is parked */
    ck_assert_int_eq(weft_read_full(p[0], in, sizeof in), 300);
    ck_assert_int_eq(errno, 0); /* a short count at EOF says so: errno 0, not an error's */
    ck_assert_int_eq(memcmp(in, out, 300), 0);
    errno = ENOTTY;
    ck_assert_int_eq(weft_read_full(p[0], in, sizeof in), 0);   /* EOF, nothing read */
    ck_assert_int_eq(errno, 0);
    op_join(w);
    weft_close(p[0]);
}

struct resetter {
    int fd;
    const char *buf;
    size_t n;
};

static void *write_then_reset(void *p)
{
    struct resetter *r = p;
    ck_assert_int_eq(weft_write(r->fd, r->buf, r->n), (ssize_t)r->n);
    weft_sleep(50);             /* the reader takes the bytes and parks for more */
    set_linger0(r->fd);
    ck_assert_int_eq(weft_close(r->fd), 0);
    return NULL;
}

TASK_TEST(read_full_returns_count_with_errno_after_error)
{
    int sv[2];
    make_tcp_pair(sv);
    struct resetter rs = { sv[0], "0123456789", 10 };
    weft_task *w = weft_go(write_then_reset, &rs);
    char in[100];
    errno = 0;
    ck_assert_int_eq(weft_read_full(sv[1], in, sizeof in), 10);
    ck_assert_int_eq(errno, ECONNRESET);
    ck_assert_int_eq(memcmp(in, "0123456789", 10), 0);
    op_join(w);
    weft_close(sv[1]);
}

TASK_TEST(write_full_writes_everything_through_partial_writes)
{
    int sv[2];
    make_socketpair(sv);
    size_t n = 3 << 20;
    char *out = malloc(n);
    ck_assert_ptr_nonnull(out);
    pattern(out, n, 9);
    struct op rd = { .kind = OP_READ_FULL, .fd = sv[1], .n = n };
    rd.buf = malloc(n);
    ck_assert_ptr_nonnull(rd.buf);
    weft_task *r = weft_go(op_run, &rd);
    ck_assert_int_eq(weft_write_full(sv[0], out, n), (ssize_t)n);
    op_join(r);
    ck_assert_int_eq(rd.r, (ssize_t)n);
    ck_assert_int_eq(memcmp(rd.buf, out, n), 0);
    free(out);
    free(rd.buf);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

struct slow_closer {
    int fd;
    size_t want, got;
};

static void *read_some_then_close(void *p)
{
    struct slow_closer *c = p;
    char buf[4096];
    while (c->got < c->want) {
        ssize_t r = weft_read(c->fd, buf, sizeof buf);
        ck_assert_int_gt(r, 0);
        c->got += (size_t)r;
    }
    ck_assert_int_eq(weft_close(c->fd), 0);
    return NULL;
}

TASK_TEST(write_full_returns_count_with_errno_after_error)
{
    sigpipe_default();
    int p[2];
    make_pipe(p);
    size_t n = 1 << 20;
    char *out = malloc(n);
    ck_assert_ptr_nonnull(out);
    pattern(out, n, 2);
    struct slow_closer c = { p[0], 100000, 0 };
    weft_task *r = weft_go(read_some_then_close, &c);
    errno = 0;
    ssize_t w = weft_write_full(p[1], out, n);
    ck_assert_int_eq(errno, EPIPE);
    ck_assert_int_ge(w, (ssize_t)c.got);    /* the count covers every byte the reader took */
    ck_assert_int_lt(w, (ssize_t)n);
    assert_sigpipe_clean();
    op_join(r);
    free(out);
    weft_close(p[1]);
}

TASK_TEST(write_full_fails_with_minus_one_when_nothing_was_written)
{
    sigpipe_default();
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_close(p[0]), 0);
    ck_assert_fails(weft_write_full(p[1], "abc", 3), EPIPE);
    char c;
    ck_assert_fails(weft_read_full(p[1], &c, 1), EBADF);
    weft_close(p[1]);
}

/* ---- ECONNRESET, EPIPE ----------------------------------------------------------------- */

TASK_TEST(read_gets_econnreset_when_peer_resets)
{
    int sv[2];
    make_tcp_pair(sv);
    struct op rd = { .kind = OP_READ, .fd = sv[1], .n = 16 };
    char buf[16];
    rd.buf = buf;
    weft_task *r = op_start(&rd);
    ck_assert(!rd.done);
    set_linger0(sv[0]);
    ck_assert_int_eq(weft_close(sv[0]), 0);
    op_join(r);
    ck_assert_op_failed(&rd, ECONNRESET);
    ck_assert_int_eq(weft_read(sv[1], buf, sizeof buf), 0);  /* after the error: EOF */
    weft_close(sv[1]);
}

TASK_TEST(write_to_reset_socket_gives_epipe_not_sigpipe)
{
    sigpipe_default();
    int sv[2];
    make_tcp_pair(sv);
    ck_assert_int_eq(weft_close(sv[1]), 0);
    weft_sleep(20);
    ssize_t r;
    int e = 0, tries = 0;
    char buf[4096] = { 0 };
    /* the first write may be accepted (the peer answers it with a reset); later ones fail */
    while ((r = weft_write(sv[0], buf, sizeof buf)) > 0 && ++tries < 100)
        weft_sleep(5);
    e = errno;
    ck_assert_int_eq(r, -1);
    ck_assert_msg(e == EPIPE || e == ECONNRESET, "errno %s", strerror(e));
    ck_assert_fails(weft_write(sv[0], buf, 1), EPIPE);
    ck_assert_fails(weft_send(sv[0], buf, 1, 0), EPIPE);
    struct iovec iov = { buf, 1 };
    ck_assert_fails(weft_writev(sv[0], &iov, 1), EPIPE);
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    ck_assert_fails(weft_sendmsg(sv[0], &m, 0), EPIPE);
    ck_assert_fails(weft_sendto(sv[0], buf, 1, 0, NULL, 0), EPIPE);
    assert_sigpipe_clean();                 /* still alive, mask as it was */
    weft_close(sv[0]);
}

TASK_TEST(write_to_pipe_without_reader_gives_epipe_not_sigpipe)
{
    sigpipe_default();
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_close(p[0]), 0);
    ck_assert_fails(weft_write(p[1], "x", 1), EPIPE);
    struct iovec iov = { "y", 1 };
    ck_assert_fails(weft_writev(p[1], &iov, 1), EPIPE);
    ck_assert_fails(weft_write(p[1], "z", 1), EPIPE);
    assert_sigpipe_clean();
    weft_close(p[1]);
}

TASK_TEST(write_to_pipe_whose_reader_closes_while_parked_gives_epipe)
{
    sigpipe_default();
    int p[2];
    make_pipe(p);
    fill_fd(p[1]);
    struct op wr = { .kind = OP_WRITE, .fd = p[1], .buf = "x", .n = 1 };
    weft_task *w = op_start(&wr);
    ck_assert(!wr.done);
    ck_assert_int_eq(weft_close(p[0]), 0);   /* another fd: the writer learns by EPOLLERR */
    op_join(w);
    ck_assert_op_failed(&wr, EPIPE);
    assert_sigpipe_clean();
    weft_close(p[1]);
}

TASK_TEST(sendfile_to_closed_peer_gives_epipe_not_sigpipe)
{
    sigpipe_default();
    char *content;
    int f = temp_file(4096, &content);
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_close(p[0]), 0);
    ck_assert_fails(weft_sendfile(p[1], f, NULL, 4096), EPIPE);
    assert_sigpipe_clean();
    free(content);
    weft_close(f);
    weft_close(p[1]);
}

TASK_TEST(blocked_pending_sigpipe_of_the_user_is_left_pending)
{
    /* A SIGPIPE the user blocked and has pending must still be there after a wrapper's EPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
    ck_assert_int_eq(raise(SIGPIPE), 0);
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_close(p[0]), 0);
    ck_assert_fails(weft_write(p[1], "x", 1), EPIPE);
    sigset_t pend;
    ck_assert_int_eq(sigpending(&pend), 0);
    ck_assert(sigismember(&pend, SIGPIPE));
    sigset_t cur;
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, NULL, &cur), 0);
    ck_assert(sigismember(&cur, SIGPIPE));  /* still blocked, as the user left it */
    struct timespec zero = { 0, 0 };
    ck_assert_int_eq(sigtimedwait(&set, NULL, &zero), SIGPIPE);
    ck_assert_int_eq(pthread_sigmask(SIG_UNBLOCK, &set, NULL), 0);
    weft_close(p[1]);
}

/* ---- blocking semantics ---------------------------------------------------------------- */

TASK_TEST(user_nonblocking_fd_keeps_eagain_semantics)
{
    int p[2];
    make_pipe(p);
    set_nonblocking(p[0], 1);
    set_nonblocking(p[1], 1);
    char c;
    int64_t t0 = weft_now();
    ck_assert_fails(weft_read(p[0], &c, 1), EAGAIN);
    ck_assert_fails(weft_read_full(p[0], &c, 1), EAGAIN);
    fill_fd(p[1]);
    ck_assert_fails(weft_write(p[1], "x", 1), EAGAIN);
    ck_assert_elapsed(t0, 0, 1000);
    ck_assert(is_nonblocking(p[0]));
    weft_close(p[0]);
    weft_close(p[1]);
}

struct plain_writer {
    int fd;
};

static void *pwrite_later(void *p)
{
    struct plain_writer *w = p;
    usleep(50 * 1000);
    ck_assert_int_eq(write(w->fd, "m", 1), 1);
    return NULL;
}

START_TEST(outside_a_task_wrappers_are_the_plain_calls)
{
    int p[2];
    make_pipe(p);
    ck_assert_ptr_null(weft_self());
    ck_assert_int_eq(weft_write(p[1], "abc", 3), 3);
    char buf[8];
    ck_assert_int_eq(weft_read(p[0], buf, sizeof buf), 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    ck_assert(!is_nonblocking(p[0]));       /* the plain call: flags untouched */
    ck_assert(!is_nonblocking(p[1]));
    /* and it blocks the thread, as read(2) does */
    pthread_t th;
    struct plain_writer pw = { p[1] };
    ck_assert_int_eq(pthread_create(&th, NULL, pwrite_later, &pw), 0);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_read(p[0], buf, 1), 1);
    ck_assert_elapsed(t0, 40, 5000);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    struct iovec iov = { "de", 2 };
    ck_assert_int_eq(weft_writev(p[1], &iov, 1), 2);
    iov.iov_base = buf;
    ck_assert_int_eq(weft_readv(p[0], &iov, 1), 2);
    /* sockets: accept, connect, send, recv */
    int port;
    int l = plain_listener(4, &port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback4(port);
    ck_assert_int_eq(weft_connect(s, (struct sockaddr *)&a, sizeof a), 0);
    int c = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(weft_send(s, "q", 1, 0), 1);
    ck_assert_int_eq(weft_recv(c, buf, 1, 0), 1);
    ck_assert_int_eq(buf[0], 'q');
    ck_assert(!is_nonblocking(s));
    ck_assert(!is_nonblocking(c));
    ck_assert_int_eq(weft_read_full(c, buf, 0), 0);
    ck_assert_int_eq(weft_write_full(s, "full", 4), 4);
    ck_assert_int_eq(weft_read_full(c, buf, 4), 4);
    ck_assert_fails(weft_read(-1, buf, 1), EBADF);
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ, -1), EPERM);
    weft_close(c);
    weft_close(s);
    weft_close(l);
    weft_close(p[0]);
    weft_close(p[1]);
}
END_TEST

/* ---- signals: EINTR is never invented ---------------------------------------------------- */

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_count++;
}

struct pelter {
    pthread_t target;
    volatile int stop;
};

static void *pelt(void *p)
{
    struct pelter *pl = p;
    while (!pl->stop) {
        pthread_kill(pl->target, SIGUSR1);
        usleep(1000);
    }
    return NULL;
}

TASK_TEST(signals_while_parked_do_not_cause_eintr)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;        /* no SA_RESTART: epoll_wait sees EINTR */
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR1, &sa, NULL), 0);
    usr1_count = 0;
    struct pelter pl = { pthread_self(), 0 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, pelt, &pl), 0);
    int p[2];
    make_pipe(p);
    struct later l;
    weft_task *w = write_later(&l, p[1], "sig", 3, 150);
    char buf[8];
    ck_assert_int_eq(weft_read_full(p[0], buf, 3), 3);    /* parked across many signals */
    op_join(w);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    ck_assert_int_eq(weft_poll(&pf, 1, 60), 0);           /* a timeout, not EINTR */
    ck_assert_int_eq(weft_sleep(30), 0);
    pl.stop = 1;
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_gt(usr1_count, 5);
    signal(SIGUSR1, SIG_DFL);
    weft_close(p[0]);
    weft_close(p[1]);
}

/* ---- bad input ------------------------------------------------------------------------- */

TASK_TEST(negative_and_closed_fds_fail_with_ebadf)
{
    char buf[4];
    struct iovec iov = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct sockaddr_in a = loopback4(9);
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_write(p[1], "x", 1), 1);  /* the reactor (its epoll fd) exists */
    int closed = p[0];
    ck_assert_int_eq(close(closed), 0);     /* never seen by weft */
    int fds[2] = { -1, closed };
    for (int i = 0; i < 2; i++) {
        int fd = fds[i];
        ck_assert_fails(weft_read(fd, buf, 1), EBADF);
        ck_assert_fails(weft_write(fd, buf, 1), EBADF);
        ck_assert_fails(weft_readv(fd, &iov, 1), EBADF);
        ck_assert_fails(weft_writev(fd, &iov, 1), EBADF);
        ck_assert_fails(weft_recv(fd, buf, 1, 0), EBADF);
        ck_assert_fails(weft_send(fd, buf, 1, 0), EBADF);
        ck_assert_fails(weft_recvfrom(fd, buf, 1, 0, NULL, NULL), EBADF);
        ck_assert_fails(weft_sendto(fd, buf, 1, 0, NULL, 0), EBADF);
        ck_assert_fails(weft_recvmsg(fd, &m, 0), EBADF);
        ck_assert_fails(weft_sendmsg(fd, &m, 0), EBADF);
        ck_assert_fails(weft_accept(fd, NULL, NULL), EBADF);
        ck_assert_fails(weft_accept4(fd, NULL, NULL, 0), EBADF);
        ck_assert_fails(weft_connect(fd, (struct sockaddr *)&a, sizeof a), EBADF);
        ck_assert_fails(weft_sendfile(fd, p[1], NULL, 1), EBADF);
        ck_assert_fails(weft_close(fd), EBADF);
        ck_assert_fails(weft_read_full(fd, buf, 1), EBADF);
        ck_assert_fails(weft_write_full(fd, buf, 1), EBADF);
        ck_assert_fails(weft_fdwait(fd, WEFT_READ, -1), EBADF);
        ck_assert_fails(weft_fd_set_deadline(fd, WEFT_READ, -1), EBADF);
    }
    weft_close(p[1]);
}

static long rss_kb(void)
{
    long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%ld %ld", &size, &rss), 2);
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

TASK_TEST(huge_fd_numbers_fail_with_ebadf_and_cost_no_memory)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_write(p[1], "x", 1), 1);  /* the reactor exists */
    long before = rss_kb();
    char c;
    for (int i = 0; i < 16; i++) {
        int fd = INT_MAX - i * 100000;
        ck_assert_fails(weft_read(fd, &c, 1), EBADF);
        ck_assert_fails(weft_write(fd, &c, 1), EBADF);
        ck_assert_fails(weft_fdwait(fd, WEFT_READ, -1), EBADF);
        ck_assert_fails(weft_fd_set_deadline(fd, WEFT_WRITE, -1), EBADF);
    }
    long grown = rss_kb() - before;
    ck_assert_msg(grown < 2048, "bad fds made the process %ld KB bigger", grown);
    weft_close(p[0]);
    weft_close(p[1]);
}

struct outcome {
    ssize_t r;
    int e;
};

TASK_TEST(absurd_sizes_behave_as_libc_does)
{
    /* Each wrapper, handed SIZE_MAX on a pipe with data, must answer what the plain call
     * answers on a twin pipe (never hang, never crash). */
    if (UNDER_VALGRIND) {
        SKIP("valgrind reports the deliberately impossible buffer sizes as errors");
        return;
    }
    int ref[2], p[2];
    make_pipe(ref);
    make_pipe(p);
    char *buf = malloc(16);
    ck_assert_ptr_nonnull(buf);
    size_t volatile huge = SIZE_MAX;
    ck_assert_int_eq(write(ref[1], "data", 4), 4);
    ck_assert_int_eq(write(p[1], "data", 4), 4);
    set_nonblocking(ref[0], 1);
    set_nonblocking(ref[1], 1);
    struct iovec iov = { buf, huge };
    struct outcome want[3], got[3];
    for (int i = 0; i < 2; i++) {
        int rd = i ? p[0] : ref[0], wr = i ? p[1] : ref[1];
        struct outcome *res = i ? got : want;
        int64_t t0 = weft_now();
        errno = 0;
        res[0].r = i ? weft_read(rd, buf, huge) : read(rd, buf, huge);
        res[0].e = errno;
        errno = 0;
        res[1].r = i ? weft_write(wr, buf, huge) : write(wr, buf, huge);
        res[1].e = errno;
        errno = 0;
        res[2].r = i ? weft_readv(rd, &iov, 1) : readv(rd, &iov, 1);
        res[2].e = errno;
        ck_assert_elapsed(t0, 0, 2000);
    }
    for (int k = 0; k < 3; k++) {
        ck_assert_msg(got[k].r == want[k].r && (want[k].r >= 0 || got[k].e == want[k].e),
                      "call %d: weft %zd (%s), libc %zd (%s)", k, got[k].r, strerror(got[k].e),
                      want[k].r, strerror(want[k].e));
    }
    free(buf);
    weft_close(ref[0]);
    weft_close(ref[1]);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(null_buffers_fail_with_efault)
{
    if (UNDER_VALGRIND) {
        SKIP("valgrind reports the deliberate NULL buffers as errors");
        return;
    }
    int p[2], sv[2];
    make_pipe(p);
    make_socketpair(sv);
    ck_assert_int_eq(write(p[1], "data", 4), 4);
    ck_assert_int_eq(write(sv[0], "data", 4), 4);
    void *volatile nul = NULL;      /* hide the NULL from the compiler's checks */
    ck_assert_fails(weft_read(p[0], nul, 4), EFAULT);
    ck_assert_fails(weft_write(p[1], nul, 4), EFAULT);
    ck_assert_fails(weft_recv(sv[1], nul, 4, 0), EFAULT);
    ck_assert_fails(weft_send(sv[0], nul, 4, 0), EFAULT);
    ck_assert_fails(weft_recvmsg(sv[1], nul, 0), EFAULT);
    ck_assert_fails(weft_sendmsg(sv[0], nul, 0), EFAULT);
    ck_assert_fails(weft_readv(p[0], nul, 1), EFAULT);
    ck_assert_fails(weft_writev(p[1], nul, 1), EFAULT);
    /* the data is still there for a good buffer */
    char buf[4];
    ck_assert_int_eq(weft_read(p[0], buf, 4), 4);
    ck_assert_int_eq(weft_recv(sv[1], buf, 4, 0), 4);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- the fd goes back to the user as it came ---------------------------------------- */

static int tr_pipe[2];
static long tr_got;

static void *tr_reader(void *arg)
{
    (void)arg;
    char c;
    tr_got += weft_read(tr_pipe[0], &c, 1);
    return NULL;
}

static void *tr_writer(void *arg)
{
    (void)arg;
    weft_sleep(10);
    ck_assert_int_eq(weft_write(tr_pipe[1], "x", 1), 1);
    return NULL;
}

static void *tr_round(void *arg)
{
    (void)arg;
    weft_task *r = weft_go(tr_reader, NULL), *w = weft_go(tr_writer, NULL);
    ck_assert_int_eq(weft_join(r, NULL), 0);
    ck_assert_int_eq(weft_join(w, NULL), 0);
    return NULL;
}

START_TEST(teardown_restores_blocking_mode_so_a_second_run_parks_again)
{
    ck_assert_ok(pipe(tr_pipe));
    tr_got = 0;
    for (int round = 0; round < 2; round++) {
        ck_assert_int_eq(weft_main(tr_round, NULL), 0);
        ck_assert_int_eq(tr_got, round + 1);        /* the read parked, then got its byte */
        ck_assert_int_eq(fcntl(tr_pipe[0], F_GETFL) & O_NONBLOCK, 0);
        ck_assert_int_eq(fcntl(tr_pipe[1], F_GETFL) & O_NONBLOCK, 0);
    }
    /* A user's own O_NONBLOCK is theirs: it stays. */
    ck_assert_ok(fcntl(tr_pipe[0], F_SETFL, fcntl(tr_pipe[0], F_GETFL) | O_NONBLOCK));
    ck_assert_int_eq(weft_main(tr_round, NULL), 0);
    ck_assert_int_ne(fcntl(tr_pipe[0], F_GETFL) & O_NONBLOCK, 0);
    close(tr_pipe[0]);
    close(tr_pipe[1]);
}
END_TEST

static Suite *io_suite(void)
{
    Suite *s = suite_create("io");
    ADD_TEST(s, teardown_restores_blocking_mode_so_a_second_run_parks_again, 10);
    ADD_TEST(s, read_returns_available_data_without_parking, 5);
    ADD_TEST(s, blocking_fd_is_made_nonblocking_and_task_parks, 5);
    ADD_TEST(s, read_returns_zero_at_eof, 5);
    ADD_TEST(s, read_passes_libc_errors_through, 5);
    ADD_TEST(s, read_of_zero_bytes_returns_at_once, 5);
    ADD_TEST(s, write_partial_transfers_and_parks_when_full, 10);
    ADD_TEST(s, write_passes_libc_errors_through, 5);
    ADD_TEST(s, readv_scatters_and_parks_until_data, 5);
    ADD_TEST(s, readv_rejects_bad_iovcnt, 5);
    ADD_TEST(s, writev_gathers_on_pipe_and_socket, 5);
    ADD_TEST(s, writev_rejects_bad_iovcnt, 5);
    ADD_TEST(s, recv_parks_and_honours_flags, 5);
    ADD_TEST(s, recv_with_msg_dontwait_does_not_park, 5);
    ADD_TEST(s, recv_waitall_waits_for_all_bytes, 10);
    ADD_TEST(s, recvmsg_waitall_fills_every_iovec, 5);
    ADD_TEST(s, recv_waitall_returns_the_short_count_at_eof_or_deadline, 5);
    ADD_TEST(s, recv_waitall_cancelled_returns_what_came, 5);
    ADD_TEST(s, recv_waitall_on_a_datagram_socket_takes_one_message, 5);
    ADD_TEST(s, recv_and_send_on_a_pipe_fail_with_enotsock, 5);
    ADD_TEST(s, send_parks_when_full_and_delivers_everything, 10);
    ADD_TEST(s, send_on_unconnected_tcp_socket_fails, 5);
    ADD_TEST(s, recvfrom_parks_and_reports_the_sender, 5);
    ADD_TEST(s, sendto_passes_libc_errors_through, 5);
    ADD_TEST(s, recvmsg_parks_and_receives_an_fd, 5);
    ADD_TEST(s, recvmsg_and_sendmsg_pass_libc_errors_through, 5);
    ADD_TEST(s, accept_parks_until_a_connection_arrives, 5);
    ADD_TEST(s, accept_passes_libc_errors_through, 5);
    ADD_TEST(s, accept4_sock_nonblock_keeps_eagain_semantics, 5);
    ADD_TEST(s, accept4_honours_sock_cloexec, 5);
    ADD_TEST(s, connect_succeeds_on_a_blocking_socket, 5);
    ADD_TEST(s, connect_to_closed_port_fails_with_econnrefused, 5);
    ADD_TEST(s, connect_on_user_nonblocking_socket_returns_einprogress, 5);
    ADD_TEST(s, connect_passes_libc_errors_through, 5);
    ADD_TEST(s, sendfile_sends_a_file_and_advances_the_offset, 10);
    ADD_TEST(s, sendfile_passes_libc_errors_through, 5);
    ADD_TEST(s, close_closes_and_rejects_bad_fds, 5);
    ADD_TEST(s, read_full_collects_partial_transfers, 5);
    ADD_TEST(s, read_full_returns_short_count_at_eof, 5);
    ADD_TEST(s, read_full_returns_count_with_errno_after_error, 5);
    ADD_TEST(s, write_full_writes_everything_through_partial_writes, 10);
    ADD_TEST(s, write_full_returns_count_with_errno_after_error, 5);
    ADD_TEST(s, write_full_fails_with_minus_one_when_nothing_was_written, 5);
    ADD_TEST(s, read_gets_econnreset_when_peer_resets, 5);
    ADD_TEST(s, write_to_reset_socket_gives_epipe_not_sigpipe, 5);
    ADD_TEST(s, write_to_pipe_without_reader_gives_epipe_not_sigpipe, 5);
    ADD_TEST(s, write_to_pipe_whose_reader_closes_while_parked_gives_epipe, 5);
    ADD_TEST(s, sendfile_to_closed_peer_gives_epipe_not_sigpipe, 5);
    ADD_TEST(s, blocked_pending_sigpipe_of_the_user_is_left_pending, 5);
    ADD_TEST(s, user_nonblocking_fd_keeps_eagain_semantics, 5);
    ADD_TEST(s, outside_a_task_wrappers_are_the_plain_calls, 5);
    ADD_TEST(s, signals_while_parked_do_not_cause_eintr, 5);
    ADD_TEST(s, negative_and_closed_fds_fail_with_ebadf, 5);
    ADD_TEST(s, huge_fd_numbers_fail_with_ebadf_and_cost_no_memory, 5);
    ADD_TEST(s, absurd_sizes_behave_as_libc_does, 5);
    ADD_TEST(s, null_buffers_fail_with_efault, 5);
    return s;
}

int main(void)
{
    return test_run(io_suite());
}

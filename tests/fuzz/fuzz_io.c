/* Fuzz harness: random byte streams and random disconnects through a connected pair of
 * sockets (a Unix socketpair, or TCP over loopback), read inside weft tasks with the
 * wrappers. The input is two scripts, one for a writer task and one for a reader task, and
 * a header (which sockets, a small send buffer, when the main task cancels either).
 * Writer: weft_write, weft_send, weft_writev, weft_write_full of chunks of a known byte
 * pattern, weft_sendmsg of a byte carrying 1-3 fds (SCM_RIGHTS, Unix only), yields,
 * shutdown or close at any point. Reader: weft_read (0 bytes included), weft_read_full,
 * weft_readv over uneven iovecs (empty ones too), weft_recvmsg with control buffers of any
 * size (truncated ones: MSG_CTRUNC), a read deadline moved into the past, yields, an early
 * close. Checked: every byte arrives intact and in order, every call ends with data, 0 at
 * EOF (only once the writer has ended its side and everything sent has arrived) or -1 with
 * an errno the script explains (EPIPE or ECONNRESET after the peer went, ECANCELED after a
 * cancel, ETIMEDOUT after a deadline); a 0-byte read or readv returns at once; every fd passed is
 * open and is the pipe sent; no fd is left open when the input is done; the run ends
 * (weft_run returns 0). Built for libFuzzer by tests/fuzz/run.sh, and with
 * tests/fuzz/replay.c for make check. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <weft.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond, ...)                                                                   \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fuzz_io: %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

struct script {
    const uint8_t *p, *end;
};

static int take(struct script *s)
{
    return s->p < s->end ? *s->p++ : -1;
}

static int take_or(struct script *s, int dflt)
{
    int v = take(s);
    return v < 0 ? dflt : v;
}

/* The stream's byte at position i. */
static uint8_t pattern(uint64_t i)
{
    return (uint8_t)(i * 131 + (i >> 8) * 7 + 1);
}

static struct state {
    int tcp;
    int wfd, rfd;               /* the writer's and the reader's socket (-1 once closed) */
    int pipefd[2];              /* what SCM_RIGHTS carries */
    uint64_t sent, recvd;
    int writer_done;            /* shut down or closed its side: EOF may come */
    int reader_gone;            /* closed its side: writes may fail with EPIPE/ECONNRESET */
    int reader_cancelled, writer_cancelled;
    int reader_eof;
    unsigned ticks;             /* the writer's progress: a 0-byte read must not see it move */
    long fds_received;
    weft_task *reader, *writer;
} S;

/* ---- writer ----------------------------------------------------------------------------- */

static void fill(uint8_t *buf, uint64_t from, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern(from + i);
}

/* A write returned r (errno e): bytes, or a failure the peer's going or a cancel explains. */
static int writer_result(ssize_t r, int e, size_t n, const char *what)
{
    if (r >= 0) {
        REQUIRE((size_t)r <= n && (r > 0 || n == 0), "%s: %zd of %zu", what, r, n);
        S.sent += (uint64_t)r;
        return 0;
    }
    REQUIRE((e == EPIPE || e == ECONNRESET) ? S.reader_gone : e == ECANCELED ? S.writer_cancelled : 0,
            "%s: %s (reader gone %d, cancelled %d)", what, strerror(e), S.reader_gone, S.writer_cancelled);
    return -1;
}

static void *writer(void *arg)
{
    struct script *s = arg;
    uint8_t buf[1024];
    int op;
    while ((op = take(s)) >= 0) {
        S.ticks++;
        size_t n = (size_t)take_or(s, 1) * (op & 0x80 ? 4 : 1);
        ssize_t r = 0;
        int e;
        switch (op % 8) {
        case 0:
        case 1:
            fill(buf, S.sent, n);
            errno = 0;
            r = op % 8 ? weft_send(S.wfd, buf, n, 0) : weft_write(S.wfd, buf, n);
            e = errno;
            if (writer_result(r, e, n, "write") < 0)
                goto out;
            break;
        case 2: {   /* writev over up to 3 pieces, empty ones too */
            fill(buf, S.sent, n);
            struct iovec iov[3];
            size_t a = n ? (size_t)take_or(s, 0) % (n + 1) : 0, b = n - a ? (size_t)take_or(s, 0) % (n - a + 1) : 0;
            iov[0] = (struct iovec){ buf, a };
            iov[1] = (struct iovec){ buf + a, b };
            iov[2] = (struct iovec){ buf + a + b, n - a - b };
            errno = 0;
            r = weft_writev(S.wfd, iov, 3);
            e = errno;
            if (n == 0) {
                REQUIRE(r == 0 || (r < 0 && (e == EPIPE || e == ECONNRESET) && S.reader_gone), "writev 0: %zd", r);
                break;
            }
            if (writer_result(r, e, n, "writev") < 0)
                goto out;
            break;
        }
        case 3: {
            fill(buf, S.sent, n);
            errno = 0;
            r = weft_write_full(S.wfd, buf, n);
            e = errno;
            if (r >= 0 && (size_t)r < n) {      /* a short count: the error is in errno */
                S.sent += (uint64_t)r;
                writer_result(-1, e, n, "write_full (short)");
                goto out;
            }
            if (n && writer_result(r, e, n, "write_full") < 0)
                goto out;
            break;
        }
        case 4: {   /* one byte carrying 1-3 fds (Unix), or a plain byte (TCP) */
            int k = 1 + (int)(n % 3);
            union {
                char b[CMSG_SPACE(3 * sizeof(int))];
                struct cmsghdr align;
            } u;
            memset(&u, 0, sizeof u);
            fill(buf, S.sent, 1);
            struct iovec iov = { buf, 1 };
            struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
            if (!S.tcp) {
                m.msg_control = u.b;
                m.msg_controllen = CMSG_SPACE((size_t)k * sizeof(int));
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN((size_t)k * sizeof(int));
                for (int i = 0; i < k; i++)
                    memcpy(CMSG_DATA(c) + i * sizeof(int), &S.pipefd[0], sizeof(int));
            }
            errno = 0;
            r = weft_sendmsg(S.wfd, &m, 0);
            e = errno;
            if (writer_result(r, e, 1, "sendmsg") < 0)
                goto out;
            break;
        }
        case 5:
            weft_yield();
            break;
        case 6:
            if (n % 4 == 0)
                goto out;           /* close (below) */
            if (n % 4 == 1) {
                /* A TCP peer that has already reset the connection leaves nothing to shut:
                 * ENOTCONN is the kernel's answer then, not a defect. */
                REQUIRE(shutdown(S.wfd, SHUT_WR) == 0 || errno == ENOTCONN, "shutdown: %s",
                        strerror(errno));
                S.writer_done = 1;
                return NULL;        /* the main task closes it */
            }
            break;
        default:
            for (size_t i = n % 4; i > 0; i--)
                weft_yield();
            break;
        }
    }
out:
    S.writer_done = 1;
    weft_close(S.wfd);
    S.wfd = -1;
    return NULL;
}

/* ---- reader ----------------------------------------------------------------------------- */

static void check_bytes(const uint8_t *buf, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        REQUIRE(buf[i] == pattern(S.recvd + i), "%s: byte %llu is %u, sent %u", what,
                (unsigned long long)(S.recvd + i), buf[i], pattern(S.recvd + i));
    S.recvd += n;
    REQUIRE(S.recvd <= S.sent, "%s: %llu bytes received, %llu sent", what,
            (unsigned long long)S.recvd, (unsigned long long)S.sent);
}

/* A read returned r (errno e) for n bytes asked: data, EOF when it may come, or an
 * explained failure. Returns 1 to go on, 0 at EOF or failure. */
static int reader_result(ssize_t r, int e, size_t n, int deadline_past, const char *what)
{
    if (r > 0)
        return 1;
    if (r == 0 && n == 0)
        return 1;
    if (r == 0) {
        REQUIRE(S.writer_done && S.recvd == S.sent, "%s: EOF with writer done %d, %llu of %llu",
                what, S.writer_done, (unsigned long long)S.recvd, (unsigned long long)S.sent);
        S.reader_eof = 1;
        return 0;
    }
    REQUIRE(e == ECANCELED ? S.reader_cancelled : e == ETIMEDOUT ? deadline_past : 0,
            "%s: %s (cancelled %d, deadline %d)", what, strerror(e), S.reader_cancelled, deadline_past);
    return 0;
}

static void take_fds(struct msghdr *m, const char *what)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        REQUIRE(c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS, "%s: cmsg %d/%d", what,
                c->cmsg_level, c->cmsg_type);
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            struct stat st, want;
            REQUIRE(fstat(fd, &st) == 0 && fstat(S.pipefd[0], &want) == 0, "%s: fd %d: %s", what, fd,
                    strerror(errno));
            REQUIRE(st.st_ino == want.st_ino && S_ISFIFO(st.st_mode), "%s: fd %d is not the pipe", what, fd);
            close(fd);
            S.fds_received++;
        }
    }
}

static void *reader(void *arg)
{
    struct script *s = arg;
    uint8_t buf[1200];
    int op, past = 0;
    ssize_t r;
    int e;
    while ((op = take(s)) >= 0) {
        size_t n = (size_t)take_or(s, 1) * (op & 0x80 ? 4 : 1);
        switch (op % 8) {
        case 0: {
            unsigned t = S.ticks;
            errno = 0;
            r = weft_read(S.rfd, buf, n);
            e = errno;
            if (n == 0 && !past)
                REQUIRE(r == 0 && S.ticks == t, "0-byte read: %zd (%s), writer moved %d", r,
                        r < 0 ? strerror(e) : "-", S.ticks != t);
            if (r > 0)
                check_bytes(buf, (size_t)r, "read");
            if (!reader_result(r, e, n, past, "read"))
                goto out;
            break;
        }
        case 1:
            errno = 0;
            r = weft_read_full(S.rfd, buf, n);
            e = errno;
            if (r > 0)
                check_bytes(buf, (size_t)r, "read_full");
            if (r >= 0 && (size_t)r < n) {
                /* short: EOF, or an error after r bytes. errno alone cannot say which:
                 * it is the thread's, and other tasks set it while this one parked. */
                if (S.writer_done && S.recvd == S.sent) {
                    S.reader_eof = 1;
                    goto out;
                }
                reader_result(-1, e, n, past, "read_full (short)");
                goto out;
            }
            if (!reader_result(r, e, n, past, "read_full"))
                goto out;
            break;
        case 2: {   /* readv over up to 4 uneven pieces */
            struct iovec iov[4];
            size_t at = 0, total = 0;
            int cnt = 1 + take_or(s, 0) % 4;
            for (int i = 0; i < cnt; i++) {
                size_t l = (size_t)take_or(s, 0) % 300;
                iov[i] = (struct iovec){ buf + at, l };
                at += l;
                total += l;
            }
            unsigned t = S.ticks;
            errno = 0;
            r = weft_readv(S.rfd, iov, cnt);
            e = errno;
            if (total == 0 && !past)
                REQUIRE(r == 0 && S.ticks == t, "0-byte readv: %zd (%s), writer moved %d", r,
                        r < 0 ? strerror(e) : "-", S.ticks != t);
            if (r > 0)
                check_bytes(buf, (size_t)r, "readv");
            if (!reader_result(r, e, total, past, "readv"))
                goto out;
            break;
        }
        case 3: {   /* recvmsg with a control buffer of any size */
            union {
                char b[CMSG_SPACE(8 * sizeof(int))];
                struct cmsghdr align;
            } u;
            size_t clen = (size_t)take_or(s, 0) % (sizeof u.b + 1);
            struct iovec iov = { buf, n };
            struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = clen ? u.b : NULL,
                                .msg_controllen = clen };
            errno = 0;
            r = weft_recvmsg(S.rfd, &m, op & 0x40 ? MSG_CMSG_CLOEXEC : 0);
            e = errno;
            if (r > 0)
                check_bytes(buf, (size_t)r, "recvmsg");
            if (r >= 0) {
                if (clen < CMSG_LEN(sizeof(int)))
                    REQUIRE(m.msg_controllen == 0 || (m.msg_flags & MSG_CTRUNC), "recvmsg: %zu control bytes in %zu",
                            (size_t)m.msg_controllen, clen);
                take_fds(&m, "recvmsg");
            }
            if (!reader_result(r, e, n, past, "recvmsg"))
                goto out;
            break;
        }
        case 4:     /* a read deadline in the past: the next read fails at once */
            REQUIRE(weft_fd_set_deadline(S.rfd, WEFT_READ, weft_now() - 1) == 0, "set deadline: %s", strerror(errno));
            errno = 0;
            r = weft_read(S.rfd, buf, 1);
            REQUIRE(r == -1 && errno == ETIMEDOUT, "read past deadline: %zd (%s)", r, strerror(errno));
            if (n & 1) {
                past = 1;       /* left set: the script's next read times out too */
                break;
            }
            REQUIRE(weft_fd_set_deadline(S.rfd, WEFT_READ, -1) == 0, "clear deadline: %s", strerror(errno));
            break;
        case 5:
            if (past) {
                REQUIRE(weft_fd_set_deadline(S.rfd, WEFT_READ, -1) == 0, "clear: %s", strerror(errno));
                past = 0;
            }
            weft_yield();
            break;
        case 6:
            if (n % 8 == 0) {   /* go away early */
                S.reader_gone = 1;
                weft_close(S.rfd);
                S.rfd = -1;
                return NULL;
            }
            break;
        default:
            for (size_t i = n % 4; i > 0; i--)
                weft_yield();
            break;
        }
    }
    /* The script is over: drain to EOF (the writer always ends its side). */
    if (past)
        REQUIRE(weft_fd_set_deadline(S.rfd, WEFT_READ, -1) == 0, "clear: %s", strerror(errno));
    past = 0;
    for (;;) {
        errno = 0;
        r = weft_read(S.rfd, buf, sizeof buf);
        e = errno;
        if (r > 0)
            check_bytes(buf, (size_t)r, "drain");
        if (!reader_result(r, e, sizeof buf, 0, "drain"))
            break;
    }
out:
    S.reader_gone = 1;
    if (S.rfd >= 0)
        weft_close(S.rfd);
    S.rfd = -1;
    return NULL;
}

/* ---- the run ------------------------------------------------------------------------------ */

static int make_tcp_pair(int sv[2])
{
    int l = weft_tcp_listen("127.0.0.1", 0, 4, WEFT_NODELAY);
    if (l < 0)
        return -1;
    int port = weft_local_port(l);
    sv[0] = weft_tcp_dial("127.0.0.1", port, WEFT_NODELAY, weft_now() + 5000);
    sv[1] = sv[0] >= 0 ? weft_accept4(l, NULL, NULL, SOCK_CLOEXEC) : -1;
    weft_close(l);
    if (sv[1] < 0) {
        if (sv[0] >= 0)
            weft_close(sv[0]);
        return -1;
    }
    return 0;
}

struct input {
    int flags, cancel_at;
    struct script w, r;
};

static void *main_task(void *arg)
{
    struct input *in = arg;
    int sv[2];
    S.tcp = in->flags & 1;
    if (S.tcp)
        REQUIRE(make_tcp_pair(sv) == 0, "tcp pair: %s", strerror(errno));
    else
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s", strerror(errno));
    if (in->flags & 2) {    /* small buffers: writes park */
        int sz = 1024;
        setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
        setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    REQUIRE(pipe2(S.pipefd, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    S.wfd = sv[0];
    S.rfd = sv[1];
    S.writer = weft_go(writer, &in->w);
    S.reader = weft_go(reader, &in->r);
    REQUIRE(S.writer && S.reader, "spawn: %s", strerror(errno));
    for (int i = 0; i < in->cancel_at; i++)
        weft_yield();
    if (in->flags & 4) {
        S.reader_cancelled = 1;
        REQUIRE(weft_cancel(S.reader) == 0, "cancel: %s", strerror(errno));
    }
    if (in->flags & 8) {
        S.writer_cancelled = 1;
        REQUIRE(weft_cancel(S.writer) == 0, "cancel: %s", strerror(errno));
    }
    REQUIRE(weft_join(S.reader, NULL) == 0, "join: %s", strerror(errno));
    /* The reader has gone: a writer parked on a full socket now fails with EPIPE. */
    REQUIRE(weft_join(S.writer, NULL) == 0, "join: %s", strerror(errno));
    if (S.wfd >= 0)
        weft_close(S.wfd);
    close(S.pipefd[0]);
    close(S.pipefd[1]);
    if (S.reader_eof)
        REQUIRE(S.recvd == S.sent, "EOF after %llu of %llu bytes", (unsigned long long)S.recvd,
                (unsigned long long)S.sent);
    return NULL;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    signal(SIGPIPE, SIG_DFL);       /* a write that raised SIGPIPE would end the run */
    struct input in;
    in.flags = data[0];
    in.cancel_at = data[1] % 64;
    size_t split = 3 + (size - 3) * data[2] / 256;
    in.w = (struct script){ data + 3, data + split };
    in.r = (struct script){ data + split, data + size };
    memset(&S, 0, sizeof S);
    int before = count_fds();
    /* detached: nothing is left when weft_run returns, so it releases the scheduler and
     * its epoll fd, and the fd counts compare */
    REQUIRE(weft_spawn(&(weft_attr){ .detached = 1 }, main_task, &in) != NULL, "spawn: %s", strerror(errno));
    REQUIRE(weft_run() == 0, "weft_run: %s", strerror(errno));
    int after = count_fds();
    REQUIRE(before == after, "%d fds open before, %d after", before, after);
    return 0;
}

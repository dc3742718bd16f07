/* Link-time wrapping (src/wrap.c). This file calls libc by its own names (read, connect,
 * fcntl, select, sleep, ...) and is linked with the flags of weft-wrap-flags, as third-party
 * code would be. It is built twice: check_wrap against the shared libweft, check_wrap_static
 * against libweft.a, where the linker rewrites weft's own objects too, so a libweft that
 * called read by that name would call itself (src/sys.h). */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "wrap_alt.h"

/* The order in which tasks reached their marks: a reader that parks lets the writer mark
 * first, a reader that blocked the thread would never see the writer run. */
static int order[16], norder;
static void mark(int who)
{
    ck_assert_int_lt(norder, 16);
    order[norder++] = who;
}
#define ck_assert_order(...)                                                                \
    do {                                                                                    \
        int want_[] = { __VA_ARGS__ };                                                      \
        int n_ = (int)(sizeof want_ / sizeof want_[0]);                                     \
        ck_assert_int_eq(norder, n_);                                                       \
        for (int i_ = 0; i_ < n_; i_++)                                                     \
            ck_assert_msg(order[i_] == want_[i_], "mark %d: got %d, expected %d", i_,       \
                          order[i_], want_[i_]);                                            \
    } while (0)

static int fds[2];          /* a pipe or a socket pair, per test */

/* A task that ticks every millisecond until stop_ticker is set: proof the thread was free. */
static long ticks;
static int stop_ticker;
static void *ticker(void *arg)
{
    (void)arg;
    while (!stop_ticker && weft_sleep(1) == 0)
        ticks++;
    return NULL;
}

/* Each test starts from nothing (they share one process under CK_FORK=no). */
static void reset(void)
{
    norder = 0;
    ticks = 0;
    stop_ticker = 0;
    fds[0] = fds[1] = -1;
}

static void run_tasks(void *(*a)(void *), void *(*b)(void *))
{
    ck_assert_ptr_nonnull(weft_go(a, NULL));
    if (b)
        ck_assert_ptr_nonnull(weft_go(b, NULL));
    ck_assert_int_eq(weft_run(), 0);
}

static void make_socketpair(void)
{
    ck_assert_ok(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
}

/* ---- reads and writes ------------------------------------------------------------------- */

static void *pipe_reader(void *arg)
{
    (void)arg;
    char buf[16];
    ssize_t n = read(fds[0], buf, sizeof buf);
    mark(2);
    ck_assert_int_eq(n, 4);
    ck_assert(memcmp(buf, "ping", 4) == 0);
    return NULL;
}

static void *pipe_writer(void *arg)
{
    (void)arg;
    mark(1);
    ck_assert_int_eq(write(fds[1], "ping", 4), 4);
    return NULL;
}

START_TEST(read_on_empty_pipe_parks_the_task_not_the_thread)
{
    ck_assert_ok(pipe(fds));
    run_tasks(pipe_reader, pipe_writer);
    ck_assert_order(1, 2);
    ck_assert_ok(close(fds[0]));
    ck_assert_ok(close(fds[1]));
}
END_TEST

/* Each receive parks before its data is sent: the sender waits for the receiver's mark. */
static void *socket_receiver(void *arg)
{
    (void)arg;
    char a[4], b[4], buf[8];
    struct iovec iov[2] = { { a, 2 }, { b, 2 } };
    ck_assert_int_eq(readv(fds[0], iov, 2), 4);
    ck_assert(memcmp(a, "ab", 2) == 0 && memcmp(b, "cd", 2) == 0);
    mark(2);
    ck_assert_int_eq(recv(fds[0], buf, sizeof buf, 0), 2);
    ck_assert(memcmp(buf, "ef", 2) == 0);
    mark(4);
    ck_assert_int_eq(recvfrom(fds[0], buf, sizeof buf, 0, NULL, NULL), 2);
    ck_assert(memcmp(buf, "gh", 2) == 0);
    mark(6);
    struct iovec one = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &one, .msg_iovlen = 1 };
    ck_assert_int_eq(recvmsg(fds[0], &m, 0), 2);
    ck_assert(memcmp(buf, "ij", 2) == 0);
    mark(8);
    ck_assert_int_eq(read(fds[0], buf, sizeof buf), 2);
    ck_assert(memcmp(buf, "kl", 2) == 0);
    mark(10);
    return NULL;
}

static void wait_marks(int n)
{
    while (norder < n)
        weft_sleep(1);
}

static void *socket_sender(void *arg)
{
    (void)arg;
    struct iovec iov[2] = { { "ab", 2 }, { "cd", 2 } };
    mark(1);
    ck_assert_int_eq(writev(fds[1], iov, 2), 4);
    wait_marks(2);
    mark(3);
    ck_assert_int_eq(send(fds[1], "ef", 2, 0), 2);
    wait_marks(4);
    mark(5);
    ck_assert_int_eq(sendto(fds[1], "gh", 2, 0, NULL, 0), 2);
    wait_marks(6);
    mark(7);
    struct iovec one = { "ij", 2 };
    struct msghdr m = { .msg_iov = &one, .msg_iovlen = 1 };
    ck_assert_int_eq(sendmsg(fds[1], &m, 0), 2);
    wait_marks(8);
    mark(9);
    ck_assert_int_eq(write(fds[1], "kl", 2), 2);
    return NULL;
}

START_TEST(socket_receives_park_until_the_sender_runs)
{
    make_socketpair();
    run_tasks(socket_receiver, socket_sender);
    ck_assert_order(1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
}
END_TEST

/* MSG_DONTWAIT asks for EAGAIN, not a wait: the wrappers must not park on it. */
static void *dontwait_caller(void *arg)
{
    (void)arg;
    char buf[4096];
    struct iovec one = { buf, sizeof buf };
    struct msghdr m = { .msg_iov = &one, .msg_iovlen = 1 };
    ck_assert_fails(recv(fds[0], buf, sizeof buf, MSG_DONTWAIT), EAGAIN);
    ck_assert_fails(recvfrom(fds[0], buf, sizeof buf, MSG_DONTWAIT, NULL, NULL), EAGAIN);
    ck_assert_fails(recvmsg(fds[0], &m, MSG_DONTWAIT), EAGAIN);
    memset(buf, 'x', sizeof buf);
    long sent = 0;
    ssize_t n;
    while ((n = send(fds[1], buf, sizeof buf, MSG_DONTWAIT)) > 0)      /* until full */
        sent += n;
    ck_assert_int_eq(errno, EAGAIN);
    ck_assert_int_gt(sent, 0);
    ck_assert_fails(sendto(fds[1], buf, sizeof buf, MSG_DONTWAIT, NULL, 0), EAGAIN);
    ck_assert_fails(sendmsg(fds[1], &m, MSG_DONTWAIT), EAGAIN);
    ck_assert_int_eq(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);       /* still blocking */
    return NULL;
}

START_TEST(msg_dontwait_fails_with_eagain_instead_of_parking)
{
    make_socketpair();
    run_tasks(dontwait_caller, NULL);
}
END_TEST

/* sendfile of more than a socket buffer holds parks until a reader drains the peer. */
enum { FILE_BYTES = 1 << 20 };
static int file_fd;
static int use_lfs;

static void *file_sender(void *arg)
{
    (void)arg;
    long long off = 0;
    while (off < FILE_BYTES) {
        ssize_t n;
        if (use_lfs) {
            n = lfs_sendfile(fds[1], file_fd, &off, (size_t)(FILE_BYTES - off));
        } else {
            off_t o = (off_t)off;
            n = sendfile(fds[1], file_fd, &o, (size_t)(FILE_BYTES - off));
            off = o;
        }
        ck_assert_msg(n > 0, "sendfile: %s", strerror(errno));
    }
    mark(2);
    ck_assert_ok(close(fds[1]));
    return NULL;
}

static void *file_drainer(void *arg)
{
    (void)arg;
    mark(1);
    static char buf[65536];
    long total = 0;
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0)
        total += n;
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(total, FILE_BYTES);
    return NULL;
}

static void sendfile_case(int lfs)
{
    char path[] = "/tmp/weft-wrap-XXXXXX";
    file_fd = mkstemp(path);
    ck_assert_ok(file_fd);
    ck_assert_ok(unlink(path));
    static char chunk[65536];
    for (int i = 0; i < FILE_BYTES / (int)sizeof chunk; i++)
        ck_assert_int_eq(write(file_fd, chunk, sizeof chunk), sizeof chunk);
    make_socketpair();
    use_lfs = lfs;
    run_tasks(file_sender, file_drainer);
    ck_assert_order(1, 2);
}

START_TEST(sendfile_parks_while_the_socket_is_full)
{
    sendfile_case(0);
}
END_TEST

START_TEST(sendfile64_parks_while_the_socket_is_full)
{
    sendfile_case(1);
}
END_TEST

/* ---- accept and connect ----------------------------------------------------------------- */

static int listen_fd;
static struct sockaddr_in listen_addr;

static void *acceptor(void *arg)
{
    (void)arg;
    char buf[8];
    int c = accept(listen_fd, NULL, NULL);
    ck_assert_ok(c);
    mark(2);
    ck_assert_int_eq(read(c, buf, sizeof buf), 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    ck_assert_ok(close(c));
    c = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    ck_assert_ok(c);
    ck_assert_int_eq(fcntl(c, F_GETFD), FD_CLOEXEC);
    ck_assert_int_eq(fcntl(c, F_GETFL) & O_NONBLOCK, 0);    /* as the caller asked */
    mark(4);
    ck_assert_ok(close(c));
    return NULL;
}

static void *dialer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        mark(1 + 2 * i);
        int s = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_ok(s);
        ck_assert_ok(connect(s, (struct sockaddr *)&listen_addr, sizeof listen_addr));
        if (i == 0)
            ck_assert_int_eq(write(s, "hello", 5), 5);
        wait_marks(2 + 2 * i);
        ck_assert_ok(close(s));
    }
    return NULL;
}

START_TEST(accept_parks_until_connect_arrives)
{
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_ok(listen_fd);
    listen_addr.sin_family = AF_INET;
    listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof listen_addr;
    ck_assert_ok(bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof listen_addr));
    ck_assert_ok(listen(listen_fd, 8));
    ck_assert_ok(getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len));
    run_tasks(acceptor, dialer);
    ck_assert_order(1, 2, 3, 4);
}
END_TEST

/* ---- poll and select -------------------------------------------------------------------- */

static void *poller(void *arg)
{
    (void)arg;
    struct pollfd p = { .fd = fds[0], .events = POLLIN };
    ck_assert_int_eq(poll(&p, 1, 200), 0);     /* times out, the ticker running meanwhile */
    ck_assert_int_gt(ticks, 0);
    mark(1);
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    ck_assert(p.revents & POLLIN);
    mark(3);
    stop_ticker = 1;
    return NULL;
}

static void *late_writer(void *arg)
{
    (void)arg;
    wait_marks(1);
    mark(2);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    return NULL;
}

START_TEST(poll_parks_the_task_until_ready_or_timeout)
{
    ck_assert_ok(pipe(fds));
    ck_assert_ptr_nonnull(weft_go(ticker, NULL));
    run_tasks(poller, late_writer);
    ck_assert_order(1, 2, 3);
}
END_TEST

static void *selector(void *arg)
{
    (void)arg;
    fd_set rd, wr;
    struct timeval tv = { 0, 200000 };
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    ck_assert_int_eq(select(fds[0] + 1, &rd, NULL, NULL, &tv), 0);
    ck_assert(!FD_ISSET(fds[0], &rd));
    ck_assert(tv.tv_sec == 0 && tv.tv_usec == 0);
    ck_assert_int_gt(ticks, 0);
    mark(1);
    FD_SET(fds[0], &rd);
    ck_assert_int_eq(select(fds[0] + 1, &rd, NULL, NULL, NULL), 1);
    ck_assert(FD_ISSET(fds[0], &rd));
    mark(3);
    /* Readable and writable at once: both reported, in both sets. */
    FD_ZERO(&wr);
    FD_SET(fds[1], &wr);
    int nfds = (fds[0] > fds[1] ? fds[0] : fds[1]) + 1;
    tv.tv_sec = 5;
    ck_assert_int_eq(select(nfds, &rd, &wr, NULL, &tv), 2);
    ck_assert(FD_ISSET(fds[0], &rd) && FD_ISSET(fds[1], &wr));
    ck_assert(tv.tv_sec > 0 && tv.tv_sec <= 5);    /* the time not slept */
    stop_ticker = 1;
    return NULL;
}

START_TEST(select_parks_the_task_until_ready_or_timeout)
{
    ck_assert_ok(pipe(fds));
    ck_assert_ptr_nonnull(weft_go(ticker, NULL));
    run_tasks(selector, late_writer);
    ck_assert_order(1, 2, 3);
}
END_TEST

/* Timeouts never end early, also while the loop is busy (a task yielding all the time makes
 * the loop look at its timers between switches, with the clock read in whole milliseconds).
 * Measured with the nanosecond clock, over many short timeouts. */
static volatile int spin_stop;
static void *spinner(void *arg)
{
    (void)arg;
    while (!spin_stop)
        weft_yield();
    return NULL;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *early_checker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 40; i++) {
        int ms = 1 + i % 3;
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int64_t t0 = now_ns();
        ck_assert_int_eq(poll(&p, 1, ms), 0);
        int64_t el = now_ns() - t0;
        ck_assert_msg(el >= (int64_t)ms * 1000000, "poll(%d ms) returned after %lld ns", ms, (long long)el);
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fds[0], &rd);
        struct timeval tv = { 0, ms * 1000 };
        t0 = now_ns();
        ck_assert_int_eq(select(fds[0] + 1, &rd, NULL, NULL, &tv), 0);
        el = now_ns() - t0;
        ck_assert_msg(el >= (int64_t)ms * 1000000, "select(%d ms) returned after %lld ns", ms, (long long)el);
    }
    spin_stop = 1;
    return NULL;
}

START_TEST(poll_and_select_timeouts_never_end_early_on_a_busy_loop)
{
    ck_assert_ok(pipe(fds));
    spin_stop = 0;
    run_tasks(early_checker, spinner);
    ck_assert_ok(close(fds[0]));
    ck_assert_ok(close(fds[1]));
}
END_TEST

static void *bad_selector(void *arg)
{
    (void)arg;
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    ck_assert_fails(select(fds[0] + 1, &rd, NULL, NULL, NULL), EBADF);
    ck_assert_fails(select(-1, NULL, NULL, NULL, NULL), EINVAL);
    struct timeval bad = { 0, 1000000 };
    ck_assert_fails(select(0, NULL, NULL, NULL, &bad), EINVAL);
    return NULL;
}

START_TEST(select_fails_on_a_closed_fd_and_bad_arguments)
{
    ck_assert_ok(pipe(fds));
    ck_assert_ok(close(fds[0]));
    run_tasks(bad_selector, NULL);
    ck_assert_ok(close(fds[1]));
}
END_TEST

/* ---- fcntl: O_NONBLOCK as the caller set it ----------------------------------------------- */

/* hiredis's pattern: make the socket non-blocking, use it (EAGAIN), then make it blocking
 * again. Its next read must park the task, not block the thread. */
static void *flag_flipper(void *arg)
{
    (void)arg;
    char c;
    int fl = fcntl(fds[0], F_GETFL);
    ck_assert_ok(fl);
    ck_assert_ok(fcntl(fds[0], F_SETFL, fl | O_NONBLOCK));
    ck_assert_fails(read(fds[0], &c, 1), EAGAIN);          /* the caller's O_NONBLOCK holds */
    ck_assert(fcntl(fds[0], F_GETFL) & O_NONBLOCK);
    ck_assert_ok(fcntl(fds[0], F_SETFL, fl & ~O_NONBLOCK));
    ck_assert_int_eq(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
    /* A socket keeps the caller's flags underneath (weft's calls on it say MSG_DONTWAIT); a
     * pipe stays non-blocking underneath. */
    struct stat st;
    ck_assert_ok(fstat(fds[0], &st));
    ck_assert_int_eq((syscall(SYS_fcntl, fds[0], F_GETFL) & O_NONBLOCK) != 0, !S_ISSOCK(st.st_mode));
    ck_assert_int_eq(lfs_fcntl(fds[0], F_GETFL, 0) & O_NONBLOCK, 0); /* fcntl64 agrees */
    mark(1);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    mark(3);
    ck_assert_ok(lfs_fcntl(fds[0], F_SETFL, fl | O_NONBLOCK));
    ck_assert_fails(read(fds[0], &c, 1), EAGAIN);
    ck_assert_ok(fcntl(fds[0], F_SETFD, FD_CLOEXEC));       /* other commands pass through */
    ck_assert_int_eq(fcntl(fds[0], F_GETFD), FD_CLOEXEC);
    return NULL;
}

START_TEST(fcntl_clearing_nonblock_makes_reads_park_again)
{
    make_socketpair();
    run_tasks(flag_flipper, late_writer);
    ck_assert_order(1, 2, 3);
}
END_TEST

/* The same on a pipe, which has no per-call flag: it stays O_NONBLOCK underneath while weft
 * uses it, and the caller sees its own flag. */
START_TEST(fcntl_clearing_nonblock_on_a_pipe_makes_reads_park_again)
{
    ck_assert_ok(pipe(fds));
    run_tasks(flag_flipper, late_writer);
    ck_assert_order(1, 2, 3);
}
END_TEST

/* The user sets O_NONBLOCK, then clears it through the wrapped fcntl (hiredis connects
 * non-blocking, then reads blocking): once weft_run returns, the fd is blocking, as the user
 * last asked, so plain calls block again. */
static void *nonblock_then_blocking(void *arg)
{
    (void)arg;
    char c;
    int fl = fcntl(fds[0], F_GETFL);
    ck_assert_ok(fcntl(fds[0], F_SETFL, fl | O_NONBLOCK));
    ck_assert_fails(read(fds[0], &c, 1), EAGAIN);
    ck_assert_ok(fcntl(fds[0], F_SETFL, fl & ~O_NONBLOCK));
    mark(1);
    ck_assert_int_eq(read(fds[0], &c, 1), 1);    /* parks */
    mark(3);
    return NULL;
}

static void teardown_after_nonblock_cleared(void)
{
    /* Detached, so nothing is left when weft_run returns and the scheduler is released. */
    weft_attr d = { .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&d, nonblock_then_blocking, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&d, late_writer, NULL));
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_order(1, 2, 3);
    ck_assert_int_eq(syscall(SYS_fcntl, fds[0], F_GETFL) & O_NONBLOCK, 0);
    ck_assert_ok(close(fds[0]));
    ck_assert_ok(close(fds[1]));
}

START_TEST(teardown_leaves_a_socket_blocking_after_fcntl_cleared_nonblock)
{
    make_socketpair();
    teardown_after_nonblock_cleared();
}
END_TEST

START_TEST(teardown_leaves_a_pipe_blocking_after_fcntl_cleared_nonblock)
{
    ck_assert_ok(pipe(fds));
    teardown_after_nonblock_cleared();
}
END_TEST

/* ---- close ------------------------------------------------------------------------------ */

static void *parked_reader(void *arg)
{
    (void)arg;
    char c;
    mark(1);
    ck_assert_fails(read(fds[0], &c, 1), EBADF);
    mark(3);
    return NULL;
}

static void *closer(void *arg)
{
    (void)arg;
    mark(2);
    ck_assert_ok(close(fds[0]));
    return NULL;
}

START_TEST(close_wakes_a_parked_reader)
{
    make_socketpair();
    run_tasks(parked_reader, closer);
    ck_assert_order(1, 2, 3);
}
END_TEST

/* ---- sleeps ----------------------------------------------------------------------------- */

static void *sleeper(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 20 * 1000000 };
    int64_t start = weft_now();
    ck_assert_ok(nanosleep(&ts, NULL));
    ck_assert_elapsed(start, 20, 2000);
    long seen = ticks;
    ck_assert_int_gt(seen, 0);
    ck_assert_ok(usleep(20000));
    ck_assert_elapsed(start, 40, 4000);
    ck_assert_int_gt(ticks, seen);
    ck_assert_int_eq(sleep(0), 0);
    stop_ticker = 1;
    return NULL;
}

START_TEST(sleeps_park_the_task)
{
    ck_assert_ptr_nonnull(weft_go(ticker, NULL));
    run_tasks(sleeper, NULL);
}
END_TEST

static weft_task *victim;
static unsigned sleep_left;
static int nanosleep_err;
static struct timespec nanosleep_rem;

static void *long_sleeper(void *arg)
{
    (void)arg;
    struct timespec ts = { 100, 0 };
    nanosleep_err = nanosleep(&ts, &nanosleep_rem) == 0 ? 0 : errno;
    sleep_left = sleep(100);    /* cancelled: fails at once, all of it left */
    return NULL;
}

static void *canceller(void *arg)
{
    (void)arg;
    weft_sleep(10);
    ck_assert_ok(weft_cancel(victim));
    return NULL;
}

START_TEST(cancelled_sleeps_report_the_time_left)
{
    ck_assert_ptr_nonnull(victim = weft_go(long_sleeper, NULL));
    run_tasks(canceller, NULL);
    ck_assert_int_eq(nanosleep_err, ECANCELED);
    ck_assert(nanosleep_rem.tv_sec >= 90 && nanosleep_rem.tv_sec < 100);
    ck_assert_int_eq(sleep_left, 100);
}
END_TEST

/* ---- glibc's other names ---------------------------------------------------------------- */

static void *fortified_reader(void *arg)
{
    (void)arg;
    short revents = 0;
    mark(1);
    ck_assert_int_eq(fortified_read(fds[0], 16), 1);
    mark(3);
    ck_assert_int_eq(fortified_poll(fds[0], POLLIN, -1, 1, &revents), 1);
    ck_assert(revents & POLLIN);
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);     /* poll left the byte there */
    mark(5);
    ck_assert_int_eq(fortified_recv(fds[0], 16), 1);
    mark(7);
    ck_assert_int_eq(fortified_recvfrom(fds[0], 16), 1);
    mark(9);
    return NULL;
}

static void *step_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++) {
        wait_marks(1 + 2 * i);
        mark(2 + 2 * i);
        ck_assert_int_eq(write(fds[1], "x", 1), 1);
    }
    return NULL;
}

START_TEST(fortified_reads_and_polls_park_the_task)
{
    make_socketpair();
    run_tasks(fortified_reader, step_writer);
    ck_assert_order(1, 2, 3, 4, 5, 6, 7, 8, 9);
}
END_TEST

static void *overlong_reader(void *arg)
{
    (void)arg;
    fortified_read(fds[0], sizeof fortify_buf + 1);
    return NULL;
}

START_TEST(fortified_read_past_the_buffer_aborts)
{
    make_socketpair();
    run_tasks(overlong_reader, NULL);
}
END_TEST

/* ---- name lookups ------------------------------------------------------------------------ */

/* A lookup the loop would otherwise block on goes to the pool: proved by the task's deadline
 * scope ending it, which libc's own lookup knows nothing of. */
static void *lookups(void *arg)
{
    (void)arg;
    struct addrinfo *res = NULL;
    ck_assert_int_eq(archive_lookup("localhost", &res), 0);
    ck_assert_ptr_nonnull(res);
    char host[NI_MAXHOST];
    ck_assert_int_eq(archive_name_of(res->ai_addr, res->ai_addrlen, host, sizeof host), 0);
    ck_assert(strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0);
    struct addrinfo hints = { .ai_flags = AI_NUMERICHOST };
    struct addrinfo *res2 = NULL;
    ck_assert_int_eq(getaddrinfo("127.0.0.1", NULL, &hints, &res2), 0);
    freeaddrinfo(res2);
    int64_t old = weft_set_task_deadline(weft_now() - 1);
    errno = 0;
    ck_assert_int_eq(archive_lookup("localhost", &res2), EAI_SYSTEM);
    ck_assert_int_eq(errno, ETIMEDOUT);
    errno = 0;
    ck_assert_int_eq(archive_name_of(res->ai_addr, res->ai_addrlen, host, sizeof host), EAI_SYSTEM);
    ck_assert_int_eq(errno, ETIMEDOUT);
    errno = 0;
    ck_assert_int_eq(getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof host, NULL, 0,
                                 NI_NUMERICHOST), EAI_SYSTEM);
    ck_assert_int_eq(errno, ETIMEDOUT);
    weft_set_task_deadline(old);
    freeaddrinfo(res);
    return NULL;
}

START_TEST(name_lookups_go_to_the_pool)
{
    struct addrinfo *lh = NULL;
    int known = getaddrinfo("localhost", NULL, NULL, &lh) == 0;
    if (known)
        freeaddrinfo(lh);
    /* a minimal root without /etc/hosts resolves no localhost: nothing to look up then */
    SKIP_IF(!known, "libc here does not resolve localhost (no hosts entry)");
    run_tasks(lookups, NULL);
    /* Outside any task: libc's own. */
    struct addrinfo *res = NULL;
    ck_assert_int_eq(archive_lookup("127.0.0.1", &res), 0);
    char host[NI_MAXHOST];
    ck_assert_int_eq(archive_name_of(res->ai_addr, res->ai_addrlen, host, sizeof host), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    freeaddrinfo(res);
}
END_TEST

/* ---- outside any task ------------------------------------------------------------------- */

START_TEST(outside_tasks_the_calls_are_plain)
{
    char buf[4];
    ck_assert_ok(pipe(fds));
    ck_assert_int_eq(write(fds[1], "ab", 2), 2);
    struct pollfd p = { .fd = fds[0], .events = POLLIN };
    ck_assert_int_eq(poll(&p, 1, -1), 1);
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(fds[0], &rd);
    ck_assert_int_eq(select(fds[0] + 1, &rd, NULL, NULL, NULL), 1);
    ck_assert_int_eq(read(fds[0], buf, sizeof buf), 2);
    ck_assert_int_eq(fcntl(fds[0], F_GETFL) & O_NONBLOCK, 0);
    struct timeval tv = { 0, 10000 };
    int64_t start = weft_now();
    ck_assert_int_eq(select(fds[0] + 1, &rd, NULL, NULL, &tv), 0);
    ck_assert_elapsed(start, 10, 2000);
    struct timespec ts = { 0, 5 * 1000000 };
    ck_assert_ok(nanosleep(&ts, NULL));
    ck_assert_ok(usleep(1000));
    ck_assert_elapsed(start, 16, 4000);
    ck_assert_ok(close(fds[0]));
    ck_assert_ok(close(fds[1]));
    ck_assert_fails(close(fds[1]), EBADF);
}
END_TEST

static Suite *wrap_suite(void)
{
    Suite *s = suite_create("wrap");
    /* First: teardown needs a scheduler that ends with nothing left, and under Valgrind the
     * suite shares one process, where the other tests leave tasks. */
    TCase *tc = test_case(s, "teardown", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, teardown_leaves_a_socket_blocking_after_fcntl_cleared_nonblock);
    tcase_add_test(tc, teardown_leaves_a_pipe_blocking_after_fcntl_cleared_nonblock);
    tc = test_case(s, "io", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, read_on_empty_pipe_parks_the_task_not_the_thread);
    tcase_add_test(tc, socket_receives_park_until_the_sender_runs);
    tcase_add_test(tc, msg_dontwait_fails_with_eagain_instead_of_parking);
    tcase_add_test(tc, sendfile_parks_while_the_socket_is_full);
    tcase_add_test(tc, sendfile64_parks_while_the_socket_is_full);
    tcase_add_test(tc, accept_parks_until_connect_arrives);
    tcase_add_test(tc, close_wakes_a_parked_reader);
    tc = test_case(s, "readiness", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, poll_parks_the_task_until_ready_or_timeout);
    tcase_add_test(tc, select_parks_the_task_until_ready_or_timeout);
    tcase_add_test(tc, select_fails_on_a_closed_fd_and_bad_arguments);
    tcase_add_test(tc, poll_and_select_timeouts_never_end_early_on_a_busy_loop);
    tc = test_case(s, "fcntl", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, fcntl_clearing_nonblock_makes_reads_park_again);
    tcase_add_test(tc, fcntl_clearing_nonblock_on_a_pipe_makes_reads_park_again);

    tc = test_case(s, "sleep", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, sleeps_park_the_task);
    tcase_add_test(tc, cancelled_sleeps_report_the_time_left);
    tc = test_case(s, "other_names", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, fortified_reads_and_polls_park_the_task);
    /* A test that expects a signal needs fork mode (Check cannot catch it in-process). */
    const char *fork_env = getenv("CK_FORK");
    if (!fork_env || strcmp(fork_env, "no") != 0)
        tcase_add_test_raise_signal(tc, fortified_read_past_the_buffer_aborts, SIGABRT);
    tc = test_case(s, "lookups", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, name_lookups_go_to_the_pool);
    tc = test_case(s, "outside", 10);
    tcase_add_checked_fixture(tc, reset, NULL);
    tcase_add_test(tc, outside_tasks_the_calls_are_plain);
    return s;
}

int main(void)
{
    return test_run(wrap_suite());
}

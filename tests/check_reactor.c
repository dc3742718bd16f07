/* The reactor as the wrappers see it (reactor_epoll.c, with io.c's poll): weft_fdwait and
 * weft_poll, weft_close and weft_cancel waking parked tasks, fd and task deadlines, FIFO
 * service of waiters on one fd, and the fd-reuse hazard. What each wrapper returns is
 * check_io's business; sockets by address are check_net's. */
#include "iotest.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

/* ---- helpers --------------------------------------------------------------------------- */

struct later {
    int fd;
    const char *buf;
    size_t n;
    int64_t ms;
};

static void *later_write(void *p)
{
    struct later *l = p;
    weft_sleep(l->ms);
    ck_assert_int_eq(write(l->fd, l->buf, l->n), (ssize_t)l->n);
    return NULL;
}

static weft_task *write_later(struct later *l, int fd, const char *buf, size_t n, int64_t ms)
{
    l->fd = fd;
    l->buf = buf;
    l->n = n;
    l->ms = ms;
    weft_task *t = weft_go(later_write, l);
    ck_assert_ptr_nonnull(t);
    return t;
}

struct drainer {
    int fd;
    int64_t ms;
};

static void *drain_later(void *p)
{
    struct drainer *d = p;
    weft_sleep(d->ms);
    drain_fd(d->fd);
    return NULL;
}

/* Is fd registered in any epoll set of this process? (/proc/self/fdinfo lists them.) */
static int epoll_has_fd(int fd)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) {
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n <= 0)
            continue;
        link[n] = '\0';
        if (strcmp(link, "anon_inode:[eventpoll]") != 0)
            continue;
        snprintf(path, sizeof path, "/proc/self/fdinfo/%s", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char line[256];
        int tfd;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "tfd: %d", &tfd) == 1 && tfd == fd)
                found = 1;
        fclose(f);
    }
    closedir(d);
    return found;
}

/* ---- weft_fdwait ----------------------------------------------------------------------- */

TASK_TEST(fdwait_pipe_read_ready_at_once_or_parks_until_readable)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(weft_fdwait(p[0], WEFT_READ, -1), WEFT_READ);
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 1);
    struct later l;
    weft_task *w = write_later(&l, p[1], "y", 1, 40);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fdwait(p[0], WEFT_READ, -1), WEFT_READ);
    ck_assert_elapsed(t0, 30, 3000);
    ck_assert(!is_nonblocking(p[0]));       /* fdwait leaves the fd's flags alone */
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(fdwait_pipe_write_parks_until_space)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_fdwait(p[1], WEFT_WRITE, -1), WEFT_WRITE);
    fill_fd(p[1]);
    struct drainer d = { p[0], 40 };
    weft_task *w = weft_go(drain_later, &d);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fdwait(p[1], WEFT_WRITE, -1), WEFT_WRITE);
    ck_assert_elapsed(t0, 30, 3000);
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(fdwait_both_directions_reports_the_ready_subset)
{
    int sv[2];
    make_socketpair(sv);
    ck_assert_int_eq(weft_fdwait(sv[0], WEFT_READ | WEFT_WRITE, -1), WEFT_WRITE);
    fill_fd(sv[0]);
    struct later l;
    weft_task *w = write_later(&l, sv[1], "r", 1, 30);
    ck_assert_int_eq(weft_fdwait(sv[0], WEFT_READ | WEFT_WRITE, -1), WEFT_READ);
    op_join(w);
    struct drainer d = { sv[1], 30 };
    w = weft_go(drain_later, &d);
    ck_assert_int_eq(weft_fdwait(sv[0], WEFT_WRITE, -1), WEFT_WRITE);
    op_join(w);
    ck_assert_int_eq(weft_fdwait(sv[0], WEFT_READ | WEFT_WRITE, -1), WEFT_READ | WEFT_WRITE);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

static void *bump_eventfd(void *p)
{
    int fd = *(int *)p;
    weft_sleep(30);
    uint64_t one = 1;
    ck_assert_int_eq(weft_write(fd, &one, sizeof one), (ssize_t)sizeof one);
    return NULL;
}

TASK_TEST(fdwait_on_an_eventfd)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    ck_assert_int_ge(efd, 0);
    ck_assert_int_eq(weft_fdwait(efd, WEFT_WRITE, -1), WEFT_WRITE);
    weft_task *w = weft_go(bump_eventfd, &efd);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fdwait(efd, WEFT_READ, -1), WEFT_READ);
    ck_assert_elapsed(t0, 20, 3000);
    op_join(w);
    ck_assert_int_eq(weft_fdwait(efd, WEFT_READ | WEFT_WRITE, -1), WEFT_READ | WEFT_WRITE);
    uint64_t v;
    ck_assert_int_eq(read(efd, &v, sizeof v), (ssize_t)sizeof v);
    ck_assert_int_eq(v, 1);
    weft_close(efd);
}

TASK_TEST(fdwait_on_a_timerfd)
{
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    ck_assert_int_ge(tfd, 0);
    struct itimerspec its = { .it_value = { 0, 50 * 1000000 } };
    int64_t t0 = weft_now();
    ck_assert_int_eq(timerfd_settime(tfd, 0, &its, NULL), 0);
    ck_assert_int_eq(weft_fdwait(tfd, WEFT_READ, -1), WEFT_READ);
    ck_assert_elapsed(t0, 45, 3000);
    uint64_t expirations;
    ck_assert_int_eq(read(tfd, &expirations, sizeof expirations), (ssize_t)sizeof expirations);
    ck_assert_int_eq(expirations, 1);
    /* disarmed: waiting again only ends by the deadline */
    ck_assert_fails(weft_fdwait(tfd, WEFT_READ, weft_now() + 30), ETIMEDOUT);
    weft_close(tfd);
}

TASK_TEST(fdwait_rejects_bad_events)
{
    int p[2];
    make_pipe(p);
    ck_assert_fails(weft_fdwait(p[0], 0, -1), EINVAL);
    ck_assert_fails(weft_fdwait(p[0], 4, -1), EINVAL);
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ | 8, -1), EINVAL);
    ck_assert_fails(weft_fdwait(p[0], -1, -1), EINVAL);
    weft_close(p[0]);
    weft_close(p[1]);
}

START_TEST(fdwait_outside_a_task_fails_with_eperm)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ, -1), EPERM);
    ck_assert_fails(weft_fdwait(p[1], WEFT_WRITE, weft_now() + 10), EPERM);
    weft_close(p[0]);
    weft_close(p[1]);
}
END_TEST

TASK_TEST(fdwait_on_a_closed_fd_fails_with_ebadf)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_fdwait(p[1], WEFT_WRITE, -1), WEFT_WRITE);  /* the reactor exists */
    ck_assert_int_eq(close(p[0]), 0);
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ, -1), EBADF);
    ck_assert_fails(weft_fdwait(-1, WEFT_READ, -1), EBADF);
    ck_assert_fails(weft_fdwait(1 << 20, WEFT_WRITE, -1), EBADF);
    weft_close(p[1]);
}

TASK_TEST(fdwait_deadline_times_out)
{
    int p[2];
    make_pipe(p);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ, t0 + 50), ETIMEDOUT);
    ck_assert_elapsed(t0, 50, 3000);
    t0 = weft_now();
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ, t0 - 1), ETIMEDOUT);   /* past: at once */
    ck_assert_elapsed(t0, 0, 1000);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(fdwait_for_reading_ignores_a_write_deadline)
{
    int sv[2];
    make_socketpair(sv);
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_WRITE, weft_now() + 20), 0);
    struct later l;
    weft_task *w = write_later(&l, sv[1], "r", 1, 120);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fdwait(sv[0], WEFT_READ, -1), WEFT_READ);
    ck_assert_elapsed(t0, 100, 3000);
    op_join(w);
    /* and the read deadline does end it */
    char c;
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_READ, weft_now() + 30), 0);
    ck_assert_fails(weft_fdwait(sv[0], WEFT_READ, -1), ETIMEDOUT);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

/* ---- weft_poll ------------------------------------------------------------------------- */

TASK_TEST(poll_reports_ready_fds_at_once)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    struct pollfd pf[2] = { { .fd = p[0], .events = POLLIN }, { .fd = p[1], .events = POLLOUT } };
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_poll(pf, 2, -1), 2);
    ck_assert_int_eq(pf[0].revents, POLLIN);
    ck_assert_int_eq(pf[1].revents, POLLOUT);
    ck_assert_elapsed(t0, 0, 1000);
    ck_assert(!is_nonblocking(p[0]));       /* poll leaves the fds' flags alone */
    weft_close(p[0]);
    weft_close(p[1]);
}


TASK_TEST(poll_parks_until_ready_while_others_run)
{
    int p[2];
    make_pipe(p);
    struct ticker k = { 0, 0 };
    weft_task *tk = weft_go(tick, &k);
    struct later l;
    weft_task *w = write_later(&l, p[1], "x", 1, 60);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_poll(&pf, 1, -1), 1);
    ck_assert_int_eq(pf.revents, POLLIN);
    ck_assert_elapsed(t0, 50, 3000);
    ck_assert_int_ge(k.ticks, 2);
    k.stop = 1;
    op_join(tk);
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(poll_timeout_returns_zero)
{
    int p[2];
    make_pipe(p);
    struct pollfd pf = { .fd = p[0], .events = POLLIN, .revents = 77 };
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_poll(&pf, 1, 60), 0);
    ck_assert_elapsed(t0, 60, 3000);
    ck_assert_int_eq(pf.revents, 0);
    ck_assert_int_eq(weft_poll(&pf, 1, 0), 0);     /* 0: a plain non-blocking poll */
    t0 = weft_now();
    ck_assert_int_eq(weft_poll(NULL, 0, 30), 0);   /* no fds: a sleep */
    ck_assert_elapsed(t0, 30, 3000);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(poll_watches_several_fds)
{
    int p[4][2];
    for (int i = 0; i < 4; i++)
        make_pipe(p[i]);
    fill_fd(p[3][1]);
    struct pollfd pf[5] = {
        { .fd = p[0][0], .events = POLLIN },
        { .fd = p[1][0], .events = POLLIN },
        { .fd = -1, .events = POLLIN },          /* ignored, as poll(2) does */
        { .fd = p[2][0], .events = POLLIN },
        { .fd = p[3][1], .events = POLLOUT },
    };
    struct later l;
    weft_task *w = write_later(&l, p[1][1], "x", 1, 30);
    ck_assert_int_eq(weft_poll(pf, 5, 3000), 1);
    ck_assert_int_eq(pf[1].revents, POLLIN);
    ck_assert_int_eq(pf[0].revents | pf[2].revents | pf[3].revents | pf[4].revents, 0);
    op_join(w);
    char c;
    ck_assert_int_eq(read(p[1][0], &c, 1), 1);
    struct drainer d = { p[3][0], 30 };
    w = weft_go(drain_later, &d);
    ck_assert_int_eq(weft_poll(pf, 5, 3000), 1);
    ck_assert_int_eq(pf[4].revents, POLLOUT);
    ck_assert_int_eq(pf[0].revents | pf[1].revents | pf[2].revents | pf[3].revents, 0);
    op_join(w);
    for (int i = 0; i < 4; i++) {
        weft_close(p[i][0]);
        weft_close(p[i][1]);
    }
}

TASK_TEST(poll_watches_many_fds)
{
    enum { N = 40 };
    int p[N][2];
    struct pollfd pf[N];
    for (int i = 0; i < N; i++) {
        make_pipe(p[i]);
        pf[i].fd = p[i][0];
        pf[i].events = POLLIN;
    }
    struct later l;
    weft_task *w = write_later(&l, p[N - 3][1], "x", 1, 30);
    ck_assert_int_eq(weft_poll(pf, N, 3000), 1);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pf[i].revents, i == N - 3 ? POLLIN : 0);
    op_join(w);
    for (int i = 0; i < N; i++) {
        weft_close(p[i][0]);
        weft_close(p[i][1]);
    }
}

TASK_TEST(poll_ends_with_etimedout_at_the_task_deadline)
{
    int p[2];
    make_pipe(p);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    int64_t old = weft_set_task_deadline(weft_now() + 50);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_poll(&pf, 1, 2000), ETIMEDOUT);    /* the scope ends it first */
    ck_assert_elapsed(t0, 40, 1500);
    weft_set_task_deadline(old);
    weft_set_task_deadline(weft_now() + 2000);
    ck_assert_int_eq(weft_poll(&pf, 1, 30), 0);              /* its own timeout: 0 */
    weft_set_task_deadline(old);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(poll_reports_pollnval_for_an_fd_closed_while_waiting)
{
    int p[2];
    make_pipe(p);
    struct op o = { .kind = OP_POLL, .fd = p[0], .events = POLLIN, .deadline = 3000 };
    weft_task *t = op_start(&o);
    ck_assert(!o.done);
    ck_assert_int_eq(weft_close(p[0]), 0);
    op_join(t);
    ck_assert_msg(o.r == 1 && o.pfd.revents == POLLNVAL, "poll gave %zd (%s), revents %#x",
                  o.r, strerror(o.err), o.pfd.revents);
    ck_assert_int_lt(o.ended - o.started, 2000);
    weft_close(p[1]);
}

TASK_TEST(poll_rejects_more_than_65536_fds)
{
    static struct pollfd many[65537];
    for (size_t i = 0; i < 65537; i++)
        many[i].fd = -1;
    ck_assert_fails(weft_poll(many, 65537, 10), EINVAL);
}

START_TEST(poll_outside_a_task_is_plain_poll)
{
    int p[2];
    make_pipe(p);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_poll(&pf, 1, 30), 0);
    ck_assert_elapsed(t0, 29, 3000);
    ck_assert_int_eq(write(p[1], "x", 1), 1);
    ck_assert_int_eq(weft_poll(&pf, 1, -1), 1);
    ck_assert_int_eq(pf.revents, POLLIN);
    weft_close(p[0]);
    weft_close(p[1]);
}
END_TEST

/* ---- weft_close while parked ----------------------------------------------------------- */

TASK_TEST(close_wakes_parked_reader_with_ebadf)
{
    int p[2];
    make_pipe(p);
    char c;
    struct op o = { .kind = OP_READ, .fd = p[0], .buf = &c, .n = 1 };
    weft_task *t = op_start(&o);
    ck_assert(!o.done);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_close(p[0]), 0);
    op_join(t);
    ck_assert_op_failed(&o, EBADF);
    ck_assert_elapsed(t0, 0, 1000);
    ck_assert(!epoll_has_fd(p[0]));
    weft_close(p[1]);
}

TASK_TEST(close_wakes_parked_writer_with_ebadf)
{
    int p[2];
    make_pipe(p);
    fill_fd(p[1]);
    struct op o = { .kind = OP_WRITE, .fd = p[1], .buf = "x", .n = 1 };
    weft_task *t = op_start(&o);
    ck_assert(!o.done);
    ck_assert_int_eq(weft_close(p[1]), 0);
    op_join(t);
    ck_assert_op_failed(&o, EBADF);
    ck_assert(!epoll_has_fd(p[1]));
    weft_close(p[0]);
}

TASK_TEST(close_wakes_every_waiter_in_both_directions)
{
    int sv[2];
    make_socketpair(sv);
    fill_fd(sv[0]);
    char c1, c2;
    struct op r1 = { .kind = OP_READ, .fd = sv[0], .buf = &c1, .n = 1 };
    struct op r2 = { .kind = OP_READ, .fd = sv[0], .buf = &c2, .n = 1 };
    struct op wr = { .kind = OP_WRITE, .fd = sv[0], .buf = "x", .n = 1 };
    struct op fw = { .kind = OP_FDWAIT, .fd = sv[0], .events = WEFT_READ | WEFT_WRITE, .deadline = -1 };
    weft_task *t1 = op_start(&r1), *t2 = op_start(&r2), *t3 = op_start(&wr), *t4 = op_start(&fw);
    ck_assert(!r1.done && !r2.done && !wr.done && !fw.done);
    ck_assert_int_eq(weft_close(sv[0]), 0);
    op_join(t1);
    op_join(t2);
    op_join(t3);
    op_join(t4);
    ck_assert_op_failed(&r1, EBADF);
    ck_assert_op_failed(&r2, EBADF);
    ck_assert_op_failed(&wr, EBADF);
    ck_assert_op_failed(&fw, EBADF);
    weft_close(sv[1]);
}

TASK_TEST(reused_fd_number_works_with_a_new_waiter)
{
    int p[2];
    make_pipe(p);
    int x = p[0];
    int keep = dup(x);              /* the old pipe outlives fd x */
    ck_assert_int_ge(keep, 0);
    char c;
    struct op o = { .kind = OP_READ, .fd = x, .buf = &c, .n = 1 };
    weft_task *t = op_start(&o);
    ck_assert(epoll_has_fd(x));
    ck_assert_int_eq(weft_close(x), 0);
    op_join(t);
    ck_assert_op_failed(&o, EBADF);
    ck_assert_msg(!epoll_has_fd(x), "fd %d still registered with epoll after weft_close", x);
    /* a new pipe whose read end takes number x */
    int q[2];
    make_pipe(q);
    if (q[0] != x) {
        ck_assert_int_eq(dup2(q[0], x), x);
        ck_assert_int_eq(close(q[0]), 0);
        q[0] = x;
    }
    ck_assert(!is_nonblocking(x));
    char c2 = 0;
    struct op o2 = { .kind = OP_READ, .fd = x, .buf = &c2, .n = 1 };
    weft_task *t2 = op_start(&o2);
    ck_assert(!o2.done);
    ck_assert(is_nonblocking(x));           /* the new file was set up afresh */
    /* data on the old pipe must not wake the new waiter */
    ck_assert_int_eq(write(p[1], "o", 1), 1);
    weft_sleep(30);
    ck_assert(!o2.done);
    ck_assert_int_eq(write(q[1], "n", 1), 1);
    op_join(t2);
    ck_assert_int_eq(o2.r, 1);
    ck_assert_int_eq(c2, 'n');
    ck_assert_int_eq(read(keep, &c, 1), 1);
    ck_assert_int_eq(c, 'o');
    weft_close(keep);
    weft_close(p[1]);
    weft_close(q[0]);
    weft_close(q[1]);
}

TASK_TEST(close_forgets_the_fd_deadlines)
{
    int p[2];
    make_pipe(p);
    int x = p[0];
    ck_assert_int_eq(weft_fd_set_deadline(x, WEFT_READ | WEFT_WRITE, weft_now() + 20), 0);
    ck_assert_int_eq(weft_close(x), 0);
    int q[2];
    make_pipe(q);
    if (q[0] != x) {
        ck_assert_int_eq(dup2(q[0], x), x);
        ck_assert_int_eq(close(q[0]), 0);
        q[0] = x;
    }
    struct later l;
    weft_task *w = write_later(&l, q[1], "k", 1, 80);
    char c;
    ck_assert_int_eq(weft_read(x, &c, 1), 1);
    ck_assert_int_eq(c, 'k');
    op_join(w);
    weft_close(p[1]);
    weft_close(q[0]);
    weft_close(q[1]);
}

TASK_TEST(fd_closed_with_plain_close_is_reset_when_weft_makes_a_new_one)
{
    /* A handler closes its connection with close(2), behind weft's back; the next accept
     * gets the same number. The new socket must be registered afresh, and the old fd's
     * deadline must not apply to it. */
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int port = weft_local_port(l);
    int c1 = plain_connect(port);
    int a1 = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a1, 0);
    ck_assert_int_eq(weft_fd_set_deadline(a1, WEFT_READ, weft_now() + 100), 0);
    char c;
    struct op o = { .kind = OP_READ, .fd = a1, .buf = &c, .n = 1 };
    weft_task *t = op_start(&o);    /* parks: a1 is now registered with epoll */
    ck_assert(!o.done);
    ck_assert_int_eq(write(c1, "1", 1), 1);
    op_join(t);
    ck_assert_int_eq(o.r, 1);
    int c2 = plain_connect(port);   /* queued before a1's number is free */
    ck_assert_int_eq(close(a1), 0);
    int a2 = weft_accept(l, NULL, NULL);
    ck_assert_int_eq(a2, a1);
    t = op_start(&o);
    ck_assert(!o.done);
    weft_sleep(150);                /* past the old fd's deadline */
    ck_assert(!o.done);
    ck_assert_int_eq(write(c2, "2", 1), 1);
    op_join(t);
    ck_assert_int_eq(o.r, 1);
    ck_assert_int_eq(c, '2');
    weft_close(a2);
    weft_close(c1);
    weft_close(c2);
    weft_close(l);
}

/* ---- weft_cancel while parked ---------------------------------------------------------- */

static void cancel_parked(struct op *o)
{
    weft_task *t = op_start(o);
    ck_assert_msg(!o->done, "the op did not park: r %zd, %s", o->r, strerror(o->err));
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_cancel(t), 0);
    op_join(t);
    ck_assert_op_failed(o, ECANCELED);
    ck_assert_int_lt(o->ended - t0, 1000);
}

TASK_TEST(cancel_wakes_parked_read)
{
    int p[2];
    make_pipe(p);
    char c;
    struct op o = { .kind = OP_READ, .fd = p[0], .buf = &c, .n = 1 };
    cancel_parked(&o);
    /* the fd is still usable by others */
    ck_assert_int_eq(write(p[1], "z", 1), 1);
    ck_assert_int_eq(weft_read(p[0], &c, 1), 1);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(cancel_wakes_parked_write)
{
    int p[2];
    make_pipe(p);
    fill_fd(p[1]);
    struct op o = { .kind = OP_WRITE, .fd = p[1], .buf = "x", .n = 1 };
    cancel_parked(&o);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(cancel_wakes_parked_accept)
{
    int port;
    int l = plain_listener(4, &port);
    struct op o = { .kind = OP_ACCEPT, .fd = l };
    cancel_parked(&o);
    weft_close(l);
}

TASK_TEST(cancel_wakes_parked_connect)
{
    int port, filler;
    int l = hanging_listener(&port, &filler);
    if (l < 0) {
        SKIP("connect to a full accept queue completes on this kernel; nothing to cancel");
        return;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct op o = { .kind = OP_CONNECT, .fd = s };
    struct sockaddr_in a = loopback4(port);
    memcpy(&o.addr, &a, sizeof a);
    o.addrlen = sizeof a;
    cancel_parked(&o);
    weft_close(s);
    weft_close(filler);
    weft_close(l);
}

TASK_TEST(cancel_wakes_parked_poll)
{
    int p[2];
    make_pipe(p);
    struct op o = { .kind = OP_POLL, .fd = p[0], .events = POLLIN, .deadline = -1 };
    cancel_parked(&o);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(cancel_wakes_parked_fdwait)
{
    int p[2];
    make_pipe(p);
    struct op o = { .kind = OP_FDWAIT, .fd = p[0], .events = WEFT_READ, .deadline = -1 };
    cancel_parked(&o);
    weft_close(p[0]);
    weft_close(p[1]);
}

static void *cancel_self_then_block(void *arg)
{
    int *p = arg;
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    char c;
    ck_assert_fails(weft_read(p[0], &c, 1), ECANCELED);
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ, -1), ECANCELED);
    struct pollfd pf = { .fd = p[0], .events = POLLIN };
    ck_assert_fails(weft_poll(&pf, 1, 1000), ECANCELED);
    ck_assert_fails(weft_read_full(p[0], &c, 1), ECANCELED);
    return NULL;
}

TASK_TEST(cancelled_task_cannot_park_in_io)
{
    int p[2];
    make_pipe(p);
    weft_task *t = weft_go(cancel_self_then_block, p);
    int64_t t0 = weft_now();
    op_join(t);
    ck_assert_elapsed(t0, 0, 1000);
    weft_close(p[0]);
    weft_close(p[1]);
}

/* ---- fd deadlines ---------------------------------------------------------------------- */

TASK_TEST(fd_read_deadline_times_out_read)
{
    int p[2];
    make_pipe(p);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, t0 + 60), 0);
    char c;
    ck_assert_fails(weft_read(p[0], &c, 1), ETIMEDOUT);
    ck_assert_elapsed(t0, 60, 3000);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(fd_write_deadline_times_out_write)
{
    int sv[2];
    make_socketpair(sv);
    fill_fd(sv[0]);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_WRITE, t0 + 60), 0);
    ck_assert_fails(weft_write(sv[0], "x", 1), ETIMEDOUT);
    ck_assert_elapsed(t0, 60, 3000);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(fd_deadline_is_per_direction)
{
    int sv[2];
    make_socketpair(sv);
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_READ, weft_now() + 10), 0);
    weft_sleep(30);
    char c;
    ck_assert_fails(weft_read(sv[0], &c, 1), ETIMEDOUT);
    ck_assert_int_eq(weft_write(sv[0], "w", 1), 1);          /* writing is unaffected */
    ck_assert_int_eq(weft_read(sv[1], &c, 1), 1);
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_WRITE, weft_now() - 1), 0);
    ck_assert_fails(weft_write(sv[0], "w", 1), ETIMEDOUT);
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_READ, -1), 0);
    ck_assert_int_eq(weft_write(sv[1], "r", 1), 1);
    ck_assert_int_eq(weft_read(sv[0], &c, 1), 1);            /* read deadline cleared */
    ck_assert_fails(weft_write(sv[0], "w", 1), ETIMEDOUT);   /* write one still there */
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(fd_deadline_cleared_with_minus_one)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ | WEFT_WRITE, weft_now() + 30), 0);
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ | WEFT_WRITE, -1), 0);
    struct later l;
    weft_task *w = write_later(&l, p[1], "q", 1, 100);
    char c;
    ck_assert_int_eq(weft_read(p[0], &c, 1), 1);
    ck_assert_int_eq(c, 'q');
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

/* A deadline moved into the past while a read is parked fails that read with ETIMEDOUT, even
 * when data arrives before the woken reader runs (Go's rule, as for a call that starts late). */
TASK_TEST(fd_deadline_past_while_parked_fails_even_if_data_came)
{
    int fds[2][2];
    make_pipe(fds[0]);
    make_socketpair(fds[1]);
    for (int k = 0; k < 2; k++) {
        int *p = fds[k];
        char c;
        struct op o = { .kind = OP_READ, .fd = p[0], .buf = &c, .n = 1 };
        weft_task *t = op_start(&o);
        ck_assert(!o.done);
        ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, weft_now() - 1), 0);
        ck_assert_int_eq(write(p[1], "d", 1), 1);      /* before the reader runs again */
        op_join(t);
        ck_assert_op_failed(&o, ETIMEDOUT);
        ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, -1), 0);
        ck_assert_int_eq(weft_read(p[0], &c, 1), 1);   /* the byte is still there */
        ck_assert_int_eq(c, 'd');
        weft_close(p[0]);
        weft_close(p[1]);
    }
}

TASK_TEST(fd_deadline_set_while_parked_takes_effect)
{
    int p[2];
    make_pipe(p);
    char c;
    struct op o = { .kind = OP_READ, .fd = p[0], .buf = &c, .n = 1 };
    weft_task *t = op_start(&o);
    ck_assert(!o.done);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, t0 + 50), 0);
    op_join(t);
    ck_assert_op_failed(&o, ETIMEDOUT);
    ck_assert_int_ge(o.ended - t0, 50);
    ck_assert_int_lt(o.ended - t0, 3000);
    /* a deadline already past, set while parked, ends the wait at once */
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, -1), 0);
    t = op_start(&o);
    ck_assert(!o.done);
    t0 = weft_now();
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, t0 - 1), 0);
    op_join(t);
    ck_assert_op_failed(&o, ETIMEDOUT);
    ck_assert_int_lt(o.ended - t0, 1000);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(fd_deadline_extended_while_parked_lets_the_read_finish)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, weft_now() + 50), 0);
    char c;
    struct op o = { .kind = OP_READ, .fd = p[0], .buf = &c, .n = 1 };
    weft_task *t = op_start(&o);
    ck_assert(!o.done);
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, weft_now() + 5000), 0);
    struct later l;
    weft_task *w = write_later(&l, p[1], "e", 1, 150);
    op_join(t);
    op_join(w);
    ck_assert_int_eq(o.r, 1);
    ck_assert_int_eq(c, 'e');
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(fd_deadline_in_the_past_fails_at_once_even_with_data)
{
    int sv[2];
    make_socketpair(sv);
    ck_assert_int_eq(write(sv[1], "data", 4), 4);
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_READ | WEFT_WRITE, weft_now() - 1), 0);
    char buf[4];
    int64_t t0 = weft_now();
    ck_assert_fails(weft_read(sv[0], buf, 4), ETIMEDOUT);
    ck_assert_fails(weft_recv(sv[0], buf, 4, 0), ETIMEDOUT);
    ck_assert_fails(weft_write(sv[0], "x", 1), ETIMEDOUT);   /* room to write, too */
    ck_assert_fails(weft_send(sv[0], "x", 1, 0), ETIMEDOUT);
    ck_assert_elapsed(t0, 0, 1000);
    ck_assert_int_eq(weft_fd_set_deadline(sv[0], WEFT_READ, -1), 0);
    ck_assert_int_eq(weft_read(sv[0], buf, 4), 4);           /* the data was left alone */
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(fd_deadline_times_out_accept)
{
    int port;
    int l = plain_listener(4, &port);
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fd_set_deadline(l, WEFT_READ, t0 + 60), 0);
    ck_assert_fails(weft_accept(l, NULL, NULL), ETIMEDOUT);
    ck_assert_elapsed(t0, 60, 3000);
    weft_close(l);
}

TASK_TEST(fd_deadline_times_out_connect)
{
    int port, filler;
    int l = hanging_listener(&port, &filler);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = loopback4(port);
    if (l < 0) {
        SKIP("connect to a full accept queue completes on this kernel; past deadline only");
    } else {
        int64_t t0 = weft_now();
        ck_assert_int_eq(weft_fd_set_deadline(s, WEFT_WRITE, t0 + 80), 0);
        ck_assert_fails(weft_connect(s, (struct sockaddr *)&a, sizeof a), ETIMEDOUT);
        ck_assert_elapsed(t0, 80, 3000);
        weft_close(filler);
        weft_close(l);
    }
    weft_close(s);
}

TASK_TEST(fd_deadline_in_the_past_fails_connect_at_once)
{
    int port;
    int l = plain_listener(4, &port);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(s, 0);
    struct sockaddr_in a = loopback4(port);
    ck_assert_int_eq(weft_fd_set_deadline(s, WEFT_WRITE, weft_now() - 1), 0);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_connect(s, (struct sockaddr *)&a, sizeof a), ETIMEDOUT);
    ck_assert_elapsed(t0, 0, 1000);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    ck_assert_fails(getpeername(s, (struct sockaddr *)&peer, &plen), ENOTCONN);  /* never tried */
    weft_close(s);
    weft_close(l);
}

TASK_TEST(fd_set_deadline_rejects_bad_arguments)
{
    int p[2];
    make_pipe(p);
    ck_assert_fails(weft_fd_set_deadline(p[0], 0, -1), EINVAL);
    ck_assert_fails(weft_fd_set_deadline(p[0], 4, -1), EINVAL);
    ck_assert_fails(weft_fd_set_deadline(p[0], -1, -1), EINVAL);
    ck_assert_fails(weft_fd_set_deadline(-1, WEFT_READ, -1), EBADF);
    ck_assert_int_eq(close(p[1]), 0);
    ck_assert_fails(weft_fd_set_deadline(p[1], WEFT_WRITE, -1), EBADF);
    weft_close(p[0]);
}

/* ---- the task deadline scope ------------------------------------------------------------- */

TASK_TEST(task_deadline_times_out_read)
{
    int p[2];
    make_pipe(p);
    int64_t t0 = weft_now();
    int64_t old = weft_set_task_deadline(t0 + 60);
    ck_assert_int_eq(old, -1);
    char c;
    ck_assert_fails(weft_read(p[0], &c, 1), ETIMEDOUT);
    ck_assert_elapsed(t0, 60, 3000);
    ck_assert_int_eq(weft_set_task_deadline(old), t0 + 60);
    /* scope ended: the read parks until data comes */
    struct later l;
    weft_task *w = write_later(&l, p[1], "s", 1, 30);
    ck_assert_int_eq(weft_read(p[0], &c, 1), 1);
    op_join(w);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(earliest_of_task_and_fd_deadline_ends_the_wait)
{
    int p[2];
    make_pipe(p);
    char c;
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, t0 + 2000), 0);
    int64_t old = weft_set_task_deadline(t0 + 50);
    ck_assert_fails(weft_read(p[0], &c, 1), ETIMEDOUT);
    ck_assert_elapsed(t0, 50, 1500);
    weft_set_task_deadline(old);
    t0 = weft_now();
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, t0 + 50), 0);
    old = weft_set_task_deadline(t0 + 2000);
    ck_assert_fails(weft_read(p[0], &c, 1), ETIMEDOUT);
    ck_assert_elapsed(t0, 50, 1500);
    weft_set_task_deadline(old);
    weft_close(p[0]);
    weft_close(p[1]);
}

START_TEST(task_deadline_outside_a_task_does_nothing)
{
    ck_assert_int_eq(weft_set_task_deadline(weft_now() + 10), -1);
    ck_assert_int_eq(weft_set_task_deadline(-1), -1);
}
END_TEST

/* ---- FIFO service of waiters ------------------------------------------------------------- */

static void readers_in_fifo_order(int rfd, int wfd)
{
    enum { N = 3 };
    char got[N] = { 0 };
    struct op o[N];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        o[i] = (struct op){ .kind = OP_READ, .fd = rfd, .buf = &got[i], .n = 1 };
        t[i] = op_start(&o[i]);
        ck_assert(!o[i].done);
    }
    for (int i = 0; i < N; i++) {
        char c = (char)('a' + i);
        ck_assert_int_eq(write(wfd, &c, 1), 1);
        for (int tries = 0; tries < 100 && !o[i].done; tries++)
            weft_sleep(2);
        for (int j = 0; j < N; j++)
            ck_assert_msg(o[j].done == (j <= i), "after byte %d, reader %d done %d", i, j, o[j].done);
        ck_assert_int_eq(got[i], c);
    }
    for (int i = 0; i < N; i++)
        op_join(t[i]);
}

TASK_TEST(readers_on_a_pipe_are_served_in_fifo_order)
{
    int p[2];
    make_pipe(p);
    readers_in_fifo_order(p[0], p[1]);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(readers_on_a_socket_are_served_in_fifo_order)
{
    int sv[2];
    make_tcp_pair(sv);
    readers_in_fifo_order(sv[0], sv[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
}

TASK_TEST(second_reader_gets_what_the_first_left)
{
    int p[2];
    make_pipe(p);
    char a = 0, b = 0;
    struct op o1 = { .kind = OP_READ, .fd = p[0], .buf = &a, .n = 1 };
    struct op o2 = { .kind = OP_READ, .fd = p[0], .buf = &b, .n = 1 };
    weft_task *t1 = op_start(&o1), *t2 = op_start(&o2);
    ck_assert_int_eq(write(p[1], "xy", 2), 2);    /* one edge, two readers */
    op_join(t1);
    op_join(t2);
    ck_assert_int_eq(a, 'x');
    ck_assert_int_eq(b, 'y');
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(second_fdwaiter_sees_readiness_the_first_did_not_use)
{
    int p[2];
    make_pipe(p);
    char a = 0;
    struct op o1 = { .kind = OP_READ, .fd = p[0], .buf = &a, .n = 1 };
    struct op o2 = { .kind = OP_FDWAIT, .fd = p[0], .events = WEFT_READ, .deadline = -1 };
    weft_task *t1 = op_start(&o1), *t2 = op_start(&o2);
    ck_assert_int_eq(write(p[1], "xy", 2), 2);
    op_join(t1);
    op_join(t2);
    ck_assert_int_eq(a, 'x');
    ck_assert_int_eq(o2.r, WEFT_READ);
    weft_close(p[0]);
    weft_close(p[1]);
}

TASK_TEST(writers_on_a_pipe_are_served_in_fifo_order)
{
    int p[2];
    make_pipe(p);
    fill_fd(p[1]);
    struct op w1 = { .kind = OP_WRITE, .fd = p[1], .buf = "1", .n = 1 };
    struct op w2 = { .kind = OP_WRITE, .fd = p[1], .buf = "2", .n = 1 };
    struct op w3 = { .kind = OP_WRITE, .fd = p[1], .buf = "3", .n = 1 };
    weft_task *t1 = op_start(&w1), *t2 = op_start(&w2), *t3 = op_start(&w3);
    ck_assert(!w1.done && !w2.done && !w3.done);
    drain_fd(p[0]);
    op_join(t1);
    op_join(t2);
    op_join(t3);
    char buf[4] = { 0 };
    ck_assert_int_eq(read(p[0], buf, 3), 3);
    ck_assert_str_eq(buf, "123");
    weft_close(p[0]);
    weft_close(p[1]);
}

static Suite *reactor_suite(void)
{
    Suite *s = suite_create("reactor");
    ADD_TEST(s, fdwait_pipe_read_ready_at_once_or_parks_until_readable, 5);
    ADD_TEST(s, fdwait_pipe_write_parks_until_space, 5);
    ADD_TEST(s, fdwait_both_directions_reports_the_ready_subset, 5);
    ADD_TEST(s, fdwait_on_an_eventfd, 5);
    ADD_TEST(s, fdwait_on_a_timerfd, 5);
    ADD_TEST(s, fdwait_rejects_bad_events, 5);
    ADD_TEST(s, fdwait_outside_a_task_fails_with_eperm, 5);
    ADD_TEST(s, fdwait_on_a_closed_fd_fails_with_ebadf, 5);
    ADD_TEST(s, fdwait_deadline_times_out, 5);
    ADD_TEST(s, fdwait_for_reading_ignores_a_write_deadline, 5);
    ADD_TEST(s, poll_reports_ready_fds_at_once, 5);
    ADD_TEST(s, poll_parks_until_ready_while_others_run, 5);
    ADD_TEST(s, poll_timeout_returns_zero, 5);
    ADD_TEST(s, poll_watches_several_fds, 5);
    ADD_TEST(s, poll_watches_many_fds, 5);
    ADD_TEST(s, poll_ends_with_etimedout_at_the_task_deadline, 5);
    ADD_TEST(s, poll_reports_pollnval_for_an_fd_closed_while_waiting, 5);
    ADD_TEST(s, poll_rejects_more_than_65536_fds, 5);
    ADD_TEST(s, poll_outside_a_task_is_plain_poll, 5);
    ADD_TEST(s, close_wakes_parked_reader_with_ebadf, 5);
    ADD_TEST(s, close_wakes_parked_writer_with_ebadf, 5);
    ADD_TEST(s, close_wakes_every_waiter_in_both_directions, 5);
    ADD_TEST(s, reused_fd_number_works_with_a_new_waiter, 5);
    ADD_TEST(s, close_forgets_the_fd_deadlines, 5);
    ADD_TEST(s, fd_closed_with_plain_close_is_reset_when_weft_makes_a_new_one, 5);
    ADD_TEST(s, cancel_wakes_parked_read, 5);
    ADD_TEST(s, cancel_wakes_parked_write, 5);
    ADD_TEST(s, cancel_wakes_parked_accept, 5);
    ADD_TEST(s, cancel_wakes_parked_connect, 5);
    ADD_TEST(s, cancel_wakes_parked_poll, 5);
    ADD_TEST(s, cancel_wakes_parked_fdwait, 5);
    ADD_TEST(s, cancelled_task_cannot_park_in_io, 5);
    ADD_TEST(s, fd_read_deadline_times_out_read, 5);
    ADD_TEST(s, fd_write_deadline_times_out_write, 5);
    ADD_TEST(s, fd_deadline_is_per_direction, 5);
    ADD_TEST(s, fd_deadline_cleared_with_minus_one, 5);
    ADD_TEST(s, fd_deadline_set_while_parked_takes_effect, 5);
    ADD_TEST(s, fd_deadline_past_while_parked_fails_even_if_data_came, 5);
    ADD_TEST(s, fd_deadline_extended_while_parked_lets_the_read_finish, 5);
    ADD_TEST(s, fd_deadline_in_the_past_fails_at_once_even_with_data, 5);
    ADD_TEST(s, fd_deadline_times_out_accept, 5);
    ADD_TEST(s, fd_deadline_times_out_connect, 5);
    ADD_TEST(s, fd_deadline_in_the_past_fails_connect_at_once, 5);
    ADD_TEST(s, fd_set_deadline_rejects_bad_arguments, 5);
    ADD_TEST(s, task_deadline_times_out_read, 5);
    ADD_TEST(s, earliest_of_task_and_fd_deadline_ends_the_wait, 5);
    ADD_TEST(s, task_deadline_outside_a_task_does_nothing, 5);
    ADD_TEST(s, readers_on_a_pipe_are_served_in_fifo_order, 5);
    ADD_TEST(s, readers_on_a_socket_are_served_in_fifo_order, 5);
    ADD_TEST(s, second_reader_gets_what_the_first_left, 5);
    ADD_TEST(s, second_fdwaiter_sees_readiness_the_first_did_not_use, 5);
    ADD_TEST(s, writers_on_a_pipe_are_served_in_fifo_order, 5);
    return s;
}

int main(void)
{
    return test_run(reactor_suite());
}

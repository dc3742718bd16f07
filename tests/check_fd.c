/* What weft keeps of an fd, and how that record ends: a call woken on an fd that another task
 * closed (and whose number was reused) before it ran fails with EBADF and never touches the
 * new file; a plain close(2) and a reuse of the number by a file weft has not seen never
 * blocks the thread and never loses a wake-up; weft_fd_forget hands an fd back; teardown
 * gives fds back with the flags their user asked for. */
#include "iotest.h"

#include <sys/wait.h>

/* ---- woken, then closed and reused before running ---------------------------------------- */

enum victim_kind { V_READ, V_RECV_WAITALL, V_FDWAIT, V_POLL };

/* The scenario: the victim parks on fd n; the closer parks on fd x. One write to each (x's
 * first) makes one reactor poll wake the closer, then the victim, so the closer runs while
 * the victim is runnable with data for it. The closer closes n with weft_close, makes a new
 * socket pair whose first end takes the number n, and puts other bytes in it. */
struct reuse {
    enum victim_kind kind;
    int n, npeer, x, xpeer;
    int fresh[2];           /* the new pair; fresh[0] == n */
    int reused;             /* the closer ran while the victim had not: the race happened */
    ssize_t r;
    int err;
    short revents;
    char buf[16];
};

static void *victim(void *p)
{
    struct reuse *u = p;
    errno = 0;
    switch (u->kind) {
    case V_READ: u->r = weft_read(u->n, u->buf, sizeof u->buf); break;
    case V_RECV_WAITALL: u->r = weft_recv(u->n, u->buf, 4, MSG_WAITALL); break;
    case V_FDWAIT: u->r = weft_fdwait(u->n, WEFT_READ, weft_now() + 5000); break;
    case V_POLL: {
        struct pollfd pf = { .fd = u->n, .events = POLLIN };
        u->r = weft_poll(&pf, 1, 5000);
        u->revents = pf.revents;
        break;
    }
    }
    u->err = errno;
    u->r = u->r < 0 ? -1 : u->r;
    u->kind = (enum victim_kind)-1;     /* done */
    return NULL;
}

static void *closer(void *p)
{
    struct reuse *u = p;
    char c;
    ck_assert_int_eq(weft_read(u->x, &c, 1), 1);
    u->reused = (int)u->kind != -1;
    ck_assert_ok(weft_close(u->n));
    ck_assert_ok(socketpair(AF_UNIX, SOCK_STREAM, 0, u->fresh));
    ck_assert_int_eq(u->fresh[0], u->n);
    ck_assert_int_eq(write(u->fresh[1], "SECRET", 6), 6);
    return NULL;
}

static void run_reuse(enum victim_kind kind)
{
    struct reuse u = { .kind = kind, .r = -2 };
    int a[2], b[2];
    make_socketpair(a);
    make_socketpair(b);
    u.n = a[0];
    u.npeer = a[1];
    u.x = b[0];
    u.xpeer = b[1];
    weft_task *c = weft_go(closer, &u), *v = weft_go(victim, &u);
    ck_assert_ptr_nonnull(v);
    ck_assert_ptr_nonnull(c);
    settle();                   /* both parked */
    /* Let the loop poll once, so the events of the registrations (both sockets writable)
     * are consumed and the next poll reports the two writes in the order they are made. */
    weft_sleep(2);
    ck_assert_int_eq(write(u.xpeer, "x", 1), 1);
    ck_assert_int_eq(write(u.npeer, "mine", 4), 4);
    ck_assert_int_eq(weft_join(c, NULL), 0);
    ck_assert_int_eq(weft_join(v, NULL), 0);
    ck_assert_msg(u.reused, "the closer did not run between the victim's wake and its run");
    switch (kind) {
    case V_POLL:
        ck_assert_int_eq(u.r, 1);
        ck_assert_int_eq(u.revents, POLLNVAL);
        break;
    default:
        ck_assert_msg(u.r == -1 && u.err == EBADF, "victim got %zd (errno %s), '%.*s'", u.r,
                      strerror(u.err), u.r > 0 ? (int)u.r : 0, u.buf);
    }
    /* The new file's bytes are all still there for its owner. */
    char got[8];
    ck_assert_int_eq(weft_read(u.fresh[0], got, sizeof got), 6);
    ck_assert_int_eq(memcmp(got, "SECRET", 6), 0);
    weft_close(u.fresh[0]);
    weft_close(u.fresh[1]);
    weft_close(u.npeer);
    weft_close(u.x);
    weft_close(u.xpeer);
}

TASK_TEST(woken_read_fails_with_ebadf_when_its_fd_was_closed_and_reused)
{
    run_reuse(V_READ);
}

TASK_TEST(woken_recv_waitall_fails_with_ebadf_when_its_fd_was_closed_and_reused)
{
    run_reuse(V_RECV_WAITALL);
}

TASK_TEST(woken_fdwait_fails_with_ebadf_when_its_fd_was_closed_and_reused)
{
    run_reuse(V_FDWAIT);
}

TASK_TEST(woken_poll_reports_pollnval_when_its_fd_was_closed_and_reused)
{
    run_reuse(V_POLL);
}

/* ---- plain close(2) and reuse by a file weft has not seen --------------------------------- */

struct late_write {
    int fd;
    int ms;
};

static void *write_later(void *p)
{
    struct late_write *w = p;
    weft_sleep(w->ms);
    ck_assert_int_eq(write(w->fd, "z", 1), 1);
    return NULL;
}

/* Make weft learn fd (a read of one byte), then close it behind weft's back with close(2). */
static void learn_then_plain_close(int fd, int peer)
{
    char c;
    ck_assert_int_eq(write(peer, "a", 1), 1);
    ck_assert_int_eq(weft_read(fd, &c, 1), 1);
    ck_assert_int_eq(close(fd), 0);
}

/* Read one byte from fd, written 50 ms later by another task, with a ticker running: the read
 * must park the task (the ticker ticks), not the thread. */
static void read_parks_for_late_byte(int fd, int wfd)
{
    struct ticker k = { 0, 0 };
    struct late_write w = { wfd, 50 };
    weft_task *tk = weft_go(tick, &k), *wr = weft_go(write_later, &w);
    weft_fd_set_deadline(fd, WEFT_READ, weft_now() + 5000);
    char c = 0;
    ck_assert_int_eq(weft_read(fd, &c, 1), 1);
    ck_assert_int_eq(c, 'z');
    ck_assert_int_gt(k.ticks, 0);
    k.stop = 1;
    ck_assert_int_eq(weft_join(tk, NULL), 0);
    ck_assert_int_eq(weft_join(wr, NULL), 0);
}

TASK_TEST(socket_closed_with_close_and_reused_by_a_pipe_never_blocks_the_thread)
{
    int sv[2], p[2];
    make_socketpair(sv);
    learn_then_plain_close(sv[0], sv[1]);
    make_pipe(p);                       /* blocking, never seen by weft */
    ck_assert_int_eq(p[0], sv[0]);
    read_parks_for_late_byte(p[0], p[1]);
    weft_close(p[0]);
    weft_close(p[1]);
    weft_close(sv[1]);
}

TASK_TEST(pipe_closed_with_close_and_reused_by_a_socket_never_blocks_the_thread)
{
    int p[2], sv[2];
    make_pipe(p);
    learn_then_plain_close(p[0], p[1]);
    make_socketpair(sv);                /* blocking, never seen by weft */
    ck_assert_int_eq(sv[0], p[0]);
    read_parks_for_late_byte(sv[0], sv[1]);
    weft_close(sv[0]);
    weft_close(sv[1]);
    weft_close(p[1]);
}

TASK_TEST(pipe_closed_with_close_and_reused_by_a_pipe_parks_and_wakes)
{
    int a[2], b[2];
    make_pipe(a);
    learn_then_plain_close(a[0], a[1]);
    ck_assert_int_eq(close(a[1]), 0);
    make_pipe(b);
    ck_assert_int_eq(b[0], a[0]);
    read_parks_for_late_byte(b[0], b[1]);
    weft_close(b[0]);
    weft_close(b[1]);
}

TASK_TEST(fdwait_after_close_and_reuse_by_a_pipe_wakes_on_data)
{
    int a[2], b[2];
    make_pipe(a);
    ck_assert_int_eq(write(a[1], "a", 1), 1);
    ck_assert_int_eq(weft_fdwait(a[0], WEFT_READ, -1), WEFT_READ);     /* registered */
    /* and parked once, so the reactor has it in the epoll set */
    struct late_write w0 = { a[1], 20 };
    char c;
    ck_assert_int_eq(read(a[0], &c, 1), 1);
    weft_task *t0 = weft_go(write_later, &w0);
    ck_assert_int_eq(weft_fdwait(a[0], WEFT_READ, weft_now() + 5000), WEFT_READ);
    ck_assert_int_eq(weft_join(t0, NULL), 0);
    ck_assert_int_eq(close(a[0]), 0);
    ck_assert_int_eq(close(a[1]), 0);
    make_pipe(b);
    ck_assert_int_eq(b[0], a[0]);
    struct late_write w = { b[1], 50 };
    weft_task *t = weft_go(write_later, &w);
    int64_t start = weft_now();
    ck_assert_int_eq(weft_fdwait(b[0], WEFT_READ, start + 3000), WEFT_READ);
    ck_assert_int_lt(weft_now() - start, 2500);     /* woken by the data, not the deadline */
    ck_assert_int_eq(weft_join(t, NULL), 0);
    close(b[0]);
    close(b[1]);
}

/* ---- weft_fd_forget ----------------------------------------------------------------------- */

static struct op fo;

TASK_TEST(fd_forget_wakes_waiters_restores_blocking_and_keeps_the_fd_open)
{
    int p[2];
    char buf[4];
    make_pipe(p);
    fo = (struct op){ .kind = OP_READ, .fd = p[0], .buf = buf, .n = 1 };
    weft_task *t = op_start(&fo);
    ck_assert(!fo.done);
    ck_assert(is_nonblocking(p[0]));            /* weft's doing */
    ck_assert_ok(weft_fd_forget(p[0]));
    op_join(t);
    ck_assert_op_failed(&fo, EBADF);
    ck_assert(!is_nonblocking(p[0]));           /* given back as its user had it */
    ck_assert_int_ge(fcntl(p[0], F_GETFD), 0);  /* still open */
    ck_assert_int_eq(write(p[1], "q", 1), 1);
    ck_assert_int_eq(read(p[0], buf, 1), 1);    /* a plain read, outside weft */
    /* Seen again, it is learnt afresh: a read parks again. */
    read_parks_for_late_byte(p[0], p[1]);
    ck_assert(is_nonblocking(p[0]));
    ck_assert_ok(weft_close(p[0]));
    ck_assert_ok(weft_close(p[1]));
}

TASK_TEST(fd_forget_keeps_the_users_own_nonblocking_flag)
{
    int p[2];
    char c;
    make_pipe(p);
    set_nonblocking(p[0], 1);
    ck_assert_fails(weft_read(p[0], &c, 1), EAGAIN);
    ck_assert_ok(weft_fd_forget(p[0]));
    ck_assert(is_nonblocking(p[0]));
    close(p[0]);
    close(p[1]);
}

TASK_TEST(fd_forget_rejects_bad_fds_and_accepts_unseen_ones)
{
    int p[2];
    make_pipe(p);
    ck_assert_fails(weft_fd_forget(-1), EBADF);
    ck_assert_fails(weft_fd_forget(1 << 20), EBADF);
    ck_assert_ok(weft_fd_forget(p[0]));         /* never seen: nothing to forget */
    close(p[0]);
    ck_assert_fails(weft_fd_forget(p[0]), EBADF);
    close(p[1]);
}

START_TEST(fd_forget_outside_any_task_works)
{
    int p[2];
    make_pipe(p);
    ck_assert_ok(weft_fd_forget(p[0]));
    close(p[0]);
    close(p[1]);
}
END_TEST

/* ---- teardown gives fds back as their user wants them -------------------------------------- */

static int td[2][2];

/* The user sets O_NONBLOCK, weft sees the fd (EAGAIN, as asked), then the user clears the flag
 * again through weft_fcntl (what --wrap makes of hiredis's fcntl) and a read parks. */
static void *nonblock_then_clear(void *arg)
{
    (void)arg;
    for (int i = 0; i < 2; i++) {
        int fd = td[i][0];
        char c;
        int fl = weft_fcntl(fd, F_GETFL);
        ck_assert_ok(weft_fcntl(fd, F_SETFL, fl | O_NONBLOCK));
        ck_assert_fails(weft_read(fd, &c, 1), EAGAIN);
        ck_assert_ok(weft_fcntl(fd, F_SETFL, fl & ~O_NONBLOCK));
        ck_assert_int_eq(weft_fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
        read_parks_for_late_byte(fd, td[i][1]);
    }
    return NULL;
}

/* Teardown needs a scheduler that ends with nothing left: under Valgrind the suite shares
 * one process, where the tests before leave tasks, so this one is added first. */
START_TEST(teardown_leaves_blocking_an_fd_whose_nonblock_the_user_cleared)
{
    make_socketpair(td[0]);
    make_pipe(td[1]);
    ck_assert_int_eq(weft_main(nonblock_then_clear, NULL), 0);
    ck_assert_msg(!is_nonblocking(td[0][0]), "socket left non-blocking");
    ck_assert_msg(!is_nonblocking(td[1][0]), "pipe left non-blocking");
    /* So a plain read blocks as its user expects (here: data is there, so it returns). */
    ck_assert_int_eq(write(td[1][1], "k", 1), 1);
    char c;
    ck_assert_int_eq(read(td[1][0], &c, 1), 1);
    for (int i = 0; i < 2; i++) {
        close(td[i][0]);
        close(td[i][1]);
    }
}
END_TEST

/* Sockets keep the flags their user gave them while weft uses them: their calls say
 * MSG_DONTWAIT, so nothing weft does shows in a forked child or another process. */
TASK_TEST(sockets_keep_their_blocking_flag_while_weft_parks_on_them)
{
    int sv[2];
    make_socketpair(sv);
    read_parks_for_late_byte(sv[0], sv[1]);
    ck_assert(!is_nonblocking(sv[0]));
    ck_assert_int_eq(weft_write(sv[0], "w", 1), 1);
    ck_assert(!is_nonblocking(sv[0]));
    weft_close(sv[0]);
    weft_close(sv[1]);
}

static Suite *fd_suite(void)
{
    Suite *s = suite_create("fd");
    ADD_TEST(s, teardown_leaves_blocking_an_fd_whose_nonblock_the_user_cleared, 10);
    ADD_TEST(s, woken_read_fails_with_ebadf_when_its_fd_was_closed_and_reused, 10);
    ADD_TEST(s, woken_recv_waitall_fails_with_ebadf_when_its_fd_was_closed_and_reused, 10);
    ADD_TEST(s, woken_fdwait_fails_with_ebadf_when_its_fd_was_closed_and_reused, 10);
    ADD_TEST(s, woken_poll_reports_pollnval_when_its_fd_was_closed_and_reused, 10);
    ADD_TEST(s, socket_closed_with_close_and_reused_by_a_pipe_never_blocks_the_thread, 10);
    ADD_TEST(s, pipe_closed_with_close_and_reused_by_a_socket_never_blocks_the_thread, 10);
    ADD_TEST(s, pipe_closed_with_close_and_reused_by_a_pipe_parks_and_wakes, 10);
    ADD_TEST(s, fdwait_after_close_and_reuse_by_a_pipe_wakes_on_data, 10);
    ADD_TEST(s, fd_forget_wakes_waiters_restores_blocking_and_keeps_the_fd_open, 10);
    ADD_TEST(s, fd_forget_keeps_the_users_own_nonblocking_flag, 5);
    ADD_TEST(s, fd_forget_rejects_bad_fds_and_accepts_unseen_ones, 5);
    ADD_TEST(s, fd_forget_outside_any_task_works, 5);
    ADD_TEST(s, sockets_keep_their_blocking_flag_while_weft_parks_on_them, 10);
    return s;
}

int main(void)
{
    return test_run(fd_suite());
}

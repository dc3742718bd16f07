/* fork() from a weft program: the child gets a reactor of its own (so parent and child never
 * take each other's events, and the child's changes to its epoll set never reach the
 * parent's), tasks copied into the child still wake on inherited fds, pre-fork servers work
 * on both sides, and the child's debug server is its own while the parent's keeps serving. */
#include "iotest.h"

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <sys/un.h>
#include <sys/wait.h>

#ifdef __SANITIZE_ADDRESS__
/* A child here may end with exit() (to run weft's atexit handler, which removes its debug
 * socket) while the test harness's own memory is still allocated: LeakSanitizer would count
 * that. This suite's leaks are checked under Valgrind instead. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "detect_leaks=0";
}
#endif

/* Wait for child pid; the test fails unless it exited with status 0. */
static void reap_ok(pid_t pid)
{
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
}

/* ---- the parent keeps its events ---------------------------------------------------------- */

static int pp[2];
static struct op reader;

struct delayed_write {
    int fd, ms;
};

static void *write_after(void *p)
{
    struct delayed_write *d = p;
    usleep((useconds_t)d->ms * 1000);
    if (write(d->fd, "p", 1) != 1)
        abort();
    return NULL;
}

/* The parent's reader is parked on a pipe; the child runs a weft loop that waits in
 * epoll_wait the whole time the data arrives, while the parent's thread is busy elsewhere.
 * With a shared epoll instance the child takes the edge and the parent's read times out. */
TASK_TEST(parent_task_wakes_on_its_pipe_while_a_forked_child_waits_in_its_loop)
{
    char c;
    make_pipe(pp);
    reader = (struct op){ .kind = OP_READ, .fd = pp[0], .buf = &c, .n = 1 };
    ck_assert_ok(weft_fd_set_deadline(pp[0], WEFT_READ, weft_now() + 3000));
    weft_task *t = op_start(&reader);
    ck_assert(!reader.done);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        weft_cancel(t);         /* its copy here: the pipe is the parent's to read */
        weft_sleep(1500);       /* in epoll_wait while the byte arrives */
        _exit(0);
    }
    pthread_t th;
    struct delayed_write d = { pp[1], 200 };
    ck_assert_int_eq(pthread_create(&th, NULL, write_after, &d), 0);
    usleep(400 * 1000);         /* the parent's thread away from its loop meanwhile */
    op_join(t);
    pthread_join(th, NULL);
    ck_assert_msg(reader.r == 1, "parent's read: %zd, %s", reader.r, strerror(reader.err));
    reap_ok(pid);
    weft_close(pp[0]);
    weft_close(pp[1]);
}

/* ---- the child's copied tasks wake on inherited fds ---------------------------------------- */

TASK_TEST(task_copied_into_the_child_wakes_on_an_inherited_fd)
{
    char c;
    make_pipe(pp);
    reader = (struct op){ .kind = OP_READ, .fd = pp[0], .buf = &c, .n = 1 };
    ck_assert_ok(weft_fd_set_deadline(pp[0], WEFT_READ, weft_now() + 3000));
    weft_task *t = op_start(&reader);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The copy of the reader here must wake, on the child's own reactor. */
        if (write(pp[1], "c", 1) != 1)
            _exit(2);
        weft_join(t, NULL);
        _exit(reader.r == 1 && c == 'c' ? 0 : 1);
    }
    reap_ok(pid);
    /* The parent's reader still parks, and still wakes. */
    ck_assert(!reader.done);
    ck_assert_int_eq(write(pp[1], "d", 1), 1);
    op_join(t);
    ck_assert_int_eq(reader.r, 1);
    weft_close(pp[0]);
    weft_close(pp[1]);
}

/* ---- a pre-fork server -------------------------------------------------------------------- */

#define WORKERS 2
#define CLIENTS 40

static int lfd;
static volatile int serving;

/* Accept and answer every connection with this process's pid, until stopped. */
static void *conn(void *arg)
{
    int c = (int)(intptr_t)arg;
    char buf[16];
    if (weft_read(c, buf, sizeof buf) > 0) {
        char reply[32];
        int n = snprintf(reply, sizeof reply, "%d\n", (int)getpid());
        weft_write_full(c, reply, (size_t)n);
    }
    weft_close(c);
    return NULL;
}

static void *acceptor(void *arg)
{
    int64_t until = *(int64_t *)arg;
    weft_attr d = { .detached = 1 };
    while (weft_now() < until) {
        weft_fd_set_deadline(lfd, WEFT_READ, until);
        int c = weft_accept(lfd, NULL, NULL);
        if (c < 0)
            break;
        weft_spawn(&d, conn, (void *)(intptr_t)c);
    }
    return NULL;
}

/* One client, blocking libc calls: returns the pid that answered, or -1. */
static int ask(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = loopback4(port);
    int pid = -1;
    char buf[32] = { 0 };
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 && write(fd, "hi", 2) == 2 &&
        read(fd, buf, sizeof buf - 1) > 0)
        pid = atoi(buf);
    close(fd);
    return pid;
}

TASK_TEST(prefork_server_answers_every_client_from_parent_and_children)
{
    lfd = weft_tcp_listen("127.0.0.1", 0, 128, 0);
    ck_assert_int_ge(lfd, 0);
    int port = weft_local_port(lfd);
    /* The listener is registered in the parent before the fork. */
    ck_assert_fails(weft_fdwait(lfd, WEFT_READ, weft_now() + 10), ETIMEDOUT);
    int64_t until = weft_now() + 4000;
    pid_t kids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        kids[i] = fork();
        ck_assert_int_ge(kids[i], 0);
        if (kids[i] == 0) {
            weft_task *a = weft_go(acceptor, &until);
            weft_join(a, NULL);
            _exit(0);
        }
    }
    /* The clients come from another process, so no loop here is blocked by them. */
    int res[2];
    ck_assert_ok(pipe(res));
    pid_t clients = fork();
    ck_assert_int_ge(clients, 0);
    if (clients == 0) {
        int ok = 0;
        for (int i = 0; i < CLIENTS; i++)
            ok += ask(port) > 0;
        _exit(ok == CLIENTS ? 0 : 1);
    }
    weft_task *a = weft_go(acceptor, &until);
    reap_ok(clients);           /* blocks this thread: the parent's acceptor runs after */
    weft_cancel(a);
    weft_join(a, NULL);
    for (int i = 0; i < WORKERS; i++)
        kill(kids[i], SIGKILL);     /* not SIGTERM: the harness passes that on to the group */
    for (int i = 0; i < WORKERS; i++)
        waitpid(kids[i], NULL, 0);
    /* The parent still serves once the children are gone. */
    pid_t c2 = fork();
    ck_assert_int_ge(c2, 0);
    if (c2 == 0)
        _exit(ask(port) == (int)getppid() ? 0 : 1);
    until = weft_now() + 4000;
    a = weft_go(acceptor, &until);
    /* Serve until the one client has its answer. */
    int st;
    while (waitpid(c2, &st, WNOHANG) == 0)
        weft_sleep(5);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client after the children: %#x", st);
    weft_cancel(a);
    weft_join(a, NULL);
    weft_close(res[0]);
    weft_close(res[1]);
    weft_close(lfd);
}

/* ---- the debug server ---------------------------------------------------------------------- */

/* Ask the control socket of process pid (default path) for a dump; returns the pid the dump
 * names, 0 when none answered. Plain blocking calls with a timeout, from a thread of its own,
 * so the loop of this process keeps running. */
struct asker {
    pid_t target;
    int answer;
    atomic_int done;
};

static void default_sock(char *buf, size_t n, pid_t pid)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/')
        snprintf(buf, n, "%s/weft/%d.sock", xdg, (int)pid);
    else
        snprintf(buf, n, "/tmp/weft-%u/%d.sock", (unsigned)geteuid(), (int)pid);
}

static void *ask_dump(void *p)
{
    struct asker *k = p;
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    default_sock(sun.sun_path, sizeof sun.sun_path, k->target);
    k->answer = 0;
    for (int tries = 0; tries < 100 && !k->answer; tries++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct timeval tv = { 3, 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[256] = { 0 };
        if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0 && write(fd, "dump nobt\n", 10) == 10 &&
            read(fd, buf, sizeof buf - 1) > 0) {
            int pid;
            if (sscanf(buf, "weft dump: pid %d", &pid) == 1)
                k->answer = pid;
        } else {
            usleep(20 * 1000);  /* not listening yet */
        }
        close(fd);
    }
    atomic_store(&k->done, 1);
    return NULL;
}

/* Ask from a thread while this task keeps the loop running. */
static int dump_answer(pid_t target)
{
    struct asker k = { target, 0, 0 };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, ask_dump, &k), 0);
    while (!atomic_load(&k.done))
        weft_sleep(5);
    pthread_join(th, NULL);
    return k.answer;
}

TASK_TEST(forked_child_serves_its_own_debug_socket_and_the_parents_keeps_serving)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "the child's loop under Valgrind outlives the test's timeouts");
    ck_assert_ok(weft_debug_listen(NULL));
    ck_assert_int_eq(dump_answer(getpid()), getpid());
    int go[2];
    ck_assert_ok(pipe(go));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* Serve for a while, then go the way a worker does: exit() removes its socket. */
        char c;
        weft_fd_set_deadline(go[0], WEFT_READ, weft_now() + 8000);
        weft_read(go[0], &c, 1);
        exit(0);
    }
    /* Both answer, each at its own path, each as itself, several times over. */
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(dump_answer(pid), pid);
        ck_assert_int_eq(dump_answer(getpid()), getpid());
    }
    ck_assert_int_eq(write(go[1], "x", 1), 1);
    reap_ok(pid);
    /* The child's exit took nothing of the parent's. */
    ck_assert_int_eq(dump_answer(getpid()), getpid());
    char path[108];
    default_sock(path, sizeof path, pid);
    ck_assert_msg(access(path, F_OK) != 0, "the child left its socket behind");
    weft_close(go[0]);
    weft_close(go[1]);
}

static Suite *fork_suite(void)
{
    Suite *s = suite_create("fork");
    ADD_TEST(s, parent_task_wakes_on_its_pipe_while_a_forked_child_waits_in_its_loop, 15);
    ADD_TEST(s, task_copied_into_the_child_wakes_on_an_inherited_fd, 15);
    ADD_TEST(s, prefork_server_answers_every_client_from_parent_and_children, 30);
    ADD_TEST(s, forked_child_serves_its_own_debug_socket_and_the_parents_keeps_serving, 30);
    return s;
}

int main(void)
{
    return test_run(fork_suite());
}

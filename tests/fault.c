/* Fault injection, SQLite's way: every allocation and every system call libweft makes can be
 * made to fail. This program is linked with libweft's static archive and the linker's --wrap
 * on malloc, calloc, realloc, syscall (every weft_sys_* call goes through it), mmap, mprotect,
 * madvise, epoll_*, eventfd, socket, pipe2 and pthread_create (tests/local.mk has the list),
 * so the Nth of those calls fails with a plausible errno. For each scenario it runs N = 1, 2,
 * 3, ... in a forked child until a run completes without reaching the Nth call. Every run
 * must end cleanly: the scenario finishes (an alarm catches a task parked for ever), every
 * public call that failed said why in errno, no data is corrupted, and under the sanitizer
 * build LeakSanitizer finds nothing at exit. Prints, per scenario, how many failure points
 * it exercised; exits 1 on the first run that did not end cleanly, naming N. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

/* ---- the failure point -------------------------------------------------------------------- */

static long fault_at;       /* fail the call with this number (1-based); 0: never */
static long fault_calls;    /* calls seen since the scenario began */
static int fault_hit;
static int fault_on;        /* counting (off while the driver itself works) */

/* Does this call fail? Counted from every thread (the offload pool's too). */
static int fail_now(void)
{
    if (!__atomic_load_n(&fault_on, __ATOMIC_RELAXED))
        return 0;
    long n = __atomic_add_fetch(&fault_calls, 1, __ATOMIC_RELAXED);
    if (n != fault_at)
        return 0;
    __atomic_store_n(&fault_hit, 1, __ATOMIC_RELAXED);
    return 1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
long __real_syscall(long nr, ...);
void *__real_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);
int __real_mprotect(void *a, size_t n, int prot);
int __real_madvise(void *a, size_t n, int advice);
int __real_epoll_create1(int flags);
int __real_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev);
int __real_epoll_wait(int ep, struct epoll_event *ev, int n, int ms);
int __real_eventfd(unsigned v, int flags);
int __real_socket(int d, int t, int p);
int __real_pipe2(int fds[2], int flags);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
long __wrap_syscall(long nr, ...);
void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);
int __wrap_mprotect(void *a, size_t n, int prot);
int __wrap_madvise(void *a, size_t n, int advice);
int __wrap_epoll_create1(int flags);
int __wrap_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev);
int __wrap_epoll_wait(int ep, struct epoll_event *ev, int n, int ms);
int __wrap_eventfd(unsigned v, int flags);
int __wrap_socket(int d, int t, int p);
int __wrap_pipe2(int fds[2], int flags);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg);

#define FAIL_WITH(err, ret)                                                                  \
    do {                                                                                     \
        if (fail_now()) {                                                                    \
            errno = (err);                                                                   \
            return ret;                                                                      \
        }                                                                                    \
    } while (0)

void *__wrap_malloc(size_t n) { FAIL_WITH(ENOMEM, NULL); return __real_malloc(n); }
void *__wrap_calloc(size_t k, size_t n) { FAIL_WITH(ENOMEM, NULL); return __real_calloc(k, n); }
void *__wrap_realloc(void *p, size_t n) { FAIL_WITH(ENOMEM, NULL); return __real_realloc(p, n); }

/* The errno a failing system call gives: what the kernel would say for it under pressure or
 * from a misbehaving peer. */
static int syscall_errno(long nr)
{
    switch (nr) {
    case SYS_read: case SYS_readv: case SYS_recvfrom: case SYS_recvmsg: return ECONNRESET;
    case SYS_write: case SYS_writev: case SYS_sendto: case SYS_sendmsg: case SYS_sendfile:
        return EPIPE;
    case SYS_accept4: return EMFILE;
    case SYS_connect: return ECONNREFUSED;
    case SYS_close: return EIO;
    case SYS_nanosleep: return EINTR;
#ifdef SYS_poll
    case SYS_poll:
#endif
    case SYS_ppoll: return EINTR;
    default: return ENOMEM;
    }
}

long __wrap_syscall(long nr, ...)
{
    va_list ap;
    va_start(ap, nr);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    /* gettid and the signal-path calls are not failure points worth a run each */
    if (nr != SYS_gettid && nr != SYS_tgkill && nr != SYS_rt_sigprocmask)
        FAIL_WITH(syscall_errno(nr), -1);
    return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off)
{
    FAIL_WITH(ENOMEM, MAP_FAILED);
    return __real_mmap(a, n, prot, flags, fd, off);
}
int __wrap_mprotect(void *a, size_t n, int prot) { FAIL_WITH(ENOMEM, -1); return __real_mprotect(a, n, prot); }
int __wrap_madvise(void *a, size_t n, int advice) { FAIL_WITH(ENOMEM, -1); return __real_madvise(a, n, advice); }
int __wrap_epoll_create1(int flags) { FAIL_WITH(EMFILE, -1); return __real_epoll_create1(flags); }
int __wrap_epoll_ctl(int ep, int op, int fd, struct epoll_event *ev)
{
    FAIL_WITH(ENOMEM, -1);
    return __real_epoll_ctl(ep, op, fd, ev);
}
int __wrap_epoll_wait(int ep, struct epoll_event *ev, int n, int ms)
{
    FAIL_WITH(EINTR, -1);
    return __real_epoll_wait(ep, ev, n, ms);
}
int __wrap_eventfd(unsigned v, int flags) { FAIL_WITH(EMFILE, -1); return __real_eventfd(v, flags); }
int __wrap_socket(int d, int t, int p) { FAIL_WITH(EMFILE, -1); return __real_socket(d, t, p); }
int __wrap_pipe2(int fds[2], int flags) { FAIL_WITH(EMFILE, -1); return __real_pipe2(fds, flags); }
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
    if (fail_now())
        return EAGAIN;
    return __real_pthread_create(t, a, fn, arg);
}

/* ---- what a scenario may see ------------------------------------------------------------ */

static int bad;             /* the run did not end cleanly */

/* A public call failed: it must have said why. */
static void failed(const char *what)
{
    if (errno == 0) {
        fprintf(stderr, "fault: %s failed with errno 0\n", what);
        bad = 1;
    }
}

#define CHECK(cond, what)                                                                    \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "fault: %s\n", what);                                            \
            bad = 1;                                                                         \
        }                                                                                    \
    } while (0)

/* ---- scenarios ------------------------------------------------------------------------------ */

static void *napper(void *arg)
{
    intptr_t i = (intptr_t)arg;
    if (weft_yield() != 0)
        failed("weft_yield");
    if (weft_sleep(i % 3) != 0)
        failed("weft_sleep");
    return (void *)(i * 7);
}

static void *spawn_join_main(void *arg)
{
    (void)arg;
    enum { N = 40 };
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        errno = 0;
        t[i] = weft_go(napper, (void *)(intptr_t)i);
        if (!t[i])
            failed("weft_go");
    }
    weft_task *d = weft_spawn(&(weft_attr){ .detached = 1, .name = "det" }, napper, NULL);
    if (!d)
        failed("weft_spawn detached");
    for (int i = 0; i < N; i++) {
        if (!t[i])
            continue;
        void *v;
        errno = 0;
        if (weft_join(t[i], &v) != 0)
            failed("weft_join");
        else
            CHECK((intptr_t)v == i * 7, "a joined task's value is wrong");
    }
    return NULL;
}

static int port_of_listener;

static void *echo_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int c = weft_accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
        failed("weft_accept4");
        return NULL;
    }
    char buf[4096];
    for (;;) {
        ssize_t r = weft_read(c, buf, sizeof buf);
        if (r <= 0) {
            if (r < 0)
                failed("weft_read (server)");
            break;
        }
        if (weft_write_full(c, buf, (size_t)r) != r) {
            failed("weft_write_full (server)");
            break;
        }
    }
    weft_close(c);
    return NULL;
}

static void *echo_main(void *arg)
{
    (void)arg;
    int64_t deadline = weft_now() + 3000;
    errno = 0;
    int lfd = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    if (lfd < 0) {
        failed("weft_tcp_listen");
        return NULL;
    }
    port_of_listener = weft_local_port(lfd);
    weft_task *srv = weft_go(echo_server, (void *)(intptr_t)lfd);
    if (!srv) {
        failed("weft_go");
        weft_close(lfd);
        return NULL;
    }
    errno = 0;
    int c = weft_tcp_dial("127.0.0.1", port_of_listener, 0, deadline);
    if (c < 0) {
        failed("weft_tcp_dial");
        weft_cancel(srv);
    } else {
        enum { LEN = 65536 };
        unsigned char *out = malloc(LEN), *in = malloc(LEN);
        if (out && in) {
            for (int i = 0; i < LEN; i++)
                out[i] = (unsigned char)(i * 31 + 7);
            weft_fd_set_deadline(c, WEFT_READ | WEFT_WRITE, deadline);
            ssize_t w = weft_write_full(c, out, LEN);
            if (w != LEN)
                failed("weft_write_full (client)");
            shutdown(c, SHUT_WR);
            ssize_t got = 0, r;
            while (got < LEN && (r = weft_read(c, in + got, (size_t)(LEN - got))) > 0)
                got += r;
            if (got < w && errno)
                failed("weft_read (client)");
            CHECK(memcmp(in, out, (size_t)got) == 0, "echoed bytes differ from what was sent");
        }
        free(out);
        free(in);
        weft_close(c);
        weft_cancel(srv);
    }
    weft_join(srv, NULL);
    weft_close(lfd);
    return NULL;
}

static void *parked(void *arg)
{
    weft_chan *c = arg;
    int v;
    errno = 0;
    if (weft_chan_recv(c, &v, -1) != 0 && errno != EPIPE)
        failed("weft_chan_recv");
    return NULL;
}

static void *dump_main(void *arg)
{
    (void)arg;
    weft_chan *c = weft_chan_make(sizeof(int), 0);
    if (!c) {
        failed("weft_chan_make");
        return NULL;
    }
    weft_task *t = weft_go(parked, c);
    if (!t)
        failed("weft_go");
    weft_yield();
    int fd = memfd_create("dump", MFD_CLOEXEC);
    if (fd >= 0) {
        errno = 0;
        if (weft_dump(fd, 0) != 0)
            failed("weft_dump");
        errno = 0;
        if (weft_dump(fd, WEFT_DUMP_JSON | WEFT_DUMP_SYSTEM) != 0)
            failed("weft_dump json");
        close(fd);
    }
    weft_chan_close(c);
    if (t)
        weft_join(t, NULL);
    weft_chan_free(c);
    return NULL;
}

static char sock_path[108];

static void *debug_main(void *arg)
{
    (void)arg;
    errno = 0;
    if (weft_debug_listen(sock_path) != 0) {
        failed("weft_debug_listen");
        return NULL;
    }
    errno = 0;
    int c = weft_unix_dial(sock_path, weft_now() + 3000);
    if (c < 0) {
        failed("weft_unix_dial");
        return NULL;
    }
    if (weft_write_full(c, "dump\n", 5) != 5)
        failed("weft_write_full");
    char buf[4096];
    ssize_t r, total = 0;
    weft_fd_set_deadline(c, WEFT_READ, weft_now() + 3000);
    while ((r = weft_read(c, buf, sizeof buf)) > 0)
        total += r;
    if (r < 0)
        failed("weft_read");
    weft_close(c);
    return NULL;
}

static void *producer(void *arg)
{
    weft_chan *c = arg;
    for (int i = 1; i <= 200; i++) {
        errno = 0;
        if (weft_chan_send(c, &i, -1) != 0) {
            failed("weft_chan_send");
            break;
        }
    }
    weft_chan_close(c);
    return NULL;
}

static void *chan_main(void *arg)
{
    (void)arg;
    weft_chan *a = weft_chan_make(sizeof(int), 0), *b = weft_chan_make(sizeof(int), 8);
    if (!a || !b) {
        failed("weft_chan_make");
        weft_chan_free(a);
        weft_chan_free(b);
        return NULL;
    }
    weft_task *pa = weft_go(producer, a), *pb = weft_go(producer, b);
    if (!pa)
        weft_chan_close(a);
    if (!pb)
        weft_chan_close(b);
    long sum = 0;
    int va, vb;
    weft_chan_clause cl[2] = { { a, WEFT_CHAN_RECV, &va, 0 }, { b, WEFT_CHAN_RECV, &vb, 0 } };
    for (;;) {
        errno = 0;
        int i = weft_chan_select(cl, 2, weft_now() + 3000);
        if (i < 0) {
            failed("weft_chan_select");
            break;
        }
        if (cl[i].err == EPIPE) {   /* one closed: drain the other */
            int v;
            while (weft_chan_recv(cl[1 - i].chan, &v, weft_now() + 3000) == 0)
                sum += v;
            break;
        }
        sum += i ? vb : va;
    }
    if (pa)
        weft_join(pa, NULL);
    if (pb)
        weft_join(pb, NULL);
    CHECK(sum <= 2 * 20100, "more received than was sent");
    if (pa && pb && !__atomic_load_n(&fault_hit, __ATOMIC_RELAXED))
        CHECK(sum == 2 * 20100, "an element was lost");
    weft_chan_free(a);
    weft_chan_free(b);
    return NULL;
}

static void work(void *arg)
{
    long *v = arg;
    *v = *v * 2 + 1;
}

static void *offload_one(void *arg)
{
    long *v = arg;
    long in = *v;
    errno = 0;
    if (weft_offload(work, v, weft_now() + 3000) != 0)
        failed("weft_offload");
    else
        CHECK(*v == in * 2 + 1, "an offloaded call's result is wrong");
    return NULL;
}

static void *offload_main(void *arg)
{
    (void)arg;
    enum { N = 12 };
    long vals[N];
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        t[i] = weft_go(offload_one, &vals[i]);
        if (!t[i])
            failed("weft_go");
    }
    for (int i = 0; i < N; i++)
        if (t[i])
            weft_join(t[i], NULL);
    return NULL;
}

struct scenario {
    const char *name;
    void *(*fn)(void *);
};

static const struct scenario scenarios[] = {
    { "spawn-join", spawn_join_main },
    { "echo", echo_main },
    { "dump", dump_main },
    { "debug-server", debug_main },
    { "channels", chan_main },
    { "offload", offload_main },
};

/* In the child: run the scenario with the Nth call failing. Exit codes: 0 the failure was
 * met and handled, 3 the run ended before reaching N, 1 it did not end cleanly. */
static _Noreturn void run_child(const struct scenario *sc, long n)
{
    alarm(20);          /* a task parked for ever: SIGALRM ends the child, and the run fails */
    fault_at = n;
    fault_calls = 0;
    __atomic_store_n(&fault_on, 1, __ATOMIC_RELAXED);
    errno = 0;
    if (weft_main(sc->fn, NULL) != 0)
        failed("weft_main");
    __atomic_store_n(&fault_on, 0, __ATOMIC_RELAXED);
    int hit = __atomic_load_n(&fault_hit, __ATOMIC_RELAXED);
    unlink(sock_path);
    exit(bad ? 1 : hit ? 0 : 3);
}

int main(int argc, char **argv)
{
    long limit = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
    snprintf(sock_path, sizeof sock_path, "/tmp/weft-fault-%ld.sock", (long)getpid());
    setenv("WEFT_OFFLOAD_THREADS", "2", 1);
    long total = 0;
    int rc = 0;
    for (size_t k = 0; k < sizeof scenarios / sizeof scenarios[0]; k++) {
        const struct scenario *sc = &scenarios[k];
        long n;
        for (n = 1; n <= limit; n++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid < 0) {
                perror("fork");
                return 1;
            }
            if (pid == 0)
                run_child(sc, n);
            int st;
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
            }
            if (WIFEXITED(st) && WEXITSTATUS(st) == 3)
                break;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                if (WIFSIGNALED(st))
                    printf("FAIL: %s: failing call %ld: killed by signal %d%s\n", sc->name, n,
                           WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (a task parked for ever)" : "");
                else
                    printf("FAIL: %s: failing call %ld: exit %d\n", sc->name, n, WEXITSTATUS(st));
                rc = 1;
                break;
            }
        }
        printf("%-13s %ld failure points, each ended cleanly%s\n", sc->name, n - 1,
               rc ? " until the failure above" : "");
        total += n - 1;
        if (rc)
            break;
    }
    printf("fault injection: %ld failure points exercised\n", total);
    return rc;
}

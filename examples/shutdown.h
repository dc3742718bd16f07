/* Graceful shutdown for the example servers (echo, httpd, proxy). server_main runs the
 * acceptor and waits for SIGINT or SIGTERM (weft_signal_wait). Then it closes the listener
 * (the acceptor's weft_accept4 wakes with EBADF and it ends), cancels the connections that
 * are idle (their task parked between requests: a server marks the rest busy with
 * conn_busy), lets the busy ones finish until the shutdown deadline, cancels what is left
 * then (weft_group_wait does), and prints what happened and a task dump to stderr, which
 * shows no task but main. The server's own code only spawns connections with server_spawn,
 * marks them with conn_enter / conn_busy / conn_leave, and asks server_stopping() between
 * requests; srv_conf.thread_start, when set, runs first in each thread's loop (kv starts its
 * per-thread tasks there, as daemons, which the dump then shows). --idle-timeout MS (default 60 s, 0: none) is the servers' idle deadline: each
 * puts its waits for a client under conn_idle_deadline (the task's deadline scope), so a
 * connection that stays quiet that long fails its read with ETIMEDOUT and is closed.
 * --threads N (default 1, at most SERVER_THREADS_MAX): one weft loop per thread, share
 * nothing. server_listen opens N listeners on the same address with SO_REUSEPORT, so the
 * kernel spreads the connections over them; each thread runs its own loop (weft_main) with
 * its own acceptor and connections, which never leave it. The server state below is
 * thread-local; the options are set once, before any thread starts, and read by all.
 * Stopping with N threads: only thread 0 takes the signals (SIGINT and SIGTERM are blocked
 * in every thread from the start, so a signal sent to the process stays pending until thread
 * 0's signalfd reads it). It then tells each other thread through that thread's eventfd (a
 * write(2) from any thread is safe; the thread's server task waits on it with weft_fdwait,
 * so its loop wakes like for any fd), and each stops the same way as thread 0. Each one,
 * once its connections have ended, adds 1 to a shared "done" eventfd and waits on its own
 * eventfd again; thread 0 waits for the N-1 of them, prints the dump of every thread (each
 * one then shows only its main task), releases them, and joins them. */
#ifndef EXAMPLES_SHUTDOWN_H
#define EXAMPLES_SHUTDOWN_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft.h>

#define SHUTDOWN_GRACE_MS 5000  /* --grace MS: how long connections in flight may take */
#define IDLE_TIMEOUT_MS 60000   /* --idle-timeout MS: a connection quiet that long is closed */
#define SERVER_THREADS_MAX 256  /* --threads N: 1..this */

/* A connection, on its task's stack, in the server's list while it runs. */
struct conn {
    struct conn *prev, *next;
    weft_task *task;
    int busy;                   /* in the middle of a request: not cancelled at once */
};

/* The options and what the threads share: set before any thread starts, then read only
 * (but for the eventfds, which are written with write(2)). */
struct server_conf {
    const char *name;
    int64_t grace_ms;
    int64_t idle_ms;            /* --idle-timeout; 0: connections may idle for ever */
    void *(*serve)(void *);     /* a connection's task: serve((void *)(intptr_t)fd) */
    void (*thread_start)(int index);    /* optional: run in each loop before it accepts */
    weft_attr conn_attr;
    int nthreads;               /* --threads */
    int lfd[SERVER_THREADS_MAX];    /* thread i's listener */
    int stop_efd[SERVER_THREADS_MAX];   /* thread i > 0: "stop", then "exit" */
    int done_efd;               /* each thread i > 0 adds 1 once its connections ended */
};

static struct server_conf srv_conf = { .grace_ms = SHUTDOWN_GRACE_MS,
                                       .idle_ms = IDLE_TIMEOUT_MS, .nthreads = 1 };

/* One thread's server (thread-local: each loop has its own). */
struct server {
    char name[32];              /* "httpd", or "httpd[1]" with several threads */
    int index;                  /* the thread's number, 0..nthreads-1 */
    int lfd;
    int64_t grace_ms;
    int64_t idle_ms;
    void *(*serve)(void *);
    weft_attr conn_attr;
    weft_group conns;           /* every connection task, so none outlives the shutdown */
    struct conn list;           /* the connections, oldest first */
    long open;
    int stopping;
};

static _Thread_local struct server srv = { .conns = WEFT_GROUP_INIT_NAMED("conns") };

static inline int server_stopping(void)
{
    return srv.stopping;
}

/* The deadline of a connection quiet since `since` (a weft_now() value), for the task's
 * deadline scope (weft_set_task_deadline): -1 when --idle-timeout is 0. */
static inline int64_t conn_idle_deadline(int64_t since)
{
    return srv.idle_ms > 0 ? since + srv.idle_ms : -1;
}

static inline void conn_enter(struct conn *c)
{
    c->task = weft_self();
    c->busy = 0;
    c->prev = srv.list.prev;
    c->next = &srv.list;
    srv.list.prev->next = c;
    srv.list.prev = c;
    srv.open++;
}

/* Mark c busy (1) or idle (0). Idle connections are cancelled as the shutdown begins; one
 * marked idle after that is cancelled at once. */
static inline void conn_busy(struct conn *c, int busy)
{
    c->busy = busy;
    if (!busy && srv.stopping)
        weft_cancel(c->task);
}

static inline void conn_leave(struct conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    srv.open--;
}

static void *accept_loop(void *arg)
{
    (void)arg;
    for (;;) {
        int fd = weft_accept4(srv.lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (srv.stopping)
                return NULL;        /* the listener was closed (EBADF): no more clients */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                weft_sleep(50);     /* out of fds or memory: let connections finish first */
            } else if (errno != ECONNABORTED && errno != EINTR && errno != EPROTO) {
                fprintf(stderr, "%s: accept: %s\n", srv.name, strerror(errno));
                exit(1);
            }
            continue;
        }
        if (!weft_group_spawn(&srv.conns, &srv.conn_attr, srv.serve, (void *)(intptr_t)fd)) {
            weft_close(fd);         /* no memory for a task: drop this one */
            weft_sleep(50);
        }
    }
}

/* Block in a task until fd (an eventfd) is readable, and take its count. */
static inline uint64_t server_efd_wait(int fd)
{
    uint64_t n = 0;
    while (n == 0) {
        weft_fdwait(fd, WEFT_READ, -1);
        if (read(fd, &n, sizeof n) != (ssize_t)sizeof n)
            n = 0;  /* EAGAIN (woken early), EINTR: wait again */
    }
    return n;
}

static inline void server_efd_add(int fd, uint64_t n)
{
    while (write(fd, &n, sizeof n) < 0 && errno == EINTR)
        ;
}

static void *server_task(void *arg)
{
    (void)arg;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    if (srv_conf.thread_start)
        srv_conf.thread_start(srv.index);
    weft_task *acceptor = weft_spawn(&(weft_attr){ .name = "accept" }, accept_loop, NULL);
    if (!acceptor) {
        perror("weft_spawn");
        exit(1);
    }
    int sig;
    if (srv.index == 0) {
        sig = weft_signal_wait(&stop, -1);
        if (sig < 0) {
            perror("weft_signal_wait");
            exit(1);
        }
        /* Tell the other loops: the signal number is what the eventfd counts. */
        for (int i = 1; i < srv_conf.nthreads; i++)
            server_efd_add(srv_conf.stop_efd[i], (uint64_t)sig);
    } else {
        sig = (int)server_efd_wait(srv_conf.stop_efd[srv.index]);
    }
    srv.stopping = 1;
    weft_close(srv.lfd);            /* wakes the acceptor with EBADF */
    weft_join(acceptor, NULL);
    long open = srv.open, idle = 0;
    for (struct conn *c = srv.list.next; c != &srv.list; c = c->next)
        if (!c->busy) {
            weft_cancel(c->task);
            idle++;
        }
    fprintf(stderr, "%s: %s: stopped accepting; %ld connections open, %ld idle closed, "
            "%ld in flight get %lld ms\n", srv.name, sig == SIGINT ? "SIGINT" : "SIGTERM", open,
            idle, open - idle, (long long)srv.grace_ms);
    int64_t deadline = weft_now() + srv.grace_ms;
    long left = 0;
    if (weft_group_wait(&srv.conns, deadline) != 0 && errno == ETIMEDOUT)
        left = 1;
    const char *how = left ? "the deadline passed: connections still open were cancelled"
                           : "every connection finished";
    if (srv.index > 0) {
        fprintf(stderr, "%s: %s\n", srv.name, how);
        server_efd_add(srv_conf.done_efd, 1);
        server_efd_wait(srv_conf.stop_efd[srv.index]);  /* until thread 0 has dumped */
        return NULL;
    }
    for (uint64_t done = 0; done < (uint64_t)srv_conf.nthreads - 1;)
        done += server_efd_wait(srv_conf.done_efd);
    fprintf(stderr, "%s: %s; tasks left (the dump below shows them):\n", srv.name, how);
    weft_dump(2, srv_conf.nthreads > 1 ? WEFT_DUMP_ALL_THREADS : 0);
    for (int i = 1; i < srv_conf.nthreads; i++)
        server_efd_add(srv_conf.stop_efd[i], 1);
    return NULL;
}

/* Parse --grace MS, --idle-timeout MS or --threads N at argv[*i] (1: taken; 0: not one of
 * these or a bad value, which the caller reports with its usage line). */
static inline int server_option(int argc, char **argv, int *i)
{
    if (strcmp(argv[*i], "--grace") == 0 && *i + 1 < argc) {
        srv_conf.grace_ms = atol(argv[++*i]);
        return 1;
    }
    if (strcmp(argv[*i], "--idle-timeout") == 0 && *i + 1 < argc) {
        srv_conf.idle_ms = atol(argv[++*i]);
        return srv_conf.idle_ms >= 0;
    }
    if (strcmp(argv[*i], "--threads") == 0 && *i + 1 < argc) {
        char *end;
        long n = strtol(argv[++*i], &end, 10);
        if (*argv[*i] == '\0' || *end != '\0' || n < 1 || n > SERVER_THREADS_MAX) {
            fprintf(stderr, "%s: --threads %s: give a number from 1 to %d\n", argv[0],
                    argv[*i], SERVER_THREADS_MAX);
            return 0;
        }
        srv_conf.nthreads = (int)n;
        return 1;
    }
    return 0;
}

/* Open the listeners (one per --threads, all on host:port with SO_REUSEPORT when there are
 * several: the first one picks the port when port is 0). Returns the first one's fd, or -1
 * with errno set (the others closed). */
static inline int server_listen(const char *host, int port, int backlog, int flags)
{
    int n = srv_conf.nthreads;
    if (n > 1)
        flags |= WEFT_REUSEPORT;
    for (int i = 0; i < n; i++) {
        srv_conf.lfd[i] = weft_tcp_listen(host, port, backlog, flags);
        if (srv_conf.lfd[i] < 0) {
            int e = errno;
            while (i-- > 0)
                close(srv_conf.lfd[i]);
            errno = e;
            return -1;
        }
        if (port == 0)
            port = weft_local_port(srv_conf.lfd[0]);
        /* weft's record of an fd is its loop's: another thread's loop would take the
         * O_NONBLOCK weft set for the program's own and give EAGAIN instead of parking.
         * weft_fd_forget hands the socket over blocking, and the thread's loop learns it
         * afresh at its first call. */
        if (i > 0 && weft_fd_forget(srv_conf.lfd[i]) != 0)
            return -1;
    }
    return srv_conf.lfd[0];
}

/* Thread index's loop: its server state from the shared options, then the server task. */
static void *server_thread(void *arg)
{
    int index = (int)(intptr_t)arg;
    if (srv_conf.nthreads > 1)
        snprintf(srv.name, sizeof srv.name, "%s[%d]", srv_conf.name, index);
    else
        snprintf(srv.name, sizeof srv.name, "%s", srv_conf.name);
    srv.index = index;
    srv.lfd = srv_conf.lfd[index];
    srv.grace_ms = srv_conf.grace_ms;
    srv.idle_ms = srv_conf.idle_ms;
    srv.serve = srv_conf.serve;
    srv.conn_attr = srv_conf.conn_attr;
    srv.list.prev = srv.list.next = &srv.list;
    if (weft_main(server_task, NULL) != 0) {
        perror("weft_main");
        exit(1);
    }
    return NULL;
}

/* Block SIGINT and SIGTERM before any thread exists (weft_signal_wait reads them from a
 * signalfd, which sees only blocked signals, and the other threads inherit the mask, so
 * none of them takes one), raise the soft RLIMIT_NOFILE to the hard limit (a connection is
 * an fd: the usual soft 1,024 would stop a server far below what it can hold; none of these
 * servers uses select), then run the server until it has stopped: thread 0 is the calling
 * thread, threads 1..N-1 are started here and joined at the end. lfd: what server_listen
 * returned. */
static inline int server_main(const char *name, int lfd, void *(*serve)(void *),
                              const weft_attr *conn_attr)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    srv_conf.name = name;
    srv_conf.lfd[0] = lfd;
    srv_conf.serve = serve;
    srv_conf.conn_attr = *conn_attr;
    srv_conf.conn_attr.detached = 0;    /* the group's: weft_group_spawn detaches them */
    int n = srv_conf.nthreads;
    pthread_t thr[SERVER_THREADS_MAX];
    if (n > 1) {
        srv_conf.done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (srv_conf.done_efd < 0) {
            perror("eventfd");
            return 1;
        }
    }
    for (int i = 1; i < n; i++) {
        srv_conf.stop_efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (srv_conf.stop_efd[i] < 0) {
            perror("eventfd");
            return 1;
        }
        int e = pthread_create(&thr[i], NULL, server_thread, (void *)(intptr_t)i);
        if (e != 0) {
            fprintf(stderr, "%s: pthread_create: %s\n", name, strerror(e));
            return 1;
        }
    }
    server_thread(0);
    for (int i = 1; i < n; i++) {
        pthread_join(thr[i], NULL);
        close(srv_conf.stop_efd[i]);
    }
    if (n > 1)
        close(srv_conf.done_efd);
    return 0;
}

#endif

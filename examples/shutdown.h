/* Graceful shutdown for the example servers (echo, httpd, proxy). server_main runs the
 * acceptor and waits for SIGINT or SIGTERM (weft_signal_wait). Then it closes the listener
 * (the acceptor's weft_accept4 wakes with EBADF and it ends), cancels the connections that
 * are idle (their task parked between requests: a server marks the rest busy with
 * conn_busy), lets the busy ones finish until the shutdown deadline, cancels what is left
 * then (weft_group_wait does), and prints what happened and a task dump to stderr, which
 * shows no task but main. The server's own code only spawns connections with server_spawn,
 * marks them with conn_enter / conn_busy / conn_leave, and asks server_stopping() between
 * requests. --idle-timeout MS (default 60 s, 0: none) is the servers' idle deadline: each
 * puts its waits for a client under conn_idle_deadline (the task's deadline scope), so a
 * connection that stays quiet that long fails its read with ETIMEDOUT and is closed. */
#ifndef EXAMPLES_SHUTDOWN_H
#define EXAMPLES_SHUTDOWN_H

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <weft.h>

#define SHUTDOWN_GRACE_MS 5000  /* --grace MS: how long connections in flight may take */
#define IDLE_TIMEOUT_MS 60000   /* --idle-timeout MS: a connection quiet that long is closed */

/* A connection, on its task's stack, in the server's list while it runs. */
struct conn {
    struct conn *prev, *next;
    weft_task *task;
    int busy;                   /* in the middle of a request: not cancelled at once */
};

struct server {
    const char *name;
    int lfd;
    int64_t grace_ms;
    int64_t idle_ms;            /* --idle-timeout; 0: connections may idle for ever */
    void *(*serve)(void *);     /* a connection's task: serve((void *)(intptr_t)fd) */
    weft_attr conn_attr;
    weft_group conns;           /* every connection task, so none outlives the shutdown */
    struct conn list;           /* the connections, oldest first */
    long open;
    int stopping;
};

static struct server srv = { .grace_ms = SHUTDOWN_GRACE_MS, .idle_ms = IDLE_TIMEOUT_MS,
                             .conns = WEFT_GROUP_INIT_NAMED("conns") };

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

static void *server_task(void *arg)
{
    (void)arg;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    weft_task *acceptor = weft_spawn(&(weft_attr){ .name = "accept" }, accept_loop, NULL);
    if (!acceptor) {
        perror("weft_spawn");
        exit(1);
    }
    int sig = weft_signal_wait(&stop, -1);
    if (sig < 0) {
        perror("weft_signal_wait");
        exit(1);
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
    fprintf(stderr, "%s: %s; tasks left (the dump below shows them):\n", srv.name,
            left ? "the deadline passed: connections still open were cancelled"
                 : "every connection finished");
    weft_dump(2, 0);
    return NULL;
}

/* Parse --grace MS or --idle-timeout MS at argv[*i] (1: taken). */
static inline int server_option(int argc, char **argv, int *i)
{
    if (strcmp(argv[*i], "--grace") == 0 && *i + 1 < argc) {
        srv.grace_ms = atol(argv[++*i]);
        return 1;
    }
    if (strcmp(argv[*i], "--idle-timeout") == 0 && *i + 1 < argc) {
        srv.idle_ms = atol(argv[++*i]);
        return srv.idle_ms >= 0;
    }
    return 0;
}

/* Block SIGINT and SIGTERM before any thread exists (weft_signal_wait reads them from a
 * signalfd, which sees only blocked signals), raise the soft RLIMIT_NOFILE to the hard limit
 * (a connection is an fd: the usual soft 1,024 would stop a server far below what it can
 * hold; none of these servers uses select), then run the server until it has stopped. */
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
    srv.name = name;
    srv.lfd = lfd;
    srv.serve = serve;
    srv.conn_attr = *conn_attr;
    srv.conn_attr.detached = 0;     /* the group's: weft_group_spawn detaches them */
    srv.list.prev = srv.list.next = &srv.list;
    if (weft_main(server_task, NULL) != 0) {
        perror("weft_main");
        return 1;
    }
    return 0;
}

#endif

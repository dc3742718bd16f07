/* The Quickstart demo, on one thread: thousands of tasks that sleep, yield and are joined;
 * then an echo server and thousands of client connections to it over loopback, every byte
 * checked, all parked on the reactor at once. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <weft.h>

enum { WORKERS = 10000, ROUNDS = 5 };
enum { CLIENTS = 2000, EXCHANGES = 50, MSG = 64 };

static long yields;

static void *worker(void *arg)
{
    intptr_t i = (intptr_t)arg;
    long sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        weft_sleep(1 + (i * 7 + r) % 20);   /* up to 20 ms, out of order */
        sum += i;
        weft_yield();
        yields++;
    }
    return (void *)(intptr_t)sum;
}

static void *run(void *arg)
{
    (void)arg;
    static weft_task *tasks[WORKERS];
    int64_t start = weft_now();
    for (intptr_t i = 0; i < WORKERS; i++) {
        if (!(tasks[i] = weft_go(worker, (void *)i))) {
            perror("weft_go");
            exit(1);
        }
    }
    long total = 0, expect = 0;
    for (intptr_t i = 0; i < WORKERS; i++) {
        void *v;
        if (weft_join(tasks[i], &v) != 0) {
            perror("weft_join");
            exit(1);
        }
        total += (long)(intptr_t)v;
        expect += (long)i * ROUNDS;
    }
    printf("demo: %d tasks x %d rounds of sleep+yield on one thread: %ld yields, joined all in %lld ms, "
           "sum %s\n", WORKERS, ROUNDS, yields, (long long)(weft_now() - start),
           total == expect ? "correct" : "WRONG");
    return total == expect ? NULL : (void *)1;
}

/* ---- IO: an echo server and its clients, in the same thread ---- */

static int port;
static long exchanges, bad;

static void *echo_session(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t n;
    while ((n = weft_read(fd, buf, sizeof buf)) > 0)
        if (weft_write_full(fd, buf, (size_t)n) != n)
            break;
    weft_close(fd);
    return NULL;
}

static void *echo_server(void *arg)
{
    int lfd = (int)(intptr_t)arg, fd;
    weft_attr detached = { .detached = 1, .name = "echo-session" };
    while ((fd = weft_accept(lfd, NULL, NULL)) >= 0)
        weft_spawn(&detached, echo_session, (void *)(intptr_t)fd);
    return NULL;    /* cancelled: accept failed with ECANCELED */
}

static void *client(void *arg)
{
    intptr_t id = (intptr_t)arg;
    int fd = weft_tcp_dial("127.0.0.1", port, 0, weft_now() + 10000);
    if (fd < 0) {
        bad++;
        return NULL;
    }
    char out[MSG], in[MSG];
    for (int i = 0; i < EXCHANGES; i++) {
        for (int k = 0; k < MSG; k++)
            out[k] = (char)(id * 31 + i * 7 + k);
        if (weft_write_full(fd, out, MSG) != MSG || weft_read_full(fd, in, MSG) != MSG || memcmp(in, out, MSG)) {
            bad++;
            break;
        }
        exchanges++;
    }
    weft_close(fd);
    return NULL;
}

static void *run_io(void *arg)
{
    (void)arg;
    int lfd = weft_tcp_listen("127.0.0.1", 0, 4096, 0);
    if (lfd < 0 || (port = weft_local_port(lfd)) < 0) {
        perror("listen");
        return (void *)1;
    }
    weft_attr sa = { .name = "echo-server" };
    weft_task *server = weft_spawn(&sa, echo_server, (void *)(intptr_t)lfd);
    static weft_task *clients[CLIENTS];
    int64_t start = weft_now();
    for (intptr_t i = 0; i < CLIENTS; i++)
        clients[i] = weft_go(client, (void *)i);
    for (int i = 0; i < CLIENTS; i++)
        weft_join(clients[i], NULL);
    int64_t ms = weft_now() - start;
    weft_cancel(server);
    weft_join(server, NULL);
    weft_close(lfd);
    printf("demo: %d client connections to an echo server, all on this thread: %ld exchanges of %d bytes "
           "in %lld ms (%.0f round trips/s), every byte checked: %s\n", CLIENTS, exchanges, MSG,
           (long long)ms, ms > 0 ? exchanges * 1000.0 / (double)ms : 0.0, bad ? "ERRORS" : "all correct");
    return bad ? (void *)1 : NULL;
}

int main(void)
{
    /* Each client connection is two fds (client and server side). */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * CLIENTS + 64) {
        rl.rlim_cur = rl.rlim_max < 2 * CLIENTS + 64 ? rl.rlim_max : 2 * CLIENTS + 64;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    void *r1 = NULL, *r2 = NULL;
    weft_task *a = weft_go(run, NULL);
    if (!a || weft_join(a, &r1) != 0) {
        perror("demo");
        return 1;
    }
    weft_task *b = weft_go(run_io, NULL);
    if (!b || weft_join(b, &r2) != 0) {
        perror("demo");
        return 1;
    }
    return r1 || r2 ? 1 : 0;
}

/* proxy: a TCP proxy. Each client connection gets an upstream connection to --to HOST:PORT
 * and two tasks, one pumping each direction. A FIN is passed on with shutdown(SHUT_WR), so
 * either side may half-close and still read the other's answer; an error tears down both.
 * On SIGINT or SIGTERM it stops gracefully (examples/shutdown.h): a proxy cannot tell a
 * quiet connection from one whose answer is on its way, so every open connection gets the
 * shutdown deadline to end, and is cut then. A connection on which no byte has moved either
 * way for --idle-timeout MS (default 60 s; 0: none) is torn down. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft.h>

#include "shutdown.h"

static const char *to_host;
static int to_port;

struct pipe {
    int from, to;
    int64_t *last;      /* when either direction last moved bytes (the idle deadline's start) */
};

/* Copy from -> to until EOF, then pass the FIN on. On an error, shut both sockets down
 * completely, which also wakes the task pumping the other way (its read sees EOF). A read
 * waits under the idle deadline of the whole connection: when it passes while the other
 * direction moved bytes, it waits again; when nothing moved either way, the connection has
 * been idle for --idle-timeout and is torn down. */
static void *pump(void *arg)
{
    struct pipe *p = arg;
    char buf[16384];
    ssize_t n;
    for (;;) {
        weft_set_task_deadline(conn_idle_deadline(*p->last));
        n = weft_read(p->from, buf, sizeof buf);
        if (n < 0 && errno == ETIMEDOUT && conn_idle_deadline(*p->last) > weft_now())
            continue;
        if (n <= 0)
            break;
        *p->last = weft_now();
        weft_set_task_deadline(conn_idle_deadline(*p->last));
        if (weft_write_full(p->to, buf, (size_t)n) != n)
            break;
    }
    weft_set_task_deadline(-1);
    if (n == 0) {
        shutdown(p->to, SHUT_WR);
    } else {
        shutdown(p->from, SHUT_RDWR);
        shutdown(p->to, SHUT_RDWR);
    }
    return NULL;
}

static void *serve(void *arg)
{
    int client = (int)(intptr_t)arg;
    int up = weft_tcp_dial(to_host, to_port, WEFT_NODELAY, weft_now() + 5000);
    if (up < 0) {
        weft_close(client);
        return NULL;
    }
    int64_t last = weft_now();
    struct pipe there = { client, up, &last }, back = { up, client, &last };
    struct conn c;
    conn_enter(&c);
    conn_busy(&c, 1);
    weft_attr a = { .stack_size = 64 * 1024, .name = "proxy-back" };
    weft_task *t = weft_spawn(&a, pump, &back);
    if (t) {
        pump(&there);
        /* Cancelled at the shutdown deadline, this task's pump has shut both sockets down,
         * so the other pump ends soon: let it, and join it, before closing them. */
        while (weft_join(t, NULL) != 0 && errno == ECANCELED)
            weft_yield();
    }
    conn_leave(&c);
    weft_close(up);
    weft_close(client);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *to = NULL;
    int port = 8000;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--listen-port") == 0 || strcmp(argv[i], "--port") == 0) && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
            to = argv[++i];
        } else if (!server_option(argc, argv, &i)) {
            to = NULL;
            break;
        }
    }
    char *colon = to ? strrchr(to, ':') : NULL;
    if (!colon) {
        fprintf(stderr, "usage: %s [--host ADDR] [--port PORT] [--grace MS] [--threads N] "
                "[--idle-timeout MS] --to HOST:PORT\n", argv[0]);
        return 2;
    }
    *colon = '\0';
    to_host = to;
    to_port = atoi(colon + 1);
    int lfd = server_listen(host, port, 0, WEFT_NODELAY);
    if (lfd < 0) {
        fprintf(stderr, "proxy: listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    const char *br = strchr(host, ':') ? "[" : "";
    printf("proxy listening on %s%s%s:%d\n", br, host, *br ? "]" : "", weft_local_port(lfd));
    fflush(stdout);
    weft_attr conn = { .stack_size = 64 * 1024, .name = "proxy" };
    return server_main("proxy", lfd, serve, &conn);
}

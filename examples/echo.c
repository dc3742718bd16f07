/* echo: a TCP echo server, one task per connection that writes back what it reads until the
 * client closes. The smallest complete weft server: listen, accept, spawn, read, write. On
 * SIGINT or SIGTERM it stops gracefully (examples/shutdown.h): idle connections are closed,
 * one writing back what it read finishes that first. A connection idle for --idle-timeout MS
 * (default 60 s) is closed. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft.h>

#include "shutdown.h"

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    ssize_t n;
    struct conn c;
    conn_enter(&c);
    /* Each read, and the write after it, under the idle deadline (a client that sends
     * nothing, or reads nothing back, for --idle-timeout is closed). */
    while (weft_set_task_deadline(conn_idle_deadline(weft_now())),
           (n = weft_read(fd, buf, sizeof buf)) > 0) {
        conn_busy(&c, 1);
        if (weft_write_full(fd, buf, (size_t)n) != n)
            break;
        conn_busy(&c, 0);       /* while stopping: ends the next read */
    }
    conn_leave(&c);
    weft_close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (!server_option(argc, argv, &i)) {
            fprintf(stderr, "usage: %s [--host ADDR] [--port PORT] [--grace MS] [--threads N] "
                    "[--idle-timeout MS]\n", argv[0]);
            return 2;
        }
    }
    int lfd = server_listen(host, port, 0, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo: listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    const char *br = strchr(host, ':') ? "[" : "";
    printf("echo listening on %s%s%s:%d\n", br, host, *br ? "]" : "", weft_local_port(lfd));
    fflush(stdout);
    weft_attr conn = { .stack_size = 64 * 1024, .name = "echo" };
    return server_main("echo", lfd, serve, &conn);
}

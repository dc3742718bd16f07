/* echo: a TCP echo server, one task per connection that writes back what it reads until the
 * client closes. The smallest complete weft server: listen, accept, spawn, read, write. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft.h>

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    ssize_t n;
    while ((n = weft_read(fd, buf, sizeof buf)) > 0)
        if (weft_write_full(fd, buf, (size_t)n) != n)
            break;
    weft_close(fd);
    return NULL;
}

static void *accept_loop(void *arg)
{
    int lfd = *(int *)arg;
    weft_attr conn = { .stack_size = 64 * 1024, .detached = 1, .name = "echo" };
    for (;;) {
        int fd = weft_accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                weft_sleep(50);     /* out of fds or memory: let connections finish first */
            } else if (errno != ECONNABORTED && errno != EINTR && errno != EPROTO) {
                perror("echo: accept");
                exit(1);
            }
            continue;
        }
        if (!weft_spawn(&conn, serve, (void *)(intptr_t)fd)) {
            weft_close(fd);
            weft_sleep(50);
        }
    }
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
        } else {
            fprintf(stderr, "usage: %s [--host ADDR] [--port PORT]\n", argv[0]);
            return 2;
        }
    }
    int lfd = weft_tcp_listen(host, port, 0, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo: listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    const char *br = strchr(host, ':') ? "[" : "";
    printf("echo listening on %s%s%s:%d\n", br, host, *br ? "]" : "", weft_local_port(lfd));
    fflush(stdout);
    if (weft_main(accept_loop, &lfd) != 0) {
        perror("weft_main");
        return 1;
    }
    return 0;
}

/* httpd: an HTTP/1.1 hello-world server, one task per connection, written as plain blocking
 * code: read, parse every complete request in the buffer, write the responses in one go.
 * Keep-alive, pipelining, HTTP/1.0, errors. The parsing and the response bytes are
 * examples/http.h's; the waiting is weft's. On SIGINT or SIGTERM it stops gracefully
 * (examples/shutdown.h): idle keep-alive connections are closed at once, a request in
 * flight is answered (with Connection: close) before its connection closes.
 * Deadlines: a request head must arrive in full within --header-timeout MS (default 10 s,
 * from the connection's start or from the head's first byte), and a connection may idle
 * between requests (or stall reading a response, or between reads of a body) for
 * --idle-timeout MS (default 60 s); past either, it is closed without an answer. 0: none. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft.h>

#include "http.h"
#include "shutdown.h"

/* A connection's buffers are small and on its task's stack, so a request touches a page or
 * two of it: that counts with 10,000 connections. A longer request head moves to the heap. */
#define IN_SMALL 1024
#define OUT_SIZE 1024

static const char *host = "127.0.0.1";
static int port = 8080;
static int64_t header_ms = 10000;   /* --header-timeout */

/* Close after an error or "Connection: close": send FIN, then read (for at most a second)
 * what the client still sends, so that closing does not turn into a reset that could
 * destroy the response before the client has read it. */
static void linger_close(int fd, char *buf, size_t size)
{
    shutdown(fd, SHUT_WR);
    weft_set_task_deadline(-1);
    weft_fd_set_deadline(fd, WEFT_READ, weft_now() + 1000);
    while (weft_read(fd, buf, size) > 0)
        ;
    weft_close(fd);
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char small[IN_SMALL], out[OUT_SIZE], *in = small;
    size_t cap = sizeof small, len = 0;    /* in[0..len) holds unparsed bytes */
    uint64_t skip = 0;      /* body bytes of the last request still to discard */
    int done = 0;           /* 1: answered a request that ends the connection */
    struct conn c;
    conn_enter(&c);
    /* The deadlines are the task's deadline scope, set before each read and before the
     * writes: two clock reads a request, no syscall. head_at: when the head being waited
     * for began (-1: none is). */
    int64_t now, head_at = weft_now();
    for (;;) {
        int64_t dl = conn_idle_deadline(weft_now());   /* idle from the last write's end */
        if (head_at >= 0 && !skip && header_ms > 0 && (dl < 0 || head_at + header_ms < dl))
            dl = head_at + header_ms;
        weft_set_task_deadline(dl);
        ssize_t n = weft_read(fd, in + len, cap - len);
        if (n <= 0)
            break;          /* the client closed (or reset) the connection, a deadline
                             * passed (ETIMEDOUT), or cancelled */
        now = weft_now();
        if (head_at < 0 && len == 0 && !skip)
            head_at = now;  /* the first bytes of a new head */
        conn_busy(&c, 1);
        weft_set_task_deadline(conn_idle_deadline(now));   /* for the writes */
        len += (size_t)n;
        size_t off = 0, olen = 0;
        while (!done) {
            size_t d = len - off < skip ? len - off : (size_t)skip;
            off += d;
            skip -= d;
            struct http_req rq;
            if (skip || !http_parse(in + off, len - off, &rq))
                break;      /* need more bytes */
            if (olen + HTTP_RESPONSE_MAX > sizeof out) {
                if (weft_write_full(fd, out, olen) != (ssize_t)olen)
                    goto out;
                olen = 0;
            }
            if (server_stopping())
                rq.keep_alive = rq.keep_alive_10 = 0;   /* the last one: say so */
            olen += http_respond(out + olen, &rq);
            off += rq.head_len;
            skip = rq.body_len;
            done = !rq.keep_alive;
            head_at = -1;   /* this head is in: a next one starts its own clock */
        }
        /* One write for all the responses to the requests this read completed. */
        if ((olen && weft_write_full(fd, out, olen) != (ssize_t)olen) || done)
            break;
        memmove(in, in + off, len - off);
        len -= off;
        if (len > 0 && head_at < 0)
            head_at = now;  /* part of the next head came with this read */
        conn_busy(&c, len > 0 || skip > 0);     /* idle between requests */
        if (len == cap && cap < HTTP_HEAD_MAX) {    /* a long head: go on in a bigger buffer */
            char *big = malloc(HTTP_HEAD_MAX);
            if (!big)
                break;
            memcpy(big, in, len);
            in = big;
            cap = HTTP_HEAD_MAX;
        }
    }
out:
    conn_leave(&c);
    if (done)
        linger_close(fd, in, cap);
    else
        weft_close(fd);
    if (in != small)
        free(in);
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--header-timeout") == 0 && i + 1 < argc &&
                   atol(argv[i + 1]) >= 0) {
            header_ms = atol(argv[++i]);
        } else if (!server_option(argc, argv, &i)) {
            fprintf(stderr, "usage: %s [--host ADDR] [--port PORT] [--grace MS] [--threads N] "
                    "[--header-timeout MS] [--idle-timeout MS]\n", argv[0]);
            return 2;
        }
    }
    int lfd = server_listen(host, port, 4096, WEFT_NODELAY);
    if (lfd < 0) {
        fprintf(stderr, "httpd: listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    const char *br = strchr(host, ':') ? "[" : "";
    printf("httpd listening on %s%s%s:%d\n", br, host, *br ? "]" : "", weft_local_port(lfd));
    fflush(stdout);
    weft_attr conn = { .stack_size = 64 * 1024, .name = "conn" };
    return server_main("httpd", lfd, serve, &conn);
}

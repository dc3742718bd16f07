/* epoll_httpd: the HTTP benchmark's baseline, a hand-written single-threaded epoll server that
 * behaves like examples/httpd and sends the same bytes (both use examples/http.h). Level-
 * triggered: one read per event into a shared buffer (--edge: edge-triggered, reading until
 * EAGAIN); per-connection memory only for a partial request or unsent output. No weft. */
#define _GNU_SOURCE     /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../examples/http.h"

#define OUT_SIZE 4096
#define MAX_EVENTS 256

struct conn {
    char *part;         /* an incomplete request head carried to the next read */
    size_t plen;
    uint64_t skip;      /* body bytes still to discard */
    char *pend;         /* output the socket did not take yet */
    size_t pend_len, pend_off;
    int64_t linger_until;   /* > 0: closing; discard input until EOF or this time */
    int close_after;        /* close once the pending output is sent */
    int open;
};

static int epfd, edge;
static struct conn *conns;
static size_t nconns;
static char in[HTTP_HEAD_MAX], out[OUT_SIZE];
static size_t nlinger;      /* connections lingering (the loop then wakes every 100 ms) */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void conn_close(int fd)
{
    struct conn *c = &conns[fd];
    free(c->part);
    free(c->pend);
    if (c->linger_until)
        nlinger--;
    memset(c, 0, sizeof *c);
    close(fd);      /* also leaves the epoll set */
}

static void watch(int fd, uint32_t events)
{
    struct epoll_event ev = { .events = events | (edge ? EPOLLET : 0), .data.fd = fd };
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

/* Send what we can; keep the rest and wait for EPOLLOUT (no reading meanwhile).
 * Returns 0, or -1 when the connection is gone. */
static int send_out(int fd, const char *buf, size_t len)
{
    struct conn *c = &conns[fd];
    size_t off = 0;
    while (off < len) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
        } else if (n < 0 && errno == EAGAIN) {
            if (!(c->pend = malloc(len - off)))
                return -1;
            memcpy(c->pend, buf + off, len - off);
            c->pend_len = len - off;
            c->pend_off = 0;
            watch(fd, EPOLLOUT);
            return 0;
        } else if (n < 0 && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

static void start_linger(int fd)
{
    shutdown(fd, SHUT_WR);
    conns[fd].linger_until = now_ms() + 1000;
    nlinger++;
}

/* Answer every complete request in buf[0..len); keep an incomplete one for later, and also
 * the rest of the input when the socket stops taking output (resumed by on_write). */
static void handle(int fd, char *buf, size_t len)
{
    struct conn *c = &conns[fd];
    size_t off = 0, olen = 0;
    int done = 0;
    while (!done && !c->pend) {
        size_t d = len - off < c->skip ? len - off : (size_t)c->skip;
        off += d;
        c->skip -= d;
        struct http_req rq;
        if (c->skip || !http_parse(buf + off, len - off, &rq))
            break;
        if (olen + HTTP_RESPONSE_MAX > sizeof out) {
            if (send_out(fd, out, olen) != 0)
                goto gone;
            olen = 0;
            if (c->pend)
                break;
        }
        olen += http_respond(out + olen, &rq);
        off += rq.head_len;
        c->skip = rq.body_len;
        done = !rq.keep_alive;
    }
    if (olen && send_out(fd, out, olen) != 0)
        goto gone;
    if (done) {
        c->close_after = 1;
        if (!c->pend)
            start_linger(fd);
        return;
    }
    if (off < len) {
        if (!(c->part = malloc(len - off)))
            goto gone;
        memcpy(c->part, buf + off, len - off);
        c->plen = len - off;
    }
    return;
gone:
    conn_close(fd);
}

/* Readable: one read (level-triggered) or reads until EAGAIN (edge-triggered). */
static void on_read(int fd)
{
    struct conn *c = &conns[fd];
    do {
        size_t have = c->plen;
        if (have) {     /* rare: a request split across reads */
            memcpy(in, c->part, have);
            free(c->part);
            c->part = NULL;
            c->plen = 0;
        }
        ssize_t n = read(fd, in + have, sizeof in - have);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                if (have && !(c->part = malloc(have)))
                    conn_close(fd);
                else if (have)
                    memcpy(c->part, in, c->plen = have);
                return;
            }
            conn_close(fd);
            return;
        }
        if (c->linger_until)
            continue;       /* closing: discard */
        handle(fd, in, have + (size_t)n);
    } while (edge && c->open && !c->pend);
}

static void on_write(int fd)
{
    struct conn *c = &conns[fd];
    while (c->pend_off < c->pend_len) {
        ssize_t n = send(fd, c->pend + c->pend_off, c->pend_len - c->pend_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_close(fd);
            return;
        }
        c->pend_off += (size_t)n;
    }
    free(c->pend);
    c->pend = NULL;
    watch(fd, EPOLLIN | EPOLLRDHUP);
    if (c->close_after) {
        start_linger(fd);
    } else if (c->plen) {   /* input held back while the output waited */
        size_t have = c->plen;
        memcpy(in, c->part, have);
        free(c->part);
        c->part = NULL;
        c->plen = 0;
        handle(fd, in, have);
    }
    if (edge && c->open && !c->pend)
        on_read(fd);    /* input that arrived meanwhile gave no new edge */
}

static void on_accept(int lfd, int64_t *paused_until)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                epoll_ctl(epfd, EPOLL_CTL_DEL, lfd, NULL);   /* back off, no spinning */
                *paused_until = now_ms() + 50;
            }
            return;     /* EAGAIN, ECONNABORTED, ...: wait for the next event */
        }
        if ((size_t)fd >= nconns) {
            size_t n = nconns * 2 > (size_t)fd ? nconns * 2 : (size_t)fd + 1;
            struct conn *m = realloc(conns, n * sizeof *m);
            if (!m) {
                close(fd);
                continue;
            }
            memset(m + nconns, 0, (n - nconns) * sizeof *m);
            conns = m;
            nconns = n;
        }
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (edge ? EPOLLET : 0), .data.fd = fd };
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
            continue;
        }
        conns[fd].open = 1;
        if (!edge)
            return;     /* level-triggered: one accept per event, like one read */
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--edge") == 0) {
            edge = 1;
        } else {
            fprintf(stderr, "usage: %s [--host IPV4] [--port PORT] [--edge]\n", argv[0]);
            return 2;
        }
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    socklen_t sl = sizeof sa;
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || lfd < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(lfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0 || (epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        fprintf(stderr, "epoll_httpd: listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    struct epoll_event lev = { .events = EPOLLIN, .data.fd = lfd }, evs[MAX_EVENTS];
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    printf("epoll_httpd listening on %s:%d\n", host, ntohs(sa.sin_port));
    fflush(stdout);
    int64_t paused_until = 0;
    for (;;) {
        int timeout = nlinger || paused_until ? 100 : -1;
        int n = epoll_wait(epfd, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            uint32_t ev = evs[i].events;
            if (fd == lfd) {
                on_accept(lfd, &paused_until);
                continue;
            }
            if (!conns[fd].open)
                continue;
            if (conns[fd].pend && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                on_write(fd);
            else if (!conns[fd].pend && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
                on_read(fd);
        }
        if (!nlinger && !paused_until)
            continue;
        int64_t now = now_ms();
        if (paused_until && now >= paused_until) {
            paused_until = 0;
            epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
        }
        for (size_t fd = 0; nlinger && fd < nconns; fd++)     /* rare: a closing client */
            if (conns[fd].linger_until && now >= conns[fd].linger_until)
                conn_close((int)fd);
    }
}

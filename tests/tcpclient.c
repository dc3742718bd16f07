/* tcpclient: the raw-socket client of the example servers' tests (tests/NAME.test): sends its
 * standard input to HOST:PORT (in chunks with pauses if asked), half-closes unless -k, and
 * copies what it receives to standard output until the server closes. Plain sockets, no weft;
 * every wait bounded (-t seconds, then exit status 3). With -r it resets the connection once
 * its input is sent (SO_LINGER 0), whatever the server still has to say. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char *data;      /* the whole input (a global, so leak checkers see it held) */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static void usage(void)
{
    fprintf(stderr, "usage: tcpclient [-t SECS] [-k | -r] [-c CHUNK -d MS] HOST PORT < input > output\n"
                    "  -k  keep the write side open (no half-close): wait for the server to close\n"
                    "  -r  reset the connection as soon as the input is sent\n"
                    "  -c, -d  send CHUNK bytes at a time, MS milliseconds apart\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int opt, keep = 0, reset = 0;
    long secs = 10, chunk = 0, delay = 0;
    while ((opt = getopt(argc, argv, "t:krc:d:")) != -1) {
        switch (opt) {
        case 't': secs = atol(optarg); break;
        case 'k': keep = 1; break;
        case 'r': reset = 1; break;
        case 'c': chunk = atol(optarg); break;
        case 'd': delay = atol(optarg); break;
        default: usage();
        }
    }
    if (argc - optind != 2)
        usage();
    /* The whole input first: it is small test data. */
    size_t len = 0, cap = 1 << 16;
    data = malloc(cap);
    ssize_t n;
    while (data && (n = read(0, data + len, cap - len)) > 0)
        if ((len += (size_t)n) == cap && !(data = realloc(data, cap *= 2)))
            break;
    if (!data) {
        perror("tcpclient: input");
        return 1;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[optind + 1])) };
    if (inet_pton(AF_INET, argv[optind], &sa.sin_addr) != 1)
        usage();
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("tcpclient: connect");
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    long long deadline = now_ms() + secs * 1000, next_send = 0;
    size_t sent = 0;
    int shut = 0;
    char buf[65536];
    for (;;) {
        if (sent == len && reset) {
            struct linger l = { .l_onoff = 1, .l_linger = 0 };
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            close(fd);
            return fflush(stdout) == 0 ? 0 : 1;
        }
        if (sent == len && !shut && !keep) {
            shutdown(fd, SHUT_WR);
            shut = 1;
        }
        long long now = now_ms(), wait = deadline - now;
        if (wait <= 0) {
            fprintf(stderr, "tcpclient: timed out after %ld s (sent %zu of %zu bytes)\n", secs, sent, len);
            return 3;
        }
        int sending = sent < len && now >= next_send;
        if (sent < len && !sending && next_send - now < wait)
            wait = next_send - now;
        struct pollfd p = { .fd = fd, .events = POLLIN | (sending ? POLLOUT : 0) };
        if (poll(&p, 1, (int)wait) < 0 && errno != EINTR) {
            perror("tcpclient: poll");
            return 1;
        }
        if (p.revents & POLLOUT) {
            size_t want = len - sent;
            if (chunk > 0 && want > (size_t)chunk)
                want = (size_t)chunk;
            n = send(fd, data + sent, want, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                perror("tcpclient: send");
                return 1;
            }
            if (n > 0) {
                sent += (size_t)n;
                next_send = delay > 0 ? now_ms() + delay : 0;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0)
                break;  /* the server closed: done */
            if (n < 0 && errno != EAGAIN && errno != EINTR) {
                perror("tcpclient: recv");
                return 1;
            }
            /* Flushed as it comes, so a test can see an answer before the server closes. */
            if (n > 0 && (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n || fflush(stdout) != 0)) {
                perror("tcpclient: output");
                return 1;
            }
        }
    }
    if (sent < len) {
        fprintf(stderr, "tcpclient: the server closed after %zu of %zu bytes\n", sent, len);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

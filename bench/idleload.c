/* idleload: many idle keep-alive connections to examples/httpd, from one process with one
 * epoll loop (no weft: the client's own cost stays out of the picture). It opens --conns N
 * connections, spread round-robin over --addrs K source addresses 127.0.0.2 .. 127.0.0.K+1
 * (bound before connect with IP_BIND_ADDRESS_NO_PORT, so each source address has its own
 * ephemeral ports: one address alone stops near 28,000), at most --window W connects and
 * first requests in flight at a time. Each connection sends one request and checks its
 * response byte for byte (the Date value checked for shape only); when all N are live it
 * prints "live N" and idles for --idle S seconds, during which any event on a connection
 * (the server closing it, or sending unasked) is counted as an error; then it prints
 * "idle-end", sends a request on --sample M connections chosen at random, checks each
 * response, prints "sample M served X correct Y" and closes everything.
 *
 *   idleload [--host H] --port P [--conns N] [--addrs K] [--window W] [--idle S]
 *            [--sample M] [--seed X]
 *
 * Raises its own RLIMIT_NOFILE (soft and, as root, hard) to N + 64. Exits 0 when every
 * connection opened, none was lost while idle and every sampled request was answered
 * correctly; 1 otherwise; 77 when the fd limit cannot be raised far enough. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define DATE_LEN 29     /* "Thu, 01 Jan 1970 00:00:00 GMT" */
#define PHASE_MS 60000  /* opening all, or answering the sample, longer than this: an error */

static const char req[] = "GET / HTTP/1.1\r\nHost: idle\r\n\r\n";
static const char head[] = "HTTP/1.1 200 OK\r\nServer: weft\r\nDate: ";
static const char tail[] = "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                           "Hello, World!";
#define RESP_LEN (sizeof head - 1 + DATE_LEN + sizeof tail - 1)

enum { C_NONE, C_CONNECTING, C_READING, C_IDLE, C_DEAD };

struct cn {
    int fd;
    uint8_t state;
    uint8_t bad;        /* a wrong byte was seen */
    uint16_t got;       /* response bytes read so far */
};

static struct cn *cs;
static long nconns = 10000, window = 512, sample = 1000;
static int naddrs = 8, port, epfd;
static long idle_s = 10;
static const char *host = "127.0.0.1";
static uint64_t seed = 1;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

/* Is byte c right at offset i of a response? The Date value only has to look like one. */
static int resp_byte_ok(size_t i, char c)
{
    static const char shape[] = "Aaa, 00 Aaa 0000 00:00:00 GMT";
    if (i < sizeof head - 1)
        return c == head[i];
    i -= sizeof head - 1;
    if (i < DATE_LEN) {
        char s = shape[i];
        if (s == 'A')
            return c >= 'A' && c <= 'Z';
        if (s == 'a')
            return c >= 'a' && c <= 'z';
        if (s == '0')
            return c >= '0' && c <= '9';
        return c == s;
    }
    return c == tail[i - DATE_LEN];
}

/* Read what connection k has; returns 1 when its whole response is in, 0 for more to come,
 * -1 on an error (a wrong byte, a close, a reset). */
static int take(long k)
{
    struct cn *c = &cs[k];
    char buf[512];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return 0;
        if (n <= 0)
            return -1;
        for (ssize_t i = 0; i < n; i++) {
            if (c->got >= RESP_LEN || !resp_byte_ok(c->got, buf[i]))
                c->bad = 1;
            c->got++;
        }
        if (c->bad)
            return -1;
        if (c->got == RESP_LEN)
            return 1;
    }
}

static int send_req(long k)
{
    ssize_t n = write(cs[k].fd, req, sizeof req - 1);
    cs[k].got = 0;
    return n == (ssize_t)(sizeof req - 1) ? 0 : -1;
}

static int open_one(long k)
{
    struct cn *c = &cs[k];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
    struct sockaddr_in src = { .sin_family = AF_INET };
    src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(k % naddrs));
    struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &dst.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&src, sizeof src) != 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof dst) != 0 && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->state = C_CONNECTING;
    struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)k };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void to_read(long k)
{
    struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)k };
    epoll_ctl(epfd, EPOLL_CTL_MOD, cs[k].fd, &ev);
    cs[k].state = C_READING;
}

/* One event for connection k while opening or sampling; returns 1 when its exchange is
 * done, 0 for more to come, -1 when it failed. */
static int step(long k, uint32_t events)
{
    struct cn *c = &cs[k];
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err || send_req(k))
            return -1;
        to_read(k);
        return 0;
    }
    if (c->state == C_READING) {
        int r = take(k);
        if (r == 1)
            c->state = C_IDLE;
        return r;
    }
    (void)events;
    return -1;      /* an event on an idle connection: closed or unasked data */
}

static void fail(long k, long *failed)
{
    if (cs[k].state != C_DEAD) {
        cs[k].state = C_DEAD;
        close(cs[k].fd);
        (*failed)++;
    }
}

static int raise_nofile(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max < want)
        rl.rlim_max = want;     /* needs CAP_SYS_RESOURCE, and fs.nr_open at least this */
    rl.rlim_cur = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        return 0;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    return -1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--host"))
            host = v;
        else if (!strcmp(o, "--port"))
            port = atoi(v);
        else if (!strcmp(o, "--conns"))
            nconns = atol(v);
        else if (!strcmp(o, "--addrs"))
            naddrs = atoi(v);
        else if (!strcmp(o, "--window"))
            window = atol(v);
        else if (!strcmp(o, "--idle"))
            idle_s = atol(v);
        else if (!strcmp(o, "--sample"))
            sample = atol(v);
        else if (!strcmp(o, "--seed"))
            seed = strtoull(v, NULL, 0) | 1;
        else
            port = 0;
    }
    if (port <= 0 || nconns <= 0 || naddrs <= 0 || naddrs > 250 || window <= 0 ||
        idle_s < 0 || sample < 0) {
        fprintf(stderr, "usage: idleload [--host H] --port P [--conns N] [--addrs K] "
                "[--window W] [--idle S] [--sample M] [--seed X]\n");
        return 2;
    }
    if (sample > nconns)
        sample = nconns;
    if (raise_nofile((rlim_t)nconns + 64) != 0) {
        fprintf(stderr, "idleload: cannot raise RLIMIT_NOFILE to %ld: %s\n", nconns + 64,
                strerror(errno));
        return 77;
    }
    cs = calloc((size_t)nconns, sizeof *cs);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (!cs || epfd < 0) {
        perror("idleload");
        return 1;
    }
    enum { EVS = 1024 };
    static struct epoll_event evs[EVS];
    long next = 0, pending = 0, live = 0, failed = 0;
    int64_t t0 = now_ms(), end = t0 + PHASE_MS;

    /* Open: at most `window` connects and first exchanges at a time. */
    while (live + failed < nconns && now_ms() < end) {
        while (pending < window && next < nconns) {
            if (open_one(next) == 0)
                pending++;
            else
                fail(next, &failed);
            next++;
        }
        int n = epoll_wait(epfd, evs, EVS, 1000);
        for (int i = 0; i < n; i++) {
            long k = (long)evs[i].data.u64;
            int was_live = cs[k].state == C_IDLE;
            int r = step(k, evs[i].events);
            if (was_live) {     /* a live one closed before all were open */
                fail(k, &failed);
                live--;
                continue;
            }
            if (r != 0)
                pending--;
            if (r == 1)
                live++;
            else if (r < 0)
                fail(k, &failed);
        }
    }
    printf("live %ld open_ms %lld failed %ld\n", live, (long long)(now_ms() - t0),
           nconns - live);
    fflush(stdout);
    int ok = live == nconns;

    /* Idle: nothing should happen on any connection. */
    long lost = 0;
    int64_t idle_end = now_ms() + idle_s * 1000;
    for (int64_t t; (t = now_ms()) < idle_end;) {
        int n = epoll_wait(epfd, evs, EVS, (int)(idle_end - t));
        for (int i = 0; i < n; i++)
            fail((long)evs[i].data.u64, &lost);
    }
    printf("idle-end lost %ld\n", lost);
    fflush(stdout);
    ok = ok && lost == 0;

    /* Sample: a request on `sample` live connections chosen at random (a partial shuffle
     * of the live ones), all sent at once; each answer checked. */
    long *idx = malloc((size_t)nconns * sizeof *idx), nl = 0;
    if (!idx) {
        perror("idleload");
        return 1;
    }
    for (long k = 0; k < nconns; k++)
        if (cs[k].state == C_IDLE)
            idx[nl++] = k;
    long m = sample < nl ? sample : nl, served = 0, correct = 0, sent = 0;
    for (long i = 0; i < m; i++) {
        long j = i + (long)(rnd() % (uint64_t)(nl - i)), k = idx[j];
        idx[j] = idx[i];
        idx[i] = k;
        if (send_req(k) == 0) {
            to_read(k);
            sent++;
        } else {
            fail(k, &failed);
        }
    }
    end = now_ms() + PHASE_MS;
    long waiting = sent;
    while (waiting > 0 && now_ms() < end) {
        int n = epoll_wait(epfd, evs, EVS, 1000);
        for (int i = 0; i < n; i++) {
            long k = (long)evs[i].data.u64;
            struct cn *c = &cs[k];
            if (c->state != C_READING) {
                fail(k, &lost);     /* an idle one not in the sample closed */
                continue;
            }
            int r = take(k);
            if (r == 0)
                continue;
            waiting--;
            if (c->got > 0)
                served++;
            if (r == 1) {
                correct++;
                c->state = C_IDLE;
            } else {
                fail(k, &failed);
            }
        }
    }
    printf("sample %ld served %ld correct %ld\n", m, served, correct);
    fflush(stdout);
    ok = ok && m == sample && correct == sample && lost == 0;
    for (long k = 0; k < nconns; k++)
        if (cs[k].state != C_DEAD && cs[k].state != C_NONE)
            close(cs[k].fd);
    close(epfd);
    free(idx);
    free(cs);
    return ok ? 0 : 1;
}

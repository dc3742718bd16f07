/* soakload: the load generator of the soak test (tests/soak.test, bench/soak.sh), written
 * with weft: one task per simulated client. Well-behaved clients check every response byte
 * for byte (HTTP: examples/httpd's "Hello, World!" with the Date value masked; echo: the
 * bytes sent); misbehaving ones disconnect at random points of a request or a response
 * (sometimes with a reset), drip a request one byte a second (slowloris, which the server
 * must cut off), or half-close after their request. Also a burst: N connections open at
 * once, each answered, then all closed.
 *
 *   soakload [--host H] --port P [--mode http|echo] [--seconds S] [--conns N] [--slow K]
 *            [--slow-cut MS] [--report SECS] [--seed X] [--burst N]
 *
 * Prints a summary line (and one every --report seconds); exits 1 when a well-formed
 * request got a wrong answer or none, or a slowloris client was not cut within --slow-cut. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft.h>

#define DATE_LEN 29     /* "Thu, 01 Jan 1970 00:00:00 GMT" */
#define IO_MS 15000     /* a well-behaved exchange that takes longer is an error */
#define PIPE_MAX 16

static const char *host = "127.0.0.1";
static int port, mode_echo, conns = 8, slow, report;
static int64_t seconds = 10, slow_cut = 5000, burst, end_at;
static uint64_t seed;
static int stop;

static const char req_ka[] = "GET / HTTP/1.1\r\nHost: soak\r\n\r\n";
static const char req_close[] = "GET / HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n";
static const char resp_head[] = "HTTP/1.1 200 OK\r\nServer: weft\r\nDate: ";
static const char resp_ka[] = "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                              "Hello, World!";
static const char resp_close[] = "\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n"
                                 "Connection: close\r\n\r\nHello, World!";
#define RESP_KA (sizeof resp_head - 1 + DATE_LEN + sizeof resp_ka - 1)
#define RESP_CLOSE (sizeof resp_head - 1 + DATE_LEN + sizeof resp_close - 1)

static struct {
    long requests, ok, wrong, errors, rude, slow_cut, slow_late, conns, half;
} st, last;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int dial(void)
{
    int fd = weft_tcp_dial(host, port, WEFT_NODELAY, weft_now() + IO_MS);
    if (fd < 0) {
        fprintf(stderr, "soakload: connect: %s\n", strerror(errno));
        st.errors++;
        return -1;
    }
    st.conns++;
    return fd;
}

/* Close with a reset instead of a FIN (SO_LINGER 0). */
static void reset_close(int fd)
{
    struct linger l = { 1, 0 };
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    weft_close(fd);
}

/* Is r (RESP_KA or RESP_CLOSE bytes) the response expected? */
static int resp_ok(const char *r, int close)
{
    const char *tail = close ? resp_close : resp_ka;
    size_t h = sizeof resp_head - 1;
    if (memcmp(r, resp_head, h) != 0 || memcmp(r + h + DATE_LEN, tail, strlen(tail)) != 0)
        return 0;
    for (int i = 0; i < DATE_LEN; i++)
        if (r[h + i] < ' ' || r[h + i] > '~')
            return 0;
    return r[h + DATE_LEN - 3] == 'G';
}

static void fail(const char *what, ssize_t got, size_t want)
{
    st.errors++;
    fprintf(stderr, "soakload: %s: got %zd of %zu bytes (%s)\n", what, got, want,
            got < 0 ? strerror(errno) : "short");
}

/* Send k requests in one write (the last one with Connection: close if close), read and
 * check the k responses, and for close the EOF after them. 0, or -1 (counted) on error. */
static int http_exchange(int fd, int k, int close, int half)
{
    char out[PIPE_MAX * sizeof req_close], in[PIPE_MAX * RESP_CLOSE + 1];
    size_t olen = 0, ilen = 0;
    for (int i = 0; i < k; i++) {
        const char *r = close && i == k - 1 ? req_close : req_ka;
        size_t n = strlen(r);
        memcpy(out + olen, r, n);
        olen += n;
        ilen += close && i == k - 1 ? RESP_CLOSE : RESP_KA;
    }
    st.requests += k;
    ssize_t n = weft_write_full(fd, out, olen);
    if (n != (ssize_t)olen) {
        fail("send", n, olen);
        return -1;
    }
    if (half)
        shutdown(fd, SHUT_WR);
    n = weft_read_full(fd, in, ilen);
    if (n != (ssize_t)ilen) {
        fail("response", n, ilen);
        return -1;
    }
    for (size_t at = 0, i = 0; i < (size_t)k; i++) {
        int c = close && i == (size_t)k - 1;
        if (!resp_ok(in + at, c)) {
            st.wrong++;
            fprintf(stderr, "soakload: wrong response: %.*s\n", (int)(c ? RESP_CLOSE : RESP_KA),
                    in + at);
            return -1;
        }
        at += c ? RESP_CLOSE : RESP_KA;
    }
    if (close || half) {
        n = weft_read(fd, in, 1);   /* the server closes after the last response */
        if (n != 0) {
            fail("EOF after the last response", n, 0);
            return -1;
        }
    }
    st.ok += k;
    return 0;
}

static void *http_client(void *arg)
{
    uint64_t s = seed + (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    rnd(&s);
    while (!stop && weft_now() < end_at) {
        int fd = dial();
        if (fd < 0) {
            weft_sleep(100);
            continue;
        }
        weft_set_task_deadline(weft_now() + IO_MS);
        unsigned kind = (unsigned)(rnd(&s) % 10);
        if (kind < 4) {             /* keep-alive: requests one after the other */
            int n = 1 + (int)(rnd(&s) % 20);
            for (int i = 0; i < n && http_exchange(fd, 1, i == n - 1 && (rnd(&s) & 1), 0) == 0; i++)
                ;
            weft_close(fd);
        } else if (kind < 6) {      /* pipelined */
            int k = 2 + (int)(rnd(&s) % (PIPE_MAX - 1));
            http_exchange(fd, k, (int)(rnd(&s) & 1), 0);
            weft_close(fd);
        } else if (kind < 7) {      /* half-closed after the request */
            st.half++;
            http_exchange(fd, 1 + (int)(rnd(&s) % 4), 0, 1);
            weft_close(fd);
        } else if (kind < 8) {      /* gone in the middle of a request */
            size_t cut = (size_t)(rnd(&s) % (sizeof req_ka - 1));
            st.rude++;
            weft_write_full(fd, req_ka, cut);
            if (rnd(&s) & 1)
                reset_close(fd);
            else
                weft_close(fd);
        } else {                    /* gone in the middle of the responses */
            char out[PIPE_MAX * sizeof req_ka], in[PIPE_MAX * RESP_KA];
            int k = 1 + (int)(rnd(&s) % PIPE_MAX);
            for (int i = 0; i < k; i++)
                memcpy(out + i * (sizeof req_ka - 1), req_ka, sizeof req_ka - 1);
            st.rude++;
            weft_write_full(fd, out, (size_t)k * (sizeof req_ka - 1));
            weft_read_full(fd, in, (size_t)(rnd(&s) % ((size_t)k * RESP_KA)));
            if (rnd(&s) & 1)
                reset_close(fd);
            else
                weft_close(fd);     /* unread bytes: the kernel resets it anyway */
        }
        weft_set_task_deadline(-1);
    }
    return NULL;
}

static void *echo_client(void *arg)
{
    uint64_t s = seed + (uintptr_t)arg * 0x9e3779b97f4a7c15ull;
    enum { BUF = 65536 };
    char *out = malloc(BUF), *in = malloc(BUF);
    if (!out || !in) {
        fprintf(stderr, "soakload: out of memory\n");
        exit(1);
    }
    rnd(&s);
    while (!stop && weft_now() < end_at) {
        int fd = dial();
        if (fd < 0) {
            weft_sleep(100);
            continue;
        }
        weft_set_task_deadline(weft_now() + IO_MS);
        unsigned kind = (unsigned)(rnd(&s) % 10);
        int rounds = kind < 7 ? 1 + (int)(rnd(&s) % 10) : 1;
        for (int r = 0; r < rounds; r++) {
            size_t n = 1 + (size_t)(rnd(&s) % (rnd(&s) & 1 ? 64 : BUF));
            uint64_t b = rnd(&s);
            char *o = kind < 7 ? out : in;
            for (size_t i = 0; i < n; i++)
                o[i] = (char)(b + i * 7);
            st.requests++;
            if (kind >= 8) {        /* rude: send, read part of it back or none, go */
                st.rude++;
                weft_write_full(fd, o, n);
                weft_read_full(fd, out, (size_t)(rnd(&s) % n));
                break;
            }
            ssize_t w = weft_write_full(fd, o, n);
            if (w != (ssize_t)n) {
                fail("echo send", w, n);
                break;
            }
            if (kind == 7) {
                st.half++;
                shutdown(fd, SHUT_WR);
            }
            char *back = kind < 7 ? in : out;
            ssize_t got = weft_read_full(fd, back, n);
            if (got != (ssize_t)n) {
                fail("echo", got, n);
                break;
            }
            if (memcmp(o, back, n) != 0) {
                st.wrong++;
                fprintf(stderr, "soakload: echo: wrong bytes back\n");
                break;
            }
            if (kind == 7 && weft_read(fd, back, 1) != 0) {
                fail("EOF after the echo", -1, 0);
                break;
            }
            st.ok++;
        }
        if (kind >= 8 && (rnd(&s) & 1))
            reset_close(fd);
        else
            weft_close(fd);
        weft_set_task_deadline(-1);
    }
    free(out);
    free(in);
    return NULL;
}

/* Slowloris: a request one byte a second; the server must close before the head is in,
 * within slow_cut ms. */
static void *slow_client(void *arg)
{
    (void)arg;
    while (!stop && weft_now() < end_at) {
        int fd = dial();
        if (fd < 0) {
            weft_sleep(100);
            continue;
        }
        int64_t t0 = weft_now();
        int cut = 0;
        char c;
        for (size_t i = 0; i < sizeof req_ka - 2 && !cut; i++) {
            if (send(fd, req_ka + i, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
                cut = 1;    /* reset or closed by the server */
                break;
            }
            /* A second to the next byte, or the server's EOF (or reset) first. */
            weft_set_task_deadline(weft_now() + 1000);
            ssize_t n = weft_read(fd, &c, 1);
            if (n == 0 || (n < 0 && errno != ETIMEDOUT))
                cut = 1;
            else if (n > 0)
                break;      /* an answer to half a request: wrong */
            weft_set_task_deadline(-1);
            if (stop)
                break;
        }
        weft_set_task_deadline(-1);
        int64_t took = weft_now() - t0;
        if (cut && took <= slow_cut) {
            st.slow_cut++;
        } else if (!stop) {
            st.slow_late++;
            fprintf(stderr, "soakload: slowloris %s after %lld ms\n", cut ? "cut only" : "not cut",
                    (long long)took);
        }
        weft_close(fd);
    }
    return NULL;
}

static void print(const char *tag, double secs)
{
    printf("soakload: %s %.1f s: %ld requests (%.0f/s), %ld ok, %ld wrong, %ld errors, %ld rude, "
           "%ld half-closed, %ld slowloris cut, %ld not cut in time, %ld connections\n",
           tag, secs, st.requests, secs > 0 ? (st.requests - last.requests) / secs : 0.0, st.ok,
           st.wrong, st.errors, st.rude, st.half, st.slow_cut, st.slow_late, st.conns);
    fflush(stdout);
}

static void *reporter(void *arg)
{
    (void)arg;
    int64_t t0 = weft_now(), prev = t0;
    while (weft_sleep(report * 1000) == 0 && !stop) {
        int64_t now = weft_now();
        char tag[32];
        snprintf(tag, sizeof tag, "at %llds", (long long)((now - t0) / 1000));
        print(tag, (double)(now - prev) / 1000);
        last = st;
        prev = now;
    }
    return NULL;
}

/* Burst: n connections at once, each sends a request and reads its answer, then holds the
 * connection until all are answered; then all close. */
static weft_wg burst_wg = WEFT_WG_INIT, burst_release = WEFT_WG_INIT;
static void *burst_client(void *arg)
{
    (void)arg;
    int fd = dial();
    if (fd >= 0) {
        weft_set_task_deadline(weft_now() + 60000);
        http_exchange(fd, 1, 0, 0);
        weft_set_task_deadline(-1);
    }
    weft_wg_done(&burst_wg);
    weft_wg_wait(&burst_release, -1);
    if (fd >= 0)
        weft_close(fd);
    return NULL;
}

static void *run(void *arg)
{
    (void)arg;
    static weft_group g = WEFT_GROUP_INIT;
    weft_attr a = { .stack_size = 64 * 1024, .name = "client" };
    int64_t t0 = weft_now();
    if (burst) {
        weft_wg_add(&burst_wg, (int)burst);
        weft_wg_add(&burst_release, 1);
        for (int64_t i = 0; i < burst; i++)
            if (!weft_group_spawn(&g, &a, burst_client, NULL)) {
                perror("soakload: spawn");
                return NULL;
            }
        weft_wg_wait(&burst_wg, -1);
        printf("soakload: burst: %lld connections open and answered\n", (long long)burst);
        fflush(stdout);
        /* Hold them while the caller measures (it signals by closing our stdin). */
        char c;
        while (weft_read(0, &c, 1) > 0)
            ;
        weft_wg_done(&burst_release);
        weft_group_wait(&g, -1);
        print("burst", (double)(weft_now() - t0) / 1000);
        return NULL;
    }
    end_at = t0 + seconds * 1000;
    weft_task *rep = report ? weft_spawn(NULL, reporter, NULL) : NULL;
    for (int i = 0; i < conns; i++)
        weft_group_spawn(&g, &a, mode_echo ? echo_client : http_client, (void *)(uintptr_t)i);
    for (int i = 0; i < slow; i++)
        weft_group_spawn(&g, &a, slow_client, NULL);
    weft_sleep_until(end_at);
    stop = 1;
    weft_group_wait(&g, -1);
    if (rep) {
        weft_cancel(rep);
        weft_join(rep, NULL);
    }
    memset(&last, 0, sizeof last);
    print("total", (double)(weft_now() - t0) / 1000);
    return NULL;
}

int main(int argc, char **argv)
{
    seed = (uint64_t)weft_now() | 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "soakload: %s needs a value\n", o);
            return 2;
        }
        i++;
        if (strcmp(o, "--host") == 0) host = v;
        else if (strcmp(o, "--port") == 0) port = atoi(v);
        else if (strcmp(o, "--mode") == 0) mode_echo = strcmp(v, "echo") == 0;
        else if (strcmp(o, "--seconds") == 0) seconds = atol(v);
        else if (strcmp(o, "--conns") == 0) conns = atoi(v);
        else if (strcmp(o, "--slow") == 0) slow = atoi(v);
        else if (strcmp(o, "--slow-cut") == 0) slow_cut = atol(v);
        else if (strcmp(o, "--report") == 0) report = atoi(v);
        else if (strcmp(o, "--seed") == 0) seed = strtoull(v, NULL, 0) | 1;
        else if (strcmp(o, "--burst") == 0) burst = atol(v);
        else {
            fprintf(stderr, "soakload: unknown option %s\n", o);
            return 2;
        }
    }
    if (port <= 0) {
        fprintf(stderr, "usage: soakload [--host H] --port P [--mode http|echo] [--seconds S] "
                "[--conns N] [--slow K] [--slow-cut MS] [--report SECS] [--seed X] [--burst N]\n");
        return 2;
    }
    printf("soakload: seed %llu\n", (unsigned long long)seed);
    if (weft_main(run, NULL) != 0) {
        perror("soakload: weft_main");
        return 1;
    }
    return st.wrong || st.errors || st.slow_late || (!burst && st.ok == 0) ? 1 : 0;
}

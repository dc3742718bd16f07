/* Cross-thread ping-pong, ns per message (one hop): a weft shared channel between two loops
 * on two threads, beside a pthread mutex+condvar ping-pong and a blocking eventfd one, in
 * interleaved rounds; prints each one's median and the median of per-round ratios to the
 * mutex+condvar baseline; then, in the same rounds, a loop's task receiving from another
 * loop over buffered shared channels: weft_chan_select over two of them (8 elements each)
 * beside a plain weft_chan_recv from one (16), with the median of per-round ratios.
 * usage: bench/xchan [ROUNDS [MESSAGES]] */
#include "bench.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <weft.h>

static long N = 20000;

/* ---- weft: two loops ---- */
static weft_chan *ab, *ba;
static void *echo(void *a) { long v; while (weft_chan_recv(ab, &v, -1) == 0) weft_chan_send(ba, &v, -1); return a; }
static void *drive(void *a) { long v; for (long i = 0; i < N; i++) { weft_chan_send(ab, &i, -1); weft_chan_recv(ba, &v, -1); } weft_chan_close(ab); return a; }
static void *loop_echo(void *a) { weft_go(echo, NULL); weft_run(); return a; }
static double run_weft(void)
{
    ab = weft_chan_make_shared(sizeof(long), 0);
    ba = weft_chan_make_shared(sizeof(long), 0);
    pthread_t th;
    pthread_create(&th, NULL, loop_echo, NULL);
    double t0 = now_ns();
    weft_go(drive, NULL);
    weft_run();
    double t = now_ns() - t0;
    pthread_join(th, NULL);
    weft_chan_free(ab);
    weft_chan_free(ba);
    return t / (2.0 * N);
}

/* ---- mutex + condvar ---- */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long turn;   /* even: the driver's, odd: the echo's; -1 stop */
static void *cv_echo(void *a)
{
    pthread_mutex_lock(&mu);
    for (;;) {
        while (turn >= 0 && !(turn & 1))
            pthread_cond_wait(&cv, &mu);
        if (turn < 0)
            break;
        turn++;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
    return a;
}
static double run_cv(void)
{
    turn = 0;
    pthread_t th;
    pthread_create(&th, NULL, cv_echo, NULL);
    double t0 = now_ns();
    pthread_mutex_lock(&mu);
    for (long i = 0; i < N; i++) {
        turn++;
        pthread_cond_broadcast(&cv);
        while (turn & 1)
            pthread_cond_wait(&cv, &mu);
    }
    turn = -1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    double t = now_ns() - t0;
    pthread_join(th, NULL);
    return t / (2.0 * N);
}

/* ---- eventfd ---- */
static int e1, e2;
static void *ev_echo(void *a)
{
    uint64_t v;
    for (long i = 0; i < N; i++) {
        if (read(e1, &v, 8) != 8 || write(e2, &v, 8) != 8)
            abort();
    }
    return a;
}
static double run_ev(void)
{
    e1 = eventfd(0, 0);
    e2 = eventfd(0, 0);
    pthread_t th;
    pthread_create(&th, NULL, ev_echo, NULL);
    double t0 = now_ns();
    uint64_t v = 1;
    for (long i = 0; i < N; i++) {
        if (write(e1, &v, 8) != 8 || read(e2, &v, 8) != 8)
            abort();
    }
    double t = now_ns() - t0;
    pthread_join(th, NULL);
    close(e1);
    close(e2);
    return t / (2.0 * N);
}

/* ---- same thread: two tasks of one loop, a shared channel beside a local one ---- */
static weft_chan *sa, *sb;
static void *s_echo(void *a) { long v; while (weft_chan_recv(sa, &v, -1) == 0) weft_chan_send(sb, &v, -1); return a; }
static void *s_drive(void *a) { long v; for (long i = 0; i < N * 10; i++) { weft_chan_send(sa, &i, -1); weft_chan_recv(sb, &v, -1); } weft_chan_close(sa); return a; }
static double run_same(int shared)
{
    sa = shared ? weft_chan_make_shared(sizeof(long), 0) : weft_chan_make(sizeof(long), 0);
    sb = shared ? weft_chan_make_shared(sizeof(long), 0) : weft_chan_make(sizeof(long), 0);
    weft_go(s_echo, NULL);
    weft_go(s_drive, NULL);
    double t0 = now_ns();
    weft_run();
    double t = now_ns() - t0;
    weft_chan_free(sa);
    weft_chan_free(sb);
    return t / (20.0 * N);
}

/* ---- select over two shared channels beside a plain receive from one ---- */
static weft_chan *xa, *xb;
static int xsel;
static void *x_feed(void *a)
{
    for (long i = 0; i < N * 10; i++)
        weft_chan_send(xsel && (i & 1) ? xb : xa, &i, -1);
    weft_chan_close(xa);
    weft_chan_close(xb);
    return a;
}
static void *x_feed_loop(void *a) { weft_go(x_feed, NULL); weft_run(); return a; }
static void *x_take(void *a)
{
    long v, sum = 0;
    if (!xsel) {
        while (weft_chan_recv(xa, &v, -1) == 0)
            sum += v;
        return (void *)sum;
    }
    long va, vb;
    weft_chan_clause cl[2] = { { xa, WEFT_CHAN_RECV, &va, 0 }, { xb, WEFT_CHAN_RECV, &vb, 0 } };
    int n = 2;
    while (n > 0) {
        int i = weft_chan_select(cl, n, -1);
        if (i < 0)
            abort();
        if (cl[i].err) {
            cl[i] = cl[--n];
            continue;
        }
        sum += *(long *)cl[i].elem;
    }
    return (void *)sum;
}
static double run_xsel(int sel)
{
    xsel = sel;
    /* The same room in all: 16 elements in one channel, or 8 in each of two. */
    xa = weft_chan_make_shared(sizeof(long), sel ? 8 : 16);
    xb = weft_chan_make_shared(sizeof(long), 8);
    pthread_t th;
    double t0 = now_ns();
    pthread_create(&th, NULL, x_feed_loop, NULL);
    weft_go(x_take, NULL);
    weft_run();
    pthread_join(th, NULL);
    double t = now_ns() - t0;
    weft_chan_free(xa);
    weft_chan_free(xb);
    return t / (10.0 * N);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 9;
    if (argc > 2)
        N = atol(argv[2]);
    if (rounds < 1 || rounds > 1000 || N < 1)
        return 2;
    double w[1000], c[1000], e[1000], rw[1000], re[1000], l[1000], sh[1000], rs[1000];
    double xr[1000], xs[1000], rx[1000];
    for (int r = 0; r < rounds; r++) {
        c[r] = run_cv();
        w[r] = run_weft();
        e[r] = run_ev();
        rw[r] = w[r] / c[r];
        re[r] = e[r] / c[r];
        l[r] = run_same(0);
        sh[r] = run_same(1);
        rs[r] = sh[r] / l[r];
        xr[r] = run_xsel(0);
        xs[r] = run_xsel(1);
        rx[r] = xs[r] / xr[r];
    }
    printf("cross-thread ping-pong, %ld round trips x %d rounds, ns per message (median)\n", N, rounds);
    printf("  mutex+condvar     %8.0f ns   1.00x\n", median(c, rounds));
    printf("  eventfd           %8.0f ns   %.2fx\n", median(e, rounds), median(re, rounds));
    printf("  weft shared chan  %8.0f ns   %.2fx\n", median(w, rounds), median(rw, rounds));
    printf("same thread, two tasks of one loop, ns per message (median)\n");
    printf("  local chan        %8.1f ns   1.00x\n", median(l, rounds));
    printf("  shared chan       %8.1f ns   %.2fx\n", median(sh, rounds), median(rs, rounds));
    printf("another loop feeds buffered shared channels, ns per message received (median)\n");
    printf("  recv from one     %8.1f ns   1.00x\n", median(xr, rounds));
    printf("  select over two   %8.1f ns   %.2fx\n", median(xs, rounds), median(rx, rounds));
    return 0;
}

/* bench/offload: what a call through the offload pool costs. roundtrip: one task calling
 * weft_offload on a function that does nothing, n times in a row (ns per call: queue, a pool
 * thread wakes, runs it, posts the completion, the loop's eventfd wakes the task), beside
 * handmade, the same round trip written by hand (a pthread worker, a mutex and condition
 * variable queue, and an eventfd the caller blocks on with read), in the same rounds.
 * gai1, gai4: getaddrinfo("localhost") through weft_getaddrinfo with pool sizes 1 and 4, 64
 * tasks asking at once (ns per lookup, from the first to the last), beside plain, libc's
 * getaddrinfo in a loop on the main thread. */
#include "bench.h"

#include "weft.h"

#include <netdb.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>

static const char usage[] =
    "Variants (-o): roundtrip, handmade, gai1, gai4, plain.\n"
    "-n counts calls (roundtrip, handmade) or lookups (gai1, gai4, plain).\n"
    "Prints each variant's median and best per round, and the medians of the per-round ratios\n"
    "roundtrip/handmade, gai1/plain and gai4/plain.\n";

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static void nothing(void *arg)
{
    (*(long *)arg)++;
}

/* ---- roundtrip: weft_offload from one task ---------------------------------------------- */

static long rt_n;
static double rt_ns;

static void *rt_task(void *arg)
{
    (void)arg;
    long x = 0;
    if (weft_offload(nothing, &x, -1) != 0)      /* the port and a thread exist before the clock */
        die("weft_offload");
    double t0 = now_ns();
    for (long i = 0; i < rt_n; i++)
        if (weft_offload(nothing, &x, -1) != 0)
            die("weft_offload");
    rt_ns = now_ns() - t0;
    if (x != rt_n + 1)
        abort();
    return NULL;
}

static double run_roundtrip(long n)
{
    rt_n = n;
    if (weft_main(rt_task, NULL) != 0)
        die("weft_main");
    return rt_ns;
}

/* ---- handmade: a worker thread, a locked queue, an eventfd ------------------------------ */

struct hjob {
    struct hjob *next;
    void (*fn)(void *);
    void *arg;
    int efd;
};

static pthread_mutex_t h_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t h_cv = PTHREAD_COND_INITIALIZER;
static struct hjob *h_head, **h_tail = &h_head;
static int h_efd = -1;

static void *h_worker(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&h_mu);
        while (!h_head)
            pthread_cond_wait(&h_cv, &h_mu);
        struct hjob *j = h_head;
        if (!(h_head = j->next))
            h_tail = &h_head;
        pthread_mutex_unlock(&h_mu);
        j->fn(j->arg);
        uint64_t one = 1;
        if (write(j->efd, &one, sizeof one) != sizeof one)
            die("write");
    }
    return NULL;
}

static void h_call(void (*fn)(void *), void *arg)
{
    struct hjob j = { NULL, fn, arg, h_efd };
    pthread_mutex_lock(&h_mu);
    *h_tail = &j;
    h_tail = &j.next;
    pthread_cond_signal(&h_cv);
    pthread_mutex_unlock(&h_mu);
    uint64_t v;
    if (read(h_efd, &v, sizeof v) != sizeof v)
        die("read");
}

static double run_handmade(long n)
{
    if (h_efd < 0) {
        pthread_t t;
        if ((h_efd = eventfd(0, EFD_CLOEXEC)) < 0 || pthread_create(&t, NULL, h_worker, NULL) != 0)
            die("handmade setup");
    }
    long x = 0;
    h_call(nothing, &x);
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        h_call(nothing, &x);
    double t = now_ns() - t0;
    if (x != n + 1)
        abort();
    return t;
}

/* ---- lookups ----------------------------------------------------------------------------- */

#define GAI_TASKS 64

static long gai_each;

static void lookup(int (*gai)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
    if (gai("localhost", "80", &hints, &res) != 0) {
        fprintf(stderr, "getaddrinfo failed\n");
        exit(1);
    }
    freeaddrinfo(res);
}

static void *gai_task(void *arg)
{
    (void)arg;
    for (long i = 0; i < gai_each; i++)
        lookup(weft_getaddrinfo);
    return NULL;
}

static double gai_ns;

static void *gai_main(void *arg)
{
    (void)arg;
    lookup(weft_getaddrinfo);
    weft_task *h[GAI_TASKS];
    double t0 = now_ns();
    for (int i = 0; i < GAI_TASKS; i++)
        if (!(h[i] = weft_spawn(NULL, gai_task, NULL)))
            die("weft_spawn");
    for (int i = 0; i < GAI_TASKS; i++)
        weft_join(h[i], NULL);
    gai_ns = now_ns() - t0;
    return NULL;
}

static double run_gai(long n, int threads)
{
    if (weft_offload_set_threads(threads) != 0)
        die("weft_offload_set_threads");
    gai_each = n / GAI_TASKS;
    if (weft_main(gai_main, NULL) != 0)
        die("weft_main");
    return gai_ns;
}

static double run_gai1(long n)
{
    return run_gai(n, 1);
}

static double run_gai4(long n)
{
    return run_gai(n, 4);
}

static double run_plain(long n)
{
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        lookup(getaddrinfo);
    return now_ns() - t0;
}

/* ---- driver ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct bench_opts o;
    bench_parse(argc, argv, &o, usage);
    int do_rt = bench_selected(&o, "roundtrip"), do_h = bench_selected(&o, "handmade");
    int do_g1 = bench_selected(&o, "gai1"), do_g4 = bench_selected(&o, "gai4");
    int do_pl = bench_selected(&o, "plain");
    long n_rt = do_rt ? calibrate(&o, run_roundtrip, 1) : 0;
    long n_h = do_h ? calibrate(&o, run_handmade, 1) : 0;
    long n_g = (do_g1 || do_g4) ? calibrate(&o, run_gai4, GAI_TASKS) : 0;
    long n_pl = do_pl ? calibrate(&o, run_plain, 1) : 0;
    int R = o.rounds;
    double *rt = calloc((size_t)R, sizeof *rt), *hm = calloc((size_t)R, sizeof *hm);
    double *g1 = calloc((size_t)R, sizeof *g1), *g4 = calloc((size_t)R, sizeof *g4);
    double *pl = calloc((size_t)R, sizeof *pl), *r1 = calloc((size_t)R, sizeof *r1);
    double *r2 = calloc((size_t)R, sizeof *r2), *r3 = calloc((size_t)R, sizeof *r3);
    if (!rt || !hm || !g1 || !g4 || !pl || !r1 || !r2 || !r3)
        die("calloc");
    /* Interleaved: every round runs each variant once, so drift hits them all alike. */
    for (int r = 0; r < R; r++) {
        if (do_rt)
            rt[r] = run_roundtrip(n_rt) / (double)n_rt;
        if (do_h)
            hm[r] = run_handmade(n_h) / (double)n_h;
        if (do_g1)
            g1[r] = run_gai1(n_g) / (double)n_g;
        if (do_g4)
            g4[r] = run_gai4(n_g) / (double)n_g;
        if (do_pl)
            pl[r] = run_plain(n_pl) / (double)n_pl;
        r1[r] = do_rt && do_h ? rt[r] / hm[r] : 0;
        r2[r] = do_g1 && do_pl ? g1[r] / pl[r] : 0;
        r3[r] = do_g4 && do_pl ? g4[r] / pl[r] : 0;
    }
    if (!o.quiet)
        printf("# roundtrip, handmade: ns per call of a function that does nothing on another\n"
               "# thread; gai1, gai4: ns per getaddrinfo(\"localhost\") through the pool of 1 or 4\n"
               "# threads, %d tasks at once; plain: libc's, in a loop; %d rounds, interleaved\n",
               GAI_TASKS, R);
    if (do_rt && do_h)
        printf("ratio  roundtrip/handmade %8.3f  (median of per-round ratios)\n", median(r1, R));
    if (do_g1 && do_pl)
        printf("ratio  gai1/plain %8.3f  (median of per-round ratios)\n", median(r2, R));
    if (do_g4 && do_pl)
        printf("ratio  gai4/plain %8.3f  (median of per-round ratios)\n", median(r3, R));
    if (do_rt)
        printf("offload roundtrip median %8.0f ns  best %8.0f ns  (%ld calls/round)\n",
               median(rt, R), minimum(rt, R), n_rt);
    if (do_h)
        printf("offload handmade  median %8.0f ns  best %8.0f ns  (%ld calls/round)\n",
               median(hm, R), minimum(hm, R), n_h);
    if (do_g1)
        printf("offload gai1      median %8.0f ns  best %8.0f ns  (%ld lookups/round)\n",
               median(g1, R), minimum(g1, R), n_g);
    if (do_g4)
        printf("offload gai4      median %8.0f ns  best %8.0f ns  (%ld lookups/round)\n",
               median(g4, R), minimum(g4, R), n_g);
    if (do_pl)
        printf("offload plain     median %8.0f ns  best %8.0f ns  (%ld lookups/round)\n",
               median(pl, R), minimum(pl, R), n_pl);
    free(rt);
    free(hm);
    free(g1);
    free(g4);
    free(pl);
    free(r1);
    free(r2);
    free(r3);
    return 0;
}

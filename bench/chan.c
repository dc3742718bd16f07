/* bench/chan: what a channel message costs. pingpong: two tasks bouncing an int over two
 * unbuffered channels (ns per message, one message = one send met by one receive), beside
 * the floor switch (floor_<arch>.S, two contexts in one loop) in the same rounds, so the
 * ratio says how many floor switches a message costs. whispers: the chain of N tasks, each
 * receiving an int from its left neighbour's channel and sending it plus one to the right
 * (ms from the first channel made to the result; every round in a fresh scheduler, so
 * every task gets a fresh stack page as a new program's would). bench/chan.sh runs this
 * beside the same programs in Go (bench/go/chan). */
#include "bench.h"

#include "weft.h"

static const char usage[] =
    "Variants (-o): floor, floor_asym, pingpong, whispers, whispers_warm.\n"
    "-n counts messages (pingpong) or switches (floor); -w N sets the whispers chain's length\n"
    "(default 100000; given as -n for whispers when -o whispers alone).\n"
    "Prints each variant's median and best per round, and the median of the per-round ratio\n"
    "pingpong/floor.\n";

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* floor and floor_asym come from bench/floors.c. floor_asym: main and one coroutine
 * switching from places of their own, so every return is mispredicted, as it is for two
 * tasks parked in different calls (send here, recv there): the "about 10 ns" minimal switch
 * of DESIGN.md. */

/* ---- pingpong: n messages, n/2 each way ---------------------------------------------------- */

static weft_chan *ping_c, *pong_c;
static long pp_rounds;
static double pp_t0, pp_t1;

static void *pinger(void *arg)
{
    (void)arg;
    int x = 0;
    weft_yield();               /* both tasks have run once before the clock */
    pp_t0 = now_ns();
    for (long i = 0; i < pp_rounds; i++) {
        if (weft_chan_send(ping_c, &x, -1) != 0 || weft_chan_recv(pong_c, &x, -1) != 0)
            die("pinger");
    }
    pp_t1 = now_ns();
    if (x != (int)pp_rounds)
        abort();
    return NULL;
}

static void *ponger(void *arg)
{
    (void)arg;
    int x;
    for (long i = 0; i < pp_rounds; i++) {
        if (weft_chan_recv(ping_c, &x, -1) != 0)
            die("ponger");
        x++;
        if (weft_chan_send(pong_c, &x, -1) != 0)
            die("ponger");
    }
    return NULL;
}

static double run_pingpong(long n)
{
    pp_rounds = n / 2;
    if (!(ping_c = weft_chan_make(sizeof(int), 0)) || !(pong_c = weft_chan_make(sizeof(int), 0)))
        die("weft_chan_make");
    if (!weft_go(pinger, NULL) || !weft_go(ponger, NULL))
        die("weft_go");
    if (weft_run() != 0)
        die("weft_run");
    weft_chan_free(ping_c);
    weft_chan_free(pong_c);
    return pp_t1 - pp_t0;
}

/* ---- whispers ---------------------------------------------------------------------------- */

struct link {
    weft_chan *left, *right;
};

static void *whisper(void *arg)
{
    struct link *l = arg;
    int x;
    if (weft_chan_recv(l->left, &x, -1) != 0)
        die("whisper recv");
    x++;
    if (weft_chan_send(l->right, &x, -1) != 0)
        die("whisper send");
    return NULL;
}

static long wh_n;
static struct link *wh_links;
static weft_chan **wh_chans;
static double wh_ns;

/* Makes the chain, starts it at the right end as Go's version does, waits for the result. */
static void whispers_chain(void)
{
    double t0 = now_ns();
    weft_attr a = { .detached = 1 };
    for (long i = 0; i <= wh_n; i++)
        if (!(wh_chans[i] = weft_chan_make(sizeof(int), 0)))
            die("weft_chan_make");
    for (long i = 0; i < wh_n; i++) {
        wh_links[i].left = wh_chans[i + 1];     /* chans[0] is the leftmost: the result */
        wh_links[i].right = wh_chans[i];
        if (!weft_spawn(&a, whisper, &wh_links[i]))
            die("weft_spawn");
    }
    int x = 1;
    if (weft_chan_send(wh_chans[wh_n], &x, -1) != 0 || weft_chan_recv(wh_chans[0], &x, -1) != 0)
        die("whispers");
    wh_ns = now_ns() - t0;
    if (x != wh_n + 1)
        abort();
    for (long i = 0; i <= wh_n; i++)
        weft_chan_free(wh_chans[i]);
}

/* whispers: one chain in a fresh scheduler. whispers_warm: a second chain in the scheduler
 * the first one ran in, its tasks' records and stacks from the pools the first one left. */
static int wh_warm;

static void *whispers_main(void *arg)
{
    (void)arg;
    whispers_chain();
    if (wh_warm) {
        weft_yield();           /* the first chain's tasks have all ended */
        whispers_chain();
    }
    return NULL;
}

static double run_whispers_as(long n, int warm)
{
    wh_warm = warm;
    wh_n = n;
    wh_links = malloc((size_t)n * sizeof *wh_links);
    wh_chans = malloc((size_t)(n + 1) * sizeof *wh_chans);
    if (!wh_links || !wh_chans)
        die("malloc");
    if (weft_main(whispers_main, NULL) != 0)
        die("weft_main");
    free(wh_links);
    free(wh_chans);
    return wh_ns;
}

static double run_whispers(long n)
{
    return run_whispers_as(n, 0);
}

static double run_whispers_warm(long n)
{
    return run_whispers_as(n, 1);
}

/* ---- driver ---------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct bench_opts o;
    long whispers_n = 100000;
    for (int i = 1; i + 1 < argc; i++) {        /* -w N, taken out before bench_parse */
        if (strcmp(argv[i], "-w") == 0) {
            whispers_n = atol(argv[i + 1]);
            for (int k = i; k + 2 <= argc; k++)
                argv[k] = argv[k + 2];
            argc -= 2;
            break;
        }
    }
    bench_parse(argc, argv, &o, usage);
    if (whispers_n < 1)
        whispers_n = 1;
    int do_floor = BENCH_HAVE_FLOOR && bench_selected(&o, "floor");
    int do_asym = BENCH_HAVE_FLOOR && bench_selected(&o, "floor_asym");
    int do_pp = bench_selected(&o, "pingpong");
    int do_wh = bench_selected(&o, "whispers");
    int do_whw = bench_selected(&o, "whispers_warm");
    long n_floor = do_floor ? calibrate(&o, bench_floor, 2) : 0;
    long n_asym = do_asym ? calibrate(&o, bench_floor_asym, 2) : 0;
    long n_pp = do_pp ? calibrate(&o, run_pingpong, 2) : 0;
    size_t R = (size_t)o.rounds;
    double *fl = calloc(R, sizeof *fl), *fa = calloc(R, sizeof *fa), *pp = calloc(R, sizeof *pp);
    double *wh = calloc(R, sizeof *wh), *whw = calloc(R, sizeof *whw);
    double *ratio = calloc(R, sizeof *ratio), *ratio_a = calloc(R, sizeof *ratio_a);
    if (!fl || !fa || !pp || !wh || !whw || !ratio || !ratio_a)
        die("calloc");
    /* Interleaved: every round runs each variant once, so drift hits them all alike. */
    for (int r = 0; r < o.rounds; r++) {
        if (do_floor)
            fl[r] = bench_floor(n_floor) / (double)n_floor;
        if (do_asym)
            fa[r] = bench_floor_asym(n_asym) / (double)n_asym;
        if (do_pp)
            pp[r] = run_pingpong(n_pp) / (double)n_pp;
        if (do_wh)
            wh[r] = run_whispers(whispers_n) / 1e6;
        if (do_whw)
            whw[r] = run_whispers_warm(whispers_n) / 1e6;
        if (do_floor && do_pp)
            ratio[r] = pp[r] / fl[r];
        if (do_asym && do_pp)
            ratio_a[r] = pp[r] / fa[r];
    }
    if (!o.quiet)
        printf("# pingpong: ns per message (a send met by a receive) over two unbuffered channels;\n"
               "# floor, floor_asym: ns per floor switch; whispers: ms for a chain of %ld tasks\n"
               "# (whispers_warm: a second chain in the same scheduler); %d rounds, interleaved\n",
               whispers_n, o.rounds);
    if (do_floor && do_pp)
        printf("ratio  pingpong/floor %8.3f  (median of per-round ratios)\n", median(ratio, o.rounds));
    if (do_asym && do_pp)
        printf("ratio  pingpong/floor_asym %8.3f  (median of per-round ratios)\n", median(ratio_a, o.rounds));
    if (do_floor)
        printf("chan   floor     median %8.2f ns  best %8.2f ns  (%ld switches/round)\n",
               median(fl, o.rounds), minimum(fl, o.rounds), n_floor);
    if (do_asym)
        printf("chan   floor_asym median %8.2f ns  best %8.2f ns  (%ld switches/round)\n",
               median(fa, o.rounds), minimum(fa, o.rounds), n_asym);
    if (do_pp)
        printf("chan   pingpong  median %8.2f ns  best %8.2f ns  (%ld messages/round)\n",
               median(pp, o.rounds), minimum(pp, o.rounds), n_pp);
    if (do_wh)
        printf("chan   whispers  median %8.2f ms  best %8.2f ms  (%ld tasks)\n",
               median(wh, o.rounds), minimum(wh, o.rounds), whispers_n);
    if (do_whw)
        printf("chan   whispers_warm median %8.2f ms  best %8.2f ms  (%ld tasks)\n",
               median(whw, o.rounds), minimum(whw, o.rounds), whispers_n);
    free(fa);
    free(whw);
    free(ratio_a);
    free(fl);
    free(pp);
    free(wh);
    free(ratio);
    return 0;
}

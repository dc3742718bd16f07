/* bench/switch: ns per context switch for two tasks yielding to each other (weft_yield
 * ping-pong), beside two baselines measured in the same run: glibc swapcontext between two
 * ucontexts, and the floor (floor_<arch>.S, callee-saved registers and sp only). One switch
 * is one side giving the CPU to the other: one weft_yield, one swapcontext, one floor_swap.
 * Which weft backend is measured is decided by the library this is linked with. */
#include "bench.h"

#include <ucontext.h>

#include "weft.h"

static const char usage[] =
    "Variants (-o): floor, swapcontext, weft. -n counts switches (even).\n"
    "Prints, per variant, the median and best ns per switch over the rounds, and the\n"
    "medians of the ratios taken within each round (weft/floor, swapcontext/weft).\n";

/* ---- floor: floor_swap between the main stack and one context ----------------------------- */

static void *floor_main_sp, *floor_co_sp;

static void floor_co(void)
{
    for (;;)
        floor_swap(&floor_co_sp, floor_main_sp);
}

static double run_floor(long n)
{
    if (!floor_co_sp)
        floor_co_sp = floor_make(bench_stack(), BENCH_STACK, floor_co);
    floor_swap(&floor_main_sp, floor_co_sp);     /* start it outside the clock */
    double t0 = now_ns();
    for (long i = 0; i < n / 2; i++)
        floor_swap(&floor_main_sp, floor_co_sp);
    return now_ns() - t0;
}

/* ---- swapcontext: the same ping-pong with glibc's ucontext ------------------------------- */

static ucontext_t uc_main, uc_co;
static int uc_made;

static void uc_body(void)
{
    for (;;)
        swapcontext(&uc_co, &uc_main);
}

static double run_swapcontext(long n)
{
    if (!uc_made) {
        if (getcontext(&uc_co) != 0) {
            perror("getcontext");
            exit(1);
        }
        uc_co.uc_stack.ss_sp = bench_stack();
        uc_co.uc_stack.ss_size = BENCH_STACK;
        uc_co.uc_link = NULL;
        makecontext(&uc_co, uc_body, 0);
        uc_made = 1;
    }
    swapcontext(&uc_main, &uc_co);
    double t0 = now_ns();
    for (long i = 0; i < n / 2; i++)
        swapcontext(&uc_main, &uc_co);
    return now_ns() - t0;
}

/* ---- weft: two tasks, each yields n/2 times ---------------------------------------------- */

static long yields;
static double weft_t0, weft_t1;

static void *ping(void *arg)
{
    weft_yield();               /* both tasks have run once (stacks touched) before the clock */
    if (arg)
        weft_t0 = now_ns();
    for (long i = 0; i < yields; i++)
        weft_yield();
    if (!arg)
        weft_t1 = now_ns();
    return NULL;
}

static double run_weft(long n)
{
    yields = n / 2;
    if (!weft_go(ping, (void *)1) || !weft_go(ping, NULL)) {
        perror("weft_go");
        exit(1);
    }
    if (weft_run() != 0) {
        perror("weft_run");
        exit(1);
    }
    return weft_t1 - weft_t0;
}

/* ---- driver ---------------------------------------------------------------------------- */

struct variant {
    const char *name;
    double (*run)(long n);
    long n;
    double *ns;                 /* ns per switch, per round */
};

int main(int argc, char **argv)
{
    struct bench_opts o;
    bench_parse(argc, argv, &o, usage);
    struct variant v[] = {
        { "floor", run_floor, 0, NULL },
        { "swapcontext", run_swapcontext, 0, NULL },
        { "weft", run_weft, 0, NULL },
    };
    enum { FLOOR, SWAPCONTEXT, WEFT, NV };
    int on[NV];
    for (int i = 0; i < NV; i++) {
        on[i] = bench_selected(&o, v[i].name) && (i != FLOOR || BENCH_HAVE_FLOOR);
        if (!on[i])
            continue;
        v[i].ns = calloc((size_t)o.rounds, sizeof(double));
        if (!v[i].ns) {
            perror("calloc");
            return 1;
        }
        v[i].n = calibrate(&o, v[i].run, 2);
    }
    /* Interleave: every round runs each variant once, so drift hits them all alike. */
    for (int r = 0; r < o.rounds; r++)
        for (int i = 0; i < NV; i++)
            if (on[i])
                v[i].ns[r] = v[i].run(v[i].n) / (double)v[i].n;

    double ratio_wf[1000], ratio_sw[1000];
    for (int r = 0; r < o.rounds; r++) {
        if (on[WEFT] && on[FLOOR])
            ratio_wf[r] = v[WEFT].ns[r] / v[FLOOR].ns[r];
        if (on[WEFT] && on[SWAPCONTEXT])
            ratio_sw[r] = v[SWAPCONTEXT].ns[r] / v[WEFT].ns[r];
    }
    if (!o.quiet)
        printf("# one switch = one side handing the CPU to the other (one weft_yield, one\n"
               "# swapcontext, one floor_swap); %d rounds, interleaved\n", o.rounds);
    for (int i = 0; i < NV; i++) {
        if (!on[i])
            continue;
        double best = minimum(v[i].ns, o.rounds);
        printf("switch %-12s median %8.2f ns  best %8.2f ns  (%ld switches/round)\n",
               v[i].name, median(v[i].ns, o.rounds), best, v[i].n);
    }
    if (on[WEFT] && on[FLOOR])
        printf("ratio  weft/floor          %8.3f  (median of per-round ratios)\n",
               median(ratio_wf, o.rounds));
    if (on[WEFT] && on[SWAPCONTEXT])
        printf("ratio  swapcontext/weft    %8.3f  (median of per-round ratios)\n",
               median(ratio_sw, o.rounds));
    return 0;
}

/* bench/switch: ns per context switch for two tasks yielding to each other (weft_yield
 * ping-pong), beside two baselines measured in the same run: glibc swapcontext between two
 * ucontexts, the floor (floor_<arch>.S, callee-saved registers and sp only), and the floor
 * plus the FP control words weft's asm switch also keeps (floor_fp). One switch
 * is one side giving the CPU to the other: one weft_yield, one swapcontext, one floor_swap.
 * Which weft backend is measured is decided by the library this is linked with. */
#include "bench.h"

#include <dlfcn.h>
#include <ucontext.h>

#include "weft.h"

static const char usage[] =
    "Variants (-o): floor, floor_fp, floor_asym, swapcontext, weft, weft_asym, weft_prof.\n"
    "weft_prof is weft with the sampling profiler on at 1000 Hz (weft_profile), when the\n"
    "library has it (looked up at run time, so this program also runs against a library\n"
    "built without the profiler: bench/profile.sh compares the two).\n"
    "-n counts switches (even).\n"
    "Prints, per variant, the median and best ns per switch over the rounds, and the\n"
    "medians of the ratios taken within each round (weft/floor, swapcontext/weft).\n";

/* Each baseline runs the same ping-pong as the weft tasks: two contexts, both looping in
 * one function, so each switch returns to the call site it left from, as two weft tasks
 * yielding do (a switch that returns elsewhere costs a return misprediction, which would
 * make a baseline slower than the switch it is there to measure). Context 0 takes the
 * time around n/2 switches of its own; context 1 is left parked and made anew next run. */

/* ---- floor, floor_fp: the hand-written switches ------------------------------------------ */

typedef void swap_fn(void **from_sp, void *to_sp);
typedef void *make_fn(void *lo, size_t size, void (*entry)(void));

static void *main_sp, *side_sp[2], *side_lo[2];
static swap_fn *side_swap;
static long side_n;
static double side_t0, side_t1;

static __attribute__((noinline)) void side_loop(int me)
{
    swap_fn *swap = side_swap;
    for (long i = 0; i < side_n; i++)
        swap(&side_sp[me], side_sp[!me]);
}

static void side0(void)
{
    side_swap(&side_sp[0], side_sp[1]);         /* start context 1 outside the clock */
    side_t0 = now_ns();
    side_loop(0);
    side_t1 = now_ns();
    side_swap(&side_sp[0], main_sp);
    abort();                                    /* never resumed */
}

static void side1(void)
{
    side_swap(&side_sp[1], side_sp[0]);
    side_loop(1);
    abort();    /* context 0 returns to main after its last switch to 1; 1 stays parked */
}

static double run_sides(long n, swap_fn *swap, make_fn *make)
{
    for (int i = 0; i < 2; i++)
        if (!side_lo[i])
            side_lo[i] = bench_stack();
    side_swap = swap;
    side_n = n / 2;
    side_sp[0] = make(side_lo[0], BENCH_STACK, side0);
    side_sp[1] = make(side_lo[1], BENCH_STACK, side1);
    swap(&main_sp, side_sp[0]);
    return side_t1 - side_t0;
}

static double run_floor(long n)
{
    return run_sides(n, floor_swap, floor_make);
}

static double run_floor_fp(long n)
{
    return run_sides(n, floor_fp_swap, floor_fp_make);
}

/* ---- floor_asym: main <-> one coroutine, each switch returning elsewhere -------------------- */

/* The usual way a minimal switch is timed: the main stack and a coroutine, each calling the
 * switch from its own place, so every return is mispredicted. It pairs with weft_asym. */
static void *asym_main_sp, *asym_co_sp;

static void asym_co(void)
{
    for (;;)
        floor_swap(&asym_co_sp, asym_main_sp);
}

static double run_floor_asym(long n)
{
    if (!asym_co_sp)
        asym_co_sp = floor_make(bench_stack(), BENCH_STACK, asym_co);
    floor_swap(&asym_main_sp, asym_co_sp);
    double t0 = now_ns();
    for (long i = 0; i < n / 2; i++)
        floor_swap(&asym_main_sp, asym_co_sp);
    return now_ns() - t0;
}

/* ---- swapcontext: the same ping-pong with glibc's ucontext ------------------------------- */

static ucontext_t uc_main, uc_side[2];
static void *uc_lo[2];

static __attribute__((noinline)) void uc_loop(int me)
{
    for (long i = 0; i < side_n; i++)
        swapcontext(&uc_side[me], &uc_side[!me]);
}

static void uc_side0(void)
{
    swapcontext(&uc_side[0], &uc_side[1]);
    side_t0 = now_ns();
    uc_loop(0);
    side_t1 = now_ns();
}   /* returns to uc_main through uc_link */

static void uc_side1(void)
{
    swapcontext(&uc_side[1], &uc_side[0]);
    uc_loop(1);
    abort();
}

static void uc_make(int i, void (*entry)(void))
{
    if (!uc_lo[i])
        uc_lo[i] = bench_stack();
    if (getcontext(&uc_side[i]) != 0) {
        perror("getcontext");
        exit(1);
    }
    uc_side[i].uc_stack.ss_sp = uc_lo[i];
    uc_side[i].uc_stack.ss_size = BENCH_STACK;
    uc_side[i].uc_link = i == 0 ? &uc_main : NULL;
    makecontext(&uc_side[i], entry, 0);
}

static double run_swapcontext(long n)
{
    side_n = n / 2;
    uc_make(0, uc_side0);
    uc_make(1, uc_side1);
    swapcontext(&uc_main, &uc_side[0]);
    return side_t1 - side_t0;
}

/* ---- weft, weft_asym: two tasks, each yields n/2 times --------------------------------------- */

/* weft and weft_asym come from bench/floors.c. weft_prof: weft's ping-pong with the
 * profiler's helper thread sampling at 1000 Hz meanwhile (started and stopped outside the
 * timed switches, which bench_weft times itself). */

static int (*profile_fn)(int hz);

static double run_weft_prof(long n)
{
    profile_fn(1000);
    double t = bench_weft(n);
    profile_fn(0);
    return t;
}

/* ---- driver ---------------------------------------------------------------------------- */

enum { FLOOR, FLOOR_FP, FLOOR_ASYM, SWAPCONTEXT, WEFT, WEFT_ASYM, WEFT_PROF, NV };

static struct variant {
    const char *name;
    double (*run)(long n);
    int needs_floor;
    long n;
    double *ns;                 /* ns per switch, per round */
} v[NV] = {
    [FLOOR] = { "floor", run_floor, 1, 0, NULL },
    [FLOOR_FP] = { "floor_fp", run_floor_fp, 1, 0, NULL },
    [FLOOR_ASYM] = { "floor_asym", run_floor_asym, 1, 0, NULL },
    [SWAPCONTEXT] = { "swapcontext", run_swapcontext, 0, 0, NULL },
    [WEFT] = { "weft", bench_weft, 0, 0, NULL },
    [WEFT_ASYM] = { "weft_asym", bench_weft_asym, 0, 0, NULL },
    [WEFT_PROF] = { "weft_prof", run_weft_prof, 0, 0, NULL },
};

/* The ratios printed: num/den, each the median of the per-round ratios. */
static const int ratios[][2] = {
    { WEFT, FLOOR }, { WEFT, FLOOR_FP }, { WEFT_ASYM, FLOOR_ASYM }, { WEFT, FLOOR_ASYM },
    { SWAPCONTEXT, WEFT }, { WEFT_PROF, WEFT },
};

int main(int argc, char **argv)
{
    struct bench_opts o;
    bench_parse(argc, argv, &o, usage);
    int on[NV];
    *(void **)&profile_fn = dlsym(RTLD_DEFAULT, "weft_profile");
    for (int i = 0; i < NV; i++) {
        on[i] = bench_selected(&o, v[i].name) && (!v[i].needs_floor || BENCH_HAVE_FLOOR) &&
                (i != WEFT_PROF || profile_fn);
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

    if (!o.quiet)
        printf("# one switch = one side handing the CPU to the other (one weft_yield, one\n"
               "# swapcontext, one floor_swap); %d rounds, interleaved\n", o.rounds);
    double tmp[1000];
    for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
        int a = ratios[k][0], b = ratios[k][1];
        if (!on[a] || !on[b])
            continue;
        for (int r = 0; r < o.rounds; r++)
            tmp[r] = v[a].ns[r] / v[b].ns[r];
        char name[64];
        snprintf(name, sizeof name, "%s/%s", v[a].name, v[b].name);
        printf("ratio  %-22s %8.3f  (median of per-round ratios)\n", name, median(tmp, o.rounds));
    }
    for (int i = 0; i < NV; i++) {
        if (!on[i])
            continue;
        double best = minimum(v[i].ns, o.rounds);
        printf("switch %-12s median %8.2f ns  best %8.2f ns  (%ld switches/round)\n",
               v[i].name, median(v[i].ns, o.rounds), best, v[i].n);
    }
    return 0;
}

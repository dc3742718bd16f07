/* bench/spawn: ns per spawn + run + exit of a trivial task, with the stack pool warm: one at a
 * time (weft_go then weft_join), and in batches (spawn B, then join them all, or spawn B
 * detached and yield once) of 64, which the pool keeps warm (stack.c's POOL_WARM), and of
 * 1000, which it does not; and with weft_attr.run_now (join_1000_now, detached_now), where
 * each task runs to its end inside its spawn. Beside them, the floor: make a context on a reused stack, switch
 * to it and back (floor_<arch>.S), the least any spawn can cost. All of it runs inside one
 * driver task, so the pools stay warm from round to round. */
#include "bench.h"

#include "weft.h"

#define BATCH_MAX 1000

static const char usage[] =
    "Variants (-o): floor, go_join, join_64, detached_64, join_1000, detached_1000,\n"
    "join_1000_now, detached_now (weft_attr.run_now: each task runs before its spawn returns).\n"
    "-n counts tasks (a multiple of 1000 when a batch variant runs).\n"
    "Prints, per variant, the median and best ns per task over the rounds, and the median\n"
    "of its per-round ratio to the floor.\n";

static long batch;           /* of the variant running */
static weft_task *handles[BATCH_MAX];

static void *nop(void *arg)
{
    return arg;
}

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* ---- floor: make + switch in + switch out, on one reused stack --------------------------- */

static void *floor_main_sp, *floor_co_sp;
static char *floor_lo;

static void floor_body(void)
{
    floor_swap(&floor_co_sp, floor_main_sp);
    abort();    /* never resumed: the next make starts over on the same stack */
}

static double run_floor(long n)
{
    if (!floor_lo)
        floor_lo = bench_stack();
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        floor_swap(&floor_main_sp, floor_make(floor_lo, BENCH_STACK, floor_body));
    return now_ns() - t0;
}

/* ---- weft ----------------------------------------------------------------------------------- */

static double run_go_join(long n)
{
    double t0 = now_ns();
    for (long i = 0; i < n; i++) {
        weft_task *t = weft_go(nop, NULL);
        if (!t || weft_join(t, NULL) != 0)
            die("go_join");
    }
    return now_ns() - t0;
}

static double batch_join_attr(long n, const weft_attr *a)
{
    double t0 = now_ns();
    for (long b = 0; b < n / batch; b++) {
        for (long i = 0; i < batch; i++)
            if (!(handles[i] = weft_spawn(a, nop, NULL)))
                die("weft_go");
        for (long i = 0; i < batch; i++)
            if (weft_join(handles[i], NULL) != 0)
                die("weft_join");
    }
    return now_ns() - t0;
}

static double batch_join(long n)
{
    return batch_join_attr(n, NULL);
}

static double batch_detached(long n)
{
    weft_attr a = { .detached = 1 };
    double t0 = now_ns();
    for (long b = 0; b < n / batch; b++) {
        for (long i = 0; i < batch; i++)
            if (!weft_spawn(&a, nop, NULL))
                die("weft_spawn");
        weft_yield();   /* to the back of the run queue: every new task runs and ends first */
    }
    return now_ns() - t0;
}

/* run_now: each task runs and ends before its spawn returns, so its stack goes back to the
 * pool hot and the next spawn takes it again. */
static double batch_detached_now(long n)
{
    weft_attr a = { .detached = 1, .run_now = 1 };
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (!weft_spawn(&a, nop, NULL))
            die("weft_spawn");
    return now_ns() - t0;
}

static double run_join_64(long n) { batch = 64; return batch_join(n); }
static double run_detached_64(long n) { batch = 64; return batch_detached(n); }
static double run_join_1000(long n) { batch = 1000; return batch_join(n); }
static double run_detached_1000(long n) { batch = 1000; return batch_detached(n); }
static double run_join_1000_now(long n)
{
    batch = 1000;
    return batch_join_attr(n, &(weft_attr){ .run_now = 1 });
}
static double run_detached_now(long n) { return batch_detached_now(n); }

/* ---- driver ------------------------------------------------------------------------------ */

struct variant {
    const char *name;
    double (*run)(long n);
    long batch;                 /* 0: one at a time */
    long n;
    double *ns;
};

static struct bench_opts opts;

static void *driver(void *arg)
{
    (void)arg;
    struct variant v[] = {
        { "floor", run_floor, 0, 0, NULL },
        { "go_join", run_go_join, 0, 0, NULL },
        { "join_64", run_join_64, 64, 0, NULL },
        { "detached_64", run_detached_64, 64, 0, NULL },
        { "join_1000", run_join_1000, 1000, 0, NULL },
        { "detached_1000", run_detached_1000, 1000, 0, NULL },
        { "join_1000_now", run_join_1000_now, 1000, 0, NULL },
        { "detached_now", run_detached_now, 0, 0, NULL },
    };
    enum { NV = sizeof v / sizeof v[0] };
    int on[NV];
    for (int i = 0; i < NV; i++) {
        on[i] = bench_selected(&opts, v[i].name) && (i != 0 || BENCH_HAVE_FLOOR);
        if (!on[i])
            continue;
        if (!(v[i].ns = calloc((size_t)opts.rounds, sizeof(double))))
            die("calloc");
        v[i].run(v[i].batch ? v[i].batch : 1000);   /* warm the pools (stacks, records) */
        v[i].n = calibrate(&opts, v[i].run, v[i].batch ? v[i].batch : 1);
        if (v[i].batch && v[i].n % v[i].batch) {
            fprintf(stderr, "spawn: -n must be a multiple of %s's batch size %ld\n", v[i].name,
                    v[i].batch);
            exit(2);
        }
    }
    for (int r = 0; r < opts.rounds; r++)
        for (int i = 0; i < NV; i++)
            if (on[i])
                v[i].ns[r] = v[i].run(v[i].n) / (double)v[i].n;
    if (!opts.quiet)
        printf("# one unit = one task spawned, run to its end and reaped (floor: one context\n"
               "# made, switched to and back); pool warm; %d rounds, interleaved\n",
               opts.rounds);
    double tmp[1000];
    for (int i = 1; i < NV; i++) {
        if (!on[i] || !on[0])
            continue;
        for (int r = 0; r < opts.rounds; r++)
            tmp[r] = v[i].ns[r] / v[0].ns[r];
        char name[64];
        snprintf(name, sizeof name, "%s/floor", v[i].name);
        printf("ratio  %-22s %8.3f  (median of per-round ratios)\n", name,
               median(tmp, opts.rounds));
    }
    for (int i = 0; i < NV; i++) {
        if (!on[i])
            continue;
        double best = minimum(v[i].ns, opts.rounds);
        printf("spawn  %-15s median %8.2f ns  best %8.2f ns  (%ld tasks/round)\n", v[i].name,
               median(v[i].ns, opts.rounds), best, v[i].n);
    }
    for (int i = 0; i < NV; i++)
        free(v[i].ns);
    return NULL;
}

int main(int argc, char **argv)
{
    bench_parse(argc, argv, &opts, usage);
    if (weft_main(driver, NULL) != 0)
        die("weft_main");
    return 0;
}

/* bench/gen: ns per generator round trip (one weft_gen_send from a task, answered by one
 * weft_gen_yield: two switches), beside the floor switch (floor_<arch>.S) measured in the
 * same run: floor, two contexts switching from one shared place (bench/switch's floor), and
 * floor_asym, main and a coroutine each switching from a place of its own, as a caller and
 * its generator do. Also a round trip driven from the main context (gen_main), and a weft
 * switch through the run queue (two tasks in weft_yield ping-pong, per switch: weft from
 * one shared place, weft_asym from places of their own). */
#include "bench.h"

#include "weft.h"

static const char usage[] =
    "Variants (-o): floor, floor_asym, weft, weft_asym, gen, gen_main.\n"
    "-n counts units: switches for floor, floor_asym, weft, weft_asym; round trips for gen,\n"
    "gen_main.\n"
    "Prints, per variant, the median and best ns per unit over the rounds, and the medians of\n"
    "the per-round ratios: a round trip in floor switches (target <= 2.5).\n";

static void die(const char *what)
{
    perror(what);
    exit(1);
}

/* floor and floor_asym (main <-> one coroutine, each from its own call site) come from
 * bench/floors.c. */

/* weft and weft_asym (two tasks yielding to each other) come from bench/floors.c. */

/* ---- gen, gen_main: send/yield round trips ------------------------------------------------ */

static void *echo(void *arg)
{
    void *v = arg;
    while (weft_gen_yield(v, &v) == 0)
        ;
    return NULL;
}

static long rounds;
static double gen_ns;

/* n round trips on a fresh generator (its first send, which starts it, outside the clock). */
static double drive(long n)
{
    weft_gen *g = weft_gen_make(NULL, echo, NULL);
    void *v = NULL;
    if (!g || weft_gen_next(g, &v) != 0)
        die("weft_gen_make");
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (weft_gen_send(g, (void *)i, &v) != 0)
            die("weft_gen_send");
    double t = now_ns() - t0;
    if ((long)v != n - 1)
        die("echo");
    weft_gen_close(g);
    return t;
}

static void *driver(void *arg)
{
    (void)arg;
    gen_ns = drive(rounds);
    return NULL;
}

static double run_gen(long n)
{
    rounds = n;
    if (!weft_go(driver, NULL))
        die("weft_go");
    if (weft_run() != 0)
        die("weft_run");
    return gen_ns;
}

static double run_gen_main(long n)
{
    double t = drive(n);
    if (weft_run() != 0)
        die("weft_run");
    return t;
}

/* ---- driver ---------------------------------------------------------------------------- */

enum { FLOOR, FLOOR_ASYM, WEFT, WEFT_ASYM, GEN, GEN_MAIN, NV };

static struct variant {
    const char *name;
    double (*run)(long n);
    int needs_floor;
    long step;
    long n;
    double *ns;
} v[NV] = {
    [FLOOR] = { "floor", bench_floor, 1, 2, 0, NULL },
    [FLOOR_ASYM] = { "floor_asym", bench_floor_asym, 1, 2, 0, NULL },
    [WEFT] = { "weft", bench_weft, 0, 2, 0, NULL },
    [WEFT_ASYM] = { "weft_asym", bench_weft_asym, 0, 2, 0, NULL },
    [GEN] = { "gen", run_gen, 0, 1, 0, NULL },
    [GEN_MAIN] = { "gen_main", run_gen_main, 0, 1, 0, NULL },
};

static const int ratios[][2] = {
    { GEN, FLOOR }, { GEN, FLOOR_ASYM }, { GEN_MAIN, FLOOR }, { GEN_MAIN, FLOOR_ASYM },
    { GEN, WEFT }, { GEN, WEFT_ASYM },
};

int main(int argc, char **argv)
{
    struct bench_opts o;
    bench_parse(argc, argv, &o, usage);
    int on[NV];
    for (int i = 0; i < NV; i++) {
        on[i] = bench_selected(&o, v[i].name) && (!v[i].needs_floor || BENCH_HAVE_FLOOR);
        if (!on[i])
            continue;
        v[i].ns = calloc((size_t)o.rounds, sizeof(double));
        if (!v[i].ns)
            die("calloc");
        v[i].n = calibrate(&o, v[i].run, v[i].step);
    }
    for (int r = 0; r < o.rounds; r++)      /* interleaved: drift hits every variant alike */
        for (int i = 0; i < NV; i++)
            if (on[i])
                v[i].ns[r] = v[i].run(v[i].n) / (double)v[i].n;

    if (!o.quiet)
        printf("# gen: one round trip = weft_gen_send + the weft_gen_yield answering it (two\n"
               "# switches); floor, floor_asym, weft, weft_asym: ns per switch; %d rounds, interleaved\n",
               o.rounds);
    double tmp[1000];
    for (size_t k = 0; k < sizeof ratios / sizeof ratios[0]; k++) {
        int a = ratios[k][0], b = ratios[k][1];
        if (!on[a] || !on[b])
            continue;
        for (int r = 0; r < o.rounds; r++)
            tmp[r] = v[a].ns[r] / v[b].ns[r];
        char name[64];
        snprintf(name, sizeof name, "%s/%s", v[a].name, v[b].name);
        printf("ratio  %-22s %8.3f  (round trip in switches; median of per-round ratios)\n",
               name, median(tmp, o.rounds));
    }
    for (int i = 0; i < NV; i++) {
        if (!on[i])
            continue;
        double best = minimum(v[i].ns, o.rounds);
        printf("%-6s %-12s median %8.2f ns  best %8.2f ns  (%ld per round)\n",
               i >= GEN ? "trip" : "switch", v[i].name, median(v[i].ns, o.rounds), best, v[i].n);
    }
    return 0;
}

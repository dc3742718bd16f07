/* bench/cold: ns per cold spawn of a task that parks (its stack fresh from the kernel: the
 * pool is empty, so the stack comes from a new slab and its first page is faulted in), beside
 * the floor any library that gives each task its own stack pays: the first touch of one
 * fresh page (mmap a big region, write one byte per page). Rounds interleave the two; each
 * spawn round runs its own scheduler (weft_main), whose teardown unmaps every stack, so the
 * next round starts cold again. */
#include "bench.h"

#include <sys/mman.h>

#include "weft.h"

static const char usage[] =
    "Variants (-o): page, spawn, spawn_16k, spawn_now (weft_attr.run_now: each task runs\n"
    "and parks inside its spawn, while its fresh page is still in the cache).\n"
    "-n counts pages / tasks per round (default 20000).\n"
    "Prints the median and best ns per page / per parked task over the rounds, and the\n"
    "median of the per-round ratios to the page floor.\n";

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static long count;

/* ---- floor: first touch of fresh pages ---------------------------------------------------- */

static double run_page(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, (size_t)count * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED)
        die("mmap");
    double t0 = now_ns();
    for (long i = 0; i < count; i++)
        ((volatile char *)m)[(size_t)i * page] = 1;
    double t = now_ns() - t0;
    munmap(m, (size_t)count * page);
    return t;
}

/* ---- weft: spawn, run once, park -------------------------------------------------------- */

static weft_task **handles;
static size_t stack_size;
static int run_now;
static double spawn_ns;

static void *parker(void *arg)
{
    (void)arg;
    weft_sleep_until(-1);       /* parked until cancelled */
    return NULL;
}

static void *driver(void *arg)
{
    (void)arg;
    weft_attr a = { .stack_size = stack_size, .run_now = run_now };
    double t0 = now_ns();
    for (long i = 0; i < count; i++)
        if (!(handles[i] = weft_spawn(&a, parker, NULL)))
            die("weft_spawn");
    weft_yield();               /* every task runs once and parks */
    spawn_ns = now_ns() - t0;
    for (long i = 0; i < count; i++)
        weft_cancel(handles[i]);
    for (long i = 0; i < count; i++)
        weft_join(handles[i], NULL);
    return NULL;
}

static double run_spawn_size(size_t size)
{
    stack_size = size;
    if (weft_main(driver, NULL) != 0)   /* its scheduler's teardown unmaps every stack */
        die("weft_main");
    return spawn_ns;
}

static double run_spawn(void) { run_now = 0; return run_spawn_size(0); }
static double run_spawn_16k(void) { run_now = 0; return run_spawn_size(16 * 1024); }
static double run_spawn_now(void) { run_now = 1; return run_spawn_size(0); }

int main(int argc, char **argv)
{
    struct bench_opts opts;
    bench_parse(argc, argv, &opts, usage);
    count = opts.n ? opts.n : 20000;
    if (!(handles = malloc((size_t)count * sizeof *handles)))
        die("malloc");
    struct { const char *name; double (*run)(void); double *ns; } v[] = {
        { "page", run_page, NULL },
        { "spawn", run_spawn, NULL },
        { "spawn_16k", run_spawn_16k, NULL },
        { "spawn_now", run_spawn_now, NULL },
    };
    enum { NV = sizeof v / sizeof v[0] };
    int on[NV];
    for (int i = 0; i < NV; i++) {
        on[i] = bench_selected(&opts, v[i].name);
        if (on[i] && !(v[i].ns = calloc((size_t)opts.rounds, sizeof(double))))
            die("calloc");
    }
    for (int r = 0; r < opts.rounds; r++)
        for (int i = 0; i < NV; i++)
            if (on[i])
                v[i].ns[r] = v[i].run() / (double)count;
    if (!opts.quiet)
        printf("# cold spawn: one unit = one task spawned on a fresh stack, run until it parks\n"
               "# (page: one fresh page first touched); %ld a round, %d rounds, interleaved\n",
               count, opts.rounds);
    double tmp[1000];
    for (int i = 1; i < NV; i++) {
        if (!on[i] || !on[0])
            continue;
        for (int r = 0; r < opts.rounds; r++)
            tmp[r] = v[i].ns[r] / v[0].ns[r];
        printf("ratio  %-10s/page %8.3f  (median of per-round ratios)\n", v[i].name,
               median(tmp, opts.rounds));
    }
    for (int i = 0; i < NV; i++) {
        if (!on[i])
            continue;
        double best = minimum(v[i].ns, opts.rounds);
        printf("cold   %-10s median %8.1f ns  best %8.1f ns\n", v[i].name,
               median(v[i].ns, opts.rounds), best);
        free(v[i].ns);
    }
    free(handles);
    return 0;
}

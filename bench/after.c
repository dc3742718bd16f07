/* bench/after: ns per delayed call armed, pushed back once and stopped (weft_after,
 * weft_timer_reset, weft_timer_stop), beside the same done with one task per timer that
 * sleeps until its deadline (parked with weft_park and a deadline, so it can be pushed
 * back: woken, it parks again until the new one; stopped with weft_cancel and joined). Both
 * keep BATCH timers armed at once, as a server keeps one idle timer per connection. */
#include "bench.h"

#include <errno.h>

#include "weft.h"

static const char usage[] =
    "Variants (-o): timer, task.\n"
    "-n counts timers (a multiple of 1000).\n"
    "Prints the median and best ns per timer (arm + reset + stop) over the rounds, and the\n"
    "median of the per-round ratios task/timer.\n";

#define BATCH 1000

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void *never(void *arg)
{
    (void)arg;
    fail("a timer fired");
    return NULL;
}

/* ---- timer: weft_after ---------------------------------------------------------------- */

static weft_timer *timers[BATCH];

static void timer_batch(void)
{
    int64_t far = weft_now() + 3600 * 1000;
    for (int i = 0; i < BATCH; i++)
        if (!(timers[i] = weft_after(3600 * 1000 + i % 97, never, NULL)))
            fail("weft_after");
    for (int i = 0; i < BATCH; i++)
        if (weft_timer_reset(timers[i], far + 1000 + i % 89) != 0)
            fail("weft_timer_reset");
    for (int i = 0; i < BATCH; i++)
        if (weft_timer_stop(timers[i]) != 0)
            fail("weft_timer_stop");
}

/* ---- task: one sleeping task per timer ------------------------------------------------ */

struct sleeper {
    weft_waitq q;
    int64_t deadline;
    weft_task *t;
};

static struct sleeper sleepers[BATCH];

static void *sleeper(void *arg)
{
    struct sleeper *sl = arg;
    for (;;) {
        if (weft_park(&sl->q, "timer", sl->deadline) == 0)
            continue;           /* pushed back: sleep until the new deadline */
        if (errno == ETIMEDOUT)
            never(NULL);
        return NULL;            /* ECANCELED: stopped */
    }
}

static void task_batch(void)
{
    int64_t now = weft_now();
    for (int i = 0; i < BATCH; i++) {
        struct sleeper *sl = &sleepers[i];
        weft_waitq_init(&sl->q, "timer");
        sl->deadline = now + 3600 * 1000 + i % 97;
        if (!(sl->t = weft_go(sleeper, sl)))
            fail("weft_go");
    }
    weft_yield();               /* they all run and park */
    for (int i = 0; i < BATCH; i++) {
        sleepers[i].deadline = now + 3601 * 1000 + i % 89;
        weft_unpark_one(&sleepers[i].q);
    }
    weft_yield();               /* they park again, until the new deadlines */
    for (int i = 0; i < BATCH; i++)
        weft_cancel(sleepers[i].t);
    for (int i = 0; i < BATCH; i++)
        if (weft_join(sleepers[i].t, NULL) != 0)
            fail("weft_join");
}

/* ---- the runs ------------------------------------------------------------------------- */

static long run_n;
static void (*run_batch)(void);
static double t0, t1;

static void *runner(void *arg)
{
    (void)arg;
    run_batch();                /* warm: stack pool, heap capacity */
    t0 = now_ns();
    for (long k = 0; k < run_n / BATCH; k++)
        run_batch();
    t1 = now_ns();
    return NULL;
}

static double run_with(long n, void (*batch)(void))
{
    run_n = n;
    run_batch = batch;
    if (!weft_go(runner, NULL) || weft_run() != 0)
        fail("weft_run");
    return t1 - t0;
}

static double run_timer(long n) { return run_with(n, timer_batch); }
static double run_task(long n) { return run_with(n, task_batch); }

enum { TIMER, TASK, NV };

static struct variant {
    const char *name;
    double (*run)(long n);
    long n;
    double *ns;
} v[NV] = {
    [TIMER] = { "timer", run_timer, 0, NULL },
    [TASK] = { "task", run_task, 0, NULL },
};

int main(int argc, char **argv)
{
    struct bench_opts o;
    bench_parse(argc, argv, &o, usage);
    if (o.n % BATCH) {
        fprintf(stderr, "%s: -n must be a multiple of %d\n", argv[0], BATCH);
        return 2;
    }
    int on[NV];
    for (int i = 0; i < NV; i++) {
        on[i] = bench_selected(&o, v[i].name);
        if (!on[i])
            continue;
        v[i].ns = calloc((size_t)o.rounds, sizeof(double));
        if (!v[i].ns)
            fail("calloc");
        v[i].n = calibrate(&o, v[i].run, BATCH);
    }
    for (int r = 0; r < o.rounds; r++)
        for (int i = 0; i < NV; i++)
            if (on[i])
                v[i].ns[r] = v[i].run(v[i].n) / (double)v[i].n;

    if (!o.quiet)
        printf("# unit: one timer armed, pushed back once and stopped, %d armed at once;\n"
               "# %d rounds, interleaved\n", BATCH, o.rounds);
    if (on[TIMER] && on[TASK]) {
        double tmp[1000];
        for (int r = 0; r < o.rounds; r++)
            tmp[r] = v[TASK].ns[r] / v[TIMER].ns[r];
        printf("ratio  %-22s %8.3f  (median of per-round ratios)\n", "task/timer",
               median(tmp, o.rounds));
    }
    for (int i = 0; i < NV; i++) {
        if (!on[i])
            continue;
        printf("after  %-12s median %8.2f ns  best %8.2f ns  (%ld timers/round)\n", v[i].name,
               median(v[i].ns, o.rounds), minimum(v[i].ns, o.rounds), v[i].n);
    }
    return 0;
}

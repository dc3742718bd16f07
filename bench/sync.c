/* bench/sync: ns per mutex hand-off between two tasks, beside the floor switch
 * (floor_<arch>.S) and weft_yield's switch measured in the same run, as ratios. A hand-off
 * is one task's unlock passing the mutex to the other, parked in lock, and that task
 * running: one unlock, one wake, one park, one switch. Also a semaphore hand-off (release
 * to a parked acquirer) and the round trip through weft_park/weft_unpark_one. */
#include "bench.h"

#include "weft.h"

static const char usage[] =
    "Variants (-o): floor, yield, mutex, sem, park.\n"
    "-n counts switches or hand-offs (even).\n"
    "Prints, per variant, the median and best ns per unit over the rounds, and the medians\n"
    "of the per-round ratios against the floor switch and against weft_yield.\n";

/* The floor switch comes from bench/floors.c. */

/* ---- the weft variants: two tasks, each doing n/2 units --------------------------------- */

static long per_task;
static double t0, t1;
static weft_mutex mutex = WEFT_MUTEX_INIT;
static weft_sem sem[2];
static weft_waitq wq[2];
static int sem_mode;

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void *yielder(void *arg)
{
    weft_yield();
    if (arg)
        t0 = now_ns();
    for (long i = 0; i < per_task; i++)
        weft_yield();
    if (!arg)
        t1 = now_ns();
    return NULL;
}

/* Task 1 (which runs first) takes the mutex, and task 0 queues behind it before the clock
 * starts. From then on each unlock hands the mutex to the other task, and the lock after it
 * parks until the mutex comes back: per task n/2 hand-offs. */
static void *locker(void *arg)
{
    if (arg) {
        if (weft_mutex_lock(&mutex, -1) != 0)
            fail("weft_mutex_lock");
        weft_yield();           /* task 0 parks in its lock */
        t0 = now_ns();
    } else if (weft_mutex_lock(&mutex, -1) != 0) {
        fail("weft_mutex_lock");
    }
    for (long i = 0; i < per_task; i++)
        if (weft_mutex_unlock(&mutex) != 0 || weft_mutex_lock(&mutex, -1) != 0)
            fail("mutex hand-off");
    if (!arg)
        t1 = now_ns();
    if (weft_mutex_unlock(&mutex) != 0)
        fail("weft_mutex_unlock");
    return NULL;
}

/* The same alternation through two semaphores (each task acquires its own, releasing the
 * other's hands that task a permit) and through two wait queues. Task 0 waits first. */
static void wake_other(int me)
{
    if (sem_mode ? weft_sem_release(&sem[!me]) : weft_unpark_one(&wq[!me]) != 1)
        fail("hand-off");
}

static void wait_mine(int me)
{
    if (sem_mode ? weft_sem_acquire(&sem[me], -1) : weft_park(&wq[me], "bench", -1))
        fail("wait");
}

static void *alternator(void *arg)
{
    int me = arg != NULL;
    if (me) {
        weft_yield();
        t0 = now_ns();
    } else {
        wait_mine(0);
    }
    for (long i = 0; i < per_task; i++) {
        wake_other(me);
        wait_mine(me);
    }
    if (me)
        wake_other(me);
    else
        t1 = now_ns();
    return NULL;
}

static double run_pair(long n, void *(*fn)(void *))
{
    per_task = n / 2;
    weft_sem_init(&sem[0], 0, NULL);
    weft_sem_init(&sem[1], 0, NULL);
    /* Task 1 (arg non-NULL) runs first and starts the clock. */
    if (!weft_go(fn, (void *)1) || !weft_go(fn, NULL))
        fail("weft_go");
    if (weft_run() != 0)
        fail("weft_run");
    return t1 - t0;
}

static double run_yield(long n) { return run_pair(n, yielder); }
static double run_mutex(long n) { return run_pair(n, locker); }
static double run_sem(long n)
{
    sem_mode = 1;
    return run_pair(n, alternator);
}

static double run_park(long n)
{
    sem_mode = 0;
    return run_pair(n, alternator);
}

/* ---- driver ---------------------------------------------------------------------------- */

enum { FLOOR, YIELD, MUTEX, SEM, PARK, NV };

static struct variant {
    const char *name;
    double (*run)(long n);
    int needs_floor;
    long n;
    double *ns;
} v[NV] = {
    [FLOOR] = { "floor", bench_floor, 1, 0, NULL },
    [YIELD] = { "yield", run_yield, 0, 0, NULL },
    [MUTEX] = { "mutex", run_mutex, 0, 0, NULL },
    [SEM] = { "sem", run_sem, 0, 0, NULL },
    [PARK] = { "park", run_park, 0, 0, NULL },
};

static const int ratios[][2] = {
    { MUTEX, FLOOR }, { MUTEX, YIELD }, { SEM, FLOOR }, { PARK, FLOOR }, { YIELD, FLOOR },
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
            fail("calloc");
        v[i].n = calibrate(&o, v[i].run, 2);
    }
    for (int r = 0; r < o.rounds; r++)
        for (int i = 0; i < NV; i++)
            if (on[i])
                v[i].ns[r] = v[i].run(v[i].n) / (double)v[i].n;

    if (!o.quiet)
        printf("# unit: floor and yield, one switch; mutex, one hand-off (unlock to a parked\n"
               "# locker, which runs); sem, one permit handed to a parked acquirer; park, one\n"
               "# unpark of a parked task, which runs; %d rounds, interleaved\n", o.rounds);
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
        printf("sync   %-12s median %8.2f ns  best %8.2f ns  (%ld units/round)\n", v[i].name,
               median(v[i].ns, o.rounds), minimum(v[i].ns, o.rounds), v[i].n);
    }
    return 0;
}

/* bench/timers: timers at scale. First the timer structure alone (src/timer.c's timing wheel,
 * "wheel", beside the two heaps it replaced: the 4-ary heap with keys in its slots, "keyed4",
 * bench/timers_keyed4.h, and the binary heap of timer pointers before it, "binheap",
 * bench/timers_binheap.h), at 1,000 to 1,000,000 armed timers, each timer in a record of its
 * own as a task's is:
 *   fire: arm N timers with random deadlines, then pop them as time passes;
 *   idle: N armed idle deadlines (a server's), most pushed back or cancelled before they
 *         fire: park again (cancel + add), re-key in place, cancel; a few short ones fire.
 * Then end to end, through the library, at 1,000 and at the largest size:
 *   sleep: N tasks each weft_sleep_until a random deadline, from spawn to all fired;
 *   after: N weft_at delayed calls with random deadlines, from arming to all run and stopped.
 * Both check that the timers fired in (deadline, arming) order and none early. The end to end
 * runs count CPU time (the process's), so the loop's sleep until the deadlines is not. */
#include "bench.h"

#include <errno.h>
#include <stdint.h>

#include "timer.h"
#include "timers_binheap.h"
#include "timers_keyed4.h"
#include "weft.h"

static const char usage[] =
    "Variants (-o): fire, idle (the structure alone), sleep, after (end to end).\n"
    "-n is the largest size (default 1000000): sizes 1000, 10000, ... up to it.\n"
    "Prints medians over the rounds (interleaved) of ns per timer (fire, sleep, after) or per\n"
    "operation (idle), the keyed4/wheel and binheap/wheel ratios, and the ratio of the cost\n"
    "at the largest size to the cost at 1000 (1.00 is flat).\n";

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the heap alone ------------------------------------------------------------------- */

struct heap_ops {
    const char *name;
    int (*add)(void *h, struct timer *tm, int64_t when);
    void (*rekey)(void *h, struct timer *tm, int64_t when);
    void (*cancel)(void *h, struct timer *tm);
    struct timer *(*pop)(void *h, int64_t now);
    void (*release)(void *h);
};

static int w_add(void *h, struct timer *tm, int64_t when) { return weft_timer_add(h, tm, when); }
static void w_rekey(void *h, struct timer *tm, int64_t when) { weft_timer_rekey(h, tm, when); }
static void w_cancel(void *h, struct timer *tm) { weft_timer_cancel(h, tm); }
static struct timer *w_pop(void *h, int64_t now) { return weft_timer_pop_due(h, now); }
static void w_release(void *h) { weft_timers_free(h); }
static int k_add(void *h, struct timer *tm, int64_t when) { return k4_add(h, tm, when); }
static void k_rekey(void *h, struct timer *tm, int64_t when) { k4_rekey(h, tm, when); }
static void k_cancel(void *h, struct timer *tm) { k4_cancel(h, tm); }
static struct timer *k_pop(void *h, int64_t now) { return k4_pop_due(h, now); }
static void k_release(void *h) { k4_free(h); }
static int b_add(void *h, struct timer *tm, int64_t when) { return bh_add(h, tm, when); }
static void b_rekey(void *h, struct timer *tm, int64_t when) { bh_rekey(h, tm, when); }
static void b_cancel(void *h, struct timer *tm) { bh_cancel(h, tm); }
static struct timer *b_pop(void *h, int64_t now) { return bh_pop_due(h, now); }
static void b_release(void *h) { bh_free(h); }

enum { WHEEL, KEYED, BIN, NHEAP };
static const struct heap_ops heaps[NHEAP] = {
    [WHEEL] = { "wheel", w_add, w_rekey, w_cancel, w_pop, w_release },
    [KEYED] = { "keyed4", k_add, k_rekey, k_cancel, k_pop, k_release },
    [BIN] = { "binheap", b_add, b_rekey, b_cancel, b_pop, b_release },
};

/* Each timer in a record of its own, as a task's timer is in its task record. */
#define REC 256
struct rec {
    struct timer tm;
    char rest[REC - sizeof(struct timer)];
};

static struct rec *recs;

/* A fresh structure of any kind (all start zeroed). */
static union { struct timers w; struct keyed4 k; struct binheap b; } heap_mem;

#define UNITS 1000000L          /* timers (fire) or operations (idle) per measurement, at least */

/* ns per timer: arm n with random deadlines over n ms, then pop them 1 ms at a time. */
static double run_fire(const struct heap_ops *o, long n)
{
    long reps = UNITS / n > 0 ? UNITS / n : 1;
    rng = 88172645463325252ull;
    double t0 = now_ns();
    for (long r = 0; r < reps; r++) {
        memset(&heap_mem, 0, sizeof heap_mem);
        void *h = &heap_mem;
        for (long i = 0; i < n; i++)
            if (o->add(h, &recs[i].tm, (int64_t)(rnd() % (uint64_t)n)) != 0)
                fail("add");
        long popped = 0;
        int64_t prev = -1;
        for (int64_t now = 0; now < n; now++) {
            struct timer *tm;
            while ((tm = o->pop(h, now)) != NULL) {
                if (tm->when < prev || tm->when > now) {
                    fprintf(stderr, "%s: popped %lld after %lld at %lld\n", o->name,
                            (long long)tm->when, (long long)prev, (long long)now);
                    exit(1);
                }
                prev = tm->when;
                popped++;
            }
        }
        if (popped != n) {
            fprintf(stderr, "%s: popped %ld of %ld\n", o->name, popped, n);
            exit(1);
        }
        o->release(h);
    }
    return (now_ns() - t0) / (double)(reps * n);
}

static long idle_fired, idle_ops;

/* ns per operation on n armed idle deadlines 30 s out; every 1,024 operations 1 ms passes. */
static double run_idle(const struct heap_ops *o, long n)
{
    long ops = 4 * n > UNITS ? 4 * n : UNITS;
    rng = 88172645463325252ull;
    memset(&heap_mem, 0, sizeof heap_mem);
    void *h = &heap_mem;
    int64_t now = 0;
    double t0 = now_ns();
    for (long i = 0; i < n; i++)
        if (o->add(h, &recs[i].tm, now + 30000 + (int64_t)(rnd() % 1000)) != 0)
            fail("add");
    long fired = 0;
    for (long k = 0; k < ops; k++) {
        struct timer *tm = &recs[rnd() % (uint64_t)n].tm;
        uint64_t r = rnd();
        int64_t idle = now + 30000 + (int64_t)((r >> 8) % 1000);
        if (!timer_armed(tm)) {             /* armed again: now and then a short one */
            if (o->add(h, tm, (r & 7) == 0 ? now + (int64_t)((r >> 8) % 50) : idle) != 0)
                fail("add");
        } else if ((r & 7) < 4) {           /* woken by IO, parks again */
            o->cancel(h, tm);
            if (o->add(h, tm, idle) != 0)
                fail("add");
        } else if ((r & 7) < 7) {           /* pushed back in place */
            o->rekey(h, tm, idle);
        } else {                            /* done with it */
            o->cancel(h, tm);
        }
        if ((k & 1023) == 1023) {
            now++;
            while (o->pop(h, now))
                fired++;
        }
    }
    for (long i = 0; i < n; i++)
        o->cancel(h, &recs[i].tm);
    double t = now_ns() - t0;
    o->release(h);
    idle_fired = fired;
    idle_ops = ops;
    return t / (double)(ops + 2 * n);
}

/* ---- end to end ------------------------------------------------------------------------ */

static double cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int64_t *deadline_of;    /* per timer */
static long *woke;              /* indices, in the order they fired */
static long nwoke, early, late, disorder;
static int64_t window;

static void fired(long i)
{
    if (weft_now() < deadline_of[i])
        early++;
    if (nwoke > 0) {
        long p = woke[nwoke - 1];
        if (deadline_of[p] > deadline_of[i] || (deadline_of[p] == deadline_of[i] && p > i))
            disorder++;
    }
    woke[nwoke++] = i;
}

static void *sleeper(void *arg)
{
    long i = (long)(intptr_t)arg;
    if (weft_now() >= deadline_of[i])
        late++;                 /* first ran after its deadline: it never parked */
    if (weft_sleep_until(deadline_of[i]) != 0)
        fail("weft_sleep_until");
    fired(i);
    return NULL;
}

static void *call(void *arg)
{
    fired((long)(intptr_t)arg);
    return NULL;
}

static weft_timer **handles;

static void *arm_calls(void *arg)
{
    long n = (long)(intptr_t)arg;
    for (long i = 0; i < n; i++)
        if (!(handles[i] = weft_at(deadline_of[i], call, (void *)(intptr_t)i)))
            fail("weft_at");
    return NULL;
}

static void draw_deadlines(long n, int64_t from)
{
    for (long i = 0; i < n; i++)
        deadline_of[i] = from + (int64_t)(rnd() % (uint64_t)window);
}

/* CPU ns per timer, spawn (or arming) to all fired; the order is checked as they fire. */
static double run_e2e(int after, long n)
{
    long reps = 100000 / n > 0 ? 100000 / n : 1;
    window = n / 1000 > 10 ? n / 1000 : 10;     /* about 1,000 timers a millisecond at 1M */
    rng = 88172645463325252ull;
    double cpu = 0;
    for (long r = 0; r < reps; r++) {
        nwoke = 0;
        double c0 = cpu_ns();
        if (after) {
            draw_deadlines(n, weft_now() + 1);  /* none fires before all are armed */
            if (weft_main(arm_calls, (void *)(intptr_t)n) != 0)
                fail("weft_main");
            for (long i = 0; i < n; i++)
                if (weft_timer_stop(handles[i]) != 1)
                    fail("weft_timer_stop: not fired");
        } else {
            weft_attr a = { .detached = 1, .stack_size = WEFT_STACK_MIN };
            double w0 = now_ns();
            for (long i = 0; i < n; i++)
                if (!weft_spawn(&a, sleeper, (void *)(intptr_t)i))
                    fail("weft_spawn");
            /* The tasks arm their timers once weft_run runs them: leave them time to. */
            int64_t spawn_ms = (int64_t)((now_ns() - w0) / 1e6);
            draw_deadlines(n, weft_now() + 2 * spawn_ms + 5);
            if (weft_run() != 0)
                fail("weft_run");
        }
        cpu += cpu_ns() - c0;
        if (nwoke != n) {
            fprintf(stderr, "%ld of %ld timers fired\n", nwoke, n);
            exit(1);
        }
    }
    return cpu / (double)(reps * n);
}

/* ---- the runs -------------------------------------------------------------------------- */

enum { FIRE, IDLE, SLEEP, AFTER, NV };
static const char *const vname[NV] = { "fire", "idle", "sleep", "after" };
#define MAXSIZES 8

int main(int argc, char **argv)
{
    struct bench_opts o;
    bench_parse(argc, argv, &o, usage);
    long top = o.n ? o.n : 1000000;
    long sizes[MAXSIZES];
    int nsizes = 0;
    for (long s = 1000; s <= top && nsizes < MAXSIZES; s *= 10)
        sizes[nsizes++] = s;
    if (nsizes == 0 || sizes[nsizes - 1] != top) {
        fprintf(stderr, "%s: -n must be 1000 times a power of ten\n", argv[0]);
        return 2;
    }
    int on[NV];
    for (int v = 0; v < NV; v++)
        on[v] = bench_selected(&o, vname[v]);
    recs = calloc((size_t)top, sizeof *recs);
    deadline_of = calloc((size_t)top, sizeof *deadline_of);
    woke = calloc((size_t)top, sizeof *woke);
    handles = calloc((size_t)top, sizeof *handles);
    if (!recs || !deadline_of || !woke || !handles)
        fail("calloc");
    /* ns[v][size][heap][round]; end to end has one "heap", the library's. */
    static double ns[NV][MAXSIZES][NHEAP][1000];
    long fired_total = 0, ops_total = 0, late_total = 0;
    for (int s = 0; s < nsizes; s++)        /* warm: the records resident, heaps grown once */
        for (int hp = 0; hp < NHEAP; hp++)
            if (on[FIRE] || on[IDLE])
                run_fire(&heaps[hp], sizes[s]);
    for (int r = 0; r < o.rounds; r++) {
        for (int s = 0; s < nsizes; s++) {
            for (int hp = 0; hp < NHEAP; hp++) {
                if (on[FIRE])
                    ns[FIRE][s][hp][r] = run_fire(&heaps[hp], sizes[s]);
                if (on[IDLE]) {
                    ns[IDLE][s][hp][r] = run_idle(&heaps[hp], sizes[s]);
                    fired_total += idle_fired;
                    ops_total += idle_ops;
                }
            }
            if (s != 0 && s != nsizes - 1)
                continue;           /* end to end: the smallest and the largest size */
            for (int v = SLEEP; v <= AFTER; v++) {
                if (!on[v])
                    continue;
                early = late = disorder = 0;
                ns[v][s][0][r] = run_e2e(v == AFTER, sizes[s]);
                if (early || (disorder && !late)) {
                    fprintf(stderr, "%s %ld: %ld fired early, %ld out of order\n", vname[v],
                            sizes[s], early, disorder);
                    return 1;
                }
                late_total += late;
            }
        }
    }

    if (!o.quiet)
        printf("# ns per timer armed and fired (fire, sleep, after) or per operation (idle);\n"
               "# medians of %d interleaved rounds; flat = cost at %ld / cost at 1000\n",
               o.rounds, top);
    double tmp[1000];
    for (int v = FIRE; v <= IDLE; v++) {
        if (!on[v])
            continue;
        for (int s = 0; s < nsizes; s++) {
            double ratio[NHEAP];
            for (int hp = KEYED; hp < NHEAP; hp++) {
                for (int r = 0; r < o.rounds; r++)
                    tmp[r] = ns[v][s][hp][r] / ns[v][s][WHEEL][r];
                ratio[hp] = median(tmp, o.rounds);
            }
            printf("heap  %-5s %8ld  wheel %6.1f ns  keyed4 %6.1f ns  binheap %6.1f ns  "
                   "keyed4/wheel %5.2f  binheap/wheel %5.2f\n", vname[v], sizes[s],
                   median(ns[v][s][WHEEL], o.rounds), median(ns[v][s][KEYED], o.rounds),
                   median(ns[v][s][BIN], o.rounds), ratio[KEYED], ratio[BIN]);
        }
        for (int hp = 0; hp < NHEAP; hp++) {
            for (int r = 0; r < o.rounds; r++)
                tmp[r] = ns[v][nsizes - 1][hp][r] / ns[v][0][hp][r];
            printf("flat  %-5s %-7s %ld/1000 %5.2f\n", vname[v], heaps[hp].name, top,
                   median(tmp, o.rounds));
        }
    }
    if (on[IDLE] && ops_total)
        printf("# idle: %.2f%% of the operations' timers fired\n",
               100.0 * (double)fired_total / (double)ops_total);
    for (int v = SLEEP; v <= AFTER; v++) {
        if (!on[v])
            continue;
        int last = nsizes - 1;
        for (int r = 0; r < o.rounds; r++)
            tmp[r] = ns[v][last][0][r] / ns[v][0][0][r];
        double flat = median(tmp, o.rounds);
        printf("e2e   %-5s %8ld %7.1f ns  %8ld %7.1f ns  flat %5.2f  (in order, none early)\n",
               vname[v], sizes[0], median(ns[v][0][0], o.rounds), sizes[last],
               median(ns[v][last][0], o.rounds), flat);
    }
    if (late_total)
        printf("# sleep: %ld tasks first ran after their deadline (order not judged for them)\n",
               late_total);
    return 0;
}

/* The switches the bench programs measure against: floor, two contexts swapping in one
 * loop, and floor_asym, main and one coroutine each switching from its own call site
 * (bench/switch.c has its own floor, with the FP-state variant); weft and weft_asym, the
 * same with two tasks and weft_yield. Each returns the ns n switches took. */
#include "bench.h"
#include "weft.h"

static void *main_sp, *side_sp[2], *side_lo[2];
static long side_n;
static double side_t0, side_t1;

static __attribute__((noinline)) void side_loop(int me)
{
    for (long i = 0; i < side_n; i++)
        floor_swap(&side_sp[me], side_sp[!me]);
}

static void side0(void)
{
    floor_swap(&side_sp[0], side_sp[1]);
    side_t0 = now_ns();
    side_loop(0);
    side_t1 = now_ns();
    floor_swap(&side_sp[0], main_sp);
    abort();
}

static void side1(void)
{
    floor_swap(&side_sp[1], side_sp[0]);
    side_loop(1);
    abort();
}

double bench_floor(long n)
{
    for (int i = 0; i < 2; i++)
        if (!side_lo[i])
            side_lo[i] = bench_stack();
    side_n = n / 2;
    side_sp[0] = floor_make(side_lo[0], BENCH_STACK, side0);
    side_sp[1] = floor_make(side_lo[1], BENCH_STACK, side1);
    floor_swap(&main_sp, side_sp[0]);
    return side_t1 - side_t0;
}

static void *asym_main_sp, *asym_co_sp;

static void asym_co(void)
{
    for (;;)
        floor_swap(&asym_co_sp, asym_main_sp);
}

double bench_floor_asym(long n)
{
    if (!asym_co_sp)
        asym_co_sp = floor_make(bench_stack(), BENCH_STACK, asym_co);
    floor_swap(&asym_main_sp, asym_co_sp);
    double t0 = now_ns();
    for (long i = 0; i < n / 2; i++)
        floor_swap(&asym_main_sp, asym_co_sp);
    return now_ns() - t0;
}

/* weft: both tasks run ping, so each yield returns to the place the other task left from.
 * weft_asym: pong_a and pong_b yield from places of their own (like floor_asym). */
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

static void *pong_a(void *arg)
{
    weft_yield();
    weft_t0 = now_ns();
    for (long i = 0; i < yields; i++)
        weft_yield();
    return arg;
}

static __attribute__((noinline)) void pong_b_loop(void)
{
    for (long i = 0; i < yields; i++) {
        __asm__ volatile("" ::: "memory");     /* a loop body of its own, never merged */
        weft_yield();
    }
}

static void *pong_b(void *arg)
{
    weft_yield();
    pong_b_loop();
    weft_t1 = now_ns();
    return arg;
}

static double run_tasks(long n, void *(*a)(void *), void *(*b)(void *))
{
    yields = n / 2;
    if (!weft_go(a, (void *)1) || !weft_go(b, NULL)) {
        perror("weft_go");
        exit(1);
    }
    if (weft_run() != 0) {
        perror("weft_run");
        exit(1);
    }
    return weft_t1 - weft_t0;
}

double bench_weft(long n)
{
    return run_tasks(n, ping, ping);
}

double bench_weft_asym(long n)
{
    return run_tasks(n, pong_a, pong_b);
}

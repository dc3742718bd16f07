/* The floor switches the bench programs measure against (bench/switch.c has its own, with
 * the FP-state variant): floor, two contexts swapping in one loop; floor_asym, main and one
 * coroutine, each switching from its own call site. Each returns the ns n switches took. */
#include "bench.h"

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

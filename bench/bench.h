/* Helpers shared by the bench programs: the clock, medians, calibrating an iteration count
 * to a time budget, the command line every program takes, and the floor switch
 * (floor_<arch>.S). What is measured, and how a result is counted, is each program's own. */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#endif

/* The floor switch (floor.S, for x86-64 and AArch64; elsewhere the programs leave it out):
 * save the callee-saved registers on the current stack, store the stack
 * pointer in *from_sp, load to_sp and restore. floor_make returns the saved stack pointer
 * of a context that runs entry() (which must never return) on [lo, lo+size). */
#if defined(__x86_64__) || defined(__aarch64__)
#define BENCH_HAVE_FLOOR 1
void floor_swap(void **from_sp, void *to_sp);
void *floor_make(void *lo, size_t size, void (*entry)(void));
/* The same plus the FP control state weft's switch keeps per task (x86-64: MXCSR and the
 * x87 control word; AArch64: FPCR). */
void floor_fp_swap(void **from_sp, void *to_sp);
void *floor_fp_make(void *lo, size_t size, void (*entry)(void));
#else
#define BENCH_HAVE_FLOOR 0
static inline void floor_swap(void **from_sp, void *to_sp) { (void)from_sp; (void)to_sp; abort(); }
static inline void *floor_make(void *lo, size_t size, void (*entry)(void))
{
    (void)lo; (void)size; (void)entry;
    abort();
}
#define floor_fp_swap floor_swap
#define floor_fp_make floor_make
#endif

#define BENCH_STACK ((size_t)64 * 1024)

/* A stack for a baseline context (malloc'd, never freed: the contexts live as long as the
 * program), announced to Valgrind so callgrind runs stay quiet. */
static inline void *bench_stack(void)
{
    char *lo = malloc(BENCH_STACK);
    if (!lo) {
        perror("malloc");
        exit(1);
    }
    (void)VALGRIND_STACK_REGISTER(lo, lo + BENCH_STACK);
    return lo;
}

static inline double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static inline double minimum(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

/* The command line: -n UNITS (fixed work per measurement: no calibration, deterministic
 * for callgrind), -r ROUNDS, -t MS (time budget per measurement when calibrating),
 * -o NAME[,NAME...] (run only those variants), -q (machine lines only). */
struct bench_opts {
    long n;
    int rounds;
    double budget_ns;
    const char *only;
    int quiet;
};

static inline void bench_parse(int argc, char **argv, struct bench_opts *o, const char *usage)
{
    o->n = 0;
    o->rounds = 9;
    o->budget_ns = 20e6;
    o->only = NULL;
    o->quiet = 0;
    int c;
    while ((c = getopt(argc, argv, "n:r:t:o:qh")) != -1) {
        switch (c) {
        case 'n': o->n = atol(optarg); break;
        case 'r': o->rounds = atoi(optarg); break;
        case 't': o->budget_ns = atof(optarg) * 1e6; break;
        case 'o': o->only = optarg; break;
        case 'q': o->quiet = 1; break;
        default:
            fprintf(stderr, "usage: %s [-n units] [-r rounds] [-t ms] [-o variant] [-q]\n%s",
                    argv[0], usage);
            exit(c == 'h' ? 0 : 2);
        }
    }
    if (o->rounds < 1 || o->rounds > 1000 || o->n < 0 || o->budget_ns <= 0) {
        fprintf(stderr, "%s: bad -n, -r or -t\n", argv[0]);
        exit(2);
    }
}

/* Is variant 'name' among the comma-separated names of -o (or is there no -o)? */
static inline int bench_selected(const struct bench_opts *o, const char *name)
{
    if (!o->only)
        return 1;
    size_t len = strlen(name);
    for (const char *p = o->only; *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] == ',')) {
        if (strncmp(p, name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
            return 1;
    }
    return 0;
}

/* Units of work that take about budget_ns for run(n) (which returns the ns it took);
 * a multiple of 'step', at least 'step'. With -n, that count as given. */
static inline long calibrate(const struct bench_opts *o, double (*run)(long n), long step)
{
    if (o->n)
        return o->n;
    long n = step;
    double t;
    while ((t = run(n)) < o->budget_ns / 20 && n < (1L << 40))
        n *= 2;
    double want = (double)n * o->budget_ns / (t > 1 ? t : 1);
    n = (long)(want / (double)step) * step;
    return n < step ? step : n;
}

/* bench/floors.c: ns taken by n floor switches (two contexts in one loop), and by n
 * floor_asym switches (main and a coroutine, each from its own call site). */
double bench_floor(long n);
double bench_floor_asym(long n);
/* ... and by n weft_yield switches between two tasks, both in one loop (weft) or each in a
 * loop of its own (weft_asym). */
double bench_weft(long n);
double bench_weft_asym(long n);

#endif

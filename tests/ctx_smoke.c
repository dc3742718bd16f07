/* A standalone smoke test of the context layer through the public API, for ports and emulators
 * (.ci/aarch64.sh runs it under qemu-user; it is not part of make check and needs no test
 * framework). It checks round-robin order, callee-saved registers and the FP control word across
 * switches, sleep and join, the stack-overflow report, and that a parked task's saved registers
 * (ctx_saved_regs, which the dump unwinds from) lead through its frames. The per-module suites
 * go deeper. */
#include "config.h"
#include "sched.h"      /* the task record and ctx_saved_regs, for the unwind check */

#include <dlfcn.h>
#include <errno.h>
#include <fenv.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

static int passed, failed;

static void check(const char *name, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void check(const char *name, int ok, const char *fmt, ...)
{
    if (ok) {
        passed++;
        printf("ok   %s\n", name);
    } else {
        failed++;
        printf("FAIL %s: ", name);
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

/* ---- round robin -------------------------------------------------------------------------- */

enum { RR_TASKS = 500, RR_ROUNDS = 10 };
static int rr_log[RR_TASKS * RR_ROUNDS];
static int rr_n;

static void *rr_task(void *arg)
{
    for (int r = 0; r < RR_ROUNDS; r++) {
        rr_log[rr_n++] = (int)(intptr_t)arg;
        if (weft_yield() != 0)
            return (void *)1;
    }
    return NULL;
}

static void *rr_main(void *arg)
{
    static weft_task *t[RR_TASKS];
    int errors = 0;
    for (intptr_t i = 0; i < RR_TASKS; i++)
        if (!(t[i] = weft_spawn(&(weft_attr){ .stack_size = WEFT_STACK_MIN }, rr_task, (void *)i)))
            errors++;
    for (int i = 0; i < RR_TASKS; i++) {
        void *v = (void *)1;
        if (!t[i] || weft_join(t[i], &v) != 0 || v != NULL)
            errors++;
    }
    *(int *)arg = errors;
    return NULL;
}

static void test_round_robin(void)
{
    int errors = -1;
    int rc = weft_main(rr_main, &errors);
    int first_bad = -1;
    for (int k = 0; k < RR_TASKS * RR_ROUNDS && first_bad < 0; k++)
        if (k >= rr_n || rr_log[k] != k % RR_TASKS)
            first_bad = k;
    check("round_robin_order", rc == 0 && errors == 0 && rr_n == RR_TASKS * RR_ROUNDS && first_bad < 0,
          "rc %d, spawn/join errors %d, %d entries, first out of order at %d (task %d)", rc, errors,
          rr_n, first_bad, first_bad >= 0 && first_bad < rr_n ? rr_log[first_bad] : -1);
}

/* ---- callee-saved registers --------------------------------------------------------------- */

/* smoke_regs_probe(seed, fn, out): load every callee-saved register with seed+k, call fn (which
 * switches to other tasks that load their own values), then store the registers to out. After
 * the register slots: the stack pointer before and after the call (and, on aarch64, x29). */
void smoke_regs_probe(uint64_t seed, int (*fn)(void), uint64_t *out);

#if defined(__aarch64__)
enum { PROBE_REGS = 18, PROBE_SP_BEFORE = 20, PROBE_SP_AFTER = 19, PROBE_FP_AFTER = 18 };
static const char *const probe_names[] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
    "d8", "d9", "d10", "d11", "d12", "d13", "d14", "d15",
};
__asm__(
    "    .text\n"
    "    .globl smoke_regs_probe\n"
    "    .hidden smoke_regs_probe\n"
    "    .type smoke_regs_probe, %function\n"
    "    .p2align 2\n"
    "smoke_regs_probe:\n"
    "    stp x29, x30, [sp, #-176]!\n"
    "    mov x29, sp\n"
    "    stp x19, x20, [sp, #16]\n"
    "    stp x21, x22, [sp, #32]\n"
    "    stp x23, x24, [sp, #48]\n"
    "    stp x25, x26, [sp, #64]\n"
    "    stp x27, x28, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    str x2, [sp, #160]\n"
    "    mov x9, sp\n"
    "    str x9, [x2, #160]\n"
    "    add x19, x0, #1\n"
    "    add x20, x0, #2\n"
    "    add x21, x0, #3\n"
    "    add x22, x0, #4\n"
    "    add x23, x0, #5\n"
    "    add x24, x0, #6\n"
    "    add x25, x0, #7\n"
    "    add x26, x0, #8\n"
    "    add x27, x0, #9\n"
    "    add x28, x0, #10\n"
    "    add x9, x0, #11\n    fmov d8, x9\n"
    "    add x9, x0, #12\n    fmov d9, x9\n"
    "    add x9, x0, #13\n    fmov d10, x9\n"
    "    add x9, x0, #14\n    fmov d11, x9\n"
    "    add x9, x0, #15\n    fmov d12, x9\n"
    "    add x9, x0, #16\n    fmov d13, x9\n"
    "    add x9, x0, #17\n    fmov d14, x9\n"
    "    add x9, x0, #18\n    fmov d15, x9\n"
    "    blr x1\n"
    "    ldr x2, [sp, #160]\n"
    "    stp x19, x20, [x2, #0]\n"
    "    stp x21, x22, [x2, #16]\n"
    "    stp x23, x24, [x2, #32]\n"
    "    stp x25, x26, [x2, #48]\n"
    "    stp x27, x28, [x2, #64]\n"
    "    stp d8, d9, [x2, #80]\n"
    "    stp d10, d11, [x2, #96]\n"
    "    stp d12, d13, [x2, #112]\n"
    "    stp d14, d15, [x2, #128]\n"
    "    mov x9, sp\n"
    "    stp x29, x9, [x2, #144]\n"
    "    ldp x19, x20, [sp, #16]\n"
    "    ldp x21, x22, [sp, #32]\n"
    "    ldp x23, x24, [sp, #48]\n"
    "    ldp x25, x26, [sp, #64]\n"
    "    ldp x27, x28, [sp, #80]\n"
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldp x29, x30, [sp], #176\n"
    "    ret\n"
    "    .size smoke_regs_probe, .-smoke_regs_probe\n");
#define HAVE_PROBE 1
#elif defined(__x86_64__)
enum { PROBE_REGS = 6, PROBE_SP_BEFORE = 6, PROBE_SP_AFTER = 7, PROBE_FP_AFTER = -1 };
static const char *const probe_names[] = { "rbx", "rbp", "r12", "r13", "r14", "r15" };
__asm__(
    "    .text\n"
    "    .globl smoke_regs_probe\n"
    "    .hidden smoke_regs_probe\n"
    "    .type smoke_regs_probe, @function\n"
    "    .p2align 4\n"
    "smoke_regs_probe:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    pushq %rdx\n"
    "    movq %rsp, 48(%rdx)\n"
    "    leaq 1(%rdi), %rbx\n"
    "    leaq 2(%rdi), %rbp\n"
    "    leaq 3(%rdi), %r12\n"
    "    leaq 4(%rdi), %r13\n"
    "    leaq 5(%rdi), %r14\n"
    "    leaq 6(%rdi), %r15\n"
    "    callq *%rsi\n"
    "    movq %rsp, %rax\n"
    "    popq %rdx\n"
    "    movq %rbx, 0(%rdx)\n"
    "    movq %rbp, 8(%rdx)\n"
    "    movq %r12, 16(%rdx)\n"
    "    movq %r13, 24(%rdx)\n"
    "    movq %r14, 32(%rdx)\n"
    "    movq %r15, 40(%rdx)\n"
    "    movq %rax, 56(%rdx)\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    "    .size smoke_regs_probe, .-smoke_regs_probe\n");
#define HAVE_PROBE 1
#endif

#ifdef HAVE_PROBE
enum { PROBE_TASKS = 8, PROBE_ROUNDS = 40 };

/* Called with every callee-saved register loaded: switch away, through the main context too. */
static int probe_yield(void)
{
    static unsigned n;
    n++;
    if (n % 7 == 0)
        return weft_sleep(1);       /* parks: the loop runs in the main context meanwhile */
    int r = weft_yield();
    if (n % 3 == 0 && r == 0)
        r = weft_yield();
    return r;
}

static char probe_err[256];

static void *probe_task(void *arg)
{
    uint64_t seed = 0x5eed000000000000ull + ((uint64_t)(uintptr_t)arg << 24);
    for (int round = 0; round < PROBE_ROUNDS; round++) {
        uint64_t out[24] = { 0 };
        smoke_regs_probe(seed + ((uint64_t)round << 8), probe_yield, out);
        for (int k = 0; k < PROBE_REGS; k++) {
            uint64_t want = seed + ((uint64_t)round << 8) + (uint64_t)k + 1;
            if (out[k] != want) {
                snprintf(probe_err, sizeof probe_err, "task %d round %d: %s = %#llx, want %#llx",
                         (int)(intptr_t)arg, round, probe_names[k], (unsigned long long)out[k],
                         (unsigned long long)want);
                return (void *)1;
            }
        }
        if (out[PROBE_SP_AFTER] != out[PROBE_SP_BEFORE] ||
            (PROBE_FP_AFTER >= 0 && out[PROBE_FP_AFTER] != out[PROBE_SP_BEFORE])) {
            snprintf(probe_err, sizeof probe_err, "task %d round %d: sp %#llx -> %#llx",
                     (int)(intptr_t)arg, round, (unsigned long long)out[PROBE_SP_BEFORE],
                     (unsigned long long)out[PROBE_SP_AFTER]);
            return (void *)1;
        }
    }
    return NULL;
}
#endif

/* Many doubles live across switches: the compiler keeps them in callee-saved FP registers
 * (d8-d15 on aarch64) or spills them; either way they must come back intact. Every value is
 * exact in binary, so stepping by 1 and recomputing agree bit for bit. */
static void *fp_locals_task(void *arg)
{
    volatile double seed = (double)(intptr_t)arg;
    double base = seed;
    double a = base + 0.5, b = base * 2.25, c = base - 7.125, d = base * base;
    double e = base / 4 + 0.0625, f = base * 1024, g = -base, h = base * 0.75, k = base + 0.25;
    for (int i = 0; i < 50; i++) {
        if (weft_yield() != 0)
            return (void *)1;
        if (a != base + 0.5 + i || b != base * 2.25 + i || c != base - 7.125 + i ||
            d != base * base + i || e != base / 4 + 0.0625 + i || f != base * 1024 + i ||
            g != -base + i || h != base * 0.75 + i || k != base + 0.25 + i)
            return (void *)1;
        a += 1; b += 1; c += 1; d += 1; e += 1; f += 1; g += 1; h += 1; k += 1;
    }
    return NULL;
}

static void *regs_main(void *arg)
{
    int *bad = arg;
    weft_task *t[16];
    int n = 0;
#ifdef HAVE_PROBE
    for (intptr_t i = 0; i < PROBE_TASKS; i++)
        t[n++] = weft_go(probe_task, (void *)i);
#endif
    int first_fp = n;
    for (intptr_t i = 0; i < 6; i++)
        t[n++] = weft_go(fp_locals_task, (void *)(i * 37 + 1));
    for (int i = 0; i < n; i++) {
        void *v = (void *)1;
        if (!t[i] || weft_join(t[i], &v) != 0 || v != NULL)
            bad[i < first_fp ? 0 : 1]++;
    }
    return NULL;
}

static void test_registers(void)
{
    int bad[2] = { 0, 0 };
    int rc = weft_main(regs_main, bad);
#ifdef HAVE_PROBE
    check("callee_saved_registers_survive_switches", rc == 0 && bad[0] == 0, "rc %d, %d tasks failed: %s",
          rc, bad[0], probe_err);
#else
    printf("skip callee_saved_registers_survive_switches (no probe for this CPU)\n");
#endif
    check("fp_locals_survive_switches", rc == 0 && bad[1] == 0, "rc %d, %d tasks failed", rc, bad[1]);
}

/* ---- FP control (rounding mode) per task -------------------------------------------------- */

struct fp_arg {
    int mode;
    int bad;
    double q;           /* 1/3 as computed in this task's rounding mode */
    int child_mode;     /* rounding mode a task spawned here started with */
};

static void *fp_child(void *arg)
{
    *(int *)arg = fegetround();
    return NULL;
}

static void *fp_task(void *arg)
{
    struct fp_arg *a = arg;
    volatile double one = 1.0, three = 3.0;
    if (fesetround(a->mode) != 0) {
        a->bad = 1000;
        return NULL;
    }
    a->q = one / three;
    weft_task *child = weft_go(fp_child, &a->child_mode);
    for (int i = 0; i < 30; i++) {
        if (weft_yield() != 0)
            a->bad++;
        if (fegetround() != a->mode || one / three != a->q)
            a->bad++;
    }
    if (!child || weft_join(child, NULL) != 0)
        a->bad++;
    return NULL;
}

static void *fp_main(void *arg)
{
    struct fp_arg *a = arg;
    weft_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = weft_go(fp_task, &a[i]);
    for (int i = 0; i < 4; i++)
        if (!t[i] || weft_join(t[i], NULL) != 0)
            a[i].bad++;
    return NULL;
}

static void test_fp_control(void)
{
    struct fp_arg a[4] = {
        { .mode = FE_TONEAREST }, { .mode = FE_UPWARD }, { .mode = FE_DOWNWARD }, { .mode = FE_TOWARDZERO },
    };
    for (int i = 0; i < 4; i++)
        a[i].child_mode = -1;
    int rc = weft_main(fp_main, a);
    int bad = 0, inherit = 1;
    for (int i = 0; i < 4; i++) {
        bad += a[i].bad;
        inherit &= a[i].child_mode == a[i].mode;
    }
    check("rounding_mode_is_per_task", rc == 0 && bad == 0 && a[1].q > a[2].q, "rc %d, %d mismatches, "
          "upward 1/3 %a, downward %a", rc, bad, a[1].q, a[2].q);
    check("main_context_keeps_its_rounding_mode", fegetround() == FE_TONEAREST, "mode %#x", fegetround());
    check("spawned_task_starts_with_spawners_rounding_mode", rc == 0 && inherit,
          "child modes %#x %#x %#x %#x", a[0].child_mode, a[1].child_mode, a[2].child_mode, a[3].child_mode);
}

/* ---- sleep and join ----------------------------------------------------------------------- */

static int64_t wake_order[4];
static int nwoken;

static void *sleeper(void *arg)
{
    int64_t ms = (intptr_t)arg, start = weft_now();
    if (weft_sleep(ms) != 0)
        return (void *)(intptr_t)-1;
    wake_order[nwoken++] = ms;
    return (void *)(intptr_t)(weft_now() - start);
}

struct sleep_res {
    int64_t took[3];
    int join_errors;
    int early_join_timed_out;
    int done_join_ok;
};

static void *sleep_main(void *arg)
{
    struct sleep_res *r = arg;
    static const int ms[3] = { 60, 20, 40 };
    weft_task *t[3];
    for (int i = 0; i < 3; i++)
        t[i] = weft_go(sleeper, (void *)(intptr_t)ms[i]);
    /* A join whose deadline passes first times out, and the task can be joined later. */
    r->early_join_timed_out = t[0] && weft_join_until(t[0], NULL, weft_now() + 5) == -1 && errno == ETIMEDOUT;
    weft_sleep(100);    /* now t[1] and t[2] have ended: joining them reports at once */
    for (int i = 0; i < 3; i++) {
        void *v;
        if (!t[i] || weft_join(t[i], &v) != 0)
            r->join_errors++;
        else
            r->took[i] = (intptr_t)v;
    }
    r->done_join_ok = r->join_errors == 0;
    return NULL;
}

static void test_sleep_join(void)
{
    struct sleep_res r = { { 0 }, 0, 0, 0 };
    int64_t start = weft_now();
    int rc = weft_main(sleep_main, &r);
    int64_t total = weft_now() - start;
    check("sleepers_wake_in_deadline_order", rc == 0 && nwoken == 3 && wake_order[0] == 20 &&
          wake_order[1] == 40 && wake_order[2] == 60, "rc %d, woken %d: %lld %lld %lld", rc, nwoken,
          (long long)wake_order[0], (long long)wake_order[1], (long long)wake_order[2]);
    check("sleep_never_wakes_early", r.took[0] >= 60 && r.took[1] >= 20 && r.took[2] >= 40,
          "slept %lld %lld %lld ms", (long long)r.took[0], (long long)r.took[1], (long long)r.took[2]);
    check("join_until_times_out_then_join_collects", r.early_join_timed_out && r.done_join_ok,
          "timed out %d, joins ok %d", r.early_join_timed_out, r.done_join_ok);
    check("run_returns_when_all_tasks_end", rc == 0 && total >= 100, "rc %d after %lld ms", rc, (long long)total);
}

/* ---- many tasks --------------------------------------------------------------------------- */

enum { MANY = 10000 };
static long many_yields;

static void *many_task(void *arg)
{
    for (int i = 0; i < 3; i++)
        if (weft_yield() == 0)
            many_yields++;
    return arg;
}

static void *many_main(void *arg)
{
    int *bad = arg;
    weft_attr a = { .stack_size = WEFT_STACK_MIN, .detached = 1 };
    for (int i = 0; i < MANY; i++)
        if (!weft_spawn(&a, many_task, NULL))
            (*bad)++;
    return NULL;
}

static void test_many(void)
{
    int bad = 0;
    int rc = weft_main(many_main, &bad);
    check("ten_thousand_detached_tasks_run_to_the_end", rc == 0 && bad == 0 && many_yields == 3L * MANY,
          "rc %d, %d spawn failures, %ld yields", rc, bad, many_yields);
}

/* ---- stack overflow ----------------------------------------------------------------------- */

/* 0: recurse without bound; else write this many bytes as one block from near the top of
 * the stack down past its bottom. One block, because the canary is a single word: a chain of
 * frames leaves gaps (saved registers, ASan's redzones) where it may survive. */
static size_t of_block;
static int of_depth_guard;      /* never set: keeps the recursion from looking infinite */

static int recurse(int depth)
{
    volatile char buf[512];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (char)depth;
    if (of_depth_guard && depth > of_depth_guard)
        return buf[depth % 512];
    return recurse(depth + 1) + buf[(depth * 7) % 512];
}

static __attribute__((noinline)) int overrun(size_t n)
{
    volatile char block[n];
    for (size_t i = 0; i < n; i++)      /* lowest address first: that is where a guard is */
        block[i] = (char)i;
    return block[n / 2];
}

static void *overflow_task(void *arg)
{
    if (of_block)
        overrun(of_block);
    else
        recurse(0);
    weft_yield();       /* the canary is checked when the task switches out */
    return arg;
}

enum { OF_STACK = 64 * 1024 };

static void *overflow_main(void *arg)
{
    weft_attr a = { .stack_size = OF_STACK, .name = "deep" };
    weft_task *t = weft_spawn(&a, overflow_task, NULL);
    if (t)
        weft_join(t, NULL);
    return NULL;
}

/* Run an overflow in a child with WEFT_GUARD=guard (NULL: weft's choice): beyond the stack by
 * 'beyond' bytes (0: without bound). The child must abort with the report naming 'expect'. This
 * runs before the parent makes any weft call, so each child picks its guard afresh. */
static void overflow_case(const char *name, const char *guard, size_t beyond, const char *expect)
{
    int pfd[2];
    if (pipe(pfd) != 0) {
        check(name, 0, "pipe: %s", strerror(errno));
        return;
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], STDERR_FILENO);
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        if (guard)
            setenv("WEFT_GUARD", guard, 1);
        else
            unsetenv("WEFT_GUARD");
        of_block = beyond ? OF_STACK + beyond : 0;
        alarm(20);
        weft_main(overflow_main, NULL);
        fprintf(stderr, "no overflow was reported\n");
        _exit(3);
    }
    close(pfd[1]);
    char out[2048];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof out - 1 && (n = read(pfd[0], out + len, sizeof out - 1 - len)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    /* The report's line (a sanitizer may have printed warnings before it), or the first. */
    char *line = strstr(out, "weft: stack overflow");
    if (!line)
        line = out;
    char *nl = strchr(line, '\n');
    if (nl)
        *nl = '\0';
    int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    check(name, aborted && strstr(line, "weft: stack overflow in task") && strstr(line, "\"deep\"") &&
          strstr(line, expect), "status %#x (%s), stderr: %s", status,
          WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "exited", line);
    if (aborted)
        printf("     %s\n", line);
}

/* ---- a parked task's saved registers ------------------------------------------------------ */

/* ctx_saved_regs must give a pc in weft's code and an sp and fp inside the task's stack, and the
 * chain of frame records from that fp must climb the stack through the task's own function and
 * (asm backends) end with fp 0 at the trampoline. */
static volatile int unwind_release;

static __attribute__((noinline)) void park_here(void)
{
    weft_yield();
    __asm__ volatile("" ::: "memory");      /* no tail call: keep this frame */
}

static void *unwind_parked(void *arg)
{
    while (!unwind_release)
        park_here();
    return arg;
}

static uintptr_t strip_pac(uintptr_t pc)
{
#if defined(__aarch64__)
    return pc & 0x00ffffffffffffull;    /* drop a pointer authentication code (pac-ret) */
#else
    return pc;
#endif
}

static int same_object(uintptr_t pc, const void *known)
{
    Dl_info a, b;
    return dladdr((void *)pc, &a) && dladdr(known, &b) && a.dli_fname && b.dli_fname &&
           strcmp(a.dli_fname, b.dli_fname) == 0;
}

static char unwind_err[256];

static void *unwind_main(void *arg)
{
    int *ok = arg;
    weft_task *t = weft_go(unwind_parked, NULL);
    if (!t || weft_yield() != 0) {      /* t runs and parks in park_here */
        snprintf(unwind_err, sizeof unwind_err, "spawn or yield failed");
        return NULL;
    }
    struct weft_task *rec_t = task_of(t);
    uintptr_t pc = 0, sp = 0, fp = 0;
    uintptr_t lo = (uintptr_t)stack_lo(&rec_t->stack), hi = lo + rec_t->stack.size;
    int have = ctx_saved_regs(&rec_t->ctx, &pc, &sp, &fp);
    int frames = 0, in_user = 0, ended_at_zero = 0;
    if (have) {
        uintptr_t f = fp;
        while (f >= sp && f < hi && frames < 64 && (f & 7) == 0) {
            const uintptr_t *rec = (const uintptr_t *)f;
            frames++;
            if (rec[1] && same_object(strip_pac(rec[1]), (const void *)unwind_main))
                in_user++;
            if (rec[0] != 0 && rec[0] <= f)
                break;          /* must climb */
            f = rec[0];
        }
        ended_at_zero = f == 0;
    }
#if defined(WEFT_CTX_ASM)
    int want_zero = 1;
#else
    int want_zero = 0;          /* ucontext: where the walk ends is libc's business */
#endif
#if defined(WEFT_CTX_UCONTEXT) && defined(WEFT_ASAN)
    /* ASan's swapcontext interceptor is what called libc's: the pc is in the ASan runtime. */
    Dl_info di;
    int pc_ok = dladdr((void *)strip_pac(pc), &di) != 0;
#else
    int pc_ok = same_object(strip_pac(pc), (const void *)weft_yield);
#endif
    *ok = have && pc && pc_ok && sp >= lo && sp < hi &&
          fp >= sp && fp < hi && frames >= 2 && in_user >= 2 && (ended_at_zero || !want_zero);
    if (!*ok)
        snprintf(unwind_err, sizeof unwind_err, "have %d pc %#lx sp %#lx fp %#lx stack [%#lx, %#lx): "
                 "%d frames, %d in the program, ended at 0: %d", have, (unsigned long)pc,
                 (unsigned long)sp, (unsigned long)fp, (unsigned long)lo, (unsigned long)hi, frames,
                 in_user, ended_at_zero);
    unwind_release = 1;
    weft_join(t, NULL);
    return NULL;
}

static void test_saved_regs(void)
{
    int ok = 0;
    int rc = weft_main(unwind_main, &ok);
    check("parked_task_saved_regs_unwind_to_its_frames", rc == 0 && ok, "rc %d, %s", rc, unwind_err);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    overflow_case("overflow_hits_guard", NULL, 0, "guard page hit");
    overflow_case("overflow_hits_mprotect_guard", "mprotect", 0, "(mprotect guard): guard page hit");
    overflow_case("overflow_hits_madvise_or_fallback_guard", "madvise", 0, "guard page hit");
    overflow_case("short_overflow_hits_guard", NULL, 6 * 1024, "guard page hit");
    overflow_case("short_overflow_breaks_canary", "canary", 6 * 1024, "(canary): canary overwritten");

    test_round_robin();
    test_registers();
    test_fp_control();
    test_sleep_join();
    test_many();
    test_saved_regs();

    printf("ctx_smoke: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

/* Task stacks (src/stack.c) through the public API: deep recursion within the size asked
 * for, sizes other than the default, reuse from the pool, lazy commit, ENOMEM when address
 * space runs out, and overflow caught and reported for each guard kind, inside a switch and
 * past the guard too, but not for other faults (in forked children, with WEFT_GUARD set
 * before their first weft call). Scheduling is check_sched's. */
#include "config.h"
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>


#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define V(i) ((void *)(uintptr_t)(i))
#define KIB ((size_t)1024)

/* End the test early, saying why (Check has no "skipped" verdict). */

static int nofork(void)
{
    const char *f = getenv("CK_FORK");
    return f && strcmp(f, "no") == 0;
}

static uintptr_t page_size(void) { return (uintptr_t)sysconf(_SC_PAGESIZE); }

#define FRAME() ((uintptr_t)__builtin_frame_address(0))

/* ---- recursion -------------------------------------------------------------------------- */

/* Recurse until 'target' bytes of stack below 'top' are in use; each frame fills a buffer
 * and checks it after the deeper calls return. Returns the bytes reached, 0 if any frame
 * found its buffer changed. */
__attribute__((noinline)) static size_t dig(uintptr_t top, size_t target, unsigned depth)
{
    volatile unsigned char buf[256];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(depth + i);
    size_t used = top - FRAME();
    size_t r = used >= target ? used : dig(top, target, depth + 1);
    for (size_t i = 0; i < sizeof buf; i++)
        if (buf[i] != (unsigned char)(depth + i))
            return 0;
    return r;
}

/* Uses arg bytes of its stack. */
static void *dig_task(void *arg)
{
    return V(dig(FRAME(), (size_t)(uintptr_t)arg, 1));
}

static void dig_in_task(size_t stack_size, size_t target)
{
    weft_attr a = { .stack_size = stack_size };
    weft_task *t = weft_spawn(&a, dig_task, V(target));
    ck_assert_msg(t != NULL, "spawn (stack %zu): %s", stack_size, strerror(errno));
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    size_t reached = (size_t)(uintptr_t)v;
    ck_assert_msg(reached >= target, "stack %zu: reached %zu of %zu bytes (0: a frame was corrupted)",
                  stack_size, reached, target);
    ck_assert_int_eq(weft_run(), 0);
}

START_TEST(recursion_using_three_quarters_of_the_stack_works)
{
    dig_in_task(64 * KIB, 48 * KIB);
}
END_TEST

START_TEST(stacks_of_other_sizes_work)
{
    static const size_t sizes[] = { WEFT_STACK_MIN, 20000, WEFT_STACK_DEFAULT, 256 * KIB, 1024 * KIB };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        dig_in_task(sizes[i], sizes[i] / 4 * 3);
}
END_TEST

/* ---- the pool ----------------------------------------------------------------------------- */

static void *frame_of_task(void *arg) { return V(FRAME()); }

static uintptr_t frame_in_fresh_task(const weft_attr *a)
{
    weft_task *t = weft_spawn(a, frame_of_task, NULL);
    ck_assert_ptr_nonnull(t);
    void *v = NULL;
    ck_assert_int_eq(weft_join(t, &v), 0);
    return (uintptr_t)v;
}

START_TEST(stack_of_an_ended_task_is_reused)
{
    weft_attr a = { 0 };
    uintptr_t first = frame_in_fresh_task(&a);
    for (int i = 0; i < 5; i++)
        ck_assert_msg(frame_in_fresh_task(&a) == first, "round %d: a different stack", i);
    weft_attr b = { .stack_size = 64 * KIB };
    uintptr_t small = frame_in_fresh_task(&b);
    ck_assert(small != first);
    ck_assert(frame_in_fresh_task(&b) == small);
    ck_assert(frame_in_fresh_task(&a) == first);       /* each size keeps its own */
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

static void *yield_then_end(void *arg)
{
    weft_yield();
    return arg;
}

static void *frame_after_yield(void *arg)
{
    weft_yield();
    return V(FRAME());
}

START_TEST(tasks_alive_together_get_distinct_stacks_then_reuse_them)
{
    enum { N = 4 };
    uintptr_t f[2][N];
    for (int round = 0; round < 2; round++) {
        weft_task *t[N];
        for (int i = 0; i < N; i++)
            ck_assert_ptr_nonnull(t[i] = weft_go(frame_after_yield, NULL));
        for (int i = 0; i < N; i++) {
            void *v;
            ck_assert_int_eq(weft_join(t[i], &v), 0);
            f[round][i] = (uintptr_t)v;
        }
    }
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < i; j++)
            ck_assert(f[0][i] != f[0][j]);
        int found = 0;
        for (int j = 0; j < N; j++)
            found += f[1][i] == f[0][j];
        ck_assert_msg(found == 1, "second round task %d did not get a pooled stack", i);
    }
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

START_TEST(pooled_stack_never_serves_a_bigger_request)
{
    weft_attr small = { .stack_size = 64 * KIB };
    frame_in_fresh_task(&small);                        /* a 64 KiB stack in the pool */
    dig_in_task(256 * KIB, 192 * KIB);                  /* would overflow on that one */
    dig_in_task(WEFT_STACK_DEFAULT, WEFT_STACK_DEFAULT / 4 * 3);
}
END_TEST

/* Resident set size in bytes, from /proc/self/statm. */
static size_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    ck_assert_ptr_nonnull(f);
    unsigned long size, res;
    ck_assert_int_eq(fscanf(f, "%lu %lu", &size, &res), 2);
    fclose(f);
    return res * page_size();
}

enum { LAZY_TASKS = 2000 };
#define LAZY_STACK (1024 * KIB)
static size_t lazy_growth;
static size_t lazy_rss0;

static void *lazy_parker(void *arg)
{
    weft_sleep(20);
    return NULL;
}

static void *lazy_measure(void *arg)
{
    lazy_growth = rss() - lazy_rss0;    /* every parker has run and parked by now */
    return NULL;
}

START_TEST(stacks_are_committed_lazily)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "valgrind's own memory hides the task's resident set");
    lazy_rss0 = rss();
    weft_attr a = { .stack_size = LAZY_STACK, .detached = 1 };
    for (int i = 0; i < LAZY_TASKS; i++)
        ck_assert_ptr_nonnull(weft_spawn(&a, lazy_parker, NULL));
    ck_assert_ptr_nonnull(weft_spawn(&a, lazy_measure, NULL));
    ck_assert_int_eq(weft_run(), 0);
    /* 2000 MiB of stack were mapped; a few pages each may be touched. */
    ck_assert_msg(lazy_growth < LAZY_TASKS * 64 * KIB, "RSS grew by %zu KiB for %d parked tasks",
                  lazy_growth / KIB, LAZY_TASKS);
}
END_TEST

/* Mapped address space in bytes, from /proc/self/statm. */
static size_t vmsize(void)
{
    FILE *f = fopen("/proc/self/statm", "re");
    ck_assert_ptr_nonnull(f);
    unsigned long size;
    ck_assert_int_eq(fscanf(f, "%lu", &size), 1);
    fclose(f);
    return size * page_size();
}

enum { RELEASE_TASKS = 400 };           /* of 1 MiB each: 400 MiB if kept */
#define RELEASE_SLACK ((size_t)150 * 1024 * KIB)

static void spawn_big_stacks(int detached)
{
    weft_attr a = { .stack_size = 1024 * KIB, .detached = detached };
    for (int i = 0; i < RELEASE_TASKS; i++)
        ck_assert_ptr_nonnull(weft_spawn(&a, yield_then_end, NULL));
}

START_TEST(run_releases_pooled_stacks_when_no_task_is_left)
{
    ck_assert_int_eq(weft_run(), 0);
    size_t before = vmsize();
    spawn_big_stacks(1);
    ck_assert_int_ge(vmsize(), before + RELEASE_TASKS * 1024 * KIB);
    ck_assert_int_eq(weft_run(), 0);    /* the stacks went to the pool, then the pool went */
    ck_assert_msg(vmsize() < before + RELEASE_SLACK, "%zu MiB still mapped after weft_run",
                  (vmsize() - before) / 1024 / KIB);
}
END_TEST

static void *spawn_and_leave(void *arg)
{
    spawn_big_stacks(0);                /* never run, never joined */
    *(size_t *)arg = vmsize();
    return NULL;
}

START_TEST(thread_exit_releases_its_scheduler_and_stacks)
{
    size_t before = vmsize(), during = 0;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, spawn_and_leave, &during), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    ck_assert_int_ge(during, before + RELEASE_TASKS * 1024 * KIB);
    ck_assert_msg(vmsize() < before + RELEASE_SLACK, "%zu MiB still mapped after the thread ended",
                  (vmsize() - before) / 1024 / KIB);
}
END_TEST

/* ---- forked children ---------------------------------------------------------------------- */

/* What a child tells its parent, in shared memory. */
struct child_info {
    uint64_t id;                /* the overflowing task's id */
    int line;                   /* where it was spawned (this file) */
    int stage;                  /* how far the child got */
    int spawned, spawn_errno, join_failures, respawn_ok;
    int as_unlimited;           /* RLIMIT_AS was accepted but not enforced (qemu-user) */
    int respawn_other;          /* stacks of another size spawned after running out */
    const char *skipped;        /* why the child could not set its test up (a string literal) */
};

static struct child_info *info;

struct child_result {
    int status;
    char err[8192];             /* the child's stderr */
};

static void run_child(const char *guard, void (*body)(void), struct child_result *res)
{
    info = mmap(NULL, sizeof *info, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ck_assert(info != MAP_FAILED);
    memset(info, 0, sizeof *info);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        alarm(30);              /* a child that fails to die must not hang the suite */
        if (guard)
            setenv("WEFT_GUARD", guard, 1);
        body();
        _exit(0);
    }
    close(p[1]);
    size_t len = 0;
    for (;;) {
        ssize_t r = read(p[0], res->err + len, sizeof res->err - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    res->err[len] = '\0';
    close(p[0]);
    ck_assert_int_eq(waitpid(pid, &res->status, 0), pid);
}

/* Does madvise(MADV_GUARD_INSTALL) give a guard that faults? Success alone does not say:
 * qemu-user answers 0 and installs nothing (stack.c checks the same way, and then uses
 * mprotect). A write(2) from a real guard fails with EFAULT. */
static int madvise_guard_works(void)
{
    size_t pg = page_size();
    void *m = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert(m != MAP_FAILED);
    int ok = madvise(m, pg, MADV_GUARD_INSTALL) == 0;
    if (ok) {
        int p[2];
        ck_assert(pipe(p) == 0);
        ok = write(p[1], m, 1) < 0 && errno == EFAULT;
        close(p[0]);
        close(p[1]);
    }
    munmap(m, 2 * pg);
    return ok;
}

/* ---- overflow ------------------------------------------------------------------------------ */

#define OVERFLOW_STACK (32 * KIB)
#define OVERFLOW_NAME "deep-diver"

/* Recurse without bound (the depth test is never true), a buffer written in every frame. */
__attribute__((noinline)) static unsigned dig_forever(unsigned depth)
{
    volatile unsigned char buf[512];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)depth;
    if (depth == 0)
        return 0;
    return dig_forever(depth + 1) + buf[depth % sizeof buf];
}

static void *overflow_task(void *arg)
{
    return V(dig_forever(1));
}

/* The low end of the running task's stack of OVERFLOW_STACK bytes. Called by the task's
 * function, whose frame is in the stack's top page. */
__attribute__((noinline)) static uintptr_t overflow_stack_lo(void)
{
    uintptr_t pg = page_size();
    return ((FRAME() + pg - 1) & ~(pg - 1)) - OVERFLOW_STACK;
}

/* Recurse until a frame is less than 2 KiB above lo, the stack's low end; call at_floor(lo)
 * there. */
__attribute__((noinline)) static unsigned dig_to_floor(uintptr_t lo, unsigned depth, void (*at_floor)(uintptr_t))
{
    volatile unsigned char buf[256];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)depth;
    if (FRAME() - lo < 2048) {
        at_floor(lo);
        return depth;
    }
    return dig_to_floor(lo, depth + 1, at_floor) + buf[depth % sizeof buf] - (unsigned char)depth;
}

/* The canary is a word at the stack's lowest address, checked when the task switches out.
 * Recurse until a frame is near that end, then write a buffer that reaches past it into the
 * guard region below (mapped, unused memory for this kind) and nothing else; then yield. */
__attribute__((noinline)) static void smash_below(uintptr_t lo)
{
    volatile unsigned char big[4096];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = 0x5a;
}

static void *canary_task(void *arg)
{
    dig_to_floor(overflow_stack_lo(), 1, smash_below);
    weft_yield();
    return NULL;
}

/* Spawn the overflowing task, noting its spawn line and id for the parent. */
static void spawn_overflow(void *(*fn)(void *))
{
    weft_attr a = { .stack_size = OVERFLOW_STACK, .name = OVERFLOW_NAME };
    weft_task *t = weft_spawn(&a, fn, NULL); info->line = __LINE__;
    if (!t)
        _exit(3);
    info->id = weft_id(t);
}

static void child_overflow(void)
{
    info->stage = 2;
    spawn_overflow(overflow_task);
    weft_run();
}

static void child_canary(void)
{
    info->stage = 2;
    spawn_overflow(canary_task);
    weft_run();
}

/* Run enough tasks at once that some pooled stacks have their pages released, then run a
 * batch on those stacks (no false alarm), then overflow on one of them. */
static void *yield_once(void *arg)
{
    weft_yield();
    return arg;
}

static void pool_batch(void)
{
    enum { N = 100 };
    weft_task *t[N];
    weft_attr a = { .stack_size = OVERFLOW_STACK };
    for (int i = 0; i < N; i++)
        if (!(t[i] = weft_spawn(&a, yield_once, V(i))))
            _exit(4);
    for (int i = 0; i < N; i++) {
        void *v;
        if (weft_join(t[i], &v) != 0 || v != V(i))
            _exit(5);
    }
}

static void child_pooled_overflow(void)
{
    pool_batch();
    info->stage = 1;
    pool_batch();
    info->stage = 2;
    spawn_overflow(overflow_task);
    weft_run();
}

static void child_pooled_canary(void)
{
    pool_batch();
    info->stage = 1;
    pool_batch();
    info->stage = 2;
    spawn_overflow(canary_task);
    weft_run();
}

/* The child running body must die of SIGABRT after one report of the overflowing task's
 * overflow, 'how' it was caught; 'where' (may be "") prefixes any failure message. */
static void expect_overflow_report_at(const char *guard, void (*body)(void), const char *how,
                                      const char *where)
{
    const char *kind = strcmp(guard, "canary") == 0 ? "canary"
                     : strcmp(guard, "mprotect") == 0 || !madvise_guard_works() ? "mprotect guard"
                     : "madvise guard";
    static struct child_result res;
    run_child(guard, body, &res);
    if (info->skipped) {
        fprintf(stderr, "%sskipped: %s\n", where, info->skipped);
        munmap(info, sizeof *info);
        return;
    }
    ck_assert_msg(info->stage == 2, "%schild stopped at stage %d; stderr: %.2000s", where, info->stage, res.err);
    ck_assert_msg(WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGABRT,
                  "%schild status %#x (signal %d), expected SIGABRT; stderr: %.2000s", where, res.status,
                  WIFSIGNALED(res.status) ? WTERMSIG(res.status) : 0, res.err);
    char want[512];
    snprintf(want, sizeof want, "stack overflow in task %llu \"%s\" spawned at %s:%d, stack %zu bytes (%s): %s",
             (unsigned long long)info->id, OVERFLOW_NAME, __FILE__, info->line, OVERFLOW_STACK, kind, how);
    ck_assert_msg(strstr(res.err, want) != NULL, "%sstderr lacks\n  %s\nit has\n  %.2000s", where, want, res.err);
    ck_assert_msg(strstr(strstr(res.err, want) + 1, "stack overflow") == NULL,
                  "%smore than one report: %.2000s", where, res.err);
    munmap(info, sizeof *info);
}

static void expect_overflow_report(const char *guard, void (*body)(void), const char *how)
{
    expect_overflow_report_at(guard, body, how, "");
}

/* The child running body must die of the fault it makes at stage 2 (SIGSEGV, or an error exit
 * where a sanitizer's handler took the signal) without reporting a stack overflow. */
static void expect_no_overflow_report(const char *guard, void (*body)(void), const char *what)
{
    static struct child_result res;
    run_child(guard, body, &res);
    if (info->skipped) {
        fprintf(stderr, "%s: skipped: %s\n", what, info->skipped);
        munmap(info, sizeof *info);
        return;
    }
    ck_assert_msg(info->stage == 2, "%s: child stopped at stage %d; stderr: %.2000s", what, info->stage, res.err);
    ck_assert_msg(strstr(res.err, "stack overflow") == NULL, "%s: reported as an overflow: %.2000s", what, res.err);
    int segv = WIFSIGNALED(res.status) && WTERMSIG(res.status) == SIGSEGV;
    int sanitizer_exit = UNDER_ASAN && WIFEXITED(res.status) && WEXITSTATUS(res.status) != 0;
    ck_assert_msg(segv || sanitizer_exit, "%s: child status %#x, expected SIGSEGV; stderr: %.2000s", what,
                  res.status, res.err);
    munmap(info, sizeof *info);
}

#define SKIP_IF_NO_FORKED_CHILDREN()                                                        \
    do {                                                                                    \
        SKIP_IF(RUNNING_ON_VALGRIND, "overflow needs a real SIGSEGV and a fresh process");  \
        SKIP_IF(nofork(), "WEFT_GUARD is read once per process; needs CK_FORK mode");       \
    } while (0)

START_TEST(overflow_with_madvise_guard_aborts_with_a_report)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("madvise", child_overflow, "guard page hit at 0x");
}
END_TEST

START_TEST(overflow_with_mprotect_guard_aborts_with_a_report)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("mprotect", child_overflow, "guard page hit at 0x");
}
END_TEST

START_TEST(overflow_into_the_canary_aborts_at_switch_out_with_a_report)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("canary", child_canary, "canary overwritten");
}
END_TEST

START_TEST(overflow_on_a_pooled_released_stack_is_caught_madvise)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("madvise", child_pooled_overflow, "guard page hit at 0x");
}
END_TEST

START_TEST(overflow_on_a_pooled_released_stack_is_caught_mprotect)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("mprotect", child_pooled_overflow, "guard page hit at 0x");
}
END_TEST

START_TEST(overflow_on_a_pooled_released_stack_is_caught_canary)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("canary", child_pooled_canary, "canary overwritten");
}
END_TEST

/* Stacks are carved from slabs (one mapping for many, the first of 8 stacks, each next one
 * twice as big): park enough tasks that the overflowing one is carved deep inside a later
 * slab, whose guards were installed for the whole slab at once. */
enum { SLAB_PARKED = 300 };

static void *park_forever(void *arg)
{
    weft_sleep_until(-1);
    return arg;
}

static void park_many(void)
{
    weft_attr a = { .stack_size = OVERFLOW_STACK, .daemon = 1 };
    for (int i = 0; i < SLAB_PARKED; i++)
        if (!weft_spawn(&a, park_forever, NULL))
            _exit(4);
}

static void child_slab_overflow(void)
{
    park_many();
    info->stage = 2;
    spawn_overflow(overflow_task);
    weft_run();
}

static void child_slab_canary(void)
{
    park_many();
    info->stage = 2;
    spawn_overflow(canary_task);
    weft_run();
}

START_TEST(overflow_deep_in_a_slab_is_caught_madvise)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("madvise", child_slab_overflow, "guard page hit at 0x");
}
END_TEST

START_TEST(overflow_deep_in_a_slab_is_caught_mprotect)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("mprotect", child_slab_overflow, "guard page hit at 0x");
}
END_TEST

START_TEST(overflow_deep_in_a_slab_is_caught_canary)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_overflow_report("canary", child_slab_canary, "canary overwritten");
}
END_TEST

/* ---- overflow inside the switch ---------------------------------------------------------- */

/* A switch needs stack of its own: the yield's frame, then the call and the register saves of
 * the context swap, which run after the scheduler has made the next task current (or none, on
 * the way to the main context). The task below switches with switch_room bytes of stack left,
 * give or take a few words of its own frame; wherever the switch runs out, that must be
 * reported like any other overflow. When the switch fits, the task overflows by recursion
 * afterwards, so every child has an overflow to report. Calls are made with the stack pointer
 * 16-byte aligned, so steps of 16 bytes meet every distinct case. */
#define SWITCH_ROOM_MAX 768
#define SWITCH_ROOM_STEP 16

static long switch_room;
static int switch_to_main;      /* join a sleeping task, so the main context runs next, rather
                                   than yield to a runnable one */
static weft_task *partner;

/* Not instrumented by ASan, which would round the pad up to 32 bytes and add redzones. */
__attribute__((noinline, no_sanitize_address)) static void switch_with_room(uintptr_t lo)
{
    long pad = (long)(FRAME() - lo) - switch_room;
    volatile unsigned char room[pad > 16 ? pad : 16];
    __asm__ volatile("" : : "r"(room) : "memory");     /* nothing reads the pad: keep it */
    if (switch_to_main)
        weft_join(partner, NULL);       /* parks with no deadline: no timer call before the switch */
    else
        weft_yield();
    dig_forever(1);
}

static void *switch_task(void *arg)
{
    dig_to_floor(overflow_stack_lo(), 1, switch_with_room);
    return NULL;
}

static void *partner_task(void *arg)
{
    if (switch_to_main) {
        weft_sleep(5);
    } else {
        for (int i = 0; i < 1000; i++)
            weft_yield();
    }
    return NULL;
}

static void child_switch_overflow(void)
{
    info->stage = 2;
    /* Bind weft_join now (the partner's first weft_yield binds that one): resolving a symbol
     * at its first call takes about a kilobyte of stack, and would overflow first. */
    weft_join(NULL, NULL);
    if (!(partner = weft_go(partner_task, NULL)))       /* runs first, then yields or sleeps */
        _exit(3);
    spawn_overflow(switch_task);
    weft_run();
}

static void sweep_switch_room(const char *guard, int to_main)
{
    switch_to_main = to_main;
    for (long room = 0; room <= SWITCH_ROOM_MAX; room += SWITCH_ROOM_STEP) {
        switch_room = room;
        char where[96];
        snprintf(where, sizeof where, "%s with about %ld bytes left: ",
                 to_main ? "parking" : "yielding", room);
        expect_overflow_report_at(guard, child_switch_overflow, "guard page hit at 0x", where);
    }
}

START_TEST(overflow_inside_the_switch_is_reported_at_every_depth_madvise)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    sweep_switch_room("madvise", 0);
}
END_TEST

START_TEST(overflow_inside_the_switch_is_reported_at_every_depth_mprotect)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    sweep_switch_room("mprotect", 0);
}
END_TEST

START_TEST(overflow_inside_the_switch_to_the_main_context_is_reported_at_every_depth)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    sweep_switch_room("madvise", 1);
}
END_TEST

/* ---- a frame bigger than the guard ------------------------------------------------------- */

/* A function whose frame is bigger than the guard region moves the stack pointer past the
 * guard in one step, and its first write faults below the guard, not in it. For that fault to
 * be certain, the task first claims the range under its guard as PROT_NONE, with
 * MAP_FIXED_NOREPLACE, which fails rather than replace a mapping already there. New mappings
 * go below the ones before, so that range is usually free; when it is not (ASan's runtime maps
 * a page there after the first stack), the task leaves its stack to a new task on a new one. */
#define GUARD_BYTES (16 * KIB)          /* WEFT_GUARD_SIZE in src/stack.h */
#define BIG_FRAME (64 * KIB)
#define BELOW_GUARD (64 * KIB)          /* claimed under the guard: where BIG_FRAME reaches */
#define CLAIM_TRIES 8

/* Claim the range under the guard of the running task's stack (its low end lo). When that
 * fails, spawn fn in its place (this task stays parked, so the new one gets another stack)
 * and return 0, or give up after CLAIM_TRIES stacks, saying why in info->skipped. */
static int claim_below_guard(uintptr_t lo, void *(*fn)(void *))
{
    static int tries;
    void *want = (void *)(lo - GUARD_BYTES - BELOW_GUARD);
    void *got = mmap(want, BELOW_GUARD, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (got == want)
        return 1;
    if (got != MAP_FAILED)      /* a kernel older than MAP_FIXED_NOREPLACE took it as a hint */
        munmap(got, BELOW_GUARD);
    if (++tries < CLAIM_TRIES) {
        spawn_overflow(fn);
        weft_sleep(60000);
    } else {
        info->skipped = "no stack had the range below its guard free to claim";
    }
    return 0;
}

/* Built without stack clash protection (some distributions' compilers turn it on), which
 * would probe the frame page by page, so that its first probe hits the guard: the frame jumps
 * the guard here as in code built without it. GCC can say so for one function. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_STACK_CLASH_PROBES __attribute__((optimize("no-stack-clash-protection")))
#else
#define NO_STACK_CLASH_PROBES
#endif

__attribute__((noinline)) NO_STACK_CLASH_PROBES static unsigned big_frame(void)
{
    volatile unsigned char a[BIG_FRAME];
    a[0] = 1;                   /* the lowest byte: 16 KiB under the guard */
    return a[0];
}

static void *big_frame_task(void *arg)
{
    if (!claim_below_guard(overflow_stack_lo(), big_frame_task))
        _exit(0);
    info->stage = 2;
    return V(big_frame());
}

static void child_big_frame(void)
{
    spawn_overflow(big_frame_task);
    weft_run();
}

START_TEST(frame_bigger_than_the_guard_is_reported_below_it)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    static const char *const guards[] = { "madvise", "mprotect", "canary" };
    for (size_t i = 0; i < sizeof guards / sizeof guards[0]; i++) {
        char where[64];
        snprintf(where, sizeof where, "%s: ", guards[i]);
        expect_overflow_report_at(guards[i], child_big_frame, "frame past the guard at 0x", where);
    }
}
END_TEST

/* Not every fault near a stack is its overflow: a store through a wild pointer, made with the
 * stack pointer well inside the task's own stack, is left to the default action. */
static void *wild_below_task(void *arg)
{
    uintptr_t lo = overflow_stack_lo();
    if (!claim_below_guard(lo, wild_below_task))
        _exit(0);
    __atomic_store_n(&info->stage, 2, __ATOMIC_SEQ_CST);   /* before the store that faults */
    *(volatile unsigned char *)(lo - GUARD_BYTES - 8 * KIB) = 1;
    return NULL;
}

static void child_wild_below(void)
{
    spawn_overflow(wild_below_task);
    weft_run();
}

START_TEST(wild_store_below_a_guard_is_not_reported_as_an_overflow)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_no_overflow_report("mprotect", child_wild_below, "store below the guard");
}
END_TEST

static uintptr_t parked_lo;

static void *parked_task(void *arg)
{
    parked_lo = overflow_stack_lo();
    weft_sleep(60000);
    return NULL;
}

static void *wild_guard_task(void *arg)
{
    __atomic_store_n(&info->stage, 2, __ATOMIC_SEQ_CST);   /* before the store that faults */
    *(volatile unsigned char *)(parked_lo - GUARD_BYTES / 2) = 1;
    return NULL;
}

static void child_wild_guard(void)
{
    weft_attr a = { .stack_size = OVERFLOW_STACK, .name = "parked" };
    if (!weft_spawn(&a, parked_task, NULL))     /* runs first, and parks */
        _exit(3);
    spawn_overflow(wild_guard_task);
    weft_run();
}

START_TEST(wild_store_into_another_tasks_guard_is_not_reported_as_its_overflow)
{
    SKIP_IF_NO_FORKED_CHILDREN();
    expect_no_overflow_report("madvise", child_wild_guard, "store into a parked task's guard (madvise)");
    expect_no_overflow_report("mprotect", child_wild_guard, "store into a parked task's guard (mprotect)");
}
END_TEST

/* ---- out of address space ---------------------------------------------------------------- */

static void *ret_arg(void *arg) { return arg; }

enum { ENOMEM_CAP = 100000 };

static void child_out_of_address_space(void)
{
    static weft_task *t[ENOMEM_CAP];
    weft_task *warm = weft_go(ret_arg, NULL);       /* scheduler, signal stack: made now */
    if (!warm || weft_join(warm, NULL) != 0)
        _exit(2);
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long pages;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        _exit(2);
    fclose(f);
    struct rlimit lim = { (rlim_t)pages * page_size() + 64 * 1024 * KIB, RLIM_INFINITY };
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        _exit(2);
    void *big = mmap(NULL, 256 * 1024 * KIB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big != MAP_FAILED) {    /* over the limit, yet mapped: qemu-user ignores RLIMIT_AS */
        info->as_unlimited = 1;
        _exit(0);
    }
    int n = 0;
    for (; n < ENOMEM_CAP; n++) {
        errno = 0;
        if (!(t[n] = weft_go(ret_arg, V(n))))
            break;
    }
    info->spawned = n;
    info->spawn_errno = errno;
    info->stage = 1;
    for (int i = 0; i < n; i++) {
        void *v;
        if (weft_join(t[i], &v) != 0 || v != V(i))
            info->join_failures++;
    }
    info->stage = 2;
    weft_task *again = weft_go(ret_arg, V(7));
    void *v = NULL;
    info->respawn_ok = again && weft_join(again, &v) == 0 && v == V(7);
    info->stage = 3;
    _exit(weft_run() == 0 ? 0 : 1);
}

/* The biggest stacks there are, under an address-space limit of 8 GiB more than the
 * process has: a few fit, then spawn says ENOMEM; the tasks run and the thread goes on. */
static void child_out_of_address_space_big_stacks(void)
{
    enum { CAP = 64 };
    static weft_task *t[CAP];
    weft_task *warm = weft_go(ret_arg, NULL);
    if (!warm || weft_join(warm, NULL) != 0)
        _exit(2);
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long pages;
    if (!f || fscanf(f, "%lu", &pages) != 1)
        _exit(2);
    fclose(f);
    struct rlimit lim = { (rlim_t)pages * page_size() + (rlim_t)8 * 1024 * 1024 * KIB, RLIM_INFINITY };
    if (setrlimit(RLIMIT_AS, &lim) != 0)
        _exit(2);
    void *big = mmap(NULL, (size_t)16 * 1024 * 1024 * KIB, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (big != MAP_FAILED) {    /* over the limit, yet mapped: qemu-user ignores RLIMIT_AS */
        info->as_unlimited = 1;
        _exit(0);
    }
    weft_attr a = { .stack_size = WEFT_STACK_MAX };
    int n = 0;
    for (; n < CAP; n++) {
        errno = 0;
        if (!(t[n] = weft_spawn(&a, ret_arg, V(n))))
            break;
    }
    info->spawned = n;
    info->spawn_errno = errno;
    info->stage = 1;
    for (int i = 0; i < n; i++) {
        void *v;
        if (weft_join(t[i], &v) != 0 || v != V(i))
            info->join_failures++;
    }
    info->stage = 2;
    weft_task *again = weft_go(ret_arg, V(7));     /* a default stack still fits */
    void *v = NULL;
    info->respawn_ok = again && weft_join(again, &v) == 0 && v == V(7);
    /* The big stacks are pooled, holding the address space: stacks of another size get it
     * back from the pool. */
    weft_attr half = { .stack_size = WEFT_STACK_MAX / 2 };
    weft_task *h[4];
    int nh = 0;
    for (; nh < 4 && n >= 3; nh++)
        if (!(h[nh] = weft_spawn(&half, ret_arg, V(nh))))
            break;
    info->respawn_other = nh;
    for (int i = 0; i < nh; i++)
        if (weft_join(h[i], &v) != 0 || v != V(i))
            info->join_failures++;
    info->stage = 3;
    _exit(weft_run() == 0 ? 0 : 1);
}

START_TEST(spawn_of_the_biggest_stacks_fails_enomem_when_address_space_runs_out)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "valgrind manages the address space itself");
    SKIP_IF(UNDER_ASAN, "ASan reserves terabytes of shadow and aborts when malloc fails");
    static struct child_result res;
    run_child(NULL, child_out_of_address_space_big_stacks, &res);
    SKIP_IF(info->as_unlimited, "RLIMIT_AS is not enforced here (qemu-user)");
    ck_assert_msg(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
                  "child status %#x at stage %d; stderr: %s", res.status, info->stage, res.err);
    ck_assert_int_eq(info->stage, 3);
    ck_assert_msg(info->spawned > 0 && info->spawned < 9, "spawned %d", info->spawned);
    ck_assert_msg(info->spawned < 3 || info->respawn_other == 4, "%d half-size stacks after %d big ones",
                  info->respawn_other, info->spawned);
    ck_assert_msg(info->spawn_errno == ENOMEM, "spawn failed with %s", strerror(info->spawn_errno));
    ck_assert_int_eq(info->join_failures, 0);
    ck_assert_int_eq(info->respawn_ok, 1);
    munmap(info, sizeof *info);
}
END_TEST

START_TEST(spawn_fails_enomem_when_address_space_runs_out)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "valgrind manages the address space itself");
    SKIP_IF(UNDER_ASAN, "ASan reserves terabytes of shadow and aborts when malloc fails");
    static struct child_result res;
    run_child(NULL, child_out_of_address_space, &res);
    SKIP_IF(info->as_unlimited, "RLIMIT_AS is not enforced here (qemu-user)");
    ck_assert_msg(WIFEXITED(res.status) && WEXITSTATUS(res.status) == 0,
                  "child status %#x at stage %d; stderr: %s", res.status, info->stage, res.err);
    ck_assert_int_eq(info->stage, 3);
    ck_assert_msg(info->spawned > 0 && info->spawned < ENOMEM_CAP, "spawned %d", info->spawned);
    ck_assert_msg(info->spawn_errno == ENOMEM, "spawn failed with %s", strerror(info->spawn_errno));
    ck_assert_int_eq(info->join_failures, 0);
    ck_assert_int_eq(info->respawn_ok, 1);
    munmap(info, sizeof *info);
}
END_TEST

static Suite *stack_suite(void)
{
    Suite *s = suite_create("stack");
    TCase *tc = test_case(s, "size", 20);
    tcase_add_test(tc, recursion_using_three_quarters_of_the_stack_works);
    tcase_add_test(tc, stacks_of_other_sizes_work);
    tcase_add_test(tc, stacks_are_committed_lazily);

    tc = test_case(s, "pool", 20);
    tcase_add_test(tc, stack_of_an_ended_task_is_reused);
    tcase_add_test(tc, tasks_alive_together_get_distinct_stacks_then_reuse_them);
    tcase_add_test(tc, pooled_stack_never_serves_a_bigger_request);
    tcase_add_test(tc, run_releases_pooled_stacks_when_no_task_is_left);
    tcase_add_test(tc, thread_exit_releases_its_scheduler_and_stacks);

    tc = test_case(s, "overflow", 40);
    tcase_add_test(tc, overflow_with_madvise_guard_aborts_with_a_report);
    tcase_add_test(tc, overflow_with_mprotect_guard_aborts_with_a_report);
    tcase_add_test(tc, overflow_into_the_canary_aborts_at_switch_out_with_a_report);
    tcase_add_test(tc, overflow_on_a_pooled_released_stack_is_caught_madvise);
    tcase_add_test(tc, overflow_on_a_pooled_released_stack_is_caught_mprotect);
    tcase_add_test(tc, overflow_on_a_pooled_released_stack_is_caught_canary);
    tcase_add_test(tc, overflow_inside_the_switch_is_reported_at_every_depth_madvise);
    tcase_add_test(tc, overflow_inside_the_switch_is_reported_at_every_depth_mprotect);
    tcase_add_test(tc, overflow_inside_the_switch_to_the_main_context_is_reported_at_every_depth);
    tcase_add_test(tc, frame_bigger_than_the_guard_is_reported_below_it);
    tcase_add_test(tc, wild_store_below_a_guard_is_not_reported_as_an_overflow);
    tcase_add_test(tc, wild_store_into_another_tasks_guard_is_not_reported_as_its_overflow);
    tcase_add_test(tc, overflow_deep_in_a_slab_is_caught_madvise);
    tcase_add_test(tc, overflow_deep_in_a_slab_is_caught_mprotect);
    tcase_add_test(tc, overflow_deep_in_a_slab_is_caught_canary);

    tc = test_case(s, "enomem", 40);
    tcase_add_test(tc, spawn_fails_enomem_when_address_space_runs_out);
    tcase_add_test(tc, spawn_of_the_biggest_stacks_fails_enomem_when_address_space_runs_out);
    return s;
}

int main(void)
{
    return test_run(stack_suite());
}

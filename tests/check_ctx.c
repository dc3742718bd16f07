/* The context switch (ctx_x86_64.S, ctx_aarch64.S or ctx_ucontext.c, whichever the build
 * chose) seen from tasks: each task keeps its own FP control state and its callee-saved
 * registers and frames across switches, and starts on an ABI-aligned stack. Which task runs
 * next is check_sched's business. */
#include "config.h"
#include "testutil.h"

#include <fenv.h>
#include <stdint.h>
#include <stdio.h>

#define V(i) ((void *)(intptr_t)(i))
#define I(p) ((int)(intptr_t)(p))

/* ---- FP control state ---------------------------------------------------------------------- */

static const int modes[] = {
    FE_TONEAREST,
#ifdef FE_UPWARD
    FE_UPWARD,
#endif
#ifdef FE_DOWNWARD
    FE_DOWNWARD,
#endif
#ifdef FE_TOWARDZERO
    FE_TOWARDZERO,
#endif
};
enum { NMODES = sizeof modes / sizeof modes[0], FP_ROUNDS = 300 };

/* 1/3 and 2/3 in double (SSE on x86-64) and long double (x87 on x86-64): the rounding mode
 * decides the last bit of each. */
struct quotients {
    double d1, d2;
    long double l1, l2;
};

static volatile double one = 1.0, two = 2.0, three = 3.0;

/* Not inlined: the compiler does not model the FP environment and could otherwise move the
 * divisions across a fesetround call. */
__attribute__((noinline)) static struct quotients divide(void)
{
    struct quotients q;
    q.d1 = one / three;
    q.d2 = -two / three;
    q.l1 = (long double)one / (long double)three;
    q.l2 = -(long double)two / (long double)three;
    return q;
}

static struct quotients expected[NMODES];
static int rounding_shows;      /* the modes give different quotients here (not under valgrind) */

static int same(const struct quotients *a, const struct quotients *b)
{
    return a->d1 == b->d1 && a->d2 == b->d2 && a->l1 == b->l1 && a->l2 == b->l2;
}

static void *fp_task(void *arg)
{
    int m = I(arg);
    if (fesetround(modes[m]) != 0)
        return V(1000);
    int bad = 0;
    for (int r = 0; r < FP_ROUNDS; r++) {
        if (weft_yield() != 0)
            return V(2000);
        struct quotients q = divide();
        bad += fegetround() != modes[m];
        bad += rounding_shows && !same(&q, &expected[m]);
    }
    return V(bad);      /* ends without restoring its mode: the next context must not care */
}

static void compute_expected(void)
{
    int saved = fegetround();
    for (int m = 0; m < NMODES; m++) {
        ck_assert_int_eq(fesetround(modes[m]), 0);
        expected[m] = divide();
    }
    ck_assert_int_eq(fesetround(saved), 0);
    /* The modes give different answers, so a mode leaking between tasks shows in results
     * too; valgrind computes in round-to-nearest whatever the mode, so there only the saved
     * mode itself (fegetround) can be checked. */
    rounding_shows = NMODES > 1 && !same(&expected[0], &expected[1]);
    if (!rounding_shows)
        fprintf(stderr, "ctx: rounding modes do not change results here (valgrind?): "
                        "checking the saved mode only\n");
}

START_TEST(each_task_keeps_its_own_rounding_mode_across_yields)
{
    compute_expected();
    weft_task *t[NMODES * 2];
    for (int i = 0; i < NMODES * 2; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(fp_task, V(i % NMODES)));
    ck_assert_int_eq(weft_run(), 0);
    for (int i = 0; i < NMODES * 2; i++) {
        void *v;
        ck_assert_int_eq(weft_join(t[i], &v), 0);
        ck_assert_msg(v == V(0), "task with mode %d: %d wrong results", i % NMODES, I(v));
    }
    ck_assert_int_eq(fegetround(), FE_TONEAREST);      /* main's own mode, untouched */
}
END_TEST

START_TEST(main_context_keeps_its_rounding_mode_across_tasks)
{
    compute_expected();
    int main_mode = NMODES - 1;             /* not the default */
    ck_assert_int_eq(fesetround(modes[main_mode]), 0);
    weft_task *t = weft_go(fp_task, V(0));  /* sets FE_TONEAREST for itself */
    ck_assert_ptr_nonnull(t);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    int got = fegetround();
    struct quotients q = divide();
    fesetround(FE_TONEAREST);
    ck_assert_ptr_eq(v, V(0));
    ck_assert_int_eq(got, modes[main_mode]);
    ck_assert(!rounding_shows || same(&q, &expected[main_mode]));
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

#if defined(__x86_64__)
/* The asm switch reloads MXCSR and the x87 control word only where the incoming task's saved
 * one differs from the outgoing task's: tasks that differ in one of them only (flush to zero
 * in MXCSR; x87 precision control) must each get back exactly their own pair. */
static unsigned get_mxcsr(void)
{
    unsigned v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v & ~0x3fu;          /* the exception flags are sticky status, not control */
}

static void set_mxcsr(unsigned v) { __asm__ volatile("ldmxcsr %0" : : "m"(v)); }

static unsigned short get_x87cw(void)
{
    unsigned short v;
    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}

static void set_x87cw(unsigned short v) { __asm__ volatile("fldcw %0" : : "m"(v)); }

static void *fp_words_task(void *arg)
{
    int which = I(arg);
    unsigned mx = get_mxcsr();
    unsigned short cw = get_x87cw();
    if (which == 0)
        set_mxcsr(mx |= 0x8000);                        /* FTZ, and nothing else */
    else if (which == 1)
        set_x87cw(cw = (unsigned short)((cw & ~0x300) | 0x200));   /* 53-bit precision */
    int bad = 0;
    for (int r = 0; r < FP_ROUNDS; r++) {
        if (weft_yield() != 0)
            return V(2000);
        bad += get_mxcsr() != mx;
        bad += get_x87cw() != cw;
    }
    return V(bad);
}

START_TEST(tasks_differing_in_one_control_word_each_keep_theirs)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "valgrind does not model FTZ or x87 precision control");
    unsigned mx = get_mxcsr();
    unsigned short cw = get_x87cw();
    weft_task *t[6];
    for (int i = 0; i < 6; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(fp_words_task, V(i % 3)));
    ck_assert_int_eq(weft_run(), 0);
    for (int i = 0; i < 6; i++) {
        void *v;
        ck_assert_int_eq(weft_join(t[i], &v), 0);
        ck_assert_msg(v == V(0), "task %d (kind %d): %d wrong control words", i, i % 3, I(v));
    }
    ck_assert_uint_eq(get_mxcsr(), mx);                 /* main's own, untouched */
    ck_assert_uint_eq(get_x87cw(), cw);
}
END_TEST
#endif

/* ---- callee-saved registers and frames ------------------------------------------------- */

enum { SWITCHES = 3000 };

/* Many locals live across each weft_yield, so the compiler keeps some in callee-saved
 * registers and spills the rest to the frame; both must come back intact. The same
 * arithmetic without the yields gives the expected result. */
static uint64_t mix(uint64_t seed, int yield)
{
    uint64_t a = seed, b = seed * 3 + 1, c = seed ^ 0x5555, d = seed + 77, e = seed * 7,
             f = ~seed, g = seed << 3, h = seed >> 2, i = seed * seed, j = seed + 0x1234567,
             k = seed ^ 0xdeadbeef, l = seed * 11, m = seed - 5, n = seed | 0x100;
    for (int r = 0; r < SWITCHES; r++) {
        if (yield && weft_yield() != 0)
            return 0;
        a += b; b ^= c; c += d; d ^= e; e += f; f ^= g; g += h;
        h ^= i; i += j; j ^= k; k += l; l ^= m; m += n; n ^= a + (uint64_t)r;
    }
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^ k ^ l ^ m ^ n;
}

static void *mix_task(void *arg)
{
    return V(mix((uint64_t)(uintptr_t)arg, 1) == mix((uint64_t)(uintptr_t)arg, 0));
}

START_TEST(locals_survive_many_switches)
{
    enum { N = 4 };
    weft_task *t[N];
    for (int i = 0; i < N; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(mix_task, V(1000003 * (i + 1))));
    for (int i = 0; i < N; i++) {
        void *v;
        ck_assert_int_eq(weft_join(t[i], &v), 0);
        ck_assert_msg(v == V(1), "task %d: locals changed across switches", i);
    }
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

/* Yield in every frame on the way down and on the way up; each frame checks its buffer
 * and its register-held values afterwards. Returns the number of frames that found damage. */
__attribute__((noinline)) static int descend(unsigned seed, int depth)
{
    volatile unsigned char buf[64];
    unsigned x = seed * 2654435761u, y = seed ^ (unsigned)depth;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(seed + (unsigned)depth + i);
    weft_yield();
    int bad = depth ? descend(seed, depth - 1) : 0;
    weft_yield();
    for (size_t i = 0; i < sizeof buf; i++)
        bad += buf[i] != (unsigned char)(seed + (unsigned)depth + i);
    bad += x != seed * 2654435761u || y != (seed ^ (unsigned)depth);
    return bad;
}

static void *descend_task(void *arg)
{
    return V(descend((unsigned)(uintptr_t)arg, 150));
}

START_TEST(frames_survive_switches_at_every_depth)
{
    enum { N = 3 };
    weft_task *t[N];
    for (int i = 0; i < N; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(descend_task, V(17 * i + 1)));
    for (int i = 0; i < N; i++) {
        void *v;
        ck_assert_int_eq(weft_join(t[i], &v), 0);
        ck_assert_msg(v == V(0), "task %d: %d damaged frames", i, I(v));
    }
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

/* A generator's round trips are direct switches (on x86-64 a swap that leaves by a jump),
 * the run queue's are plain swaps, and each resumes frames the other saved: a generator
 * yielding to its caller and in weft_yield by turns, its caller sending and yielding, a
 * third task yielding between them, each in a rounding mode of its own and with its
 * registers full of values checked afterwards. */
enum { GEN_ROUNDS = 2000 };

static void *gen_mixed(void *arg)
{
    int m = I(arg), bad = 0;
    if (fesetround(modes[m]) != 0)
        return V(1000);
    void *in = NULL;
    for (int r = 0; r < GEN_ROUNDS; r++) {
        uint64_t before = mix((uint64_t)r, 0);
        if (weft_gen_yield(V(r), &in) != 0)
            return V(2000);
        if (r % 3 == 0 && weft_yield() != 0)
            return V(3000);
        bad += I(in) != r + 1 || before != mix((uint64_t)r, 0) || fegetround() != modes[m];
    }
    return V(bad);
}

static void *gen_driver(void *arg)
{
    int m = I(arg), bad = 0;
    if (fesetround(modes[m]) != 0)
        return V(1000);
    weft_gen *g = weft_gen_make(NULL, gen_mixed, V((m + 1) % NMODES));
    if (!g)
        return V(2000);
    void *out;
    bad += weft_gen_next(g, &out) != 0 || out != V(0);
    for (int r = 1; r < GEN_ROUNDS; r++) {
        uint64_t before = mix((uint64_t)r + 7, 0);
        bad += weft_gen_send(g, V(r), &out) != 0 || out != V(r);
        if (r % 5 == 0 && weft_yield() != 0)
            return V(3000);
        bad += before != mix((uint64_t)r + 7, 0) || fegetround() != modes[m];
    }
    void *res;
    bad += weft_gen_send(g, V(GEN_ROUNDS), &out) != -1 || errno != EPIPE;
    bad += weft_gen_result(g, &res) != 0 ? 1 : I(res);
    bad += weft_gen_close(g) != 0;
    return V(bad);
}

START_TEST(direct_and_queued_switches_resume_each_others_frames)
{
    weft_task *d = weft_go(gen_driver, V(NMODES - 1));
    weft_task *o = weft_go(mix_task, V(99991));
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_nonnull(o);
    void *v;
    ck_assert_int_eq(weft_join(d, &v), 0);
    ck_assert_msg(v == V(0), "generator and caller: %d failures", I(v));
    ck_assert_int_eq(weft_join(o, &v), 0);
    ck_assert_msg(v == V(1), "the task yielding between them: locals changed");
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

/* ---- the stack a task starts on ---------------------------------------------------------- */

__attribute__((noinline)) static int aligned_frames(int depth)
{
    _Alignas(16) volatile char probe[16];
    probe[0] = 1;
    int bad = ((uintptr_t)__builtin_frame_address(0) & 15) != 0;
    bad += ((uintptr_t)probe & 15) != 0;
    return bad + (depth ? aligned_frames(depth - 1) : 0);
}

static void *abi_task(void *arg)
{
    int bad = aligned_frames(5);
    char s[64];
    /* printf with doubles uses aligned SSE stores on x86-64: it crashes on a misaligned stack. */
    snprintf(s, sizeof s, "%.3f %.1Lf", 1.5, (long double)2.25);
    bad += strcmp(s, "1.500 2.2") != 0 && strcmp(s, "1.500 2.3") != 0;
    weft_yield();
    bad += aligned_frames(3);
    return V(bad);
}

START_TEST(task_stack_is_abi_aligned)
{
    weft_task *t = weft_go(abi_task, NULL);
    ck_assert_ptr_nonnull(t);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_ptr_eq(v, V(0));
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

static Suite *ctx_suite(void)
{
    Suite *s = suite_create("ctx");
    TCase *tc = test_case(s, "fp", 10);
    tcase_add_test(tc, each_task_keeps_its_own_rounding_mode_across_yields);
    tcase_add_test(tc, main_context_keeps_its_rounding_mode_across_tasks);
#if defined(__x86_64__)
    tcase_add_test(tc, tasks_differing_in_one_control_word_each_keep_theirs);
#endif
    tc = test_case(s, "registers", 20);
    tcase_add_test(tc, locals_survive_many_switches);
    tcase_add_test(tc, frames_survive_switches_at_every_depth);
    tcase_add_test(tc, direct_and_queued_switches_resume_each_others_frames);
    tcase_add_test(tc, task_stack_is_abi_aligned);
    return s;
}

int main(void)
{
    printf("ctx: %s backend\n",
#if defined(WEFT_CTX_UCONTEXT)
           "ucontext"
#else
           "asm"
#endif
    );
    return test_run(ctx_suite());
}

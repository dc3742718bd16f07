/* The context layer: prepare a stack to run a function, and switch between two contexts.
 * Each backend (ctx_ucontext.c, ctx_x86_64.S, ctx_aarch64.S) provides ctx_make and ctx_swap
 * (x86-64 also a one-way jump for a context that has ended);
 * this header adds the AddressSanitizer and ThreadSanitizer fiber annotations that both
 * backends need. Stacks,
 * tasks and scheduling are other layers' business. */
#ifndef WEFT_CTX_H
#define WEFT_CTX_H

#include <stddef.h>
#include <stdint.h>

#if defined(WEFT_CTX_UCONTEXT)
#include <ucontext.h>
struct ctx {
    ucontext_t uc;
#else
struct ctx {
    void *sp;                  /* saved stack pointer; registers are saved on that stack */
#endif
#if defined(WEFT_ASAN)
    const void *stack_lo;      /* bounds announced to ASan when switching to this context */
    size_t stack_size;
    void *fake_stack;
#endif
#if defined(WEFT_TSAN)
    void *tsan_fiber;          /* ThreadSanitizer's record of this context (made lazily) */
#endif
};

/* Set c up so that the first switch to it runs entry() on [lo, lo+size). entry must never
 * return: a finished task switches away for good instead. */
void weft_ctx_make(struct ctx *c, void *lo, size_t size, void (*entry)(void));

#if defined(WEFT_CTX_UCONTEXT)
static inline void ctx_swap(struct ctx *from, struct ctx *to) { swapcontext(&from->uc, &to->uc); }
#else
/* Save callee-saved registers and FP control words on the current stack, store the stack
 * pointer in *from_sp, load to_sp and restore. No syscall. (ctx_x86_64.S, ctx_aarch64.S) */
void weft_ctx_swap_asm(void **from_sp, void *to_sp);
static inline void ctx_swap(struct ctx *from, struct ctx *to) { weft_ctx_swap_asm(&from->sp, to->sp); }
#endif
#if defined(WEFT_CTX_ASM) && defined(__x86_64__)
/* Switch to 'to' for good: the current context is not saved (ctx_x86_64.S). */
_Noreturn void weft_ctx_jump_asm(void *to_sp);
#define CTX_HAVE_JUMP 1
#endif

/* ctx_swap for a direct hand-off between two contexts that switch from places of their own
 * (a generator and its caller): the same frame, restored the same way, but on x86-64 it
 * leaves by an indirect jump to the saved pc instead of a ret. A ret after a stack switch is
 * always mispredicted when the two sides switch from different places (the return stack
 * predicts the place the outgoing side called from), while the jump's target predictor
 * learns the alternation. Where contexts switch from the same place (tasks parked in the
 * same call, as a server's are) the ret is predicted right and the plain swap is the better
 * one, so the run queue's switches keep it. Either swap resumes a frame the other saved. */
#if defined(WEFT_CTX_ASM) && defined(__x86_64__)
void weft_ctx_swap_jmp_asm(void **from_sp, void *to_sp);
static inline void ctx_swap_direct(struct ctx *from, struct ctx *to) { weft_ctx_swap_jmp_asm(&from->sp, to->sp); }
#else
static inline void ctx_swap_direct(struct ctx *from, struct ctx *to) { ctx_swap(from, to); }
#endif
#define CTX_SWAP(direct, from, to) ((direct) ? ctx_swap_direct(from, to) : ctx_swap(from, to))

/* The registers a parked context saved (resume pc, stack pointer, frame pointer), so the dump
 * layer can unwind a task without resuming it. Returns 1, or 0 where they are not known. */
static inline int ctx_saved_regs(const struct ctx *c, uintptr_t *pc, uintptr_t *sp, uintptr_t *fp)
{
#if defined(WEFT_CTX_UCONTEXT) && defined(__x86_64__)
    *pc = (uintptr_t)c->uc.uc_mcontext.gregs[REG_RIP];
    *sp = (uintptr_t)c->uc.uc_mcontext.gregs[REG_RSP];
    *fp = (uintptr_t)c->uc.uc_mcontext.gregs[REG_RBP];
    return 1;
#elif defined(WEFT_CTX_UCONTEXT) && defined(__aarch64__)
    const mcontext_t *m = &c->uc.uc_mcontext;
    *pc = (uintptr_t)m->pc;
    *sp = (uintptr_t)m->sp;
    *fp = (uintptr_t)m->regs[29];
#if defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 32)
    /* glibc 2.32+ swapcontext saves a label of its own as both pc and x30, and the caller's
     * return address in x1's slot (it resumes by 'mov x30, x1; ret'). Report the caller's, as
     * the asm backend does, or the frame that called swapcontext is lost: its fp record holds
     * its own caller. A context makecontext built has pc = entry, x30 = __startcontext. */
    if (m->regs[30] == m->pc && m->regs[1] != 0)
        *pc = (uintptr_t)m->regs[1];
#endif
#endif
    return 1;
#elif defined(WEFT_CTX_ASM) && defined(__x86_64__)
    const uintptr_t *f = (const uintptr_t *)c->sp;    /* layout: ctx_x86_64.S */
    *pc = f[7];
    *fp = f[6];
    *sp = (uintptr_t)(f + 8);
    return 1;
#elif defined(WEFT_CTX_ASM) && defined(__aarch64__)
    const uintptr_t *f = (const uintptr_t *)c->sp;    /* layout: ctx_aarch64.S */
    *pc = f[11];
    *fp = f[10];
    *sp = (uintptr_t)(f + 22);
    return 1;
#else
    (void)c; (void)pc; (void)sp; (void)fp;
    return 0;
#endif
}

#if defined(WEFT_ASAN)
#include <sanitizer/common_interface_defs.h>
/* Switch from one context to another; 'leaving' is set when from is never resumed (its fake
 * stack is then released by ASan). On return we run in 'from' again. */
static inline void ctx_switch_how(struct ctx *from, struct ctx *to, int leaving, int direct)
{
    __sanitizer_start_switch_fiber(leaving ? NULL : &from->fake_stack, to->stack_lo, to->stack_size);
    CTX_SWAP(direct, from, to);
    __sanitizer_finish_switch_fiber(from->fake_stack, NULL, NULL);
}
/* First code a new context runs: completes the switch that started it and learns the bounds
 * of the context it came from (the main context's bounds are not known otherwise). */
static inline void ctx_entered(struct ctx *prev)
{
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(NULL, &lo, &size);
    if (prev && !prev->stack_lo) {
        prev->stack_lo = lo;
        prev->stack_size = size;
    }
}
static inline void ctx_set_stack(struct ctx *c, void *lo, size_t size)
{
    c->stack_lo = lo;
    c->stack_size = size;
}
static inline void ctx_release(struct ctx *c) { (void)c; }
#elif defined(WEFT_TSAN)
#include <sanitizer/tsan_interface.h>
/* ThreadSanitizer keeps a shadow stack and clock per fiber: each context is one, the first
 * context of a thread being the thread's own. A task's fiber is made at its spawn
 * (ctx_set_stack) and released with its record (ctx_release). */
static inline void ctx_switch_how(struct ctx *from, struct ctx *to, int leaving, int direct)
{
    (void)leaving;
    if (!from->tsan_fiber)
        from->tsan_fiber = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
    CTX_SWAP(direct, from, to);
}
static inline void ctx_entered(struct ctx *prev) { (void)prev; }
static inline void ctx_set_stack(struct ctx *c, void *lo, size_t size)
{
    (void)lo; (void)size;
    if (c->tsan_fiber)
        __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = __tsan_create_fiber(0);
}
/* The task is gone (its record with it): release its fiber. */
static inline void ctx_release(struct ctx *c)
{
    if (c->tsan_fiber)
        __tsan_destroy_fiber(c->tsan_fiber);
    c->tsan_fiber = NULL;
}
#else
static inline void ctx_switch_how(struct ctx *from, struct ctx *to, int leaving, int direct)
{
#if defined(CTX_HAVE_JUMP)
    if (leaving)
        weft_ctx_jump_asm(to->sp);
#else
    (void)leaving;
#endif
    CTX_SWAP(direct, from, to);
}
static inline void ctx_entered(struct ctx *prev) { (void)prev; }
static inline void ctx_set_stack(struct ctx *c, void *lo, size_t size) { (void)c; (void)lo; (void)size; }
static inline void ctx_release(struct ctx *c) { (void)c; }
#endif

/* Switch from one context to another (see ctx_switch_how above); ctx_switch_direct for a
 * hand-off between two contexts that switch from places of their own (see ctx_swap_direct). */
static inline void ctx_switch(struct ctx *from, struct ctx *to, int leaving)
{
    ctx_switch_how(from, to, leaving, 0);
}
static inline void ctx_switch_direct(struct ctx *from, struct ctx *to)
{
    ctx_switch_how(from, to, 0, 1);
}

#endif

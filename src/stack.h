/* The stacks layer: mmap'd task stacks with a guard region below each, a per-thread pool of
 * freed stacks, and the SIGSEGV handler that tells a guard hit from any other fault. Who
 * overflowed, and what to print of it, is asked of a hook (the scheduler sets it). */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

/* How a stack's overflow is caught, best first (the README explains the trade-offs). */
enum guard_kind {
    GUARD_MADVISE = 1,  /* madvise(MADV_GUARD_INSTALL), Linux 6.13+: no extra mapping */
    GUARD_MPROTECT,     /* a PROT_NONE page: splits the mapping, so limited by max_map_count */
    GUARD_CANARY,       /* a magic word at the stack's low end, checked at every switch-out */
};

#define WEFT_GUARD_SIZE ((size_t)16 * 1024)   /* guard region below every stack */

struct stack {
    char *map;          /* mapping start: the guard region, then the usable stack */
    size_t size;        /* usable bytes, above the guard */
    unsigned char guard;
    unsigned vg_id;     /* Valgrind stack id */
};

static inline char *stack_lo(const struct stack *st) { return st->map + WEFT_GUARD_SIZE; }

/* A LIFO of free stacks of one size (a thread has a few: stack.c). items[0..ncold) have had
 * their pages released; items[ncold..n), the most recently freed, are warm (at most
 * POOL_WARM of them once the thread has gone idle: weft_stack_pool_trim), so a steady
 * spawn/exit reuses a warm stack and makes no syscall. */
struct pool_class {
    size_t size;
    size_t n, cap;
    size_t ncold;
    struct stack *items;
    /* New stacks are carved from a slab, one mapping for many: [carve, carve_end) is what is
     * left of the current one, lowest address first; below guarded_end the guards were
     * installed with the slab (madvise), above it each is set as its stack is carved. */
    char *carve, *carve_end, *guarded_end;
    size_t slab_n;      /* stacks in the next slab */
};

extern TLS struct pool_class *weft_stack_pool_last;    /* the class used last */
extern TLS int weft_stack_pool_excess;                  /* freed since the last trim */

int weft_stack_alloc_slow(struct stack *st, size_t size);
void weft_stack_free_slow(struct stack *st);
void weft_stack_set_canary(struct stack *st);

/* Give st a stack of 'size' usable bytes (page multiple), from the pool when one fits;
 * returns 0, or -1 with errno ENOMEM. The common case, a warm stack of the size used last,
 * is inline; the rest is stack.c's. */
static inline int weft_stack_alloc(struct stack *st, size_t size)
{
    struct pool_class *pc = weft_stack_pool_last;
    if (fast(pc != NULL && pc->size == size && pc->n > pc->ncold)) {
        *st = pc->items[--pc->n];
        if (slow(st->guard == GUARD_CANARY))
            weft_stack_set_canary(st);
        return 0;
    }
    return weft_stack_alloc_slow(st, size);
}

/* Hand st back: kept in the pool (trimmed past a bound) or unmapped. */
static inline void weft_stack_free(struct stack *st)
{
    struct pool_class *pc = weft_stack_pool_last;
    if (fast(pc != NULL && pc->size == st->size && pc->n < pc->cap)) {
        pc->items[pc->n++] = *st;
        weft_stack_pool_excess = 1;
        return;
    }
    weft_stack_free_slow(st);
}
/* Release the pages of pooled stacks beyond the warm ones (64 per size): the scheduler calls
 * it when the thread is about to go idle, so a burst of tasks finds its stacks still warm. */
void weft_stack_pool_trim(void);
/* Unmap every pooled stack of this thread. */
void weft_stack_pool_drain(void);
/* Is the canary of a GUARD_CANARY stack intact? (1 for other kinds.) */
int weft_stack_canary_ok(const struct stack *st);
/* Is p in st's mapping, guard region included (p at the top counts: an empty stack's sp)? */
int weft_stack_holds(const struct stack *st, uintptr_t p);
/* Did code running on st hit its guard: is the fault at addr in st's guard region, with the
 * faulting stack pointer sp in st's mapping (or not known: 0)? Never for a canary stack. */
int weft_stack_guard_hit(const struct stack *st, const void *addr, uintptr_t sp);
/* Did a frame too big for the guard run past it: is sp below st's low end, by at most 1 MiB,
 * with the fault at addr below that end and not far under sp? 0 when sp is 0 (not known). */
int weft_stack_frame_past_guard(const struct stack *st, const void *addr, uintptr_t sp);
/* Bytes of st resident in memory: its high-water mark (mincore; one syscall, for the dump). */
size_t weft_stack_resident(const struct stack *st);
/* Install the process-wide SIGSEGV handler (once) and this thread's alternate signal stack. */
int weft_stack_thread_init(void);
void weft_stack_thread_fini(void);
/* Counts of live guarded stacks by kind, for the dump and tests. */
void weft_stack_counts(size_t counts[4]);

/* What the SIGSEGV handler asks about a fault (addr, the faulting stack pointer or 0): 1 when
 * it was a task's stack overflow and has been reported (async-signal-safe), else 0. */
typedef int (*weft_overflow_hook)(const void *addr, uintptr_t sp);
/* Set the hook (process-wide; the scheduler sets it when it creates its first scheduler). */
void weft_stack_set_overflow_hook(weft_overflow_hook fn);

#endif

/* The stacks layer: mmap'd task stacks with a guard region below each, a per-thread pool of
 * freed stacks, and the SIGSEGV handler that tells a guard hit from any other fault. Who
 * overflowed, and what to print of it, is asked of a hook (the scheduler sets it). */
#ifndef WEFT_STACK_H
#define WEFT_STACK_H

#include <stddef.h>
#include <stdint.h>

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

/* Give st a stack of 'size' usable bytes (page multiple), from the pool when one fits;
 * returns 0, or -1 with errno ENOMEM. */
int weft_stack_alloc(struct stack *st, size_t size);
/* Hand st back: kept in the pool (trimmed past a bound) or unmapped. */
void weft_stack_free(struct stack *st);
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

/* The timers layer: deadlines in a min-heap, O(log n) add and cancel, equal deadlines in the
 * order they were added. What a timer wakes is the scheduler's business. */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stddef.h>
#include <stdint.h>

/* A deadline, ordered by (when, seq) so equal deadlines fire in the order they were added.
 * idx is the heap slot + 1; 0 when not armed. */
struct timer {
    int64_t when;
    uint64_t seq;
    size_t idx;
};

/* One heap slot: the key is kept beside the pointer, so ordering the heap reads only the
 * array, never the timers (each in its own task record, a cache miss apiece at scale). */
struct timer_slot {
    int64_t when;
    uint64_t seq;
    struct timer *tm;
};

/* A 4-ary min-heap of slots: half the depth of a binary one, the four children of a slot
 * side by side in the array. */
struct timers {
    struct timer_slot *heap;
    size_t n, cap;
    uint64_t seq;
};

static inline int timer_armed(const struct timer *tm) { return tm->idx != 0; }
/* Arm tm for 'when'; O(log n). Returns 0, or -1 with ENOMEM. */
int weft_timer_add(struct timers *ts, struct timer *tm, int64_t when);
/* Move the armed tm to 'when' in place, after the timers already due then; O(log n). */
void weft_timer_rekey(struct timers *ts, struct timer *tm, int64_t when);
/* Disarm tm if armed; O(log n). */
void weft_timer_cancel(struct timers *ts, struct timer *tm);
/* The earliest timer, or NULL. */
static inline struct timer *weft_timer_first(const struct timers *ts) { return ts->n ? ts->heap[0].tm : NULL; }
/* Disarm and return the earliest timer if it is due at 'now', else NULL. */
struct timer *weft_timer_pop_due(struct timers *ts, int64_t now);
void weft_timers_free(struct timers *ts);

#endif

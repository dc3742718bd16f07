/* The timers layer: deadlines (weft_now() milliseconds) in a hierarchical timing wheel with a
 * small 4-ary heap beside it; O(1) add and cancel, equal deadlines in the order they were
 * armed, the earliest timer exact. What a timer wakes is the scheduler's business. */
#ifndef WEFT_TIMER_H
#define WEFT_TIMER_H

#include <stddef.h>
#include <stdint.h>

/* A deadline, ordered by (when, seq) so equal deadlines fire in the order they were armed.
 * idx is 0 when not armed, TIMER_WHEEL | its id while on the wheel, or its heap slot + 1. */
struct timer {
    int64_t when;
    uint64_t seq;
    size_t idx;
};

#define TIMER_WHEEL ((size_t)1 << (sizeof(size_t) * 8 - 1))
#ifndef TIMER_BITS
#define TIMER_BITS 6            /* a level is 64 slots, each one bitmap bit */
#endif
#define TIMER_SLOTS (1u << TIMER_BITS)
#define TIMER_WORDS ((TIMER_SLOTS + 63) / 64)
#define TIMER_LEVELS ((64 + TIMER_BITS - 1) / TIMER_BITS)   /* digits of a 64-bit key */

/* One heap slot: the key beside the pointer, so a sift reads only the array. */
struct timer_slot {
    int64_t when;
    uint64_t seq;
    struct timer *tm;
};

/* A timer on the wheel has an id while it is there, ids[id] holding the seq it was armed
 * with; a free id holds TIMER_FREE | the next free one (no seq reaches that bit). */
#define TIMER_FREE ((uint64_t)1 << 63)

/* A wheel entry: the key, the id, and the timer, which is only read once the id says the
 * entry is still its timer's (the record may be gone). It is stale once its id no longer
 * has its seq (the timer cancelled, re-keyed): dropped when its slot comes due, or when
 * stale entries outnumber the armed timers. */
struct timer_entry {
    int64_t when;
    uint64_t seq;
    size_t id;
    struct timer *tm;
};

/* The entries of one wheel slot, in no order. */
struct timer_run {
    struct timer_entry *e;
    size_t n, cap;
};

/* Level l, slot s holds the entries whose deadline agrees with base in every digit above l
 * and has s as digit l; bit s of bits[l] is set while it holds any. */
struct timer_wheel {
    uint64_t bits[TIMER_LEVELS][TIMER_WORDS];
    struct timer_run slot[TIMER_LEVELS * TIMER_SLOTS];
};

/* All zero is an empty set of timers. The wheel holds timers due at or after base; the
 * heap, exact order, those armed for before it and those of the wheel slots come due (and
 * any a wheel slot had no memory for); base only moves forward. */
struct timers {
    size_t n;                   /* armed timers, wheel and heap */
    int64_t lo;                 /* while n: no armed timer is due before lo */
    int64_t base;               /* the wheel's time: no wheel timer is due before it */
    uint64_t seq;
    size_t stale;               /* wheel entries whose timer has gone */
    struct timer_wheel *wheel;  /* made at the first add */
    uint64_t *ids;              /* more than n of them, so a re-key never fails */
    size_t nids, free_id;       /* free_id: the first free one */
    struct timer_slot *heap;    /* room for n timers is kept, so a re-key never fails */
    size_t hn, hcap;
};

static inline int timer_armed(const struct timer *tm) { return tm->idx != 0; }
/* Start the empty ts's wheel at 'now' (a hint: fewer cascades for deadlines near it). */
static inline void weft_timers_start(struct timers *ts, int64_t now) { if (!ts->n) ts->base = now; }
/* Arm tm for 'when'; O(1) (O(log n) before base). Returns 0, or -1 with ENOMEM. */
int weft_timer_add(struct timers *ts, struct timer *tm, int64_t when);
/* Move the armed tm to 'when', after the timers already due then; O(1); never fails. */
void weft_timer_rekey(struct timers *ts, struct timer *tm, int64_t when);
/* Disarm tm if armed; O(1) amortised. */
void weft_timer_cancel(struct timers *ts, struct timer *tm);
/* The earliest timer, or NULL; exact (it may cascade wheel slots to find it). */
struct timer *weft_timer_first(struct timers *ts);
/* weft_timer_pop_due past its fast path. */
struct timer *weft_timer_pop_slow(struct timers *ts, int64_t now);
/* Disarm and return the earliest timer if it is due at 'now', else NULL. */
static inline struct timer *weft_timer_pop_due(struct timers *ts, int64_t now)
{
    return ts->n == 0 || now < ts->lo ? NULL : weft_timer_pop_slow(ts, now);
}
void weft_timers_free(struct timers *ts);

#endif

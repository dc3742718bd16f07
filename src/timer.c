/* Deadlines: a 4-ary min-heap ordered by (when, seq), O(log n) add and cancel, equal
 * deadlines in insertion order. Each slot holds its timer's key beside the pointer, so a
 * sift compares within the array and touches a timer only to tell it where it now is.
 * What a timer wakes is the scheduler's business. */
#include "config.h"
#include "compiler.h"
#include "timer.h"

#include <errno.h>

#include <stdlib.h>

#define ARITY 4         /* 2 and 8 measured slower at 1,000,000 timers (bench/timers) */

static inline int before(const struct timer_slot *a, const struct timer_slot *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(struct timers *ts, size_t i, struct timer_slot e)
{
    ts->heap[i] = e;
    e.tm->idx = i + 1;
}

static void sift_up(struct timers *ts, size_t i, struct timer_slot e)
{
    while (i > 0) {
        size_t parent = (i - 1) / ARITY;
        if (!before(&e, &ts->heap[parent]))
            break;
        place(ts, i, ts->heap[parent]);
        i = parent;
    }
    place(ts, i, e);
}

static void sift_down(struct timers *ts, size_t i, struct timer_slot e)
{
    struct timer_slot *h = ts->heap;
    size_t n = ts->n;
    for (;;) {
        size_t c = ARITY * i + 1;
        if (c >= n)
            break;
        size_t end = c + ARITY < n ? c + ARITY : n;
        size_t best = c;
        for (size_t j = c + 1; j < end; j++)
            if (before(&h[j], &h[best]))
                best = j;
        if (!before(&h[best], &e))
            break;
        place(ts, i, h[best]);
        i = best;
    }
    place(ts, i, e);
}

/* Put e in slot i, which it may have to leave either way. */
static void settle(struct timers *ts, size_t i, struct timer_slot e)
{
    if (i > 0 && before(&e, &ts->heap[(i - 1) / ARITY]))
        sift_up(ts, i, e);
    else
        sift_down(ts, i, e);
}

int weft_timer_add(struct timers *ts, struct timer *tm, int64_t when)
{
    if (slow(ts->n == ts->cap)) {
        size_t cap = ts->cap ? ts->cap * 2 : 256;
        struct timer_slot *heap = realloc(ts->heap, cap * sizeof *heap);
        if (!heap) {
            errno = ENOMEM;
            return -1;
        }
        ts->heap = heap;
        ts->cap = cap;
    }
    tm->when = when;
    tm->seq = ts->seq++;
    sift_up(ts, ts->n++, (struct timer_slot){ when, tm->seq, tm });
    return 0;
}

void weft_timer_rekey(struct timers *ts, struct timer *tm, int64_t when)
{
    tm->when = when;
    tm->seq = ts->seq++;
    settle(ts, tm->idx - 1, (struct timer_slot){ when, tm->seq, tm });
}

/* Take slot i out: the last slot fills the hole. */
static void remove_at(struct timers *ts, size_t i)
{
    struct timer_slot last = ts->heap[--ts->n];
    if (i != ts->n)
        settle(ts, i, last);
}

void weft_timer_cancel(struct timers *ts, struct timer *tm)
{
    if (!tm->idx)
        return;
    size_t i = tm->idx - 1;
    tm->idx = 0;
    remove_at(ts, i);
}

struct timer *weft_timer_pop_due(struct timers *ts, int64_t now)
{
    if (ts->n == 0 || ts->heap[0].when > now)
        return NULL;
    struct timer *tm = ts->heap[0].tm;
    tm->idx = 0;
    remove_at(ts, 0);
    return tm;
}

void weft_timers_free(struct timers *ts)
{
    free(ts->heap);
    ts->heap = NULL;
    ts->n = ts->cap = 0;
}

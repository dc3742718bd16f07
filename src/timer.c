/* Deadlines: a binary min-heap of timers ordered by (when, seq), O(log n) add and cancel,
 * equal deadlines in insertion order. What a timer wakes is the scheduler's business. */
#include "config.h"
#include "compiler.h"
#include "timer.h"

#include <errno.h>

#include <stdlib.h>

static inline int before(const struct timer *a, const struct timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void place(struct timers *ts, size_t i, struct timer *tm)
{
    ts->heap[i] = tm;
    tm->idx = i + 1;
}

static void sift_up(struct timers *ts, size_t i, struct timer *tm)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(tm, ts->heap[parent]))
            break;
        place(ts, i, ts->heap[parent]);
        i = parent;
    }
    place(ts, i, tm);
}

static void sift_down(struct timers *ts, size_t i, struct timer *tm)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= ts->n)
            break;
        if (c + 1 < ts->n && before(ts->heap[c + 1], ts->heap[c]))
            c++;
        if (!before(ts->heap[c], tm))
            break;
        place(ts, i, ts->heap[c]);
        i = c;
    }
    place(ts, i, tm);
}

int weft_timer_add(struct timers *ts, struct timer *tm, int64_t when)
{
    if (slow(ts->n == ts->cap)) {
        size_t cap = ts->cap ? ts->cap * 2 : 256;
        struct timer **heap = realloc(ts->heap, cap * sizeof *heap);
        if (!heap) {
            errno = ENOMEM;
            return -1;
        }
        ts->heap = heap;
        ts->cap = cap;
    }
    tm->when = when;
    tm->seq = ts->seq++;
    sift_up(ts, ts->n++, tm);
    return 0;
}

void weft_timer_rekey(struct timers *ts, struct timer *tm, int64_t when)
{
    size_t i = tm->idx - 1;
    tm->when = when;
    tm->seq = ts->seq++;
    if (i > 0 && before(tm, ts->heap[(i - 1) / 2]))
        sift_up(ts, i, tm);
    else
        sift_down(ts, i, tm);
}

void weft_timer_cancel(struct timers *ts, struct timer *tm)
{
    if (!tm->idx)
        return;
    size_t i = tm->idx - 1;
    tm->idx = 0;
    struct timer *last = ts->heap[--ts->n];
    if (last == tm)
        return;
    /* Move the last timer into the hole; it may need to go either way. */
    if (i > 0 && before(last, ts->heap[(i - 1) / 2]))
        sift_up(ts, i, last);
    else
        sift_down(ts, i, last);
}

struct timer *weft_timer_pop_due(struct timers *ts, int64_t now)
{
    if (ts->n == 0 || ts->heap[0]->when > now)
        return NULL;
    struct timer *tm = ts->heap[0];
    weft_timer_cancel(ts, tm);
    return tm;
}

void weft_timers_free(struct timers *ts)
{
    free(ts->heap);
    ts->heap = NULL;
    ts->n = ts->cap = 0;
}

/* The timer heap src/timer.c had before the wheel: a 4-ary min-heap ordered by (when, seq)
 * with each key kept in its slot beside the pointer, so a sift reads only the array and
 * writes a timer only to tell it where it now is. bench/timers runs it beside the wheel and
 * bench/timers_binheap.h, interleaved, in one process. */
#ifndef WEFT_BENCH_TIMERS_KEYED4_H
#define WEFT_BENCH_TIMERS_KEYED4_H

#include <stdlib.h>

#include "timer.h"

struct keyed4 {
    struct timer_slot *heap;
    size_t n, cap;
    uint64_t seq;
};

static inline int k4_before(const struct timer_slot *a, const struct timer_slot *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void k4_place(struct keyed4 *h, size_t i, struct timer_slot e)
{
    h->heap[i] = e;
    e.tm->idx = i + 1;
}

static void k4_sift_up(struct keyed4 *h, size_t i, struct timer_slot e)
{
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (!k4_before(&e, &h->heap[parent]))
            break;
        k4_place(h, i, h->heap[parent]);
        i = parent;
    }
    k4_place(h, i, e);
}

static void k4_sift_down(struct keyed4 *h, size_t i, struct timer_slot e)
{
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= h->n)
            break;
        size_t end = c + 4 < h->n ? c + 4 : h->n, best = c;
        for (size_t j = c + 1; j < end; j++)
            if (k4_before(&h->heap[j], &h->heap[best]))
                best = j;
        if (!k4_before(&h->heap[best], &e))
            break;
        k4_place(h, i, h->heap[best]);
        i = best;
    }
    k4_place(h, i, e);
}

static void k4_settle(struct keyed4 *h, size_t i, struct timer_slot e)
{
    if (i > 0 && k4_before(&e, &h->heap[(i - 1) / 4]))
        k4_sift_up(h, i, e);
    else
        k4_sift_down(h, i, e);
}

static int k4_add(struct keyed4 *h, struct timer *tm, int64_t when)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        struct timer_slot *heap = realloc(h->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        h->heap = heap;
        h->cap = cap;
    }
    tm->when = when;
    tm->seq = h->seq++;
    k4_sift_up(h, h->n++, (struct timer_slot){ when, tm->seq, tm });
    return 0;
}

static void k4_rekey(struct keyed4 *h, struct timer *tm, int64_t when)
{
    tm->when = when;
    tm->seq = h->seq++;
    k4_settle(h, tm->idx - 1, (struct timer_slot){ when, tm->seq, tm });
}

static void k4_remove_at(struct keyed4 *h, size_t i)
{
    struct timer_slot last = h->heap[--h->n];
    if (i != h->n)
        k4_settle(h, i, last);
}

static void k4_cancel(struct keyed4 *h, struct timer *tm)
{
    if (!tm->idx)
        return;
    size_t i = tm->idx - 1;
    tm->idx = 0;
    k4_remove_at(h, i);
}

static struct timer *k4_pop_due(struct keyed4 *h, int64_t now)
{
    if (h->n == 0 || h->heap[0].when > now)
        return NULL;
    struct timer *tm = h->heap[0].tm;
    tm->idx = 0;
    k4_remove_at(h, 0);
    return tm;
}

static void k4_free(struct keyed4 *h)
{
    free(h->heap);
    h->heap = NULL;
    h->n = h->cap = 0;
}

#endif

/* The timer heap weft had before src/timer.c kept keys in its slots: a binary min-heap of
 * struct timer pointers ordered by (when, seq), every comparison reading the timers
 * themselves. bench/timers runs it beside src/timer.c's, interleaved, in one process. */
#ifndef WEFT_BENCH_TIMERS_BINHEAP_H
#define WEFT_BENCH_TIMERS_BINHEAP_H

#include <stdlib.h>

#include "timer.h"

struct binheap {
    struct timer **heap;
    size_t n, cap;
    uint64_t seq;
};

static inline int bh_before(const struct timer *a, const struct timer *b)
{
    return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static inline void bh_place(struct binheap *h, size_t i, struct timer *tm)
{
    h->heap[i] = tm;
    tm->idx = i + 1;
}

static void bh_sift_up(struct binheap *h, size_t i, struct timer *tm)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!bh_before(tm, h->heap[parent]))
            break;
        bh_place(h, i, h->heap[parent]);
        i = parent;
    }
    bh_place(h, i, tm);
}

static void bh_sift_down(struct binheap *h, size_t i, struct timer *tm)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bh_before(h->heap[c + 1], h->heap[c]))
            c++;
        if (!bh_before(h->heap[c], tm))
            break;
        bh_place(h, i, h->heap[c]);
        i = c;
    }
    bh_place(h, i, tm);
}

static int bh_add(struct binheap *h, struct timer *tm, int64_t when)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        struct timer **heap = realloc(h->heap, cap * sizeof *heap);
        if (!heap)
            return -1;
        h->heap = heap;
        h->cap = cap;
    }
    tm->when = when;
    tm->seq = h->seq++;
    bh_sift_up(h, h->n++, tm);
    return 0;
}

static void bh_rekey(struct binheap *h, struct timer *tm, int64_t when)
{
    size_t i = tm->idx - 1;
    tm->when = when;
    tm->seq = h->seq++;
    if (i > 0 && bh_before(tm, h->heap[(i - 1) / 2]))
        bh_sift_up(h, i, tm);
    else
        bh_sift_down(h, i, tm);
}

static void bh_cancel(struct binheap *h, struct timer *tm)
{
    if (!tm->idx)
        return;
    size_t i = tm->idx - 1;
    tm->idx = 0;
    struct timer *last = h->heap[--h->n];
    if (last == tm)
        return;
    if (i > 0 && bh_before(last, h->heap[(i - 1) / 2]))
        bh_sift_up(h, i, last);
    else
        bh_sift_down(h, i, last);
}

static struct timer *bh_pop_due(struct binheap *h, int64_t now)
{
    if (h->n == 0 || h->heap[0]->when > now)
        return NULL;
    struct timer *tm = h->heap[0];
    bh_cancel(h, tm);
    return tm;
}

static void bh_free(struct binheap *h)
{
    free(h->heap);
    h->heap = NULL;
    h->n = h->cap = 0;
}

#endif

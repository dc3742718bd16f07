/* Deadlines: a hierarchical timing wheel over weft_now()'s 1 ms tick (11 levels of 64 slots),
 * beside a 4-ary heap. A slot is an array of entries (key, id, timer); arming appends one,
 * cancelling only marks it stale (its id freed), so both are O(1); the earliest non-empty
 * slot of the lowest level cascades to the levels below, copying entries without reading a
 * timer, and a level-0 slot (one deadline) comes due into the heap, which orders it exactly:
 * (deadline, arming order), the earliest timer exact, none early. The heap also holds the
 * timers armed for before the wheel's time (base) and any a slot had no memory for. What a
 * timer wakes is the scheduler's business.
 *
 * Measured (callgrind --cache-sim=yes with a 4 MiB last level, bench/timers' fire loop, each
 * timer in a 256-byte record): the 4-ary heap alone cost 433 instructions and no LL miss a
 * timer at 1,000 timers, 746 and 9.2 LL misses at 1,000,000: 2.7 reading keys as pops sift
 * down, 4.7 writing moved timers' heap indices into their records, one record a level. A
 * wheel of intrusive lists through the records cut that to 2.7 misses, but 1.7 of them were
 * dependent loads walking a cascading slot's records, and it was no faster in wall time at
 * 1,000,000. Arrays cascade by streaming, and ids keep a stale entry from ever reading its
 * timer (whose record may be freed): 556 and 576 instructions a timer at the two sizes, the
 * misses left mostly sequential (arming, copying) plus the one record write as a timer comes
 * due, fetched ahead when a small slot cascades to level 0. */
#include "config.h"
#include "compiler.h"
#include "timer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ARITY 4         /* 2 and 8 measured slower at 1,000,000 timers (bench/timers) */

/* ---- the heap: timers armed for before base ------------------------------------------- */

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
    size_t n = ts->hn;
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

/* Take heap slot i out: the last slot fills the hole, up or down. */
static void heap_remove(struct timers *ts, size_t i)
{
    struct timer_slot last = ts->heap[--ts->hn];
    if (i == ts->hn)
        return;
    if (i > 0 && before(&last, &ts->heap[(i - 1) / ARITY]))
        sift_up(ts, i, last);
    else
        sift_down(ts, i, last);
}

/* ---- the wheel ------------------------------------------------------------------------ */

/* Deadlines as unsigned keys in the same order, so digits and XORs work on the full range. */
static inline uint64_t key(int64_t when) { return (uint64_t)when ^ ((uint64_t)1 << 63); }
static inline int64_t unkey(uint64_t k) { return (int64_t)(k ^ ((uint64_t)1 << 63)); }

/* The level of key k: the highest digit in which it differs from base (0 if none). */
static inline unsigned level_of(uint64_t k, uint64_t base)
{
    return (unsigned)(63 - __builtin_clzll((k ^ base) | 1)) / TIMER_BITS;
}

/* The first key slot s of level lv covers, base's digits above lv kept. */
static inline uint64_t slot_start(uint64_t base, unsigned lv, unsigned s)
{
    unsigned shift = TIMER_BITS * (lv + 1);
    uint64_t high = shift >= 64 ? 0 : base & ~(((uint64_t)1 << shift) - 1);
    return high | (uint64_t)s << (TIMER_BITS * lv);
}

static inline void bit_set(struct timer_wheel *w, unsigned lv, unsigned s)
{
    w->bits[lv][s / 64] |= (uint64_t)1 << (s % 64);
}

static inline void bit_clear(struct timer_wheel *w, unsigned lv, unsigned s)
{
    w->bits[lv][s / 64] &= ~((uint64_t)1 << (s % 64));
}

/* Is e its timer's entry, armed on the wheel? */
static inline int live(const struct timers *ts, const struct timer_entry *e)
{
    return ts->ids[e->id] == e->seq;
}

/* Give id back: its entries go stale. */
static inline void id_free(struct timers *ts, size_t id)
{
    ts->ids[id] = TIMER_FREE | ts->free_id;
    ts->free_id = id;
}

/* Put entry e (due at or after base) in its slot; -1 if the slot cannot grow. */
static inline int wheel_put(struct timers *ts, struct timer_entry e)
{
    struct timer_wheel *w = ts->wheel;
    uint64_t k = key(e.when);
    unsigned lv = level_of(k, key(ts->base));
    unsigned s = (unsigned)(k >> (TIMER_BITS * lv)) & (TIMER_SLOTS - 1);
    struct timer_run *r = &w->slot[lv * TIMER_SLOTS + s];
    if (slow(r->n == r->cap)) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct timer_entry *a = realloc(r->e, cap * sizeof *a);
        if (!a)
            return -1;
        r->e = a;
        r->cap = cap;
    }
    r->e[r->n++] = e;
    bit_set(w, lv, s);
    return 0;
}

/* Into the heap, which has room for every armed timer. */
static inline void heap_push(struct timers *ts, struct timer_slot e)
{
    sift_up(ts, ts->hn++, e);
}

/* Wheel entry e leaves the wheel: into the heap if live, else dropped. */
static inline void entry_to_heap(struct timers *ts, const struct timer_entry *e)
{
    if (live(ts, e)) {
        heap_push(ts, (struct timer_slot){ e->when, e->seq, e->tm });
        id_free(ts, e->id);
    } else {
        ts->stale--;
    }
}

/* Slot r, come due, is empty now: keep a small array for reuse, free a large one. */
static inline void run_emptied(struct timer_run *r)
{
    r->n = 0;
    if (r->cap > 256) {
        free(r->e);
        r->e = NULL;
        r->cap = 0;
    }
}

#define CASCADE_WARM 256        /* entries cascaded into level 0 whose lines fit a cache */

/* Slot s of level lv > 0 is the earliest non-empty one and starts at 'start': move base
 * there and its entries to the levels below (empty: nothing is due before it). The
 * entries are copied, their timers not read. */
static void cascade(struct timers *ts, unsigned lv, unsigned s, uint64_t start)
{
    struct timer_wheel *w = ts->wheel;
    struct timer_run *r = &w->slot[lv * TIMER_SLOTS + s];
    bit_clear(w, lv, s);
    ts->base = unkey(start);
    if (lv == 1 && r->n <= CASCADE_WARM)        /* they come due soon: fetch what that reads */
        for (size_t j = 0; j < r->n; j++) {
            __builtin_prefetch(&ts->ids[r->e[j].id]);
            __builtin_prefetch(r->e[j].tm, 1);
        }
    for (size_t j = 0; j < r->n; j++) {
        if (slow(wheel_put(ts, r->e[j]) != 0))      /* no memory: the heap has room */
            entry_to_heap(ts, &r->e[j]);
    }
    run_emptied(r);
}

/* Level-0 slot s, deadline key k, is due first: its armed timers go to the heap, which
 * orders them (they are in no order here), and base moves to k or past it. */
static void open_slot(struct timers *ts, unsigned s, uint64_t k)
{
    struct timer_wheel *w = ts->wheel;
    struct timer_run *r = &w->slot[s];
    bit_clear(w, 0, s);
    for (size_t j = 0; j < r->n; j++) {
        if (j + 8 < r->n)
            __builtin_prefetch(&ts->ids[r->e[j + 8].id]);
        entry_to_heap(ts, &r->e[j]);
    }
    run_emptied(r);
    /* Past k, unless k + 1 starts a slot of a level above (it would have to cascade first):
     * then at k, and the timers due at k get to the heap by the wheel, not directly. */
    ts->base = unkey((k & (TIMER_SLOTS - 1)) != TIMER_SLOTS - 1 ? k + 1 : k);
}

/* The earliest non-empty wheel slot if it starts by key 'limit', cascading down to level
 * 0: its level-0 slot number, with *k its deadline key. Else -1, with base moved up to
 * limit and *k where the earliest slot starts (UINT64_MAX if none). */
static int wheel_first(struct timers *ts, uint64_t limit, uint64_t *k)
{
    struct timer_wheel *w = ts->wheel;
    for (;;) {
        unsigned lv = 0, j = 0;
        for (; lv < TIMER_LEVELS; lv++) {
            for (j = 0; j < TIMER_WORDS && !w->bits[lv][j]; j++)
                ;
            if (j < TIMER_WORDS)
                break;
        }
        uint64_t base = key(ts->base);
        if (lv == TIMER_LEVELS) {
            *k = UINT64_MAX;
            if (limit > base && limit != UINT64_MAX)
                ts->base = unkey(limit);
            return -1;
        }
        unsigned s = j * 64 + (unsigned)__builtin_ctzll(w->bits[lv][j]);
        uint64_t start = slot_start(base, lv, s);
        if (start > limit) {
            *k = start;
            if (limit > base)           /* nothing is due before start: base may move */
                ts->base = unkey(limit);
            return -1;
        }
        if (lv == 0) {
            *k = start;                 /* a level-0 slot holds one deadline */
            return (int)s;
        }
        cascade(ts, lv, s, start);
    }
}

/* Drop every stale entry (they outnumber the armed timers): O(entries), amortised over the
 * cancels that made them. */
static void compact(struct timers *ts)
{
    struct timer_wheel *w = ts->wheel;
    for (unsigned i = 0; i < TIMER_LEVELS * TIMER_SLOTS; i++) {
        struct timer_run *r = &w->slot[i];
        size_t kept = 0;
        for (size_t j = 0; j < r->n; j++)
            if (live(ts, &r->e[j]))
                r->e[kept++] = r->e[j];
        r->n = kept;
        if (!kept)
            bit_clear(w, i / TIMER_SLOTS, i % TIMER_SLOTS);
    }
    ts->stale = 0;
}

/* ---- both ----------------------------------------------------------------------------- */

/* The earliest armed timer if it is due by key 'limit' (it is the heap's top then), else
 * NULL with lo raised to a bound. The heap's top is the earliest once it is due before
 * base or before the wheel's earliest slot; else that slot comes due into the heap. */
static struct timer *earliest(struct timers *ts, uint64_t limit)
{
    for (;;) {
        uint64_t top = ts->hn ? key(ts->heap[0].when) : UINT64_MAX, k;
        if (ts->hn && top < key(ts->base)) {
            if (top <= limit)
                break;
            ts->lo = unkey(top);
            return NULL;
        }
        int s = wheel_first(ts, limit < top ? limit : top, &k);
        if (slow(ts->hn && key(ts->heap[0].when) < top))
            top = key(ts->heap[0].when);    /* a cascade without memory put timers there */
        if (s < 0) {
            if (ts->hn && top <= limit)
                break;
            ts->lo = unkey(k < top ? k : top);
            return NULL;
        }
        open_slot(ts, (unsigned)s, k);
    }
    return ts->heap[0].tm;
}

/* Put tm, its key set, on the wheel, or in the heap (which has room) if it is due before
 * base or its wheel slot cannot grow. */
static void attach(struct timers *ts, struct timer *tm)
{
    size_t id = ts->free_id;
    if (fast(tm->when >= ts->base) &&
        fast(wheel_put(ts, (struct timer_entry){ tm->when, tm->seq, id, tm }) == 0)) {
        ts->free_id = ts->ids[id] & ~TIMER_FREE;
        ts->ids[id] = tm->seq;
        tm->idx = TIMER_WHEEL | id;
    } else {
        heap_push(ts, (struct timer_slot){ tm->when, tm->seq, tm });
    }
    if (ts->n == 0 || tm->when < ts->lo)
        ts->lo = tm->when;
}

/* Take the armed tm off: its wheel entry goes stale, its heap slot is removed. */
static void detach(struct timers *ts, struct timer *tm)
{
    if (fast(tm->idx & TIMER_WHEEL)) {
        id_free(ts, tm->idx & ~TIMER_WHEEL);
        ts->stale++;
    } else
        heap_remove(ts, tm->idx - 1);
    tm->idx = 0;
}

/* Room for one more armed timer: the wheel made, the heap able to hold them all. */
static int reserve(struct timers *ts)
{
    if (slow(!ts->wheel)) {
        struct timer_wheel *w = realloc(NULL, sizeof *w);
        if (!w)
            return ENOMEM;
        memset(w, 0, sizeof *w);
        ts->wheel = w;
    }
    if (slow(ts->n + 1 >= ts->nids)) {      /* a free id for every armed timer, and one more */
        size_t cap = ts->nids ? ts->nids * 2 : 256;
        uint64_t *ids = realloc(ts->ids, cap * sizeof *ids);
        if (!ids)
            return ENOMEM;
        if (!ts->nids)
            ts->free_id = TIMER_FREE - 1;   /* the end of the free list (never reached) */
        for (size_t i = cap; i-- > ts->nids;) {
            ids[i] = TIMER_FREE | ts->free_id;
            ts->free_id = i;
        }
        ts->ids = ids;
        ts->nids = cap;
    }
    if (slow(ts->n == ts->hcap)) {
        size_t cap = ts->hcap ? ts->hcap * 2 : 256;
        struct timer_slot *heap = realloc(ts->heap, cap * sizeof *heap);
        if (!heap)
            return ENOMEM;
        ts->heap = heap;
        ts->hcap = cap;
    }
    return 0;
}

#define STALE_SLACK 1024        /* stale entries allowed beyond the armed count */

int weft_timer_add(struct timers *ts, struct timer *tm, int64_t when)
{
    int e = reserve(ts);
    if (slow(e != 0)) {
        errno = e;
        return -1;
    }
    tm->when = when;
    tm->seq = ts->seq++;
    attach(ts, tm);
    ts->n++;
    return 0;
}

void weft_timer_rekey(struct timers *ts, struct timer *tm, int64_t when)
{
    detach(ts, tm);
    tm->when = when;
    tm->seq = ts->seq++;
    attach(ts, tm);
    if (slow(ts->stale > ts->n + STALE_SLACK))
        compact(ts);
}

void weft_timer_cancel(struct timers *ts, struct timer *tm)
{
    if (!tm->idx)
        return;
    detach(ts, tm);
    ts->n--;
    if (slow(ts->stale > ts->n + STALE_SLACK))
        compact(ts);
}

struct timer *weft_timer_first(struct timers *ts)
{
    if (ts->n == 0)
        return NULL;
    struct timer *tm = earliest(ts, UINT64_MAX);
    ts->lo = tm->when;
    return tm;
}

struct timer *weft_timer_pop_slow(struct timers *ts, int64_t now)
{
    if (!ts->hn && now < ts->base) {
        ts->lo = ts->base;
        return NULL;
    }
    struct timer *tm = earliest(ts, key(now));
    if (!tm)
        return NULL;
    tm->idx = 0;
    heap_remove(ts, 0);
    ts->n--;
    ts->lo = tm->when;
    return tm;
}

void weft_timers_free(struct timers *ts)
{
    if (ts->wheel)
        for (unsigned i = 0; i < TIMER_LEVELS * TIMER_SLOTS; i++)
            free(ts->wheel->slot[i].e);
    free(ts->wheel);
    free(ts->ids);
    free(ts->heap);
    *ts = (struct timers){ 0 };
}

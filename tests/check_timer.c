/* The timers (src/timer.c: a timing wheel and a 4-ary heap beside it) on their own, built
 * into this test with their source: order against a sorted reference over random adds,
 * cancels, re-keys and pops, ties in arming order, level boundaries and cascades, far and
 * past deadlines, a million timers, and running out of memory. Which task a timer wakes is
 * check_sched's. */
#include "config.h"
#include "timer.h"
#include "testutil.h"

#include <stdint.h>
#include <stdlib.h>

/* timer.c's realloc goes through here (-Wl,--wrap=realloc), so a test can make it fail. */
void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);
static int realloc_fails;

void *__wrap_realloc(void *p, size_t n)
{
    if (realloc_fails)
        return NULL;
    return __real_realloc(p, n);
}

/* A small deterministic generator, so a failure replays. */
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The structure holds together: every heap slot knows its place and keeps its timer's key,
 * no child comes before its parent (four children a slot); every wheel entry is in the
 * slot its deadline and base give, due at or after base, and either live (its id names its
 * timer, armed on the wheel with that key) or counted stale; n counts the armed timers. */
static void check_timers(const struct timers *ts)
{
    for (size_t i = 0; i < ts->hn; i++) {
        const struct timer *t = ts->heap[i].tm;
        test_require(ts->heap[i].when == t->when && ts->heap[i].seq == t->seq,
                     "slot %zu keeps a key its timer does not have", i);
        test_require(t->idx == i + 1, "slot %zu holds a timer that thinks it is at %zu", i, t->idx);
        if (i) {
            const struct timer *p = ts->heap[(i - 1) / 4].tm;
            test_require(p->when < t->when || (p->when == t->when && p->seq < t->seq),
                          "slot %zu (%lld/%llu) is before its parent (%lld/%llu)", i,
                          (long long)t->when, (unsigned long long)t->seq,
                          (long long)p->when, (unsigned long long)p->seq);
        }
    }
    size_t live = 0, stale = 0;
    if (ts->wheel) {
        uint64_t base = (uint64_t)ts->base ^ ((uint64_t)1 << 63);
        for (unsigned lv = 0; lv < TIMER_LEVELS; lv++) {
            for (unsigned s = 0; s < TIMER_SLOTS; s++) {
                const struct timer_run *r = &ts->wheel->slot[lv * TIMER_SLOTS + s];
                int bit = (ts->wheel->bits[lv][s / 64] >> (s % 64)) & 1;
                test_require(bit == (r->n != 0), "level %u slot %u: bit %d, %zu entries", lv, s,
                             bit, r->n);
                for (size_t j = 0; j < r->n; j++) {
                    const struct timer_entry *e = &r->e[j];
                    uint64_t k = (uint64_t)e->when ^ ((uint64_t)1 << 63);
                    test_require(k >= base, "entry %lld before base %lld", (long long)e->when,
                                 (long long)ts->base);
                    unsigned l = (unsigned)(63 - __builtin_clzll((k ^ base) | 1)) / TIMER_BITS;
                    test_require(l == lv && ((k >> (TIMER_BITS * l)) & (TIMER_SLOTS - 1)) == s,
                                 "entry %lld on level %u slot %u, belongs on level %u",
                                 (long long)e->when, lv, s, l);
                    test_require(e->id < ts->nids, "entry with id %zu of %zu", e->id, ts->nids);
                    if (ts->ids[e->id] == e->seq) {
                        const struct timer *t = e->tm;
                        test_require(t->idx == (TIMER_WHEEL | e->id) && t->when == e->when &&
                                     t->seq == e->seq, "live entry %lld: its timer disagrees",
                                     (long long)e->when);
                        live++;
                    } else {
                        stale++;
                    }
                }
            }
        }
    }
    test_require(live + ts->hn == ts->n, "%zu on the wheel and %zu in the heap, n %zu", live,
                 ts->hn, ts->n);
    test_require(stale == ts->stale, "%zu stale entries, counted %zu", stale, ts->stale);
}

START_TEST(empty_heap_has_nothing_due)
{
    struct timers ts = { 0 };
    ck_assert_ptr_null(weft_timer_first(&ts));
    ck_assert_ptr_null(weft_timer_pop_due(&ts, INT64_MAX));
    struct timer t = { 0 };
    weft_timer_cancel(&ts, &t);             /* cancelling an unarmed timer does nothing */
    ck_assert_int_eq(ts.n, 0);
    weft_timers_free(&ts);
}
END_TEST

START_TEST(pop_due_returns_a_timer_only_once_its_time_has_come)
{
    struct timers ts = { 0 };
    struct timer a = { 0 };
    ck_assert_int_eq(weft_timer_add(&ts, &a, 100), 0);
    ck_assert(timer_armed(&a));
    ck_assert_ptr_eq(weft_timer_first(&ts), &a);
    ck_assert_ptr_null(weft_timer_pop_due(&ts, 99));
    ck_assert(timer_armed(&a));
    ck_assert_ptr_eq(weft_timer_pop_due(&ts, 100), &a);     /* due at exactly its time */
    ck_assert(!timer_armed(&a));
    ck_assert_ptr_null(weft_timer_pop_due(&ts, INT64_MAX));
    /* A popped timer can be armed again. */
    ck_assert_int_eq(weft_timer_add(&ts, &a, 5), 0);
    ck_assert_ptr_eq(weft_timer_pop_due(&ts, 1000), &a);
    weft_timers_free(&ts);
}
END_TEST

START_TEST(equal_deadlines_pop_in_insertion_order)
{
    enum { N = 1000 };
    static struct timer t[N];
    struct timers ts = { 0 };
    /* Three deadlines, interleaved: every timer with the same deadline keeps its place. */
    for (int i = 0; i < N; i++) {
        t[i].idx = 0;
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], 10 + (int64_t)((i * 7) % 3)), 0);
    }
    check_timers(&ts);
    for (int64_t when = 10; when <= 12; when++) {
        int last = -1;
        struct timer *p;
        while ((p = weft_timer_pop_due(&ts, when)) != NULL) {
            int i = (int)(p - t);
            ck_assert_int_eq(p->when, when);
            ck_assert_msg(i > last, "timer %d popped after timer %d, same deadline", i, last);
            last = i;
        }
    }
    ck_assert_int_eq(ts.n, 0);
    weft_timers_free(&ts);
}
END_TEST

START_TEST(cancel_removes_root_middle_and_last)
{
    enum { N = 64 };
    static struct timer t[N];
    struct timers ts = { 0 };
    for (int i = 0; i < N; i++) {
        t[i].idx = 0;
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], N - i), 0);   /* t[N-1] is earliest */
    }
    struct timer *root = weft_timer_first(&ts);
    ck_assert_ptr_eq(root, &t[N - 1]);
    weft_timer_cancel(&ts, root);
    ck_assert(!timer_armed(root));
    struct timer *last = &t[0];             /* the latest deadline */
    weft_timer_cancel(&ts, last);
    struct timer *mid = &t[N / 2];
    weft_timer_cancel(&ts, mid);
    weft_timer_cancel(&ts, mid);            /* twice: the second does nothing */
    ck_assert_int_eq(ts.n, N - 3);
    check_timers(&ts);
    int64_t prev = INT64_MIN;
    struct timer *p;
    size_t popped = 0;
    while ((p = weft_timer_pop_due(&ts, INT64_MAX)) != NULL) {
        ck_assert(p != root && p != last && p != mid);
        ck_assert_int_gt(p->when, prev);
        prev = p->when;
        popped++;
    }
    ck_assert_int_eq(popped, N - 3);
    weft_timers_free(&ts);
}
END_TEST

/* The reference: the armed timers, sorted by (deadline, order of arming). */
struct ref {
    struct timer *tm;
    int64_t when;
    uint64_t order;
};

static size_t ref_find(const struct ref *r, size_t n, int64_t when, uint64_t order)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r[mid].when < when || (r[mid].when == when && r[mid].order < order))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* far: deadlines and time steps across wheel levels (cascades), and re-keys; first_every:
 * how often weft_timer_first is checked (it cascades too, so not after every op). */
static void random_mix(int far, int first_every)
{
    enum { POOL = 2000, OPS = 300000 };
    static struct timer t[POOL];
    static struct ref ref[POOL];
    static uint64_t order_of[POOL];
    size_t nref = 0;
    uint64_t order = 0;
    int64_t now = 1000;
    struct timers ts = { 0 };
    memset(t, 0, sizeof t);
    size_t adds = 0, cancels = 0, pops = 0, middle_cancels = 0, rekeys = 0;

    for (int op = 0; op < OPS; op++) {
        unsigned k = (unsigned)(rnd() % 100);
        struct timer *tm = &t[rnd() % POOL];
        int i = (int)(tm - t);
        if (k < 45) {                           /* arm an idle timer, often on a tie */
            if (timer_armed(tm))
                continue;
            int64_t when = now + (int64_t)(rnd() % 64) - 4;     /* some already due */
            if (far && k % 3 == 0)
                when = now + (int64_t)(rnd() % (k % 2 ? 300000 : 5000)) - 100;
            test_require(weft_timer_add(&ts, tm, when) == 0, "op %d: add failed", op);
            order_of[i] = order;
            size_t at = ref_find(ref, nref, when, order);
            memmove(&ref[at + 1], &ref[at], (nref - at) * sizeof ref[0]);
            ref[at] = (struct ref){ tm, when, order++ };
            nref++;
            adds++;
        } else if (k < 70) {                    /* cancel, wherever it is in the heap */
            int armed = timer_armed(tm);
            weft_timer_cancel(&ts, tm);
            test_require(!timer_armed(tm), "op %d: cancelled timer still armed", op);
            if (armed) {
                size_t at = ref_find(ref, nref, tm->when, order_of[i]);
                test_require(at < nref && ref[at].tm == tm, "op %d: reference lost timer %d", op, i);
                if (at > 0 && at + 1 < nref)
                    middle_cancels++;
                memmove(&ref[at], &ref[at + 1], (nref - at - 1) * sizeof ref[0]);
                nref--;
                cancels++;
            }
        } else if (far && k < 75) {             /* re-key: cancel and add, in one */
            if (!timer_armed(tm))
                continue;
            size_t at = ref_find(ref, nref, tm->when, order_of[i]);
            test_require(at < nref && ref[at].tm == tm, "op %d: reference lost timer %d", op, i);
            memmove(&ref[at], &ref[at + 1], (nref - at - 1) * sizeof ref[0]);
            nref--;
            int64_t when = now + (int64_t)(rnd() % (k % 2 ? 20000 : 64)) - 8;
            weft_timer_rekey(&ts, tm, when);
            order_of[i] = order;
            at = ref_find(ref, nref, when, order);
            memmove(&ref[at + 1], &ref[at], (nref - at) * sizeof ref[0]);
            ref[at] = (struct ref){ tm, when, order++ };
            nref++;
            rekeys++;
        } else if (k < 95) {                    /* pop what is due */
            struct timer *p = weft_timer_pop_due(&ts, now);
            if (nref && ref[0].when <= now) {
                test_require(p == ref[0].tm, "op %d: popped timer %d, reference says %d",
                             op, p ? (int)(p - t) : -1, (int)(ref[0].tm - t));
                test_require(!timer_armed(p), "op %d: popped timer still armed", op);
                memmove(&ref[0], &ref[1], (nref - 1) * sizeof ref[0]);
                nref--;
                pops++;
            } else {
                test_require(p == NULL, "op %d: popped timer %d before its time", op, (int)(p - t));
            }
        } else {                                /* time passes */
            now += (int64_t)(rnd() % 8);
            if (far && k == 99)
                now += (int64_t)(rnd() % 3000);
        }
        test_require(ts.n == nref, "op %d: %zu armed, reference %zu", op, ts.n, nref);
        if (op % first_every == 0)
            test_require(weft_timer_first(&ts) == (nref ? ref[0].tm : NULL), "op %d: wrong first",
                         op);
        if (op % 4096 == 0)
            check_timers(&ts);
    }
    check_timers(&ts);
    /* Drain: what is left comes out in the reference's order. */
    for (size_t j = 0; j < nref; j++)
        test_require(weft_timer_pop_due(&ts, INT64_MAX) == ref[j].tm, "drain %zu out of order", j);
    ck_assert_ptr_null(weft_timer_pop_due(&ts, INT64_MAX));
    /* The mix really did all three, cancels from the middle included. */
    ck_assert_int_gt(adds, OPS / 10);
    ck_assert_int_gt(cancels, OPS / 100);
    ck_assert_int_gt(middle_cancels, OPS / 200);
    ck_assert_int_gt(pops, OPS / 10);
    if (far)
        ck_assert_int_gt(rekeys, OPS / 100);
    weft_timers_free(&ts);
}

START_TEST(random_adds_cancels_and_pops_match_a_sorted_reference)
{
    random_mix(0, 1);
}
END_TEST

START_TEST(random_far_deadlines_rekeys_and_time_jumps_match_a_sorted_reference)
{
    random_mix(1, 7);
}
END_TEST

START_TEST(a_million_timers_pop_in_deadline_order)
{
    enum { N = 1000000 };
    struct timer *t = malloc(N * sizeof *t);
    ck_assert_ptr_nonnull(t);
    struct timers ts = { 0 };
    for (size_t i = 0; i < N; i++) {
        t[i].idx = 0;
        test_require(weft_timer_add(&ts, &t[i], (int64_t)(rnd() % 100000)) == 0, "add %zu failed", i);
    }
    ck_assert_int_eq(ts.n, N);
    /* Pop in steps of time, as the loop does: nothing early, nothing out of order. */
    int64_t prev_when = -1;
    uint64_t prev_seq = 0;
    size_t popped = 0;
    for (int64_t now = 0; now < 100000; now += 1000) {
        struct timer *p;
        while ((p = weft_timer_pop_due(&ts, now)) != NULL) {
            test_require(p->when <= now, "popped %lld at %lld", (long long)p->when, (long long)now);
            test_require(p->when > prev_when || (p->when == prev_when && p->seq > prev_seq),
                         "popped %lld/%llu after %lld/%llu", (long long)p->when,
                         (unsigned long long)p->seq, (long long)prev_when, (unsigned long long)prev_seq);
            test_require(!timer_armed(p), "popped timer still armed");
            prev_when = p->when;
            prev_seq = p->seq;
            popped++;
        }
        struct timer *f = weft_timer_first(&ts);
        ck_assert(f == NULL || f->when > now);
    }
    ck_assert_int_eq(popped + ts.n, N);
    struct timer *p;
    while ((p = weft_timer_pop_due(&ts, INT64_MAX)) != NULL) {
        test_require(p->when > prev_when || (p->when == prev_when && p->seq > prev_seq),
                     "popped %lld after %lld", (long long)p->when, (long long)prev_when);
        prev_when = p->when;
        prev_seq = p->seq;
        popped++;
    }
    ck_assert_int_eq(popped, N);
    weft_timers_free(&ts);
    free(t);
}
END_TEST

START_TEST(add_fails_enomem_when_the_heap_cannot_grow)
{
    enum { N = 1000 };
    static struct timer t[N + 1];
    struct timers ts = { 0 };
    size_t i = 0;
    memset(t, 0, sizeof t);
    /* Fill to capacity, then make the next growth fail. */
    do {
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], (int64_t)(N - i)), 0);
        i++;
    } while (ts.n < ts.hcap && i < N);
    ck_assert_int_eq(ts.n, ts.hcap);
    realloc_fails = 1;
    ck_assert_fails(weft_timer_add(&ts, &t[i], 0), ENOMEM);
    realloc_fails = 0;
    ck_assert(!timer_armed(&t[i]));
    ck_assert_int_eq(ts.n, i);
    check_timers(&ts);
    /* Nothing was lost, and the heap grows once memory is back. */
    ck_assert_int_eq(weft_timer_add(&ts, &t[i], 0), 0);
    ck_assert_ptr_eq(weft_timer_pop_due(&ts, 0), &t[i]);
    size_t popped = 0;
    while (weft_timer_pop_due(&ts, INT64_MAX))
        popped++;
    ck_assert_int_eq(popped, i);
    weft_timers_free(&ts);
}
END_TEST

/* The wheel and the ids are made, and grown, when arming too: a failure there is ENOMEM
 * with nothing changed, and arming works again once memory is back. */
START_TEST(add_fails_enomem_when_the_wheel_or_its_ids_cannot_be_made)
{
    enum { N = 400 };
    static struct timer t[N];
    struct timers ts = { 0 };
    memset(t, 0, sizeof t);
    realloc_fails = 1;
    ck_assert_fails(weft_timer_add(&ts, &t[0], 5), ENOMEM);
    realloc_fails = 0;
    ck_assert(!timer_armed(&t[0]));
    ck_assert_int_eq(ts.n, 0);
    ck_assert_ptr_null(weft_timer_first(&ts));
    size_t i = 0;
    for (; ts.n + 1 < ts.nids || i == 0; i++)       /* up to the ids' next growth */
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], (int64_t)(i % 7)), 0);
    realloc_fails = 1;
    ck_assert_fails(weft_timer_add(&ts, &t[i], 0), ENOMEM);
    realloc_fails = 0;
    ck_assert(!timer_armed(&t[i]));
    ck_assert_int_eq(ts.n, i);
    check_timers(&ts);
    ck_assert_int_eq(weft_timer_add(&ts, &t[i], 0), 0);
    size_t popped = 0;
    int64_t prev = INT64_MIN;
    struct timer *p;
    while ((p = weft_timer_pop_due(&ts, INT64_MAX)) != NULL) {
        ck_assert_int_ge(p->when, prev);
        prev = p->when;
        popped++;
    }
    ck_assert_int_eq(popped, i + 1);
    weft_timers_free(&ts);
}
END_TEST

START_TEST(freed_heap_is_empty_and_usable_again)
{
    struct timers ts = { 0 };
    struct timer a = { 0 }, b = { 0 };
    ck_assert_int_eq(weft_timer_add(&ts, &a, 1), 0);
    weft_timer_cancel(&ts, &a);
    weft_timers_free(&ts);
    ck_assert_ptr_null(ts.heap);
    ck_assert_ptr_null(ts.wheel);
    ck_assert_int_eq(ts.n, 0);
    ck_assert_int_eq(weft_timer_add(&ts, &b, 2), 0);
    ck_assert_ptr_eq(weft_timer_pop_due(&ts, 2), &b);
    weft_timers_free(&ts);
}
END_TEST

/* Re-keying an armed timer in place (a delayed call pushed back): up or down the heap, and
 * as a tie it goes after the timers already due then, as if cancelled and added again. */
static int by_when_then_order(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;      /* { when, order, index } */
    if (x[0] != y[0])
        return x[0] < y[0] ? -1 : 1;
    return x[1] < y[1] ? -1 : x[1] > y[1];
}

START_TEST(rekey_moves_a_timer_either_way_and_keeps_ties_in_order)
{
    enum { N = 3000, OPS = 50000 };
    static struct timer t[N];
    static int64_t key[N][3];
    struct timers ts = { 0 };
    memset(t, 0, sizeof t);
    int64_t order = 0;
    for (int i = 0; i < N; i++) {
        int64_t when = (int64_t)(rnd() % 200);
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], when), 0);
        key[i][0] = when;
        key[i][1] = order++;
        key[i][2] = i;
    }
    for (int op = 0; op < OPS; op++) {
        int i = (int)(rnd() % N);
        int64_t when = (int64_t)(rnd() % 200);      /* earlier or later, often a tie */
        weft_timer_rekey(&ts, &t[i], when);
        key[i][0] = when;
        key[i][1] = order++;
        test_require(timer_armed(&t[i]) && t[i].when == when, "op %d: not re-keyed", op);
        if (op % 4096 == 0)
            check_timers(&ts);
    }
    check_timers(&ts);
    qsort(key, N, sizeof key[0], by_when_then_order);
    for (int j = 0; j < N; j++)
        test_require(weft_timer_pop_due(&ts, INT64_MAX) == &t[key[j][2]], "pop %d out of order", j);
    ck_assert_ptr_null(weft_timer_pop_due(&ts, INT64_MAX));
    weft_timers_free(&ts);
}
END_TEST

/* Deadlines on and around the wheel's level boundaries (64, 4096, 262144, 16777216 ms),
 * with ties, armed in a jumbled order: as time steps 1 ms at a time, each fires at exactly
 * its tick, after the cascades that bring it down, ties in arming order. */
START_TEST(timers_on_level_boundaries_cascade_and_fire_at_their_tick)
{
    static const int64_t at[] = { 0, 1, 62, 63, 64, 65, 127, 128, 4095, 4096, 4097, 262143,
                                  262144, 262145, 16777215, 16777216, 16777217 };
    enum { NAT = sizeof at / sizeof at[0], N = 3 * NAT };
    static struct timer t[N];
    static int64_t key[N][3];
    struct timers ts = { 0 };
    weft_timers_start(&ts, 0);
    memset(t, 0, sizeof t);
    for (int i = 0; i < N; i++) {
        int64_t when = at[(i * 7) % NAT];
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], when), 0);
        key[i][0] = when;
        key[i][1] = i;
        key[i][2] = i;
    }
    check_timers(&ts);
    qsort(key, N, sizeof key[0], by_when_then_order);
    int j = 0;
    for (int64_t now = 0; now <= 16777300; now++) {
        struct timer *p;
        while ((p = weft_timer_pop_due(&ts, now)) != NULL) {
            test_require(p == &t[key[j][2]], "at %lld: popped %d, expected %d (due %lld)",
                         (long long)now, (int)(p - t), (int)key[j][2], (long long)key[j][0]);
            test_require(p->when == now, "timer due %lld fired at %lld", (long long)p->when,
                         (long long)now);
            j++;
            check_timers(&ts);
        }
    }
    ck_assert_int_eq(j, N);
    ck_assert_int_eq(ts.n, 0);
    weft_timers_free(&ts);
}
END_TEST

/* Years ahead, INT64_MAX, the past (before the wheel's time: the heap's), negative and
 * INT64_MIN: one order for all, nothing early, and the earliest always known exactly. */
START_TEST(far_past_and_extreme_deadlines_keep_one_order)
{
    const int64_t now = 1000000000000;              /* about 31 years of milliseconds */
    const int64_t year = 365LL * 24 * 3600 * 1000;
    const int64_t when[] = { INT64_MAX, now + 10 * year, now - 5, INT64_MIN, 0, now,
                             now + 1, -1, INT64_MAX, now + 10 * year, now - 5, now + year };
    enum { N = sizeof when / sizeof when[0] };
    static struct timer t[N];
    static int64_t key[N][3];
    struct timers ts = { 0 };
    weft_timers_start(&ts, now);
    memset(t, 0, sizeof t);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], when[i]), 0);
        key[i][0] = when[i];
        key[i][1] = i;
        key[i][2] = i;
    }
    check_timers(&ts);
    qsort(key, N, sizeof key[0], by_when_then_order);
    ck_assert_ptr_eq(weft_timer_first(&ts), &t[3]);         /* INT64_MIN */
    int j = 0;
    struct timer *p;
    while ((p = weft_timer_pop_due(&ts, now)) != NULL) {
        test_require(p == &t[key[j][2]], "popped %lld, expected %lld", (long long)p->when,
                     (long long)key[j][0]);
        j++;
    }
    ck_assert_int_eq(key[j][0], now + 1);                   /* everything due by now, no more */
    ck_assert_ptr_eq(weft_timer_first(&ts), &t[key[j][2]]);
    /* Armed now for before the wheel's time: the earliest, and it fires first. */
    struct timer late = { 0 };
    ck_assert_int_eq(weft_timer_add(&ts, &late, now - 100), 0);
    ck_assert_ptr_eq(weft_timer_first(&ts), &late);
    ck_assert_ptr_eq(weft_timer_pop_due(&ts, now), &late);
    ck_assert_ptr_null(weft_timer_pop_due(&ts, now));
    for (int64_t step = now + 1; j < N; step += year / 2 > INT64_MAX - step ? INT64_MAX - step : year / 2) {
        while ((p = weft_timer_pop_due(&ts, step)) != NULL) {
            test_require(p == &t[key[j][2]], "popped %lld, expected %lld", (long long)p->when,
                         (long long)key[j][0]);
            test_require(p->when <= step, "popped %lld early at %lld", (long long)p->when,
                         (long long)step);
            j++;
            check_timers(&ts);
        }
        if (step == INT64_MAX)
            break;
    }
    ck_assert_int_eq(j, N);
    weft_timers_free(&ts);
}
END_TEST

/* The earliest timer, as weft_timer_first gives it, is exactly the next to fire: not due
 * a millisecond before its deadline, due at it (the loop's timeout rests on this). */
START_TEST(first_is_exact_never_early_and_due_at_its_deadline)
{
    enum { N = 20000 };
    static struct timer t[N];
    struct timers ts = { 0 };
    memset(t, 0, sizeof t);
    weft_timers_start(&ts, 5000);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], 5000 + (int64_t)(rnd() % 10000000)), 0);
    int64_t prev = 0;
    for (int i = 0; i < N; i++) {
        struct timer *f = weft_timer_first(&ts);
        ck_assert_ptr_nonnull(f);
        test_require(f->when >= prev, "first %lld after %lld", (long long)f->when, (long long)prev);
        test_require(weft_timer_pop_due(&ts, f->when - 1) == NULL, "due before %lld",
                     (long long)f->when);
        test_require(weft_timer_pop_due(&ts, f->when) == f, "first %lld not due at its time",
                     (long long)f->when);
        prev = f->when;
    }
    ck_assert_ptr_null(weft_timer_first(&ts));
    weft_timers_free(&ts);
}
END_TEST

/* A wheel slot that cannot grow (no memory) sends the timer to the heap, which has room
 * for all of them, both when arming and when a cascade brings timers down: the order holds. */
START_TEST(a_wheel_slot_without_memory_sends_timers_to_the_heap)
{
    enum { N = 600 };
    static struct timer t[N];
    static int64_t key[N][3];
    struct timers ts = { 0 };
    memset(t, 0, sizeof t);
    weft_timers_start(&ts, 0);
    int i = 0;
    for (; i < 300; i++) {                  /* far ones: they cascade later */
        key[i][0] = 100000 + (int64_t)(rnd() % 300000);
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], key[i][0]), 0);
    }
    realloc_fails = 1;                      /* heap and ids have room for 512 already */
    for (; i < 500; i++) {
        key[i][0] = (int64_t)(rnd() % 500000);
        ck_assert_int_eq(weft_timer_add(&ts, &t[i], key[i][0]), 0);
    }
    ck_assert_int_gt(ts.hn, 0);
    check_timers(&ts);
    for (int k = 0; k < 500; k++) {
        key[k][1] = k;
        key[k][2] = k;
    }
    qsort(key, 500, sizeof key[0], by_when_then_order);
    int j = 0;
    for (int64_t now = 0; now < 500000 + 97; now += 97) {
        struct timer *p;
        while ((p = weft_timer_pop_due(&ts, now)) != NULL) {
            test_require(p == &t[key[j][2]], "popped %lld, expected %lld", (long long)p->when,
                         (long long)key[j][0]);
            j++;
        }
        if (now % 9700 == 0)
            check_timers(&ts);
    }
    realloc_fails = 0;
    ck_assert_int_eq(j, 500);
    weft_timers_free(&ts);
}
END_TEST

/* Cancelled and re-keyed timers leave stale entries behind, never read through their
 * timers (whose records may be freed: ASan and Valgrind would tell), and never more of
 * them than the armed timers and a small slack. */
START_TEST(stale_entries_stay_bounded_and_never_read_a_freed_timer)
{
    enum { N = 5000, OPS = 200000 };
    struct timer **t = calloc(N, sizeof *t);
    ck_assert_ptr_nonnull(t);
    struct timers ts = { 0 };
    int64_t now = 0;
    for (int op = 0; op < OPS; op++) {
        int i = (int)(rnd() % N);
        unsigned k = (unsigned)(rnd() % 8);
        if (!t[i]) {
            t[i] = calloc(1, sizeof *t[i]);
            ck_assert_ptr_nonnull(t[i]);
            ck_assert_int_eq(weft_timer_add(&ts, t[i], now + 30000 + (int64_t)(rnd() % 1000)), 0);
        } else if (k < 5 && timer_armed(t[i])) {
            weft_timer_rekey(&ts, t[i], now + 30000 + (int64_t)(rnd() % 1000));
        } else {
            weft_timer_cancel(&ts, t[i]);
            free(t[i]);                     /* gone: its stale entries must not be read */
            t[i] = NULL;
        }
        test_require(ts.stale <= ts.n + 1024, "op %d: %zu stale entries for %zu timers", op,
                     ts.stale, ts.n);
        if (op % 64 == 0)
            now += 1 + (int64_t)(rnd() % 400);      /* slots come due, with stale entries */
        struct timer *p;
        while ((p = weft_timer_pop_due(&ts, now)) != NULL)
            test_require(!timer_armed(p) && p->when <= now, "op %d: bad pop", op);
        if (op % 8192 == 0)
            check_timers(&ts);
    }
    check_timers(&ts);
    for (int i = 0; i < N; i++)
        free(t[i]);
    weft_timers_free(&ts);
    free(t);
}
END_TEST

static Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");
    TCase *tc = test_case(s, "heap", 10);
    tcase_add_test(tc, empty_heap_has_nothing_due);
    tcase_add_test(tc, pop_due_returns_a_timer_only_once_its_time_has_come);
    tcase_add_test(tc, equal_deadlines_pop_in_insertion_order);
    tcase_add_test(tc, cancel_removes_root_middle_and_last);
    tcase_add_test(tc, add_fails_enomem_when_the_heap_cannot_grow);
    tcase_add_test(tc, add_fails_enomem_when_the_wheel_or_its_ids_cannot_be_made);
    tcase_add_test(tc, freed_heap_is_empty_and_usable_again);
    tc = test_case(s, "random", 60);
    tcase_add_test(tc, random_adds_cancels_and_pops_match_a_sorted_reference);
    tcase_add_test(tc, random_far_deadlines_rekeys_and_time_jumps_match_a_sorted_reference);
    tcase_add_test(tc, a_million_timers_pop_in_deadline_order);
    tcase_add_test(tc, rekey_moves_a_timer_either_way_and_keeps_ties_in_order);
    tcase_add_test(tc, first_is_exact_never_early_and_due_at_its_deadline);
    tcase_add_test(tc, stale_entries_stay_bounded_and_never_read_a_freed_timer);
    tc = test_case(s, "wheel", 60);
    tcase_add_test(tc, timers_on_level_boundaries_cascade_and_fire_at_their_tick);
    tcase_add_test(tc, far_past_and_extreme_deadlines_keep_one_order);
    tcase_add_test(tc, a_wheel_slot_without_memory_sends_timers_to_the_heap);
    return s;
}

int main(void)
{
    return test_run(timer_suite());
}

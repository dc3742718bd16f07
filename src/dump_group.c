/* The grouped dump (WEFT_DUMP_GROUP) and the folded stacks (WEFT_DUMP_FOLDED): tasks parked
 * alike, counted once. Both run where the plain dump runs, signal handlers included (the
 * other threads of WEFT_DUMP_ALL_THREADS), so the memory for the groups comes from mmap,
 * which is a system call and signal-safe, never from malloc; the sort is a heap sort of our
 * own (qsort may allocate). The task records are read as the plain dump reads them: the
 * thread is busy throughout, so none changes under us.
 *
 * A group's key is the dump state (which names the wait kind), and the frames' pcs: the same
 * call sites, so the same code path. For the folded stacks the groups are then merged again
 * by function (pc minus the offset in its function), since a flame graph names functions. */
#include "config.h"
#include "dump_impl.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define GROUP_EXAMPLES 5       /* task ids shown per group */

struct group {
    uint64_t hash;
    uint32_t next;              /* the bucket's chain: index + 1; 0 ends it */
    int st, n, exact0;
    int entry;                  /* never ran: pcs[0] is its entry function */
    uint64_t count;
    int64_t oldest, newest;     /* the longest and shortest wait, ms; -1: none waits */
    uint64_t ex[GROUP_EXAMPLES];
    int nex;
    uintptr_t pcs[BT_MAX];
};

struct groups {
    struct group *g;
    uint32_t *bucket, *order;
    size_t cap, nbuckets, n;
    void *map;
    size_t map_size;
};

int weft_dump_flags_ok(int flags)
{
    if (flags & ~(WEFT_DUMP_JSON | WEFT_DUMP_NO_BACKTRACE | WEFT_DUMP_SYSTEM |
                  WEFT_DUMP_ALL_THREADS | WEFT_DUMP_GROUP | WEFT_DUMP_FOLDED))
        return 0;
    return !(flags & WEFT_DUMP_FOLDED) ||
           !(flags & (WEFT_DUMP_JSON | WEFT_DUMP_GROUP | WEFT_DUMP_NO_BACKTRACE));
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x100000001b3ULL;
    return h ^ (h >> 29);
}

static uint64_t key_hash(const struct group *k)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    h = mix(h, (uint64_t)k->st);
    h = mix(h, (uint64_t)k->n | (uint64_t)k->exact0 << 8 | (uint64_t)k->entry << 9);
    for (int i = 0; i < k->n; i++)
        h = mix(h, k->pcs[i]);
    return h;
}

static int key_eq(const struct group *a, const struct group *b)
{
    return a->hash == b->hash && a->st == b->st && a->n == b->n && a->exact0 == b->exact0 &&
           a->entry == b->entry && memcmp(a->pcs, b->pcs, (size_t)a->n * sizeof a->pcs[0]) == 0;
}

/* Room for cap groups (every record of the registry, with the walk's slack). The pages are
 * the kernel's zero pages until touched, so only the groups made cost memory. */
static int groups_map(struct groups *gs, size_t cap)
{
    size_t nb = 64;
    while (nb < 2 * cap)
        nb *= 2;
    size_t gbytes = cap * sizeof(struct group);
    gs->map_size = gbytes + (nb + cap) * sizeof(uint32_t);
    gs->map = mmap(NULL, gs->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (gs->map == MAP_FAILED) {
        gs->map = NULL;
        return -1;
    }
    gs->g = gs->map;
    gs->bucket = (uint32_t *)((char *)gs->map + gbytes);
    gs->order = gs->bucket + nb;
    gs->cap = cap;
    gs->nbuckets = nb;
    gs->n = 0;
    return 0;
}

static void groups_unmap(struct groups *gs)
{
    if (gs->map)
        munmap(gs->map, gs->map_size);
    gs->map = NULL;
}

/* The group of key k (its hash set), made when new; NULL when full. */
static struct group *groups_find(struct groups *gs, const struct group *k)
{
    uint32_t *slot = &gs->bucket[k->hash & (gs->nbuckets - 1)];
    for (uint32_t i = *slot; i; i = gs->g[i - 1].next) {
        if (key_eq(&gs->g[i - 1], k))
            return &gs->g[i - 1];
    }
    if (gs->n >= gs->cap)
        return NULL;
    struct group *g = &gs->g[gs->n++];
    memcpy(g, k, sizeof *g);
    g->count = 0;
    g->nex = 0;
    g->oldest = g->newest = -1;
    g->next = *slot;
    *slot = (uint32_t)gs->n;
    return g;
}

/* Fold src's counts into dst (examples in task order: dst's came first). */
static void group_add(struct group *dst, const struct group *src)
{
    dst->count += src->count;
    if (src->oldest > dst->oldest)
        dst->oldest = src->oldest;
    if (src->newest >= 0 && (dst->newest < 0 || src->newest < dst->newest))
        dst->newest = src->newest;
    for (int i = 0; i < src->nex && dst->nex < GROUP_EXAMPLES; i++)
        dst->ex[dst->nex++] = src->ex[i];
}

/* Walk the registry into groups; -1 when there was no memory. */
static int groups_collect(struct dumpctx *d, struct groups *gs)
{
    struct list *it;
    struct weft_task *t;
    size_t guard;
    if (groups_map(gs, d->s ? d->s->ntasks + 65 : 1) != 0)
        return -1;
    if (!d->s)
        return 0;
    struct group k;
    for_each_task(d, t, it, guard) {
        if (!weft_dump_shown(d, t))
            continue;
        k.st = weft_dump_task_state(t);
        k.n = 0;
        k.exact0 = 0;
        k.entry = 0;
        if (d->flags & WEFT_DUMP_NO_BACKTRACE) {
            /* by state alone */
        } else if (k.st != ST_DONE && t->switches == 0) {
            k.entry = 1;
            k.n = 1;
            k.pcs[0] = (uintptr_t)t->fn;
        } else if (k.st != ST_DONE) {
            k.n = weft_dump_frames(d, t, k.pcs, &k.exact0);
        }
        k.hash = key_hash(&k);
        struct group *g = groups_find(gs, &k);
        if (!g)
            break;      /* more tasks than the registry said: the walk's bound */
        int64_t w = -1;
        if (t->state == TS_WAITING && t->last_run >= 0)
            w = d->now - t->last_run < 0 ? 0 : d->now - t->last_run;
        g->count++;
        if (w > g->oldest)
            g->oldest = w;
        if (w >= 0 && (g->newest < 0 || w < g->newest))
            g->newest = w;
        if (g->nex < GROUP_EXAMPLES)
            g->ex[g->nex++] = t->id;
    }
    return 0;
}

/* Does group a come before b: larger count first, then the one with the older first task. */
static int before(const struct group *a, const struct group *b)
{
    return a->count != b->count ? a->count > b->count : a->ex[0] < b->ex[0];
}

static void sift(const struct groups *gs, uint32_t *o, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && before(&gs->g[o[c]], &gs->g[o[c + 1]]))
            c++;
        if (!before(&gs->g[o[i]], &gs->g[o[c]]))
            return;
        uint32_t x = o[i];
        o[i] = o[c];
        o[c] = x;
        i = c;
    }
}

/* gs->order: the indexes of the groups with a count, in output order (heap sort: a heap
 * whose root comes last, so the array ends up first-to-last). */
static size_t groups_sort(struct groups *gs)
{
    uint32_t *o = gs->order;
    size_t n = 0;
    for (size_t i = 0; i < gs->n; i++) {
        if (gs->g[i].count)
            o[n++] = (uint32_t)i;
    }
    for (size_t i = n / 2; i-- > 0;)
        sift(gs, o, i, n);
    for (size_t end = n; end > 1; end--) {
        uint32_t x = o[0];
        o[0] = o[end - 1];
        o[end - 1] = x;
        sift(gs, o, 0, end - 1);
    }
    return n;
}

static void no_memory(struct dumpctx *d)
{
    if (d->json)
        put(d->b, "{\"error\":\"no memory for the groups\"}");
    else
        put(d->b, "(no memory for the groups)\n\n");
    if (!d->b->err)
        d->b->err = ENOMEM;
}

static void put_group_text(struct dumpctx *d, const struct group *g, size_t rank)
{
    struct sigbuf *b = d->b;
    put(b, "group ");
    put_u(b, rank);
    put(b, ": ");
    put_u(b, g->count);
    put(b, g->count == 1 ? " task [" : " tasks [");
    put(b, weft_dump_state_names[g->st]);
    put(b, "]");
    if (g->oldest >= 0) {
        put(b, ", waiting ");
        put_i(b, g->newest);
        if (g->oldest != g->newest) {
            put(b, "..");
            put_i(b, g->oldest);
        }
        put(b, " ms");
    }
    put(b, g->count == 1 ? ", task " : ", e.g. tasks ");
    for (int i = 0; i < g->nex; i++) {
        if (i)
            put(b, ", ");
        put_u(b, g->ex[i]);
    }
    put(b, ":\n");
    if (g->entry) {
        put(b, "    (not started) entry ");
        weft_dump_put_sym_text(d, g->pcs[0], 0);
        put(b, "\n");
    } else {
        weft_dump_put_pcs(d, g->pcs, g->n, g->exact0);
    }
    put(b, "\n");
}

static void put_group_json(struct dumpctx *d, const struct group *g)
{
    struct sigbuf *b = d->b;
    put(b, "{\"count\":");
    put_u(b, g->count);
    put(b, ",\"state\":");
    put_js(b, weft_dump_state_names[g->st]);
    put(b, ",\"oldest_wait_ms\":");
    if (g->oldest >= 0)
        put_i(b, g->oldest);
    else
        put(b, "null");
    put(b, ",\"newest_wait_ms\":");
    if (g->newest >= 0)
        put_i(b, g->newest);
    else
        put(b, "null");
    put(b, ",\"examples\":[");
    for (int i = 0; i < g->nex; i++) {
        if (i)
            put(b, ",");
        put_u(b, g->ex[i]);
    }
    put(b, "],\"started\":");
    put(b, g->entry ? "false" : "true");
    put(b, ",\"entry\":");
    if (g->entry) {
        struct bt_sym y;
        weft_bt_symbol(&d->cache, g->pcs[0], 0, &y);
        if (y.func)
            put_js(b, y.func);
        else
            put_jx(b, g->pcs[0]);
        put(b, ",\"frames\":[]");
    } else {
        put(b, "null,");
        weft_dump_put_pcs(d, g->pcs, g->n, g->exact0);
    }
    put(b, "}");
}

void weft_dump_put_groups(struct dumpctx *d)
{
    struct groups gs;
    if (groups_collect(d, &gs) != 0) {
        no_memory(d);
        return;
    }
    size_t n = groups_sort(&gs);
    for (size_t i = 0; i < n; i++) {
        const struct group *g = &gs.g[gs.order[i]];
        if (d->json) {
            put(d->b, i ? ",\n" : "");
            put_group_json(d, g);
        } else {
            put_group_text(d, g, i + 1);
        }
    }
    groups_unmap(&gs);
}

/* A frame's name as a folded line may hold it: no ';' (the separator), no space (the count
 * follows the last one); an unknown function as [module+0xoffset]. */
static void put_folded_frame(struct dumpctx *d, uintptr_t pc, int is_ret)
{
    struct bt_sym y;
    struct sigbuf *b = d->b;
    weft_bt_symbol(&d->cache, pc, is_ret, &y);
    const char *s = y.func;
    if (!s) {
        const char *m = y.module;
        for (const char *p = y.module; *p; p++) {
            if (*p == '/')
                m = p + 1;
        }
        put(b, "[");
        s = m;
    }
    for (; *s; s++)
        put_ch(b, *s == ';' || *s == ' ' || *s == '\t' || *s == '\n' ? '_' : *s);
    if (!y.func) {
        put(b, "+");
        put_x(b, y.module_off);
        put(b, "]");
    }
}

void weft_dump_put_folded(struct dumpctx *d)
{
    struct groups gs;
    if (groups_collect(d, &gs) != 0) {
        no_memory(d);
        return;
    }
    /* Each group's pcs become function starts (an unknown pc stays itself), and the groups
     * are hashed again by those alone, merging the ones that name the same functions. */
    memset(gs.bucket, 0, gs.nbuckets * sizeof gs.bucket[0]);
    size_t made = gs.n;
    for (size_t i = 0; i < made; i++) {
        struct group *g = &gs.g[i];
        if (g->entry || g->n == 0) {
            g->count = 0;   /* no stack: not in a flame graph */
            continue;
        }
        for (int j = 0; j < g->n; j++) {
            struct bt_sym y;
            int is_ret = !(j == 0 && g->exact0);
            if (weft_bt_symbol(&d->cache, g->pcs[j], is_ret, &y) && y.func)
                g->pcs[j] -= y.off;
        }
        g->st = 0;
        g->exact0 = 0;
        g->hash = key_hash(g);
        uint32_t *slot = &gs.bucket[g->hash & (gs.nbuckets - 1)];
        uint32_t hit = 0;
        for (uint32_t k = *slot; k && !hit; k = gs.g[k - 1].next)
            hit = key_eq(&gs.g[k - 1], g) ? k : 0;
        if (hit) {
            group_add(&gs.g[hit - 1], g);
            g->count = 0;
        } else {
            g->next = *slot;
            *slot = (uint32_t)(i + 1);
        }
    }
    size_t n = groups_sort(&gs);
    for (size_t i = 0; i < n; i++) {
        const struct group *g = &gs.g[gs.order[i]];
        /* A function start is no return address: name it as is (is_ret 0), except an
         * unknown pc, which is still the return address it was. */
        for (int j = g->n - 1; j >= 0; j--) {
            put_folded_frame(d, g->pcs[j], 0);
            put(d->b, j ? ";" : " ");
        }
        put_u(d->b, g->count);
        put(d->b, "\n");
    }
    groups_unmap(&gs);
}

/* Who waits for whom: the cycles among a scheduler's parked tasks (a join, a lock held by
 * another task, a generator another drives), which nothing can ever break, named in the
 * dump as "wait cycle: task 7 ... -> task 9 ... -> task 7". Reads the records only, from a
 * signal handler too: no allocation, and a bounded amount of work. */
#include "config.h"
#include "dump_impl.h"

#define CYCLE_MAX 32                    /* longest cycle followed */
#define VISIT_BUDGET 4000000            /* records looked at, at most, per dump */

/* The id of the task t waits for, 0 none. */
static uint64_t waits_for(const struct weft_task *t)
{
    if (t->state != TS_WAITING)
        return 0;
    if (t->wait_kind == WAIT_JOIN) {
        const struct weft_task *j = t->wait_obj;
        return j ? j->id : 0;
    }
    if (!t->wait_info)
        return 0;
    struct wait_info w = { NULL, NULL, 0, -1 };
    t->wait_info(t, &w);
    return w.holder;
}

static const struct weft_task *find(struct dumpctx *d, uint64_t id, long *budget)
{
    struct list *it;
    struct weft_task *t;
    size_t guard;
    for_each_task(d, t, it, guard) {
        if (--*budget < 0)
            return NULL;
        if (t->id == id && t->state != TS_FREE)
            return t;
    }
    return NULL;
}

/* The cycle through t, into ring (t first); its length, or 0 when t is on none, or when t
 * is not its member with the lowest id (so each cycle is named once). */
static int cycle_of(struct dumpctx *d, const struct weft_task *t,
                    const struct weft_task **ring, long *budget)
{
    const struct weft_task *u = t;
    int n = 0;
    while (n < CYCLE_MAX) {
        ring[n++] = u;
        uint64_t next = waits_for(u);
        if (!next || next < t->id)
            return 0;
        if (next == t->id)
            return n;
        u = find(d, next, budget);
        if (!u)
            return 0;
    }
    return 0;
}

static void put_member(struct dumpctx *d, const struct weft_task *t)
{
    struct sigbuf *b = d->b;
    put(b, "task ");
    put_u(b, t->id);
    put(b, " \"");
    put(b, t->name);
    put(b, "\" [");
    put(b, weft_dump_state_names[weft_dump_task_state(t)]);
    if (t->wait_kind == WAIT_JOIN) {
        put(b, " task ");
        put_u(b, waits_for(t));
    } else {
        weft_dump_put_wait_info(b, t);
    }
    put(b, "] -> ");
}

void weft_dump_put_cycles(struct dumpctx *d)
{
    if (!d->s)
        return;
    struct sigbuf *b = d->b;
    struct list *it;
    struct weft_task *t;
    size_t guard;
    long budget = VISIT_BUDGET;
    int found = 0;
    const struct weft_task *ring[CYCLE_MAX];
    for_each_task(d, t, it, guard) {
        if (budget < 0)
            break;
        if (!waits_for(t))
            continue;
        int n = cycle_of(d, t, ring, &budget);
        if (!n)
            continue;
        if (d->json) {
            put(b, found ? ",[" : "[");
            for (int i = 0; i < n; i++) {
                if (i)
                    put(b, ",");
                put_u(b, ring[i]->id);
            }
            put(b, "]");
        } else {
            put(b, "wait cycle (nothing can wake these): ");
            for (int i = 0; i < n; i++)
                put_member(d, ring[i]);
            put(b, "task ");
            put_u(b, t->id);
            put(b, "\n");
        }
        found++;
    }
    if (budget < 0 && !d->json)
        put(b, "wait cycles: search stopped (too many tasks); some may be missing\n");
}

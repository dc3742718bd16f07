/* The sampling profiler (weft_profile): the watchdog's helper thread (dump_watchdog.c) looks
 * at every scheduler hz times a second and charges the CPU time the scheduler's thread used
 * since the last look to the task running now (s->cur, which every switch writes anyway:
 * the switch path pays nothing for the profiler, on or off). It keeps one-second windows per
 * scheduler: the samples and CPU time of each task with its spawn site, the switches, the
 * run queue's length. The control socket's "top" request (dump_server.c) prints the last
 * complete window with weft_dump_top. */
#include "config.h"
#include "dump_impl.h"
#include "sys.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW_NS 1000000000LL
#define ROW_SLOTS 1024              /* open addressing; at most ROW_MAX in use */
#define ROW_MAX 768
#define WAITS_SHOWN 5
#define PROFILE_MAX_HZ 10000

struct prow {
    uint64_t id;                    /* 0: free slot */
    const char *file;               /* spawn site (a string literal of the program) */
    int line;
    uint32_t samples;
    uint64_t cpu_ns;
    char name[WEFT_NAME_MAX];
};

struct pwin {
    int64_t start_ns, end_ns;       /* CLOCK_MONOTONIC */
    uint64_t sw_start, sw_end;      /* the scheduler's switch count at both ends */
    uint32_t samples, busy;         /* looks; looks that found a task running */
    uint64_t cpu_ns, idle_cpu_ns;   /* the thread's CPU time; of it, with no task running */
    uint64_t runq_sum;
    uint32_t runq_max;
    uint32_t nrows, dropped;        /* rows used; samples of tasks that found no free row */
    struct prow rows[ROW_SLOTS];
};

struct psched {
    struct sched *s;                /* the scheduler these windows are of */
    int64_t last_cpu;               /* its thread's CPU clock at the last look; -1 unknown */
    int filling;                    /* win[filling] is being filled, win[!filling] is done */
    int have_done;
    struct pwin win[2];
};

static int prof_hz;                 /* under the registry lock */
static struct psched *prof[MAX_SCHEDS];

int weft_dump_profile_hz(void)
{
    return prof_hz;
}

void weft_dump_profile_after_fork(void)
{
    prof_hz = 0;
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The CPU clock of thread tid of this process (Linux's encoding of a thread's CPU clock id,
 * as pthread_getcpuclockid makes it), in ns, or -1. */
static int64_t thread_cpu_ns(pid_t tid)
{
    clockid_t c = (clockid_t)((~(unsigned)tid << 3) | 6);
    struct timespec ts;
    if (clock_gettime(c, &ts) != 0)
        return -1;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void win_start(struct pwin *w, int64_t now, uint64_t sw)
{
    memset(w, 0, offsetof(struct pwin, rows));
    memset(w->rows, 0, sizeof w->rows);
    w->start_ns = now;
    w->sw_start = sw;
}

static struct prow *row_of(struct pwin *w, uint64_t id)
{
    size_t i = (size_t)(id * 0x9e3779b97f4a7c15ull >> 54) & (ROW_SLOTS - 1);
    for (;;) {
        struct prow *r = &w->rows[i];
        if (r->id == id)
            return r;
        if (r->id == 0) {
            if (w->nrows >= ROW_MAX)
                return NULL;
            w->nrows++;
            r->id = id;
            return r;
        }
        i = (i + 1) & (ROW_SLOTS - 1);
    }
}

/* A task record of a live scheduler stays mapped while the scheduler is registered (records
 * are freed with the scheduler, which leaves the registry first, under the lock held here);
 * a record reused between the two loads only charges a sample to its new task. */
static void charge(struct pwin *w, const struct weft_task *cur, uint64_t cpu)
{
    uint64_t id = __atomic_load_n(&cur->id, __ATOMIC_RELAXED);
    struct prow *r = id ? row_of(w, id) : NULL;
    if (!r) {
        w->dropped++;
        return;
    }
    if (r->samples == 0) {
        r->file = __atomic_load_n(&cur->file, __ATOMIC_RELAXED);
        r->line = __atomic_load_n(&cur->line, __ATOMIC_RELAXED);
        for (int i = 0; i < WEFT_NAME_MAX - 1; i++) {
            r->name[i] = __atomic_load_n(&cur->name[i], __ATOMIC_RELAXED);
            if (!r->name[i])
                break;
        }
        r->name[WEFT_NAME_MAX - 1] = '\0';
    }
    r->samples++;
    r->cpu_ns += cpu;
}

/* One look at every scheduler (the helper thread, under the registry lock). */
void weft_dump_profile_sample(void)
{
    int64_t now = mono_ns();
    for (int i = 0; i < MAX_SCHEDS; i++) {
        struct schedent *e = &weft_dump_scheds[i];
        struct sched *s = e->s;
        if (!s)
            continue;
        if (!prof[i] && !(prof[i] = malloc(sizeof *prof[i])))
            continue;
        struct psched *p = prof[i];
        uint64_t sw = __atomic_load_n(&s->switches, __ATOMIC_RELAXED);
        if (p->s != s) {            /* a new scheduler in this slot */
            p->s = s;
            p->filling = 0;
            p->have_done = 0;
            p->last_cpu = thread_cpu_ns(e->tid);
            win_start(&p->win[0], now, sw);
            continue;
        }
        struct pwin *w = &p->win[p->filling];
        if (now - w->start_ns >= WINDOW_NS) {
            w->end_ns = now;
            w->sw_end = sw;
            p->filling = !p->filling;
            p->have_done = 1;
            w = &p->win[p->filling];
            win_start(w, now, sw);
        }
        int64_t cpu = thread_cpu_ns(e->tid);
        uint64_t used = cpu >= 0 && p->last_cpu >= 0 && cpu > p->last_cpu ?
                        (uint64_t)(cpu - p->last_cpu) : 0;
        p->last_cpu = cpu;
        struct weft_task *cur = __atomic_load_n(&s->cur, __ATOMIC_RELAXED);
        size_t nrunq = __atomic_load_n(&s->nrunq, __ATOMIC_RELAXED);
        w->samples++;
        w->cpu_ns += used;
        w->runq_sum += nrunq;
        if (nrunq > w->runq_max)
            w->runq_max = (uint32_t)nrunq;
        if (cur) {
            w->busy++;
            charge(w, cur, used);
        } else {
            w->idle_cpu_ns += used;
        }
    }
}

int weft_profile(int hz)
{
    if (hz < 0 || hz > PROFILE_MAX_HZ) {
        errno = EINVAL;
        return -1;
    }
    weft_dump_init();
    pthread_mutex_lock(&weft_dump_reg_lock);
    if (hz && !prof_hz) {
        for (int i = 0; i < MAX_SCHEDS; i++) {
            if (prof[i])
                prof[i]->s = NULL;      /* windows start afresh */
        }
    }
    prof_hz = hz;
    if (weft_dump_helper_update() != 0) {   /* unlocks */
        if (hz) {
            pthread_mutex_lock(&weft_dump_reg_lock);
            prof_hz = 0;
            pthread_mutex_unlock(&weft_dump_reg_lock);
        }
        errno = EAGAIN;
        return -1;
    }
    return 0;
}

/* ---- the "top" snapshot ---------------------------------------------------------------- */

static void put_ms3(struct sigbuf *b, uint64_t ns)     /* ns as ms with 3 decimals */
{
    uint64_t us = ns / 1000;
    put_u(b, us / 1000);
    put(b, ".");
    char d[4] = { (char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10),
                  (char)('0' + us % 10), '\0' };
    put(b, d);
}

static void put_window(struct sigbuf *b, int idx, pid_t tid, const struct psched *p)
{
    const struct pwin *w = p && p->have_done ? &p->win[!p->filling] : NULL;
    put(b, "sched ");
    put_i(b, idx);
    put(b, " tid ");
    put_i(b, tid);
    if (!w) {
        put(b, " window_ms 0\n");
        return;
    }
    put(b, " window_ms ");
    put_ms3(b, (uint64_t)(w->end_ns - w->start_ns));
    put(b, " samples ");
    put_u(b, w->samples);
    put(b, " busy ");
    put_u(b, w->busy);
    put(b, " cpu_ms ");
    put_ms3(b, w->cpu_ns);
    put(b, " idle_cpu_ms ");
    put_ms3(b, w->idle_cpu_ns);
    put(b, " switches ");
    put_u(b, w->sw_end - w->sw_start);
    put(b, " runq_avg ");
    put_ms3(b, w->samples ? w->runq_sum * 1000000 / w->samples : 0);
    put(b, " runq_max ");
    put_u(b, w->runq_max);
    put(b, " dropped ");
    put_u(b, w->dropped);
    put(b, "\n");
    for (int i = 0; i < ROW_SLOTS; i++) {
        const struct prow *r = &w->rows[i];
        if (!r->id || !r->samples)
            continue;
        put(b, "task ");
        put_u(b, r->id);
        put(b, " samples ");
        put_u(b, r->samples);
        put(b, " cpu_ms ");
        put_ms3(b, r->cpu_ns);
        put(b, " site ");
        put(b, r->file ? r->file : "?");
        put(b, ":");
        put_i(b, r->line);
        put(b, " name ");
        put(b, r->name);
        put(b, "\n");
    }
}

/* The longest waits among the tasks of this thread's scheduler (walked safely: it is ours). */
static void put_waits(struct sigbuf *b)
{
    struct dumpctx d;
    weft_dump_ctx_init(&d, b, 0);
    if (!d.s)
        return;
    const struct weft_task *best[WAITS_SHOWN] = { 0 };
    const struct weft_task *t;
    struct list *it;
    size_t guard;
    for_each_task(&d, t, it, guard) {
        if (t->state != TS_WAITING || (t->flags & TF_SYSTEM) || t->last_run < 0)
            continue;
        for (int k = 0; k < WAITS_SHOWN; k++) {
            if (!best[k] || t->last_run < best[k]->last_run) {
                memmove(&best[k + 1], &best[k], (size_t)(WAITS_SHOWN - 1 - k) * sizeof best[0]);
                best[k] = t;
                break;
            }
        }
    }
    for (int k = 0; k < WAITS_SHOWN && best[k]; k++) {
        t = best[k];
        put(b, "wait ");
        put_u(b, t->id);
        put(b, " ms ");
        put_i(b, d.now - t->last_run < 0 ? 0 : d.now - t->last_run);
        put(b, " state ");
        put(b, weft_dump_state_names[weft_dump_task_state(t)]);
        put(b, " site ");
        put(b, t->file ? t->file : "?");
        put(b, ":");
        put_i(b, t->line);
        put(b, " name ");
        put(b, t->name);
        put(b, "\n");
    }
    weft_bt_cache_fini(&d.cache);
}

int weft_dump_top(int fd, int start_hz)
{
    weft_dump_init();
    pthread_mutex_lock(&weft_dump_reg_lock);
    int on = prof_hz;
    pthread_mutex_unlock(&weft_dump_reg_lock);
    if (!on && start_hz && weft_profile(start_hz) != 0)
        return -1;
    struct sigbuf b;
    b.len = 0;
    b.fd = fd;
    b.err = 0;
    pthread_mutex_lock(&weft_dump_reg_lock);
    put(&b, "weft top: pid ");
    put_i(&b, getpid());
    put(&b, " hz ");
    put_i(&b, prof_hz);
    put(&b, "\n");
    for (int i = 0; i < MAX_SCHEDS; i++) {
        const struct schedent *e = &weft_dump_scheds[i];
        if (e->s)
            put_window(&b, i, e->tid, prof[i] && prof[i]->s == e->s ? prof[i] : NULL);
    }
    pthread_mutex_unlock(&weft_dump_reg_lock);
    put_waits(&b);
    put(&b, "end\n");
    weft_sigbuf_flush(&b);
    if (b.err) {
        errno = b.err;
        return -1;
    }
    return 0;
}

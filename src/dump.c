/* The task dump: the registry view of a scheduler as text or JSON (weft_dump), the same from
 * a signal handler (weft_dump_on_signal), and the stall watchdog. It reads the scheduler's
 * records and never changes them; backtraces come from backtrace.c, the control socket that
 * serves the dump to tools/weft-dump is dump_server.c.
 *
 * Everything that formats runs in signal handlers too, so it writes through struct sigbuf
 * (no malloc, no stdio) and reads the task records without locks: a dump taken from a signal
 * may see a list half-way through an update, so walks are bounded and pointers checked.
 *
 * "Running for N ms without yielding" costs nothing per switch. switch_in stores the loop's
 * cached clock s->loop_now in last_run; the loop refreshes it at every poll, which comes at
 * least every 64 switches and whenever the run queue empties. So now - last_run is never
 * less than the true time since the switch; it can be more only by the time the loop went
 * without a poll before that switch (the run time of the at most 63 tasks before it: short
 * in a healthy program). The watchdog does not rely on it: it samples s->switches from its
 * thread and only reports when the count has not moved for the whole threshold, a lower
 * bound that never gives a false alarm. */
#include "config.h"
#include "internal.h"
#include "sys.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_SCHEDS 64

/* Every live scheduler of the process, so a signal that lands on another thread can be
 * forwarded, and the watchdog can look at each. */
struct schedent {
    struct sched *s;            /* NULL: free slot */
    pid_t tid;
    uintptr_t stk_lo, stk_hi;   /* the thread's own stack, for walking the main context */
    /* the watchdog's view, under reg_lock */
    uint64_t seen_switches;     /* switch count at the last sample ... */
    int64_t seen_at;            /* ... first seen at this time */
    uint64_t reported;          /* seen_switches + 1 of the stall already reported; 0 none */
    /* handed to the watchdog's signal handler */
    volatile int64_t stall_ms;
    volatile uint64_t stall_switches;
};

static struct schedent scheds[MAX_SCHEDS];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t glob_once = PTHREAD_ONCE_INIT;
static TLS uintptr_t thr_lo, thr_hi;

static int dump_signo;                  /* the signal that dumps; 0 none (under reg_lock) */
static struct sigaction dump_old;
static atomic_int out_busy;             /* one signal dump writes at a time */

static pthread_t wd_thread;
static int wd_running;
static unsigned wd_gen;
static int64_t wd_threshold;            /* ms; 0: off */
static pthread_cond_t wd_cond;
static int wd_signo;

enum {
    ST_RUNNING, ST_RUNNABLE, ST_IO, ST_SLEEP, ST_CHAN, ST_LOCK, ST_JOIN, ST_OFFLOAD, ST_COND,
    ST_WG, ST_SEM, ST_GEN, ST_DONE, ST_OTHER, ST_COUNT
};
static const char *const state_names[ST_COUNT] = {
    "running", "runnable", "io-wait", "sleeping", "chan-wait", "lock-wait", "join-wait",
    "offload-wait", "cond-wait", "wg-wait", "sem-wait", "gen-wait", "done", "waiting",
};

/* ---- registration ---------------------------------------------------------------------- */

static struct schedent *ent_of(const struct sched *s)
{
    if (!s)
        return NULL;
    for (int i = 0; i < MAX_SCHEDS; i++) {
        if (scheds[i].s == s)
            return &scheds[i];
    }
    return NULL;
}

static void atfork_child(void)
{
    /* Only the forking thread lives on in the child: keep its scheduler, drop the others,
     * and forget the watchdog thread (the child runs without one). */
    pthread_mutex_init(&reg_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    struct sched *mine = weft_sched_tls;
    for (int i = 0; i < MAX_SCHEDS; i++) {
        if (scheds[i].s && scheds[i].s != mine)
            scheds[i].s = NULL;
        else if (scheds[i].s)
            scheds[i].tid = (pid_t)syscall(SYS_gettid);
    }
    wd_running = 0;
    wd_threshold = 0;
}

static void glob_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_atfork(NULL, NULL, atfork_child);
    weft_bt_init();
}

/* The calling thread's stack bounds, learned once per thread. */
static void thread_bounds(void)
{
    if (thr_hi)
        return;
    pthread_attr_t a;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &a) != 0)
        return;
    if (pthread_attr_getstack(&a, &lo, &size) == 0) {
        thr_lo = (uintptr_t)lo;
        thr_hi = (uintptr_t)lo + size;
    }
    pthread_attr_destroy(&a);
}

static int parse_signal(const char *v)
{
    static const struct { const char *name; int sig; } names[] = {
        { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "HUP", SIGHUP },
        { "TERM", SIGTERM }, { "INT", SIGINT }, { "PWR", SIGPWR }, { "WINCH", SIGWINCH },
    };
    if (strncmp(v, "SIG", 3) == 0)
        v += 3;
    if (v[0] >= '0' && v[0] <= '9')
        return atoi(v);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v, names[i].name) == 0)
            return names[i].sig;
    }
    return -1;
}

void weft_dump_sched_created(struct sched *s)
{
    int saved = errno;
    pthread_once(&glob_once, glob_init);
    thread_bounds();
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_SCHEDS; i++) {
        if (!scheds[i].s) {
            struct schedent *e = &scheds[i];
            memset(e, 0, sizeof *e);
            e->tid = (pid_t)syscall(SYS_gettid);
            e->stk_lo = thr_lo;
            e->stk_hi = thr_hi;
            e->seen_at = weft_now();
            e->s = s;
            break;
        }
    }
    int signo = dump_signo, wd = wd_running;
    pthread_mutex_unlock(&reg_lock);

    const char *v = getenv("WEFT_DUMP_SIGNAL");
    if (v && *v) {
        int sig = parse_signal(v);
        if (sig != signo && weft_dump_on_signal(sig) != 0)
            fprintf(stderr, "weft: WEFT_DUMP_SIGNAL=%s: not a usable signal\n", v);
    }
    v = getenv("WEFT_WATCHDOG");
    if (v && *v && !wd) {
        long long ms = atoll(v);
        if (ms > 0)
            weft_watchdog(ms);
    }
    v = getenv("WEFT_DEBUG");
    if (v && *v && strcmp(v, "0") != 0 && !weft_debug_listening()) {
        if (weft_debug_listen(v[0] == '/' ? v : NULL) != 0)
            fprintf(stderr, "weft: WEFT_DEBUG: cannot open the control socket: %s\n", strerror(errno));
    }
    errno = saved;
}

void weft_dump_sched_destroyed(struct sched *s)
{
    pthread_mutex_lock(&reg_lock);
    struct schedent *e = ent_of(s);
    if (e)
        e->s = NULL;
    pthread_mutex_unlock(&reg_lock);
}

/* ---- formatting helpers ---------------------------------------------------------------- */

static void put(struct sigbuf *b, const char *s) { weft_sigbuf_str(b, s); }
static void put_u(struct sigbuf *b, uint64_t v) { weft_sigbuf_u64(b, v); }
static void put_i(struct sigbuf *b, int64_t v) { weft_sigbuf_i64(b, v); }
static void put_x(struct sigbuf *b, uintptr_t v) { weft_sigbuf_hex(b, v); }

static void put_ch(struct sigbuf *b, char c)
{
    char s[2] = { c, '\0' };
    weft_sigbuf_str(b, s);
}

/* A JSON string, quoted and escaped. */
static void put_js(struct sigbuf *b, const char *s)
{
    put_ch(b, '"');
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            put_ch(b, '\\');
            put_ch(b, (char)c);
        } else if (c < 0x20) {
            put(b, "\\u00");
            put_ch(b, "0123456789abcdef"[c >> 4]);
            put_ch(b, "0123456789abcdef"[c & 15]);
        } else {
            put_ch(b, (char)c);
        }
    }
    put_ch(b, '"');
}

static void put_jx(struct sigbuf *b, uintptr_t v)
{
    put_ch(b, '"');
    put_x(b, v);
    put_ch(b, '"');
}

/* ---- one dump -------------------------------------------------------------------------- */

struct dumpctx {
    struct sched *s;
    struct sigbuf *b;
    int flags;
    int json;
    int signo;                  /* nonzero: from this signal's handler */
    int64_t now;
    uintptr_t thr_lo, thr_hi;
    /* the code that is running (the caller of weft_dump, or what the signal interrupted) */
    const struct weft_task *run_task;   /* the task it runs on; NULL: the main context */
    int run_known;              /* 0: the interrupted code is on no stack we know */
    uintptr_t run_pc, run_sp, run_fp;
    struct bt_cache cache;
};

/* What the parking layer says about a wait of its kinds (see struct wait_info). */
static struct wait_info wait_info_of(const struct weft_task *t)
{
    struct wait_info w = { NULL, NULL, 0, -1 };
    if (t->wait_info)
        t->wait_info(t, &w);
    return w;
}

/* Text: " [op] name-or-address[, held by task N][, N waiting]". */
static void put_wait_info(struct sigbuf *b, const struct weft_task *t)
{
    struct wait_info w = wait_info_of(t);
    if (w.op) {
        put(b, " ");
        put(b, w.op);
    }
    put(b, " ");
    if (w.name) {
        put(b, "\"");
        put(b, w.name);
        put(b, "\"");
    } else {
        put_x(b, (uintptr_t)t->wait_obj);
    }
    if (w.holder) {
        put(b, " held by task ");
        put_u(b, w.holder);
    }
    if (w.waiting > 1) {
        put(b, ", ");
        put_i(b, w.waiting);
        put(b, " waiting");
    }
}

static void put_wait_info_json(struct sigbuf *b, const struct weft_task *t)
{
    struct wait_info w = wait_info_of(t);
    put(b, ",\"obj\":");
    put_jx(b, (uintptr_t)t->wait_obj);
    put(b, ",\"op\":");
    if (w.op)
        put_js(b, w.op);
    else
        put(b, "null");
    put(b, ",\"name\":");
    if (w.name)
        put_js(b, w.name);
    else
        put(b, "null");
    put(b, ",\"holder\":");
    put_u(b, w.holder);
    put(b, ",\"waiting\":");
    put_i(b, w.waiting);
}

static int task_state(const struct weft_task *t)
{
    switch (t->state) {
    case TS_RUNNING: return ST_RUNNING;
    case TS_RUNNABLE: return ST_RUNNABLE;
    case TS_DONE: return ST_DONE;
    case TS_WAITING:
        switch (t->wait_kind) {
        case WAIT_IO: return ST_IO;
        case WAIT_SLEEP: return ST_SLEEP;
        case WAIT_JOIN: return ST_JOIN;
        case WAIT_CHAN: return ST_CHAN;
        case WAIT_LOCK: return ST_LOCK;
        case WAIT_OFFLOAD: return ST_OFFLOAD;
        case WAIT_COND: return ST_COND;
        case WAIT_WG: return ST_WG;
        case WAIT_SEM: return ST_SEM;
        case WAIT_GEN: return ST_GEN;
        default: return ST_OTHER;
        }
    default: return ST_OTHER;
    }
}

static int shown(const struct dumpctx *d, const struct weft_task *t)
{
    return t->state != TS_FREE && (!(t->flags & TF_SYSTEM) || (d->flags & WEFT_DUMP_SYSTEM));
}

/* Walk the registry, oldest first; bounded, since a signal may catch it mid-update. */
#define for_each_task(d, t, it, guard)                                                       \
    for ((it) = (d)->s->all.next, (guard) = 0;                                               \
         (it) != &(d)->s->all && (it) && (guard) <= (d)->s->ntasks + 64;                     \
         (it) = (it)->next, (guard)++)                                                       \
        if (((t) = list_entry((it), struct weft_task, all)), 1)

static const char *dir_name(int events)
{
    return events == WEFT_READ ? "read" : events == WEFT_WRITE ? "write" :
           events == (WEFT_READ | WEFT_WRITE) ? "read+write" : "poll";
}

static uint64_t join_target(const struct weft_task *t)
{
    const struct weft_task *j = t->wait_obj;
    return j ? j->id : 0;
}

/* The frames of t (or of the main context when t is NULL); returns how many. */
static int frames_of(struct dumpctx *d, const struct weft_task *t, uintptr_t *pcs, int *exact0)
{
    uintptr_t lo, hi, pc, sp, fp;
    *exact0 = 0;
    if (t) {
        lo = (uintptr_t)stack_lo(&t->stack);
        hi = lo + t->stack.size;
    } else {
        lo = d->thr_lo;
        hi = d->thr_hi;
    }
    if (t == d->run_task && (t || !d->s->cur)) {
        if (!d->run_known)
            return 0;
        *exact0 = d->signo != 0 && d->run_pc != 0;
        pc = d->run_pc;
        sp = d->run_sp;
        fp = d->run_fp;
    } else {
        if (!ctx_saved_regs(t ? &t->ctx : &d->s->main, &pc, &sp, &fp))
            return 0;
    }
    if (!hi)    /* bounds unknown: the pc alone is safe to show */
        return pc ? (pcs[0] = pc, 1) : 0;
    if (*exact0) {
        struct bt_sym y;
        uintptr_t ret = 0;
        if (weft_bt_symbol(&d->cache, pc, 0, &y) && y.func)
            ret = weft_bt_entry_return(pc, pc - y.off, sp, lo, hi);
        if (ret) {
            pcs[0] = pc;
            pcs[1] = ret;
            return 2 + weft_bt_walk(0, sp, fp, lo, hi, pcs + 2, BT_MAX - 2);
        }
    }
    return weft_bt_walk(pc, sp, fp, lo, hi, pcs, BT_MAX);
}

static void put_sym_text(struct dumpctx *d, uintptr_t pc, int is_ret)
{
    struct bt_sym y;
    struct sigbuf *b = d->b;
    weft_bt_symbol(&d->cache, pc, is_ret, &y);
    put(b, y.func ? y.func : "?");
    if (y.func && y.off) {
        put(b, "+");
        put_x(b, y.off);
    }
    put(b, " (");
    put(b, y.module);
    put(b, "+");
    put_x(b, y.module_off);
    put(b, ")");
}

static void put_sym_json(struct dumpctx *d, uintptr_t pc, int is_ret)
{
    struct bt_sym y;
    struct sigbuf *b = d->b;
    weft_bt_symbol(&d->cache, pc, is_ret, &y);
    put(b, "{\"pc\":");
    put_jx(b, pc);
    put(b, ",\"func\":");
    if (y.func)
        put_js(b, y.func);
    else
        put(b, "null");
    put(b, ",\"off\":");
    put_u(b, y.off);
    put(b, ",\"module\":");
    put_js(b, y.module);
    put(b, ",\"module_off\":");
    put_jx(b, y.module_off);
    put(b, ",\"ret\":");
    put(b, is_ret ? "true" : "false");
    put(b, "}");
}

static void put_frames(struct dumpctx *d, const struct weft_task *t)
{
    uintptr_t pcs[BT_MAX];
    int exact0;
    int n = (d->flags & WEFT_DUMP_NO_BACKTRACE) ? 0 : frames_of(d, t, pcs, &exact0);
    struct sigbuf *b = d->b;
    if (d->json) {
        put(b, "\"frames\":[");
        for (int i = 0; i < n; i++) {
            if (i)
                put(b, ",");
            put_sym_json(d, pcs[i], !(i == 0 && exact0));
        }
        put(b, "]");
        return;
    }
    for (int i = 0; i < n; i++) {
        put(b, "    #");
        put_u(b, (uint64_t)i);
        put(b, i < 10 ? "  " : " ");
        put_x(b, pcs[i]);
        put(b, " ");
        put_sym_text(d, pcs[i], !(i == 0 && exact0));
        put(b, "\n");
    }
}

static int64_t since(const struct dumpctx *d, int64_t t)
{
    return t < 0 ? -1 : d->now - t < 0 ? 0 : d->now - t;
}

static void put_task_text(struct dumpctx *d, const struct weft_task *t, int st)
{
    struct sigbuf *b = d->b;
    put(b, "task ");
    put_u(b, t->id);
    put(b, " \"");
    put(b, t->name);
    put(b, "\" [");
    put(b, state_names[st]);
    int64_t waited = since(d, t->last_run);
    switch (st) {
    case ST_IO:
        put(b, " ");
        put(b, dir_name(t->wait_events));
        put(b, " fd ");
        put_i(b, t->wait_fd);
        if (t->nextra) {
            put(b, " (+");
            put_i(b, t->nextra);
            put(b, " queues)");
        }
        break;
    case ST_JOIN:
        put(b, " task ");
        put_u(b, join_target(t));
        break;
    default:
        if (t->wait_info || t->wait_obj)
            put_wait_info(b, t);
        break;
    }
    if (st == ST_RUNNING) {
        put(b, ", ");
        put_i(b, waited);
        put(b, " ms without yielding");
    } else if (t->state == TS_WAITING && waited >= 0) {
        put(b, ", ");
        put_i(b, waited);
        put(b, " ms");
    }
    if (t->state == TS_WAITING && t->wait_deadline >= 0) {
        put(b, st == ST_SLEEP ? ", wakes in " : ", deadline in ");
        put_i(b, t->wait_deadline - d->now);
        put(b, " ms");
    }
    if (t->flags & TF_CANCELLED)
        put(b, ", cancelled");
    put(b, "]:\n");

    put(b, "    spawned at ");
    put(b, t->file ? t->file : "?");
    put(b, ":");
    put_i(b, t->line);
    put(b, " by ");
    if (t->parent) {
        put(b, "task ");
        put_u(b, t->parent);
    } else {
        put(b, "main");
    }
    put(b, ", ");
    put_i(b, since(d, t->created));
    put(b, " ms ago; entry ");
    put_sym_text(d, (uintptr_t)t->fn, 0);
    put(b, "\n    ");
    put_u(b, t->switches);
    put(b, " switches, ");
    if (t->last_run < 0) {
        put(b, "never ran");
    } else {
        put(b, "last ran ");
        put_i(b, waited);
        put(b, " ms ago");
    }
    if (t->flags & TF_DETACHED)
        put(b, ", detached");
    if (t->flags & TF_SYSTEM)
        put(b, ", system");
    put(b, (t->flags & TF_DAEMON) ? ", daemon" : "");
    put(b, "\n    stack ");
    put_u(b, t->stack.size);
    put(b, " bytes");
    if (t->state != TS_DONE) {
        put(b, ", ");
        put_u(b, weft_stack_resident(&t->stack));
        put(b, " resident (high-water)");
    }
    put(b, "\n");
    if (st != ST_DONE && t->switches == 0)
        put(b, "    (not started)\n");
    else if (st != ST_DONE)
        put_frames(d, t);
    put(b, "\n");
}

static void put_task_json(struct dumpctx *d, const struct weft_task *t, int st)
{
    static const char *const guards[] = { "?", "madvise", "mprotect", "canary" };
    static const char *const kinds[] = { "none", "io", "sleep", "join", "chan", "lock", "offload",
                                         "cond", "wg", "sem", "gen", "user" };
    struct sigbuf *b = d->b;
    int64_t waited = since(d, t->last_run);
    put(b, "{\"id\":");
    put_u(b, t->id);
    put(b, ",\"name\":");
    put_js(b, t->name);
    put(b, ",\"state\":");
    put_js(b, state_names[st]);
    put(b, ",\"system\":");
    put(b, (t->flags & TF_SYSTEM) ? "true" : "false");
    put(b, ",\"detached\":");
    put(b, (t->flags & TF_DETACHED) ? "true" : "false");
    put(b, (t->flags & TF_DAEMON) ? ",\"daemon\":true" : ",\"daemon\":false");
    put(b, ",\"cancelled\":");
    put(b, (t->flags & TF_CANCELLED) ? "true" : "false");
    put(b, ",\"wait\":");
    if (t->state != TS_WAITING) {
        put(b, "null");
    } else {
        put(b, "{\"kind\":");
        put_js(b, t->wait_kind < sizeof kinds / sizeof kinds[0] ? kinds[t->wait_kind] : "?");
        if (st == ST_IO) {
            put(b, ",\"fd\":");
            put_i(b, t->wait_fd);
            put(b, ",\"dir\":");
            put_js(b, dir_name(t->wait_events));
            put(b, ",\"extra_queues\":");
            put_i(b, t->nextra);
        } else if (st == ST_JOIN) {
            put(b, ",\"task\":");
            put_u(b, join_target(t));
        } else if (t->wait_info || t->wait_obj) {
            put_wait_info_json(b, t);
        }
        put(b, ",\"deadline_ms\":");
        if (t->wait_deadline >= 0)
            put_i(b, t->wait_deadline);
        else
            put(b, "null");
        put(b, ",\"left_ms\":");
        if (t->wait_deadline >= 0)
            put_i(b, t->wait_deadline - d->now);
        else
            put(b, "null");
        put(b, "}");
    }
    put(b, ",\"waiting_ms\":");
    if (t->state == TS_WAITING && waited >= 0)
        put_i(b, waited);
    else
        put(b, "null");
    put(b, ",\"running_ms\":");
    if (st == ST_RUNNING && waited >= 0)
        put_i(b, waited);
    else
        put(b, "null");
    put(b, ",\"spawn\":{\"file\":");
    put_js(b, t->file ? t->file : "?");
    put(b, ",\"line\":");
    put_i(b, t->line);
    put(b, "},\"parent\":");
    put_u(b, t->parent);
    put(b, ",\"entry\":");
    put_sym_json(d, (uintptr_t)t->fn, 0);
    put(b, ",\"created_ms\":");
    put_i(b, t->created);
    put(b, ",\"age_ms\":");
    put_i(b, since(d, t->created));
    put(b, ",\"switches\":");
    put_u(b, t->switches);
    put(b, ",\"last_run_ms\":");
    if (t->last_run >= 0)
        put_i(b, t->last_run);
    else
        put(b, "null");
    put(b, ",\"since_run_ms\":");
    if (waited >= 0)
        put_i(b, waited);
    else
        put(b, "null");
    put(b, ",\"stack\":{\"size\":");
    put_u(b, t->stack.size);
    put(b, ",\"resident\":");
    if (t->state != TS_DONE)
        put_u(b, weft_stack_resident(&t->stack));
    else
        put(b, "null");
    put(b, ",\"guard\":");
    put_js(b, guards[t->stack.guard & 3]);
    put(b, "},\"started\":");
    put(b, t->switches ? "true" : "false");
    put(b, ",");
    if (st != ST_DONE && t->switches)
        put_frames(d, t);
    else
        put(b, "\"frames\":[]");
    put(b, "}");
}

static void dump_sched(struct dumpctx *d)
{
    struct sigbuf *b = d->b;
    struct list *it;
    struct weft_task *t;
    size_t guard;
    uint64_t counts[ST_COUNT] = { 0 };
    uint64_t total = 0;
    const struct weft_task *holder = NULL;
    if (d->s) {
        for_each_task(d, t, it, guard) {
            if (!shown(d, t))
                continue;
            int st = task_state(t);
            counts[st]++;
            total++;
            if (st == ST_RUNNING)
                holder = t;
        }
    }
    uint64_t switches = d->s ? d->s->switches : 0;
    pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);

    if (d->json) {
        put(b, "{\"weft_dump\":1,\"pid\":");
        put_i(b, pid);
        put(b, ",\"tid\":");
        put_i(b, tid);
        put(b, ",\"signal\":");
        put_i(b, d->signo);
        put(b, ",\"now_ms\":");
        put_i(b, d->now);
        put(b, ",\"switches\":");
        put_u(b, switches);
        put(b, ",\"ntasks\":");
        put_u(b, total);
        put(b, ",\"counts\":{");
        for (int i = 0; i < ST_COUNT; i++) {
            if (i)
                put(b, ",");
            put_js(b, state_names[i]);
            put(b, ":");
            put_u(b, counts[i]);
        }
        put(b, "},\"tasks\":[");
        int first = 1;
        if (d->s) {
            for_each_task(d, t, it, guard) {
                if (!shown(d, t))
                    continue;
                if (!first)
                    put(b, ",\n");
                first = 0;
                put_task_json(d, t, task_state(t));
            }
        }
        put(b, "],\n\"main\":{\"state\":");
        put_js(b, !d->s ? "none" : d->s->cur ? "parked" : "running");
        put(b, ",");
        if (d->s && (d->s->cur || d->run_task == NULL))
            put_frames(d, NULL);
        else
            put(b, "\"frames\":[]");
        put(b, "}}\n");
        return;
    }

    put(b, "weft dump: pid ");
    put_i(b, pid);
    put(b, ", thread ");
    put_i(b, tid);
    if (d->signo) {
        put(b, ", signal ");
        put_i(b, d->signo);
    }
    put(b, ": ");
    put_u(b, total);
    put(b, total == 1 ? " task" : " tasks");
    const char *sep = ": ";
    for (int i = 0; i < ST_COUNT; i++) {
        if (!counts[i])
            continue;
        put(b, sep);
        put_u(b, counts[i]);
        put(b, " ");
        put(b, state_names[i]);
        sep = ", ";
    }
    put(b, "; ");
    put_u(b, switches);
    put(b, " switches\n");
    if (holder && d->signo) {
        put(b, "task ");
        put_u(b, holder->id);
        put(b, " \"");
        put(b, holder->name);
        put(b, "\" holds the thread: running ");
        put_i(b, since(d, holder->last_run));
        put(b, " ms without yielding\n");
    }
    put(b, "\n");
    if (d->s) {
        for_each_task(d, t, it, guard) {
            if (shown(d, t))
                put_task_text(d, t, task_state(t));
        }
        put(b, "main context [");
        put(b, d->s->cur ? "parked" : "running");
        put(b, "]:\n");
        put_frames(d, NULL);
        put(b, "\n");
    }
    put(b, "end of weft dump\n");
}

static void dumpctx_init(struct dumpctx *d, struct sigbuf *b, int flags)
{
    d->s = weft_sched_tls;
    d->b = b;
    d->flags = flags;
    d->json = (flags & WEFT_DUMP_JSON) != 0;
    d->signo = 0;
    d->now = weft_now();
    d->thr_lo = thr_lo;
    d->thr_hi = thr_hi;
    d->run_task = d->s ? d->s->cur : NULL;
    d->run_known = 0;
    d->run_pc = d->run_sp = d->run_fp = 0;
    weft_bt_cache_init(&d->cache);
}

__attribute__((noinline))
int weft_dump(int fd, int flags)
{
    if (flags & ~(WEFT_DUMP_JSON | WEFT_DUMP_NO_BACKTRACE | WEFT_DUMP_SYSTEM)) {
        errno = EINVAL;
        return -1;
    }
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    pthread_once(&glob_once, glob_init);
    thread_bounds();
    struct sigbuf b;
    b.len = 0;
    b.fd = fd;
    b.err = 0;
    struct dumpctx d;
    dumpctx_init(&d, &b, flags);
    /* The running code is our caller: start at this frame, whose record holds the return
     * address into it. */
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    d.run_known = 1;
    d.run_pc = 0;
    d.run_sp = fp;
    d.run_fp = fp;
    dump_sched(&d);
    weft_sigbuf_flush(&b);
    weft_bt_cache_fini(&d.cache);
    if (b.err) {
        errno = b.err;
        return -1;
    }
    return 0;
}

/* ---- from a signal handler ------------------------------------------------------------- */

static void uc_regs(const void *ucv, uintptr_t *pc, uintptr_t *sp, uintptr_t *fp)
{
    const ucontext_t *uc = ucv;
#if defined(__x86_64__)
    *pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    *sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    *fp = (uintptr_t)uc->uc_mcontext.gregs[REG_RBP];
#elif defined(__aarch64__)
    *pc = (uintptr_t)uc->uc_mcontext.pc;
    *sp = (uintptr_t)uc->uc_mcontext.sp;
    *fp = (uintptr_t)uc->uc_mcontext.regs[29];
#else
    (void)uc;
    *pc = *sp = *fp = 0;
#endif
}

static int on_stack(uintptr_t sp, uintptr_t lo, uintptr_t hi)
{
    return sp >= lo && sp < hi;
}

/* Fill in what the interrupted code was running on, from the handler's ucontext. */
static void dumpctx_interrupted(struct dumpctx *d, int signo, const void *uc)
{
    d->signo = signo;
    uc_regs(uc, &d->run_pc, &d->run_sp, &d->run_fp);
    const struct weft_task *cur = d->s ? d->s->cur : NULL;
    if (cur && on_stack(d->run_sp, (uintptr_t)stack_lo(&cur->stack),
                        (uintptr_t)stack_lo(&cur->stack) + cur->stack.size)) {
        d->run_task = cur;
        d->run_known = 1;
    } else if (on_stack(d->run_sp, d->thr_lo, d->thr_hi)) {
        d->run_task = NULL;     /* the main context (the loop, or code outside any task) */
        d->run_known = !cur;    /* mid-switch otherwise: show neither */
    } else {
        d->run_task = cur;
        d->run_known = 0;
    }
}

/* A dump of thread e to stderr from a signal handler interrupting context uc. */
static void stderr_dumpctx(struct dumpctx *d, struct sigbuf *b, const struct schedent *e, int signo, const void *uc)
{
    b->len = 0;
    b->fd = STDERR_FILENO;
    b->err = 0;
    dumpctx_init(d, b, 0);
    d->thr_lo = e->stk_lo;
    d->thr_hi = e->stk_hi;
    dumpctx_interrupted(d, signo, uc);
}

static int out_lock(void)
{
    /* Schedulers on other threads may dump at the same time (a forwarded signal): take
     * turns, but never wait for ever (a handler that died holding it). */
    for (int i = 0; i < 2000; i++) {
        int z = 0;
        if (atomic_compare_exchange_strong(&out_busy, &z, 1))
            return 1;
        struct timespec ts = { 0, 1000000 };
        weft_sys_nanosleep(&ts, NULL);
    }
    return 0;
}

static void out_unlock(int held)
{
    if (held)
        atomic_store(&out_busy, 0);
}

static void on_dump_signal(int signo, siginfo_t *si, void *uc)
{
    int saved = errno;
    struct sched *s = weft_sched_tls;
    struct schedent *e = ent_of(s);
    if (e) {
        int held = out_lock();
        struct sigbuf b;
        struct dumpctx d;
        stderr_dumpctx(&d, &b, e, signo, uc);
        dump_sched(&d);
        weft_sigbuf_flush(&b);
        weft_bt_cache_fini(&d.cache);
        out_unlock(held);
    } else if (!(si->si_code == SI_TKILL && si->si_pid == getpid())) {
        /* Not a scheduler thread: hand the signal to each one (marked as ours by SI_TKILL
         * from this pid, so a thread without a scheduler does not pass it on again). */
        pid_t pid = getpid();
        int any = 0;
        for (int i = 0; i < MAX_SCHEDS; i++) {
            pid_t tid = scheds[i].tid;
            if (scheds[i].s && tid) {
                syscall(SYS_tgkill, pid, tid, signo);
                any = 1;
            }
        }
        if (!any) {
            struct sigbuf b;
            b.len = 0;
            b.fd = STDERR_FILENO;
            b.err = 0;
            put(&b, "weft dump: pid ");
            put_i(&b, pid);
            put(&b, ": no scheduler\nend of weft dump\n");
            weft_sigbuf_flush(&b);
        }
    }
    errno = saved;
}

static int signal_usable(int signo)
{
    return signo > 0 && signo < NSIG && signo != SIGKILL && signo != SIGSTOP &&
           signo != SIGSEGV && signo != SIGBUS && signo != SIGFPE && signo != SIGILL &&
           signo != SIGABRT && (wd_signo == 0 || signo != wd_signo);
}

int weft_dump_on_signal(int signo)
{
    if (signo != 0 && !signal_usable(signo)) {
        errno = EINVAL;
        return -1;
    }
    pthread_once(&glob_once, glob_init);
    thread_bounds();
    pthread_mutex_lock(&reg_lock);
    int e = 0;
    if (signo != dump_signo) {
        if (dump_signo)
            sigaction(dump_signo, &dump_old, NULL);
        dump_signo = 0;
        if (signo) {
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_sigaction = on_dump_signal;
            sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
            sigemptyset(&sa.sa_mask);
            if (sigaction(signo, &sa, &dump_old) == 0)
                dump_signo = signo;
            else
                e = errno;
        }
    }
    pthread_mutex_unlock(&reg_lock);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

/* ---- the stall watchdog ---------------------------------------------------------------- */

/* Runs on the stalled scheduler's thread, sent by the watchdog thread: print the running
 * task and where it is, unless it has yielded since the watchdog looked. */
static void on_watchdog_signal(int signo, siginfo_t *si, void *uc)
{
    (void)si;
    int saved = errno;
    struct sched *s = weft_sched_tls;
    struct schedent *e = ent_of(s);
    if (!e || !s->cur || s->switches != e->stall_switches) {
        errno = saved;
        return;
    }
    int held = out_lock();
    struct sigbuf b;
    struct dumpctx d;
    stderr_dumpctx(&d, &b, e, signo, uc);
    const struct weft_task *t = s->cur;
    put(&b, "weft watchdog: task ");
    put_u(&b, t->id);
    put(&b, " \"");
    put(&b, t->name);
    put(&b, "\" has run ");
    put_i(&b, e->stall_ms);
    put(&b, " ms without yielding (threshold ");
    put_i(&b, wd_threshold);
    put(&b, " ms), pid ");
    put_i(&b, getpid());
    put(&b, "\n    spawned at ");
    put(&b, t->file ? t->file : "?");
    put(&b, ":");
    put_i(&b, t->line);
    put(&b, " by ");
    if (t->parent) {
        put(&b, "task ");
        put_u(&b, t->parent);
    } else {
        put(&b, "main");
    }
    put(&b, "; entry ");
    put_sym_text(&d, (uintptr_t)t->fn, 0);
    put(&b, "\n");
    if (d.run_task == t)
        put_frames(&d, t);
    else
        put(&b, "    (interrupted in a switch: no backtrace)\n");
    put(&b, "end of weft watchdog report\n");
    weft_sigbuf_flush(&b);
    weft_bt_cache_fini(&d.cache);
    out_unlock(held);
    errno = saved;
}

static void *watchdog_main(void *arg)
{
    unsigned gen = (unsigned)(uintptr_t)arg;
    pthread_mutex_lock(&reg_lock);
    while (wd_gen == gen && wd_threshold > 0) {
        int64_t period = wd_threshold / 4;
        period = period < 1 ? 1 : period > 100 ? 100 : period;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += (long)(period % 1000) * 1000000;
        ts.tv_sec += period / 1000 + ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&wd_cond, &reg_lock, &ts);
        if (wd_gen != gen || wd_threshold <= 0)
            break;
        int64_t now = weft_now();
        for (int i = 0; i < MAX_SCHEDS; i++) {
            struct schedent *e = &scheds[i];
            struct sched *s = e->s;
            if (!s)
                continue;
            /* Plain fields of another thread: read once, atomically; a stale value only
             * delays a report by one period. */
            struct weft_task *cur = __atomic_load_n(&s->cur, __ATOMIC_RELAXED);
            uint64_t sw = __atomic_load_n(&s->switches, __ATOMIC_RELAXED);
            if (!cur || sw != e->seen_switches) {
                e->seen_switches = sw;
                e->seen_at = now;
                continue;
            }
            if (now - e->seen_at >= wd_threshold && e->reported != sw + 1) {
                e->reported = sw + 1;
                e->stall_ms = now - e->seen_at;
                e->stall_switches = sw;
                syscall(SYS_tgkill, getpid(), e->tid, wd_signo);
            }
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return NULL;
}

int weft_watchdog(int64_t threshold_ms)
{
    if (threshold_ms < 0) {
        errno = EINVAL;
        return -1;
    }
    pthread_once(&glob_once, glob_init);
    thread_bounds();
    pthread_mutex_lock(&reg_lock);
    if (!wd_signo) {
        /* A real-time signal near the top, clear of glibc's own and of SIGRTMIN users. */
        wd_signo = SIGRTMAX - 3;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_watchdog_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        sigaction(wd_signo, &sa, NULL);
    }
    wd_threshold = threshold_ms;
    int64_t now = weft_now();
    for (int i = 0; i < MAX_SCHEDS; i++)
        scheds[i].seen_at = now;
    if (threshold_ms > 0 && !wd_running) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);     /* the thread inherits it: no signals */
        int e = pthread_create(&wd_thread, NULL, watchdog_main, (void *)(uintptr_t)++wd_gen);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e) {
            wd_threshold = 0;
            pthread_mutex_unlock(&reg_lock);
            errno = EAGAIN;
            return -1;
        }
        wd_running = 1;
    } else if (threshold_ms == 0 && wd_running) {
        pthread_t th = wd_thread;
        wd_running = 0;
        wd_gen++;
        pthread_cond_broadcast(&wd_cond);
        pthread_mutex_unlock(&reg_lock);
        pthread_join(th, NULL);
        return 0;
    } else {
        pthread_cond_broadcast(&wd_cond);
    }
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

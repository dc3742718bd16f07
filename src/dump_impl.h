/* What the files of the task dump share (dump.c, dump_registry.c, dump_signal.c,
 * dump_watchdog.c): the registry of schedulers, the dump context and the formatting calls.
 * Everything here runs in signal handlers too: it writes through struct sigbuf (no malloc,
 * no stdio) and reads the task records without locks. */
#ifndef WEFT_DUMP_IMPL_H
#define WEFT_DUMP_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "backtrace.h"
#include "compiler.h"
#include "dump.h"
#include "sigfmt.h"

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
    /* a dump asked of this thread by another (dump_signal.c): REQ_* */
    atomic_int req_state;
    volatile int req_fd, req_flags;
};

enum { REQ_IDLE, REQ_ASKED, REQ_WRITING, REQ_DONE };

/* dump_registry.c: the registry, under reg_lock; thr_lo/thr_hi this thread's stack. */
extern struct schedent weft_dump_scheds[MAX_SCHEDS];
extern pthread_mutex_t weft_dump_reg_lock;
extern TLS uintptr_t weft_dump_thr_lo, weft_dump_thr_hi;
/* Set up what the dump needs, once per process and once per thread. */
void weft_dump_init(void);
/* The registry entry of s, or NULL. */
struct schedent *weft_dump_ent_of(const struct sched *s);

enum {
    ST_RUNNING, ST_RUNNABLE, ST_IO, ST_SLEEP, ST_CHAN, ST_LOCK, ST_JOIN, ST_OFFLOAD, ST_COND,
    ST_WG, ST_SEM, ST_GEN, ST_PROC, ST_SIGNAL, ST_DONE, ST_OTHER, ST_COUNT
};
/* dump.c */
extern const char *const weft_dump_state_names[ST_COUNT];

struct dumpctx {
    struct sched *s;
    struct sigbuf *b;
    int flags;
    int json;
    int signo;                  /* nonzero: from this signal's handler */
    int json_open;              /* leave the JSON document open (weft_dump_sched) */
    int64_t now;
    uintptr_t thr_lo, thr_hi;
    /* the code that is running (the caller of weft_dump, or what the signal interrupted) */
    const struct weft_task *run_task;   /* the task it runs on; NULL: the main context */
    int run_known;              /* 0: the interrupted code is on no stack we know */
    uintptr_t run_pc, run_sp, run_fp;
    struct bt_cache cache;
};

/* A dump context for this thread's scheduler, writing to b with flags, the running code
 * not yet known (the caller fills run_*). */
void weft_dump_ctx_init(struct dumpctx *d, struct sigbuf *b, int flags);
/* The whole dump of d's scheduler, text or JSON; with d->json_open the JSON document is left
 * open after "main" (the caller adds members and the closing brace). */
void weft_dump_sched(struct dumpctx *d);
/* A symbol "name+0x1f (module)" for pc (is_ret: a return address), and a task's backtrace. */
void weft_dump_put_sym_text(struct dumpctx *d, uintptr_t pc, int is_ret);
void weft_dump_put_frames(struct dumpctx *d, const struct weft_task *t);

/* The dump state (ST_*) of t, and its wait's details in text (" send \"jobs\", 2 waiting"). */
int weft_dump_task_state(const struct weft_task *t);
void weft_dump_put_wait_info(struct sigbuf *b, const struct weft_task *t);
/* dump_wait.c: what the parking layer says of t's wait, and the same as JSON members. */
struct wait_info weft_dump_wait_info(const struct weft_task *t);
void weft_dump_put_wait_info_json(struct sigbuf *b, const struct weft_task *t);
/* Walk a scheduler's registry, oldest first; bounded, since a signal may catch it
 * mid-update. */
#define for_each_task(d, t, it, guard)                                                       \
    for ((it) = (d)->s->all.next, (guard) = 0;                                               \
         (it) != &(d)->s->all && (it) && (guard) <= (d)->s->ntasks + 64;                     \
         (it) = (it)->next, (guard)++)                                                       \
        if (((t) = list_entry((it), struct weft_task, all)), 1)

/* The frames of t (the main context when t NULL) into pcs[BT_MAX]; returns how many, and
 * *exact0 whether pcs[0] is an interrupted pc rather than a return address. Then write
 * them as a task's backtrace (text lines or a JSON "frames" member). */
int weft_dump_frames(struct dumpctx *d, const struct weft_task *t, uintptr_t *pcs, int *exact0);
void weft_dump_put_pcs(struct dumpctx *d, const uintptr_t *pcs, int n, int exact0);
/* Does the dump list t (not freed; a system task only with WEFT_DUMP_SYSTEM)? */
int weft_dump_shown(const struct dumpctx *d, const struct weft_task *t);

/* dump_group.c: are flags a valid weft_dump request; the grouped blocks (WEFT_DUMP_GROUP:
 * text blocks, or the members of the JSON "groups" array); the folded stacks
 * (WEFT_DUMP_FOLDED: the whole output for d's scheduler). */
int weft_dump_flags_ok(int flags);
void weft_dump_put_groups(struct dumpctx *d);
void weft_dump_put_folded(struct dumpctx *d);

/* dump_cycle.c: the wait cycles among d's tasks, one text line each ("wait cycle: ..."), or
 * in JSON the members of the "cycles" array ([7,9],[12,13,14]). */
void weft_dump_put_cycles(struct dumpctx *d);

/* dump_signal.c: a context for registry entry e, from a handler that interrupted uc. */
void weft_dump_ctx_interrupted(struct dumpctx *d, struct sigbuf *b, const struct schedent *e,
                               int fd, int flags, int signo, const void *uc);
/* One signal dump writes to stderr at a time (bounded wait; returns whether it holds it). */
int weft_dump_out_lock(void);
void weft_dump_out_unlock(int held);
/* The signal weft_dump_on_signal installed, 0 none (read under the registry lock). */
int weft_dump_signal_signo(void);
/* Append the dumps of every other scheduler thread to fd (weft_dump's ALL_THREADS). */
int weft_dump_other_threads(int fd, int flags);

/* dump_watchdog.c */
void weft_dump_watchdog_init(void);
void weft_dump_watchdog_after_fork(void);
int weft_dump_watchdog_signo(void);     /* its signal; 0 before the first weft_watchdog */
int weft_dump_watchdog_on(void);        /* is its thread running (under the registry lock) */
/* Start, stop or wake the helper thread for the watchdog's and the profiler's settings;
 * called with the registry lock held, returns with it released; -1: no thread. */
int weft_dump_helper_update(void);

/* dump_profile.c: the profiler's rate (0: off; under the registry lock), its reset in a
 * forked child, and one sample of every scheduler (the helper thread, under the lock). */
int weft_dump_profile_hz(void);
void weft_dump_profile_after_fork(void);
void weft_dump_profile_sample(void);

/* ---- formatting (sigfmt.h underneath) ---- */

static inline void put(struct sigbuf *b, const char *s) { weft_sigbuf_str(b, s); }
static inline void put_u(struct sigbuf *b, uint64_t v) { weft_sigbuf_u64(b, v); }
static inline void put_i(struct sigbuf *b, int64_t v) { weft_sigbuf_i64(b, v); }
static inline void put_x(struct sigbuf *b, uintptr_t v) { weft_sigbuf_hex(b, v); }

static inline void put_ch(struct sigbuf *b, char c)
{
    char s[2] = { c, '\0' };
    weft_sigbuf_str(b, s);
}

/* A JSON string, quoted and escaped. */
static inline void put_js(struct sigbuf *b, const char *s)
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

static inline void put_jx(struct sigbuf *b, uintptr_t v)
{
    put_ch(b, '"');
    put_x(b, v);
    put_ch(b, '"');
}

#endif

/* Declarations shared between weft's layers: the task record, the per-thread scheduler, and
 * each layer's internal calls with a one-sentence contract. Nothing here is public; every
 * extern symbol is hidden from the shared library (-fvisibility=hidden). */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "weft.h"
#include "ctx.h"
#include "list.h"
#include "sys.h"      /* weft_sys_*: every fd syscall of libweft goes through these */

#define slow(x) __builtin_expect(!!(x), 0)
#define fast(x) __builtin_expect(!!(x), 1)
#define TLS __thread __attribute__((tls_model("initial-exec")))

/* ---- stacks (stack.c) ------------------------------------------------------------------- */

/* How a stack's overflow is caught, best first (the README explains the trade-offs). */
enum guard_kind {
    GUARD_MADVISE = 1,  /* madvise(MADV_GUARD_INSTALL), Linux 6.13+: no extra mapping */
    GUARD_MPROTECT,     /* a PROT_NONE page: splits the mapping, so limited by max_map_count */
    GUARD_CANARY,       /* a magic word at the stack's low end, checked at every switch-out */
};

#define WEFT_GUARD_SIZE ((size_t)16 * 1024)   /* guard region below every stack */

struct stack {
    char *map;          /* mapping start: the guard region, then the usable stack */
    size_t size;        /* usable bytes, above the guard */
    unsigned char guard;
    unsigned vg_id;     /* Valgrind stack id */
};

static inline char *stack_lo(const struct stack *st) { return st->map + WEFT_GUARD_SIZE; }

/* Give st a stack of 'size' usable bytes (page multiple), from the pool when one fits;
 * returns 0, or -1 with errno ENOMEM. */
int weft_stack_alloc(struct stack *st, size_t size);
/* Hand st back: kept in the pool (trimmed past a bound) or unmapped. */
void weft_stack_free(struct stack *st);
/* Release the pages of pooled stacks beyond the warm ones (64 per size): the scheduler calls
 * it when the thread is about to go idle, so a burst of tasks finds its stacks still warm. */
void weft_stack_pool_trim(void);
/* Unmap every pooled stack of this thread. */
void weft_stack_pool_drain(void);
/* Is the canary of a GUARD_CANARY stack intact? (1 for other kinds.) */
int weft_stack_canary_ok(const struct stack *st);
/* Is p in st's mapping, guard region included (p at the top counts: an empty stack's sp)? */
int weft_stack_holds(const struct stack *st, uintptr_t p);
/* Did code running on st hit its guard: is the fault at addr in st's guard region, with the
 * faulting stack pointer sp in st's mapping (or not known: 0)? Never for a canary stack. */
int weft_stack_guard_hit(const struct stack *st, const void *addr, uintptr_t sp);
/* Did a frame too big for the guard run past it: is sp below st's low end, by at most 1 MiB,
 * with the fault at addr below that end and not far under sp? 0 when sp is 0 (not known). */
int weft_stack_frame_past_guard(const struct stack *st, const void *addr, uintptr_t sp);
/* Bytes of st resident in memory: its high-water mark (mincore; one syscall, for the dump). */
size_t weft_stack_resident(const struct stack *st);
/* Install the process-wide SIGSEGV handler (once) and this thread's alternate signal stack. */
int weft_stack_thread_init(void);
void weft_stack_thread_fini(void);
/* Counts of live guarded stacks by kind, for the dump and tests. */
void weft_stack_counts(size_t counts[4]);

/* ---- timers (timer.c) ------------------------------------------------------------------- */

/* A deadline in a min-heap ordered by (when, seq), so equal deadlines fire in the order they
 * were added. idx is the heap slot + 1; 0 when not armed. */
struct timer {
    int64_t when;
    uint64_t seq;
    size_t idx;
};

struct timers {
    struct timer **heap;
    size_t n, cap;
    uint64_t seq;
};

static inline int timer_armed(const struct timer *tm) { return tm->idx != 0; }
/* Arm tm for 'when'; O(log n). Returns 0, or -1 with ENOMEM. */
int weft_timer_add(struct timers *ts, struct timer *tm, int64_t when);
/* Disarm tm if armed; O(log n). */
void weft_timer_cancel(struct timers *ts, struct timer *tm);
/* The earliest timer, or NULL. */
static inline struct timer *weft_timer_first(const struct timers *ts) { return ts->n ? ts->heap[0] : NULL; }
/* Disarm and return the earliest timer if it is due at 'now', else NULL. */
struct timer *weft_timer_pop_due(struct timers *ts, int64_t now);
void weft_timers_free(struct timers *ts);

/* ---- tasks and the scheduler (sched.c) ------------------------------------------------- */

enum task_state {
    TS_RUNNABLE,        /* on the run queue */
    TS_RUNNING,
    TS_WAITING,         /* parked; wait_kind says on what */
    TS_DONE,            /* ended, not yet joined */
    TS_FREE,            /* record on the free list (joined, or detached and ended) */
};

/* What a parked task waits on: the dump prints these, with wait_obj / wait_fd. */
enum wait_kind {
    WAIT_NONE,
    WAIT_IO,            /* wait_fd, wait_events */
    WAIT_SLEEP,
    WAIT_JOIN,          /* wait_obj: the task joined */
    WAIT_CHAN,
    WAIT_LOCK,
    WAIT_OFFLOAD,
};

enum task_flag {
    TF_DETACHED = 1,
    TF_CANCELLED = 2,
    TF_SYSTEM = 4,      /* weft's own background task (debug server): not counted as alive,
                           cancelled by weft_run once the user's tasks are all done */
    TF_DAEMON = 8,      /* weft_attr.daemon: treated as TF_SYSTEM is, but shown in the dump */
};

#define TF_BACKGROUND (TF_SYSTEM | TF_DAEMON)   /* not counted as alive */

/* One entry of the scheduler's handle table. A public weft_task * is not a record's address
 * but ((uint64_t)gen << 32) | (slot + 1): it names rec while the slot's gen still matches.
 * Releasing the record bumps gen, so every handle to it goes stale at once. */
struct task_slot {
    struct weft_task *rec;      /* the record; NULL while the slot is free */
    uint32_t gen;
    uint32_t next_free;         /* free-list link (a slot index); SLOT_NONE at the tail */
};

#define SLOT_NONE UINT32_MAX

#define WEFT_NAME_MAX 32

/* A task's place on a wait queue. A task has two, so weft_fdwait can wait on both of an
 * fd's queues at once; the back pointer tells a waker which task a node belongs to. */
struct waiter {
    struct list link;
    struct weft_task *task;
};

struct weft_task {
    struct ctx ctx;             /* first: the asm switch stores the stack pointer here */
    struct list rq;             /* run queue link; free-list link when TS_FREE */
    struct waiter wait[2];      /* on the queue(s) the task is parked on (fd, joiners, ...) */
    struct waiter *extra;       /* more, on the parked task's stack (weft_poll); nextra of them */
    int nextra;
    struct timer timer;         /* armed while parked with a deadline */
    struct list joiners;        /* the task joining this one (at most one) */
    struct list all;            /* the registry: every task not yet freed */
    struct stack stack;
    void *(*fn)(void *);
    void *arg;
    void *result;
    void *data;                 /* the user's pointer (weft_set_data) */
    weft_task *handle;          /* what weft_self and weft_spawn give out for this task */
    uint64_t id;
    uint64_t parent;            /* id of the spawning task; 0 for the main context */
    uint64_t switches;          /* times switched in */
    int64_t created;            /* weft_now() at spawn */
    int64_t last_run;           /* loop time when last switched in (the loop's clock) */
    int64_t deadline;           /* per-task deadline scope; -1 none */
    int64_t wait_deadline;      /* deadline of the current wait; -1 none */
    const void *wait_obj;
    const char *file;           /* spawn site */
    int line;
    int wait_fd;
    int wait_events;            /* WEFT_READ / WEFT_WRITE */
    int wake_err;               /* set by the waker: 0, ETIMEDOUT, ECANCELED, EBADF, ... */
    unsigned char state;
    unsigned char wait_kind;
    unsigned char flags;
    char name[WEFT_NAME_MAX];
};

struct reactor;

struct sched {
    struct weft_task *cur;      /* running task; NULL while the main context runs */
    struct ctx main;            /* the context that called weft_run / weft_join */
    struct list runq;
    size_t nrunq;               /* tasks on runq */
    struct list all;            /* registry, oldest first */
    struct list free_tasks;     /* task records to reuse, FIFO */
    struct list chunks;         /* record chunks, freed at teardown */
    struct task_slot *slots;    /* the handle table: grows, never shrinks, freed at teardown */
    uint32_t nslots;
    uint32_t free_head, free_tail;  /* free slots, reused FIFO (SLOT_NONE: none) */
    struct timers timers;
    struct weft_task *dead;     /* ended task whose stack is released after the next switch */
    struct weft_task *main_joins; /* the task the main context waits for in weft_join, or NULL */
    int64_t main_deadline;      /* the deadline it waits with; -1 none */
    int main_due;               /* main runs next: main_joins ended or main_deadline passed */
    struct reactor *reactor;    /* created at the first IO wait */
    uint64_t next_id;
    uint64_t switches;          /* total switches: the watchdog's sign of progress */
    size_t ntasks;              /* records not yet freed */
    size_t nalive;              /* tasks not yet ended, TF_BACKGROUND ones aside */
    size_t nexternal;           /* tasks waiting on something outside the scheduler (IO, ...) */
    unsigned ticks;             /* switches since the reactor was last polled */
    int64_t loop_now;           /* weft_now() as of the last poll */
    int in_loop;
};

extern TLS struct sched *weft_sched_tls;

/* The thread's scheduler, created on first use; NULL with errno ENOMEM when that fails. */
struct sched *weft_sched_get(void);

/* The deadline ms milliseconds from now, rounded up so that it is never less than ms away
 * (weft_now() truncates); saturates. */
int64_t weft_deadline_after(int64_t ms);

/* Spawn one of weft's own background tasks (TF_SYSTEM, detached); NULL and errno on failure. */
weft_task *weft_spawn_system(void *(*fn)(void *), void *arg, const char *name);

/* Park the running task: its wait[0] on 'queue' (tail, or head when 'front'), until woken or until
 * 'deadline' (-1: none). Returns the waker's code: 0, or an errno value (ETIMEDOUT when the
 * deadline passed, ECANCELED, EBADF, ENOMEM, ...). Fails at once with ECANCELED if the task
 * was cancelled, ETIMEDOUT if the deadline (or the task's deadline scope) has passed. */
int weft_sched_park(struct sched *s, struct list *queue, int front, int kind, int64_t deadline);
/* Make a parked task runnable with code err; no-op unless it is parked. */
void weft_sched_wake(struct sched *s, struct weft_task *t, int err);
/* Wake the first task on a wait queue with err; returns whether there was one. */
int weft_sched_wake_one(struct sched *s, struct list *queue, int err);
/* Fire the timers due at 'now'. */
void weft_sched_fire_timers(struct sched *s, int64_t now);

/* Called by the SIGSEGV handler with the fault address and the faulting stack pointer (0 when
 * not known): if a task's stack overflowed (the running task's, or the one switching out, whose
 * switch ran out of stack), print which task (async-signal-safe) and return 1; else 0. */
int weft_sched_overflow_report(const void *addr, uintptr_t sp);

/* ---- reactor (reactor_epoll.c) ---------------------------------------------------------- */

enum { DIR_READ = 0, DIR_WRITE = 1 };

/* What the reactor knows of one fd. Entries never move (the table grows by chunks), so
 * wait queues can point into them. seq changes at every weft_close (and whenever a record is
 * found stale), so an epoll event for a closed and reused fd number is recognised and
 * dropped, and a call that parked on the fd sees, once woken, that its file is gone. */
struct fdent {
    struct list waiters[2];     /* parked tasks, FIFO, per direction */
    int64_t deadline[2];        /* weft_fd_set_deadline, per direction; -1 none */
    uint32_t seq;
    unsigned char known;        /* learnt by a wrapper: kind and user_nonblock valid */
    unsigned char registered;   /* in the epoll set */
    unsigned char rearm;        /* may go stale unseen (not a socket): re-arm at every park */
    unsigned char user_nonblock;/* the user wants O_NONBLOCK: wrappers never park */
    unsigned char is_socket;    /* calls use MSG_DONTWAIT (and MSG_NOSIGNAL for writes) */
    unsigned char stream;       /* a SOCK_STREAM socket: MSG_WAITALL loops */
    unsigned char switched;     /* weft set O_NONBLOCK on the user's fd: undone at teardown */
    unsigned char tcp;          /* a TCP socket: a short read leaves its receive queue empty */
    unsigned char rd_empty;     /* a short weft_read emptied it, and no read event came since */
    unsigned char rd_final;     /* a hang-up, error or urgent-data event came: no rd_empty */
};

/* The record of fd, made on first sight (NULL with errno EBADF or ENOMEM). 'learn' (the
 * wrappers) also learns once what the fd is (socket or not, the user's O_NONBLOCK) and
 * switches a non-socket to O_NONBLOCK; sockets keep their flags, since their calls say
 * MSG_DONTWAIT. */
struct fdent *weft_fd_get(struct sched *s, int fd, int learn);
/* The record of fd if a wrapper has learnt it since it was last closed, else NULL; never
 * creates one. */
struct fdent *weft_fd_known(struct sched *s, int fd);
/* Mark fd as a weft-made socket (accepted, dialled, listening), skipping the syscalls of
 * learning: user_nonblock as given; nonblock: the fd is O_NONBLOCK now (weft's doing unless
 * user_nonblock); tcp: it is a TCP socket; stream: SOCK_STREAM. */
void weft_fd_adopt(struct sched *s, int fd, int user_nonblock, int nonblock, int tcp, int stream);
/* Make sure fd is O_NONBLOCK before a call that has no per-call flag (accept, connect,
 * sendfile, any call on a non-socket): one F_GETFL, and F_SETFL when the flag was cleared
 * behind weft (a plain fcntl, or a new file behind a stale record; the user then wants it
 * blocking). Returns 0, or -1 with errno. */
int weft_fd_nonblock(struct fdent *f, int fd);
/* Arm fd in epoll before a park: register it if it is not, and for records that may be
 * stale ('rearm' or f->rearm) re-arm it, which registers a new file behind an old number.
 * Returns 0 or an errno value. */
int weft_reactor_arm(struct sched *s, struct fdent *f, int fd, int rearm);
/* Park the running task until fd may be ready for dir, its deadline (the call's, the fd's,
 * the task's) passes, it is cancelled, or fd is closed. 'front' re-parks a task that was
 * woken but found nothing, ahead of later arrivals. seq is f->seq when the call began: a
 * record closed (or found stale) since then gives EBADF, also after a wake for readiness.
 * Returns 0 (try again), or an errno value: ETIMEDOUT, ECANCELED, EBADF, ENOMEM, EAGAIN (the
 * fd's deadline changed: try again), or epoll_ctl's error. */
int weft_reactor_wait(struct sched *s, struct fdent *f, int fd, int dir, int front, int64_t deadline,
                      uint32_t seq);
/* A task woken for dir has used the readiness (its call did not end in EAGAIN): let the
 * next waiter try too, so readiness never stays unused while tasks wait. */
static inline void weft_reactor_pass(struct sched *s, struct fdent *f, int dir)
{
    if (slow(!list_empty(&f->waiters[dir])))
        weft_sched_wake_one(s, &f->waiters[dir], 0);
}
/* Wait for IO events for up to timeout_ms (-1: forever, 0: poll) and wake their tasks. */
void weft_reactor_poll(struct sched *s, int timeout_ms);
/* Wake every task parked on fd with EBADF, drop fd from epoll, forget what was known of it. */
void weft_reactor_forget(struct sched *s, int fd);
/* Release the reactor (epoll fd, fd table). */
void weft_reactor_free(struct sched *s);

/* ---- async-signal-safe formatting (sigfmt.c) -------------------------------------------- */

/* A fixed buffer that strings and numbers are appended to, and written out with write(2)
 * (waiting with poll when fd is non-blocking and full). err: the errno of a failed write;
 * the caller zeroes it when it wants to know. */
struct sigbuf {
    char buf[1024];
    size_t len;
    int fd;
    int err;
};
void weft_sigbuf_str(struct sigbuf *b, const char *s);
void weft_sigbuf_u64(struct sigbuf *b, uint64_t v);
void weft_sigbuf_i64(struct sigbuf *b, int64_t v);
void weft_sigbuf_hex(struct sigbuf *b, uintptr_t v);
void weft_sigbuf_flush(struct sigbuf *b);

/* ---- backtraces (backtrace.c) --------------------------------------------------------- */

#define BT_MAX 48           /* frames shown per context */
#define BT_MODULES 16       /* modules whose symbol tables one dump maps */

struct bt_module {
    uintptr_t bias;         /* load bias: run-time address = file address + bias */
    const char *path;       /* link-map name; "" for the main program */
    void *map;              /* the file, mapped read-only; NULL if unreadable */
    size_t map_size;
    const void *syms;       /* ElfW(Sym)[nsyms]: .symtab, else .dynsym */
    size_t nsyms;
    const char *strs;
    size_t strs_size;
    int tried;
};

struct bt_sym {
    const char *func;       /* NULL when unknown */
    uintptr_t off;          /* pc - function start */
    const char *module;     /* path of the module ("?" when not in any) */
    uintptr_t module_off;   /* pc - load bias: what addr2line takes */
};

#define BT_MEMO 128         /* names remembered per dump: parked tasks share their frames */

/* Modules mapped during one dump, and the names already found (on the dumper's stack: no
 * malloc, so signal-safe). */
struct bt_cache {
    struct bt_module mods[BT_MODULES];
    int n;
    struct {
        uintptr_t pc;       /* 0: empty */
        int is_ret, found;
        struct bt_sym sym;
    } memo[BT_MEMO];
};

/* Collect pc (when nonzero) and the return addresses of the frame-pointer chain from fp, every
 * frame inside [max(sp, lo), hi) and above the previous one; returns how many (<= max). */
int weft_bt_walk(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t lo, uintptr_t hi,
                 uintptr_t *pcs, int max);
/* For an interrupted pc at the entry or the ret of the function starting at 'start' (where
 * the frame pointer is still the caller's): the return address into the caller, read from
 * the stack; else 0. x86-64 only (0 elsewhere). */
uintptr_t weft_bt_entry_return(uintptr_t pc, uintptr_t start, uintptr_t sp, uintptr_t lo, uintptr_t hi);
/* Learn the program's path (readlink /proc/self/exe) while not in a signal handler. */
void weft_bt_init(void);
void weft_bt_cache_init(struct bt_cache *c);
/* Unmap what the cache mapped; the names it returned are invalid afterwards. */
void weft_bt_cache_fini(struct bt_cache *c);
/* Name pc (is_ret: a return address, so the call before it is looked up). Returns 0 when
 * pc is in no module (out still holds the raw address as module_off). */
int weft_bt_symbol(struct bt_cache *c, uintptr_t pc, int is_ret, struct bt_sym *out);

/* ---- introspection (dump.c, dump_server.c) ------------------------------------------- */

/* A scheduler was created on this thread: register it for the signal dump and the watchdog,
 * and apply WEFT_DUMP_SIGNAL, WEFT_WATCHDOG and WEFT_DEBUG. Called last in weft_sched_get. */
void weft_dump_sched_created(struct sched *s);
/* The scheduler is about to be freed: forget it (the watchdog thread must not read it). */
void weft_dump_sched_destroyed(struct sched *s);
/* Is the control socket open? (dump_server.c; env WEFT_DEBUG starts it when not.) */
int weft_debug_listening(void);

#endif

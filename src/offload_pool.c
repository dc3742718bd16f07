/* The offload pool's threads: a FIFO of jobs under one mutex, threads started as work
 * comes and leaving when idle, what a fork and the process's exit do to them. The pool never
 * calls into a scheduler, except a forked child's handler waking its thread's reaper. */
#include "config.h"
#include "offload.h"
#include "offload_impl.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

/* ---- the pool: a FIFO of jobs under one mutex, threads started as work comes ----------- */

#define POOL_DEFAULT 4

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_cv;         /* CLOCK_MONOTONIC: set up in pool_init */
static pthread_cond_t pool_gone_cv;    /* a thread has left */
static int pool_closing;                /* the process is exiting */
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;
static struct job *q_head, **q_tail = &q_head;
static long q_len;
static int pool_size;           /* 0 until decided (weft_offload_set_threads or the env) */
static int nthreads, nidle;
static struct job *busy[WEFT_OFFLOAD_MAX_THREADS];     /* what each thread runs (for a fork) */
/* Each thread's slot: SLOT_FREE, SLOT_RUNNING, or SLOT_LEFT (it has left its loop and is
 * joined by the next start_thread or at exit, so no thread's remains outlive the pool). */
enum { SLOT_FREE, SLOT_RUNNING, SLOT_LEFT };
static unsigned char slot_used[WEFT_OFFLOAD_MAX_THREADS];
static pthread_t slot_tid[WEFT_OFFLOAD_MAX_THREADS];
static _Atomic int kick_needed; /* a forked child has queued jobs and no threads */

static void run_job(int slot, struct job *j)
{
    int st = JOB_QUEUED;
    if (!atomic_compare_exchange_strong(&j->state, &st, JOB_RUNNING)) {
        pthread_mutex_lock(&pool_mu);
        busy[slot] = NULL;
        pthread_mutex_unlock(&pool_mu);
        job_drop(j);            /* its waiter left before it started: fn never runs */
        return;
    }
    j->fn(j->arg);
    struct port *p = j->port;
    atomic_fetch_add(&p->refs, 1);      /* for the write: the waiter may free j at once */
    pthread_mutex_lock(&pool_mu);       /* posting and busy[] change together (see fork) */
    busy[slot] = NULL;
    st = JOB_RUNNING;
    int posted = atomic_compare_exchange_strong(&j->state, &st, JOB_DONE);
    int first = posted && port_push(p, j);
    pthread_mutex_unlock(&pool_mu);
    if (first)
        port_signal(p);
    port_unref(p);
    if (!posted)
        job_drop(j);
}

#define IDLE_EXIT_S 10     /* a thread idle this long leaves (a later job starts another) */

static void *worker(void *arg)
{
    int slot = (int)(intptr_t)arg;
    pthread_mutex_lock(&pool_mu);
    for (;;) {
        int timed_out = 0;
        while (!q_head && nthreads <= pool_size && !pool_closing && !timed_out) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += IDLE_EXIT_S;
            nidle++;
            timed_out = pthread_cond_timedwait(&pool_cv, &pool_mu, &until) == ETIMEDOUT;
            nidle--;
        }
        if (!q_head || pool_closing || nthreads > pool_size)
            break;              /* idle too long, the pool made smaller, or the process ends */
        struct job *j = q_head;
        q_head = j->next;
        if (!q_head)
            q_tail = &q_head;
        q_len--;
        busy[slot] = j;
        pthread_mutex_unlock(&pool_mu);
        run_job(slot, j);
        pthread_mutex_lock(&pool_mu);
    }
    nthreads--;
    slot_used[slot] = SLOT_LEFT;
    pthread_cond_broadcast(&pool_gone_cv);
    pthread_mutex_unlock(&pool_mu);
    return NULL;
}

static void join_left(void);

/* At exit: let the idle threads leave, so nothing of theirs is left for a leak checker; a
 * thread still running a job is waited for a little, then left to the process's end. */
static void pool_atexit(void)
{
    pthread_mutex_lock(&pool_mu);
    pool_closing = 1;
    pthread_cond_broadcast(&pool_cv);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += 200 * 1000 * 1000;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (nthreads > 0 && pthread_cond_timedwait(&pool_gone_cv, &pool_mu, &until) == 0) {
    }
    join_left();
    pthread_mutex_unlock(&pool_mu);
}

/* Join the threads that have left their loop, under pool_mu (they take it no more). */
static void join_left(void)
{
    for (int i = 0; i < WEFT_OFFLOAD_MAX_THREADS; i++) {
        if (slot_used[i] == SLOT_LEFT) {
            pthread_join(slot_tid[i], NULL);
            slot_used[i] = SLOT_FREE;
        }
    }
}

/* Start one more thread, under pool_mu; 0 or an errno value. Its signals are all blocked,
 * so signals meant for the program (and signalfd's) never land on a pool thread. */
static int start_thread(void)
{
    join_left();
    int slot = 0;
    while (slot < WEFT_OFFLOAD_MAX_THREADS && slot_used[slot] != SLOT_FREE)
        slot++;
    if (slot == WEFT_OFFLOAD_MAX_THREADS)
        return EAGAIN;
    pthread_attr_t a;
    if (pthread_attr_init(&a) != 0)
        return ENOMEM;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&slot_tid[slot], &a, worker, (void *)(intptr_t)slot);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (e == 0) {
        slot_used[slot] = SLOT_RUNNING;
        nthreads++;
    }
    return e;
}

/* Up to 'want' more threads, under pool_mu, within the size; 0, or an errno value when no
 * thread runs at all. */
static int pool_grow(long want)
{
    int e = 0;
    while (want-- > 0 && nthreads < pool_size)
        if ((e = start_thread()) != 0)
            break;
    return nthreads > 0 ? 0 : e;
}

static void pool_conds_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&pool_cv, &ca);
    pthread_cond_init(&pool_gone_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static void pool_atfork_prepare(void)
{
    pthread_mutex_lock(&pool_mu);
}

static void pool_atfork_parent(void)
{
    pthread_mutex_unlock(&pool_mu);
}

/* In a forked child: the pool's threads are gone. Jobs of this thread's port that were
 * running fail with ECANCELED (their fn stopped at the fork in the child's copy); its queued
 * ones wait for threads, started by the reaper; other threads' jobs are dropped (their
 * schedulers are not in the child). The port gets an eventfd of its own. */
static void pool_atfork_child(void)
{
    struct port *p = weft_offload_port;
    pool_conds_init();
    nthreads = nidle = 0;
    memset(slot_used, 0, sizeof slot_used);
    int pending = 0;
    for (int i = 0; i < WEFT_OFFLOAD_MAX_THREADS; i++) {
        struct job *j = busy[i];
        busy[i] = NULL;
        if (j && p && j->port == p && atomic_load(&j->state) == JOB_RUNNING) {
            j->err = ECANCELED;
            atomic_store(&j->state, JOB_DONE);
            port_push(p, j);
            pending = 1;
        }
    }
    struct job **pp = &q_head;
    q_tail = &q_head;
    q_len = 0;
    while (*pp) {
        struct job *j = *pp;
        if (p && j->port == p) {
            q_len++;
            q_tail = &j->next;
            pp = &j->next;
        } else {
            *pp = j->next;
        }
    }
    pthread_mutex_unlock(&pool_mu);
    if (!p)
        return;
    if (q_len)
        atomic_store(&kick_needed, 1);
    /* A file of its own under the same number; the reactor's epoll set is not touched here
     * (the reactor's own handler may not have given the child its set yet): the reaper,
     * woken, re-arms the number. */
    int nfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (nfd >= 0) {
        dup3(nfd, p->efd, O_CLOEXEC);
        weft_sys_close(nfd);
    }
    p->rearm = 1;
    weft_sched_wake(p->s, p->reaper, EAGAIN);
    if (pending || q_len || atomic_load(&p->done))
        port_signal(p);
}

/* The size from the environment, WEFT_OFFLOAD_THREADS (1 to the maximum), else the default. */
static void pool_init(void)
{
    pool_conds_init();
    atexit(pool_atexit);
    pthread_mutex_lock(&pool_mu);
    if (!pool_size) {
        const char *e = getenv("WEFT_OFFLOAD_THREADS");
        char *end;
        long n = e ? strtol(e, &end, 10) : 0;
        pool_size = e && *e && !*end && n >= 1 && n <= WEFT_OFFLOAD_MAX_THREADS ? (int)n
                                                                                 : POOL_DEFAULT;
    }
    pthread_mutex_unlock(&pool_mu);
    pthread_atfork(pool_atfork_prepare, pool_atfork_parent, pool_atfork_child);
}

int weft_pool_submit(struct job *j)
{
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool_mu);
    j->next = NULL;
    *q_tail = j;
    q_tail = &j->next;
    q_len++;
    int e = pool_grow(q_len > nidle ? 1 : 0);
    if (e) {                    /* no thread at all: take it back */
        struct job **pp = &q_head;
        while (*pp != j)
            pp = &(*pp)->next;
        *pp = NULL;
        q_tail = pp;
        q_len--;
    } else if (nidle) {
        pthread_cond_signal(&pool_cv);
    }
    pthread_mutex_unlock(&pool_mu);
    return e;
}

int weft_offload_set_threads(int n)
{
    if (n < 1 || n > WEFT_OFFLOAD_MAX_THREADS) {
        errno = EINVAL;
        return -1;
    }
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool_mu);
    pool_size = n;
    pool_grow(q_len - nidle);
    pthread_cond_broadcast(&pool_cv);   /* threads above the size leave when idle */
    pthread_mutex_unlock(&pool_mu);
    return 0;
}

int weft_offload_threads(void)
{
    pthread_once(&pool_once, pool_init);
    pthread_mutex_lock(&pool_mu);
    int n = pool_size;
    pthread_mutex_unlock(&pool_mu);
    return n;
}

void weft_pool_kick(void)
{
    if (slow(atomic_exchange(&kick_needed, 0))) {
        pthread_mutex_lock(&pool_mu);
        pool_grow(q_len - nidle);
        pthread_cond_broadcast(&pool_cv);
        pthread_mutex_unlock(&pool_mu);
    }
}

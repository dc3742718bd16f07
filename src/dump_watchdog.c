/* The stall watchdog (weft_watchdog): a helper thread samples every scheduler's switch
 * count and, when one has not moved for the threshold while a task runs, signals that
 * thread, whose handler reports the task and where it is. It never gives a false alarm: a
 * count that has not moved for the whole threshold is a lower bound on the stall. The same
 * thread takes the profiler's samples (dump_profile.c) while weft_profile is on. */
#include "config.h"
#include "dump_impl.h"
#include "sys.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static pthread_t wd_thread;
static int wd_running;
static unsigned wd_gen;
static int64_t wd_threshold;            /* ms; 0: off */
static pthread_cond_t wd_cond;
static int wd_signo;

static void cond_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&wd_cond, &ca);
    pthread_condattr_destroy(&ca);
}

void weft_dump_watchdog_init(void)
{
    cond_init();
}

/* In a forked child: the thread is the parent's; the child runs without one. */
void weft_dump_watchdog_after_fork(void)
{
    cond_init();
    wd_running = 0;
    wd_threshold = 0;
    weft_dump_profile_after_fork();
}

int weft_dump_watchdog_signo(void)
{
    return wd_signo;
}

int weft_dump_watchdog_on(void)
{
    return wd_running;
}

/* Runs on the stalled scheduler's thread, sent by the watchdog thread: print the running
 * task and where it is, unless it has yielded since the watchdog looked. */
static void on_watchdog_signal(int signo, siginfo_t *si, void *uc)
{
    (void)si;
    int saved = errno;
    struct sched *s = weft_sched_tls;
    struct schedent *e = weft_dump_ent_of(s);
    if (!e || !s->cur || s->switches != e->stall_switches) {
        errno = saved;
        return;
    }
    int held = weft_dump_out_lock();
    struct sigbuf b;
    struct dumpctx d;
    weft_dump_ctx_interrupted(&d, &b, e, STDERR_FILENO, 0, signo, uc);
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
    weft_dump_put_sym_text(&d, (uintptr_t)t->fn, 0);
    put(&b, "\n");
    if (d.run_task == t)
        weft_dump_put_frames(&d, t);
    else
        put(&b, "    (interrupted in a switch: no backtrace)\n");
    put(&b, "end of weft watchdog report\n");
    weft_sigbuf_flush(&b);
    weft_bt_cache_fini(&d.cache);
    weft_dump_out_unlock(held);
    errno = saved;
}

/* One look at every scheduler for stalls (under the registry lock). */
static void watch_scan(void)
{
    int64_t now = weft_now();
    for (int i = 0; i < MAX_SCHEDS; i++) {
        struct schedent *e = &weft_dump_scheds[i];
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

/* The helper thread's period in ns: the watchdog's (threshold/4, 1 to 100 ms) or the
 * profiler's (1 s / hz), whichever is shorter; 0 when neither is on. */
static int64_t helper_period_ns(void)
{
    int64_t p = 0;
    if (wd_threshold > 0) {
        int64_t ms = wd_threshold / 4;
        p = (ms < 1 ? 1 : ms > 100 ? 100 : ms) * 1000000;
    }
    int hz = weft_dump_profile_hz();
    if (hz > 0 && (p == 0 || 1000000000 / hz < p))
        p = 1000000000 / hz;
    return p;
}

static void *watchdog_main(void *arg)
{
    unsigned gen = (unsigned)(uintptr_t)arg;
    pthread_mutex_lock(&weft_dump_reg_lock);
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    int64_t period;
    while (wd_gen == gen && (period = helper_period_ns()) > 0) {
        /* Absolute times a period apart, so the rate holds; after a late wake-up (a busy
         * machine), the next look is a period from now. */
        int64_t at = (int64_t)next.tv_sec * 1000000000 + next.tv_nsec + period;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        if (at < now)
            at = now + period;
        next.tv_sec = at / 1000000000;
        next.tv_nsec = at % 1000000000;
        pthread_cond_timedwait(&wd_cond, &weft_dump_reg_lock, &next);
        if (wd_gen != gen)
            break;
        if (wd_threshold > 0)
            watch_scan();
        if (weft_dump_profile_hz() > 0)
            weft_dump_profile_sample();
    }
    pthread_mutex_unlock(&weft_dump_reg_lock);
    return NULL;
}

/* Start the helper thread when the watchdog or the profiler is on and it is not running,
 * stop it when neither is, else wake it to take the new period. Called with the registry
 * lock held; returns with it released. -1: no thread could be made. */
int weft_dump_helper_update(void)
{
    int want = wd_threshold > 0 || weft_dump_profile_hz() > 0;
    if (want && !wd_running) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);     /* the thread inherits it: no signals */
        int e = pthread_create(&wd_thread, NULL, watchdog_main, (void *)(uintptr_t)++wd_gen);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e) {
            pthread_mutex_unlock(&weft_dump_reg_lock);
            return -1;
        }
        wd_running = 1;
    } else if (!want && wd_running) {
        pthread_t th = wd_thread;
        wd_running = 0;
        wd_gen++;
        pthread_cond_broadcast(&wd_cond);
        pthread_mutex_unlock(&weft_dump_reg_lock);
        pthread_join(th, NULL);
        return 0;
    } else {
        pthread_cond_broadcast(&wd_cond);
    }
    pthread_mutex_unlock(&weft_dump_reg_lock);
    return 0;
}

int weft_watchdog(int64_t threshold_ms)
{
    if (threshold_ms < 0) {
        errno = EINVAL;
        return -1;
    }
    weft_dump_init();
    pthread_mutex_lock(&weft_dump_reg_lock);
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
    int64_t old = wd_threshold;
    wd_threshold = threshold_ms;
    int64_t now = weft_now();
    for (int i = 0; i < MAX_SCHEDS; i++)
        weft_dump_scheds[i].seen_at = now;
    if (weft_dump_helper_update() != 0) {   /* unlocks */
        pthread_mutex_lock(&weft_dump_reg_lock);
        wd_threshold = old;
        pthread_mutex_unlock(&weft_dump_reg_lock);
        errno = EAGAIN;
        return -1;
    }
    return 0;
}

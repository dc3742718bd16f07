/* The registry of the task dump: every scheduler of the process with its thread and stack,
 * so a signal, a dump of all threads and the watchdog can reach each; its setup at the
 * first scheduler (WEFT_DUMP_SIGNAL, WEFT_WATCHDOG, WEFT_PROFILE, WEFT_DEBUG) and after fork. */
#include "config.h"
#include "dump_impl.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct schedent weft_dump_scheds[MAX_SCHEDS];
pthread_mutex_t weft_dump_reg_lock = PTHREAD_MUTEX_INITIALIZER;
TLS uintptr_t weft_dump_thr_lo, weft_dump_thr_hi;
static pthread_once_t glob_once = PTHREAD_ONCE_INIT;

struct schedent *weft_dump_ent_of(const struct sched *s)
{
    if (!s)
        return NULL;
    for (int i = 0; i < MAX_SCHEDS; i++) {
        if (weft_dump_scheds[i].s == s)
            return &weft_dump_scheds[i];
    }
    return NULL;
}

static void atfork_child(void)
{
    /* Only the forking thread lives on in the child: keep its scheduler, drop the others,
     * and forget the watchdog thread (the child runs without one). */
    pthread_mutex_init(&weft_dump_reg_lock, NULL);
    weft_dump_watchdog_after_fork();
    struct sched *mine = weft_sched_tls;
    for (int i = 0; i < MAX_SCHEDS; i++) {
        if (weft_dump_scheds[i].s && weft_dump_scheds[i].s != mine)
            weft_dump_scheds[i].s = NULL;
        else if (weft_dump_scheds[i].s)
            weft_dump_scheds[i].tid = (pid_t)syscall(SYS_gettid);
        atomic_store(&weft_dump_scheds[i].req_state, REQ_IDLE);
    }
}

static void glob_init(void)
{
    weft_dump_watchdog_init();
    pthread_atfork(NULL, NULL, atfork_child);
    weft_bt_init();
}

/* The calling thread's stack bounds, learned once per thread. */
static void thread_bounds(void)
{
    if (weft_dump_thr_hi)
        return;
    pthread_attr_t a;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &a) != 0)
        return;
    if (pthread_attr_getstack(&a, &lo, &size) == 0) {
        weft_dump_thr_lo = (uintptr_t)lo;
        weft_dump_thr_hi = (uintptr_t)lo + size;
    }
    pthread_attr_destroy(&a);
}

void weft_dump_init(void)
{
    pthread_once(&glob_once, glob_init);
    thread_bounds();
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
    weft_dump_init();
    pthread_mutex_lock(&weft_dump_reg_lock);
    for (int i = 0; i < MAX_SCHEDS; i++) {
        if (!weft_dump_scheds[i].s) {
            struct schedent *e = &weft_dump_scheds[i];
            memset(e, 0, sizeof *e);
            e->tid = (pid_t)syscall(SYS_gettid);
            e->stk_lo = weft_dump_thr_lo;
            e->stk_hi = weft_dump_thr_hi;
            e->seen_at = weft_now();
            e->s = s;
            break;
        }
    }
    int signo = weft_dump_signal_signo(), wd = weft_dump_watchdog_on();
    int hz = weft_dump_profile_hz();
    pthread_mutex_unlock(&weft_dump_reg_lock);

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
    v = getenv("WEFT_PROFILE");
    if (v && *v && !hz) {
        int want = atoi(v);
        if (want > 0 && weft_profile(want) != 0)
            fprintf(stderr, "weft: WEFT_PROFILE=%s: %s\n", v, strerror(errno));
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
    pthread_mutex_lock(&weft_dump_reg_lock);
    struct schedent *e = weft_dump_ent_of(s);
    if (e)
        e->s = NULL;
    pthread_mutex_unlock(&weft_dump_reg_lock);
}

/* The registry side of a dump context: this thread's scheduler and stack. */
void weft_dump_ctx_init(struct dumpctx *d, struct sigbuf *b, int flags)
{
    d->s = weft_sched_tls;
    d->b = b;
    d->flags = flags;
    d->json = (flags & WEFT_DUMP_JSON) != 0;
    d->signo = 0;
    d->json_open = 0;
    d->now = weft_now();
    d->thr_lo = weft_dump_thr_lo;
    d->thr_hi = weft_dump_thr_hi;
    d->run_task = d->s ? d->s->cur : NULL;
    d->run_known = 0;
    d->run_pc = d->run_sp = d->run_fp = 0;
    weft_bt_cache_init(&d->cache);
}

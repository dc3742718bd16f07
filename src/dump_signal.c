/* The task dump from signal handlers: the user's dump signal (weft_dump_on_signal), which
 * every scheduler thread answers in turn on stderr, and the request signal through which
 * weft_dump's WEFT_DUMP_ALL_THREADS has each other thread write its own dump to a memfd. */
#include "config.h"
#include "dump_impl.h"
#include "sys.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#define ANSWER_MS 2000          /* how long a thread has to answer a request */

static int dump_signo;                  /* the signal that dumps; 0 none (under reg_lock) */
static struct sigaction dump_old;
static atomic_int out_busy;             /* one signal dump writes at a time */
static int req_installed;               /* the request handler is in place (under reg_lock) */
static pthread_mutex_t ask_lock = PTHREAD_MUTEX_INITIALIZER;   /* one request round at a time */

/* The request signal: fixed, so weft_dump_on_signal can refuse it. */
static int request_signo(void)
{
    return SIGRTMAX - 4;
}

int weft_dump_signal_signo(void)
{
    return dump_signo;
}

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

void weft_dump_ctx_interrupted(struct dumpctx *d, struct sigbuf *b, const struct schedent *e,
                               int fd, int flags, int signo, const void *uc)
{
    b->len = 0;
    b->fd = fd;
    b->err = 0;
    weft_dump_ctx_init(d, b, flags);
    d->thr_lo = e->stk_lo;
    d->thr_hi = e->stk_hi;
    dumpctx_interrupted(d, signo, uc);
}

int weft_dump_out_lock(void)
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

void weft_dump_out_unlock(int held)
{
    if (held)
        atomic_store(&out_busy, 0);
}

/* Ask every other scheduler thread for its dump with signo (the user's dump signal: each
 * writes to stderr; or request_signo: each writes where its entry's req_fd says). */
static int tell_others(int signo)
{
    pid_t pid = getpid(), self = (pid_t)syscall(SYS_gettid);
    int n = 0;
    for (int i = 0; i < MAX_SCHEDS; i++) {
        pid_t tid = weft_dump_scheds[i].tid;
        if (weft_dump_scheds[i].s && tid && tid != self && syscall(SYS_tgkill, pid, tid, signo) == 0)
            n++;
    }
    return n;
}

static void on_dump_signal(int signo, siginfo_t *si, void *uc)
{
    int saved = errno;
    struct sched *s = weft_sched_tls;
    struct schedent *e = weft_dump_ent_of(s);
    /* Sent to the process (kill), not passed on by weft (tgkill from this pid): every
     * scheduler thread must dump, so this one passes it on to the others. */
    int from_us = si->si_code == SI_TKILL && si->si_pid == getpid();
    if (e) {
        int held = weft_dump_out_lock();
        struct sigbuf b;
        struct dumpctx d;
        weft_dump_ctx_interrupted(&d, &b, e, STDERR_FILENO, 0, signo, uc);
        weft_dump_sched(&d);
        weft_sigbuf_flush(&b);
        weft_bt_cache_fini(&d.cache);
        weft_dump_out_unlock(held);
        if (!from_us)
            tell_others(signo);
    } else if (!from_us && tell_others(signo) == 0) {
        struct sigbuf b;
        b.len = 0;
        b.fd = STDERR_FILENO;
        b.err = 0;
        put(&b, "weft dump: pid ");
        put_i(&b, getpid());
        put(&b, ": no scheduler\nend of weft dump\n");
        weft_sigbuf_flush(&b);
    }
    errno = saved;
}

static int signal_usable(int signo)
{
    return signo > 0 && signo < NSIG && signo != SIGKILL && signo != SIGSTOP &&
           signo != SIGSEGV && signo != SIGBUS && signo != SIGFPE && signo != SIGILL &&
           signo != SIGABRT && signo != weft_dump_watchdog_signo() && signo != request_signo();
}

int weft_dump_on_signal(int signo)
{
    if (signo != 0 && !signal_usable(signo)) {
        errno = EINVAL;
        return -1;
    }
    weft_dump_init();
    pthread_mutex_lock(&weft_dump_reg_lock);
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
    pthread_mutex_unlock(&weft_dump_reg_lock);
    if (e) {
        errno = e;
        return -1;
    }
    return 0;
}

/* ---- a dump asked of another thread ----------------------------------------------------- */

/* On the asked thread: write its dump where its entry says, unless the asker gave up. */
static void on_request_signal(int signo, siginfo_t *si, void *uc)
{
    (void)si;
    int saved = errno;
    struct schedent *e = weft_dump_ent_of(weft_sched_tls);
    int asked = REQ_ASKED;
    if (e && atomic_compare_exchange_strong(&e->req_state, &asked, REQ_WRITING)) {
        struct sigbuf b;
        struct dumpctx d;
        weft_dump_ctx_interrupted(&d, &b, e, e->req_fd, e->req_flags, signo, uc);
        weft_dump_sched(&d);
        weft_sigbuf_flush(&b);
        weft_bt_cache_fini(&d.cache);
        atomic_store(&e->req_state, REQ_DONE);
    }
    errno = saved;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
    weft_sys_nanosleep(&ts, NULL);
}

/* Wait up to ms for e to reach REQ_DONE; on time out take the request back, unless the
 * thread has begun writing (then wait for it: the memfd stays ours until it is done). */
static int await_answer(struct schedent *e, long ms)
{
    for (long i = 0; i < ms; i++) {
        if (atomic_load(&e->req_state) == REQ_DONE)
            return 1;
        sleep_ms(1);
    }
    int asked = REQ_ASKED;
    if (atomic_compare_exchange_strong(&e->req_state, &asked, REQ_IDLE))
        return 0;
    while (atomic_load(&e->req_state) != REQ_DONE)
        sleep_ms(1);
    return 1;
}

/* Copy memfd m (from its start) to b. */
static void copy_out(struct sigbuf *b, int m)
{
    char chunk[512];
    off_t off = 0;
    ssize_t r;
    while ((r = pread(m, chunk, sizeof chunk - 1, off)) > 0) {
        chunk[r] = '\0';
        put(b, chunk);
        off += r;
    }
}

static void put_no_answer(struct sigbuf *b, int json, pid_t tid, const char *why)
{
    if (json) {
        put(b, "{\"weft_dump\":1,\"pid\":");
        put_i(b, getpid());
        put(b, ",\"tid\":");
        put_i(b, tid);
        put(b, ",\"error\":");
        put_js(b, why);
        put(b, "}");
    } else {
        put(b, "weft dump: pid ");
        put_i(b, getpid());
        put(b, ", thread ");
        put_i(b, tid);
        put(b, ": ");
        put(b, why);
        put(b, "\nend of weft dump\n");
    }
}

int weft_dump_other_threads(int fd, int flags)
{
    int json = (flags & WEFT_DUMP_JSON) != 0;
    int sub = flags & ~WEFT_DUMP_ALL_THREADS;
    pid_t pid = getpid(), self = (pid_t)syscall(SYS_gettid);
    pthread_mutex_lock(&ask_lock);
    pthread_mutex_lock(&weft_dump_reg_lock);
    if (!req_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_request_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        req_installed = sigaction(request_signo(), &sa, NULL) == 0;
    }
    pid_t tids[MAX_SCHEDS];
    int n = 0;
    for (int i = 0; i < MAX_SCHEDS; i++)
        tids[i] = weft_dump_scheds[i].s && weft_dump_scheds[i].tid != self ? weft_dump_scheds[i].tid : 0;
    pthread_mutex_unlock(&weft_dump_reg_lock);

    struct sigbuf b;
    b.len = 0;
    b.fd = fd;
    b.err = 0;
    int err = 0;
    if (json)
        put(&b, ",\"threads\":[");
    for (int i = 0; i < MAX_SCHEDS && !b.err; i++) {
        if (!tids[i])
            continue;
        struct schedent *e = &weft_dump_scheds[i];
        if (json && n++)
            put(&b, ",");
        int m = memfd_create("weft-dump-thread", MFD_CLOEXEC);
        if (m < 0) {
            err = errno == EMFILE || errno == ENFILE ? errno : ENOMEM;
            put_no_answer(&b, json, tids[i], "no memfd for its dump");
            continue;
        }
        e->req_fd = m;
        e->req_flags = sub;
        atomic_store(&e->req_state, REQ_ASKED);
        int answered = req_installed && e->tid == tids[i] &&
                       syscall(SYS_tgkill, pid, tids[i], request_signo()) == 0 &&
                       await_answer(e, ANSWER_MS);
        atomic_store(&e->req_state, REQ_IDLE);
        weft_sigbuf_flush(&b);
        if (answered)
            copy_out(&b, m);
        else
            put_no_answer(&b, json, tids[i], "did not answer within 2 s (the signal blocked?)");
        weft_sys_close(m);
    }
    if (json)
        put(&b, "]}\n");
    weft_sigbuf_flush(&b);
    pthread_mutex_unlock(&ask_lock);
    if (b.err || err) {
        errno = b.err ? b.err : err;
        return -1;
    }
    return 0;
}

/* Signals as events: weft_signal_wait parks a task until a signal of its set is pending,
 * read from one signalfd per scheduler thread that the reactor watches. This file owns the
 * waiters and the signalfd's mask; readiness and parking are the reactor's and the
 * scheduler's. A signalfd sees only blocked signals: each call blocks its set in the calling
 * thread and leaves it so; the program blocks it in its other threads (weft.h says why). */
#include "config.h"
#include "reactor.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* One waiting call, on its task's stack, in the thread's list in arrival order: a signal goes
 * to the first record whose set holds it. */
struct sigwaiter {
    struct list link;
    sigset_t set;
    struct signalfd_siginfo info;
    struct weft_task *task;
    int got;                    /* info holds the signal handed to this call */
    const long *nwait;          /* the list's count, for the dump */
    char names[96];             /* "SIGINT,SIGTERM": what the dump shows */
};

/* The thread's signal state. fd is open while some call waits (closed when the last one
 * leaves: the signals stay pending in the kernel meanwhile); its mask is the union of the
 * waiters' sets, so a signal read from it always has a waiter. pid: the process that made
 * fd, so a forked child makes its own instead of changing the parent's mask. */
struct sigstate {
    struct sched *s;
    struct list waiters;
    long nwait;
    int fd;
    pid_t pid;
    unsigned gen;               /* bumped whenever fd is replaced */
    int fresh;                  /* fd is new: the reactor's record of its number may be a
                                   stale one (a plain close(2)), so re-arm at the first park */
    sigset_t mask;              /* fd's mask */
};

static TLS struct sigstate sigstate_tls;

/* The dump's view (struct wait_info): only reads memory. */
static void sig_info(const struct weft_task *t, struct wait_info *out)
{
    const struct sigwaiter *w = t->wait_arg;
    out->op = "signal";
    out->name = w ? w->names : NULL;
    out->holder = 0;
    out->waiting = w ? *w->nwait : -1;
}

/* The signals a call may wait for: not those the kernel keeps (SIGKILL, SIGSTOP), nor the
 * synchronous ones a fault raises in the faulting thread (a signalfd cannot take those
 * in time: blocked, they kill the process). */
static int bad_signal(int sig)
{
    return sig == SIGKILL || sig == SIGSTOP || sig == SIGSEGV || sig == SIGBUS ||
           sig == SIGFPE || sig == SIGILL || sig == SIGTRAP;
}

/* 0 when set is one a call may wait for: not NULL, not empty, no bad signal. */
static int check_set(const sigset_t *set)
{
    if (!set)
        return EINVAL;
    int any = 0;
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(set, sig) != 1)
            continue;
        if (bad_signal(sig))
            return EINVAL;
        any = 1;
    }
    return any ? 0 : EINVAL;
}

static void append(char *buf, size_t cap, size_t *len, const char *s)
{
    while (*s && *len + 1 < cap)
        buf[(*len)++] = *s++;
    buf[*len] = '\0';
}

/* "SIGINT,SIGTERM" into buf, "..." at the end when it does not fit. */
static void set_names(const sigset_t *set, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigismember(set, sig) != 1)
            continue;
        char one[24];
        const char *ab = sigabbrev_np(sig);
        if (ab) {
            strcpy(one, "SIG");
            strncat(one, ab, sizeof one - 4);
        } else {
            int n = sig, i = 0;
            char d[8];
            do
                d[i++] = (char)('0' + n % 10);
            while ((n /= 10) && i < 7);
            strcpy(one, "SIG");
            size_t k = 3;
            while (i)
                one[k++] = d[--i];
            one[k] = '\0';
        }
        if (len + strlen(one) + 5 >= cap) {
            append(buf, cap, &len, len ? ",..." : "...");
            return;
        }
        if (len)
            append(buf, cap, &len, ",");
        append(buf, cap, &len, one);
    }
}

/* The thread's state for scheduler s: reset when s is not the scheduler it was made for (a
 * scheduler destroyed and a new one made on the thread). */
static struct sigstate *state_of(struct sched *s)
{
    struct sigstate *st = &sigstate_tls;
    if (slow(st->s != s)) {
        if (st->s && st->fd >= 0)
            weft_sys_close(st->fd);    /* its reactor went with the old scheduler */
        st->s = s;
        list_init(&st->waiters);
        st->nwait = 0;
        st->fd = -1;
        st->gen++;
    }
    return st;
}

static void close_fd(struct sigstate *st)
{
    if (st->fd < 0)
        return;
    weft_reactor_forget(st->s, st->fd);     /* wakes whoever is parked on it with EBADF */
    weft_sys_close(st->fd);
    st->fd = -1;
    st->gen++;
}

/* sigemptyset may leave bytes of a sigset_t past the kernel's signals unset: compare the
 * signals, not the bytes. */
static int same_set(const sigset_t *a, const sigset_t *b)
{
    for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(a, sig) != sigismember(b, sig))
            return 0;
    return 1;
}

/* Make fd's mask the union of the waiters' sets, opening fd (or, in a forked child, a new
 * one of its own) as needed. 0 or an errno value. */
static int sync_fd(struct sigstate *st)
{
    if (slow(st->fd >= 0 && st->pid != getpid()))
        close_fd(st);
    sigset_t want;
    sigemptyset(&want);
    struct list *n;
    list_for_each(n, &st->waiters) {
        const struct sigwaiter *w = list_entry(n, struct sigwaiter, link);
        sigorset(&want, &want, &w->set);
    }
    if (st->fd >= 0 && same_set(&want, &st->mask))
        return 0;
    int fd = signalfd(st->fd, &want, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return errno;
    if (st->fd < 0) {
        st->fd = fd;
        st->pid = getpid();
        st->gen++;
        st->fresh = 1;
    }
    st->mask = want;
    return 0;
}

/* Read signals one at a time and hand each to the first waiter whose set holds it, until
 * me has one or none is pending. Returns 1 when none was pending at the end (the read saw
 * EAGAIN), 0 when some may still be, or -errno. */
static int dispatch(struct sigstate *st, struct sigwaiter *me)
{
    while (!me->got) {
        int e = sync_fd(st);
        if (e)
            return -e;
        struct signalfd_siginfo si;
        ssize_t r = weft_sys_read(st->fd, &si, sizeof si);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 1 : -errno;
        }
        if (r != (ssize_t)sizeof si)
            return -EIO;
        struct list *n;
        list_for_each(n, &st->waiters) {
            struct sigwaiter *w = list_entry(n, struct sigwaiter, link);
            if (sigismember(&w->set, (int)si.ssi_signo) == 1) {
                w->info = si;
                w->got = 1;
                list_remove(&w->link);
                st->nwait--;
                if (w != me)
                    weft_sched_wake(st->s, w->task, 0);
                break;
            }
        }
    }
    return 0;
}

/* Leave the list (when no signal took me off it), closing fd after the last waiter. */
static void leave(struct sigstate *st, struct sigwaiter *me)
{
    if (!me->got) {
        list_remove(&me->link);
        st->nwait--;
    }
    if (list_empty(&st->waiters))
        close_fd(st);
}

/* The task's wait: try, park on fd's readiness (as WAIT_SIGNAL), try again when woken. */
static int task_wait(struct sched *s, const sigset_t *set, struct signalfd_siginfo *info,
                     int64_t deadline)
{
    struct sigstate *st = state_of(s);
    struct weft_task *t = s->cur;
    if (slow(t->flags & TF_CANCELLED)) {
        errno = ECANCELED;
        return -1;
    }
    struct sigwaiter me;
    me.set = *set;
    me.task = t;
    me.got = 0;
    me.nwait = &st->nwait;
    set_names(set, me.names, sizeof me.names);
    list_push_back(&st->waiters, &me.link);
    st->nwait++;
    int e = 0;
    for (;;) {
        int r = dispatch(st, &me);
        if (me.got)
            break;
        if (r < 0) {
            e = -r;
            break;
        }
        struct fdent *f = weft_fd_get(s, st->fd);
        if (!f) {
            e = errno;
            break;
        }
        e = weft_reactor_arm(s, f, st->fd, st->fresh);
        if (e)
            break;
        st->fresh = 0;
        unsigned gen = st->gen;
        t->wait_arg = &me;
        t->wait_info = sig_info;
        t->wait_op = "signal";
        e = weft_sched_park(s, &f->waiters[DIR_READ], 0, WAIT_SIGNAL, deadline);
        t->wait_info = NULL;
        t->wait_arg = NULL;
        if (me.got)
            break;          /* handed a signal: it wins over a timeout or cancel since */
        if (e == EBADF && st->gen != gen) {
            e = 0;          /* fd replaced (a forked child's own): wait on the new one */
            continue;
        }
        if (e)
            break;
    }
    int more = me.got && !list_empty(&st->waiters);
    leave(st, &me);
    if (more && st->fd >= 0) {
        /* Signals for the others may be pending still: let the next parked one look. */
        struct fdent *f = weft_fd_lookup(s, st->fd);
        if (f)
            weft_reactor_pass(s, f, DIR_READ);
    }
    if (!me.got) {
        errno = e;
        return -1;
    }
    if (info)
        *info = me.info;
    return (int)me.info.ssi_signo;
}

/* Outside any task: sigtimedwait, with the deadline made a timeout each time round. */
static int thread_wait(const sigset_t *set, struct signalfd_siginfo *info, int64_t deadline)
{
    for (;;) {
        siginfo_t si;
        int r;
        if (deadline < 0) {
            r = sigwaitinfo(set, &si);
        } else {
            int64_t left = deadline - weft_now();
            if (left < 0)
                left = 0;
            struct timespec ts = { left / 1000, (long)(left % 1000) * 1000000 };
            r = sigtimedwait(set, &si, &ts);
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                errno = ETIMEDOUT;
            return -1;
        }
        if (info) {
            memset(info, 0, sizeof *info);
            info->ssi_signo = (uint32_t)si.si_signo;
            info->ssi_errno = si.si_errno;
            info->ssi_code = si.si_code;
            info->ssi_pid = (uint32_t)si.si_pid;
            info->ssi_uid = (uint32_t)si.si_uid;
            info->ssi_status = si.si_status;
            info->ssi_int = si.si_value.sival_int;
            info->ssi_ptr = (uint64_t)(uintptr_t)si.si_value.sival_ptr;
        }
        return r;
    }
}

int weft_signal_waitinfo(const sigset_t *set, struct signalfd_siginfo *info, int64_t deadline)
{
    int e = check_set(set);
    if (e) {
        errno = e;
        return -1;
    }
    sigset_t own = *set;        /* the caller's set may change while the call waits */
    e = pthread_sigmask(SIG_BLOCK, &own, NULL);
    if (e) {
        errno = e;
        return -1;
    }
    struct sched *s = weft_sched_tls;
    if (!s || !s->cur)
        return thread_wait(&own, info, deadline);
    return task_wait(s, &own, info, deadline);
}

int weft_signal_wait(const sigset_t *set, int64_t deadline)
{
    return weft_signal_waitinfo(set, NULL, deadline);
}

/* Child processes: weft_proc_spawn (posix_spawn, so the parent's memory is never copied and
 * a failed exec comes back as an errno), a pidfd per child that a waiting task parks on
 * through the reactor, kill through the pidfd, and the reap-before-free rule. Feeding and
 * collecting a child's streams (weft_proc_run) is proc_run.c's. */
#include "config.h"
#include "proc.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/* The dump's view of a task in weft_proc_wait (see struct wait_info): reads memory only. */
static void proc_wait_info(const struct weft_task *t, struct wait_info *out)
{
    const struct weft_proc *p = t->wait_obj;
    out->op = "wait";
    out->name = p->label;
}

/* ---- spawn ------------------------------------------------------------------------------ */

static void close_quiet(int fd)
{
    if (fd >= 0) {
        int e = errno;
        weft_sys_close(fd);
        errno = e;
    }
}

/* A pipe whose both ends are close-on-exec and above 2, so that no dup2 onto 0..2 in the
 * child can overwrite the end another stream still needs. 0 or an errno value. */
static int pipe_high(int fds[2])
{
    if (pipe2(fds, O_CLOEXEC) != 0)
        return errno;
    for (int i = 0; i < 2; i++) {
        if (fds[i] > 2)
            continue;
        int hi = (int)weft_sys_fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (hi < 0) {
            int e = errno;
            close_quiet(fds[0]);
            close_quiet(fds[1]);
            return e;
        }
        weft_sys_close(fds[i]);
        fds[i] = hi;
    }
    return 0;
}

static int attr_ok(const weft_proc_attr *a)
{
    for (int i = 0; i < 3; i++) {
        int m = a->mode[i];
        if (m < WEFT_PROC_INHERIT || m > WEFT_PROC_STDOUT || (m == WEFT_PROC_STDOUT && i != 2) ||
            (m == WEFT_PROC_FD && a->fd[i] < 0))
            return 0;
    }
    return 1;
}

/* The file actions for attr's streams, with the child's ends of the pipes in child[]; 0 or
 * an errno value. */
static int streams_setup(posix_spawn_file_actions_t *fa, const weft_proc_attr *a,
                         const int child[3])
{
    int e = 0;
    for (int i = 0; i < 3 && e == 0; i++) {
        switch (a->mode[i]) {
        case WEFT_PROC_PIPE:
            e = posix_spawn_file_actions_adddup2(fa, child[i], i);
            break;
        case WEFT_PROC_DEVNULL:
            e = posix_spawn_file_actions_addopen(fa, i, "/dev/null",
                                                 i == 0 ? O_RDONLY : O_WRONLY, 0);
            break;
        case WEFT_PROC_FD:
            e = posix_spawn_file_actions_adddup2(fa, a->fd[i], i);
            break;
        case WEFT_PROC_STDOUT:
            e = posix_spawn_file_actions_adddup2(fa, 1, 2);
            break;
        default:
            break;
        }
    }
    if (e == 0 && a->cwd)
        e = posix_spawn_file_actions_addchdir_np(fa, a->cwd);
    return e;
}

/* The child's signal state: nothing blocked (the parent may hold signals for a signalfd),
 * SIGPIPE at its default (the parent may ignore it); and its process group. */
static int sigstate_setup(posix_spawnattr_t *sa, int new_group)
{
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_group)
        flags |= POSIX_SPAWN_SETPGROUP;     /* group 0: the child's own pid */
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    int e = posix_spawnattr_setsigmask(sa, &none);
    if (e == 0)
        e = posix_spawnattr_setsigdefault(sa, &dfl);
    if (e == 0)
        e = posix_spawnattr_setflags(sa, flags);
    return e;
}

/* Start the child with posix_spawn(p); 0 or an errno value (the exec's too). */
static int start(struct weft_proc *p, const char *path, char *const argv[], const weft_proc_attr *a,
                 const int child[3])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t sa;
    int e = posix_spawn_file_actions_init(&fa);
    if (e != 0)
        return e;
    e = posix_spawnattr_init(&sa);
    if (e != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return e;
    }
    e = streams_setup(&fa, a, child);
    if (e == 0)
        e = sigstate_setup(&sa, a->new_group);
    if (e == 0) {
        char *const *env = a->envp ? a->envp : environ;
        e = a->search_path ? posix_spawnp(&p->pid, path, &fa, &sa, argv, env)
                           : posix_spawn(&p->pid, path, &fa, &sa, argv, env);
    }
    posix_spawnattr_destroy(&sa);
    posix_spawn_file_actions_destroy(&fa);
    return e;
}

weft_proc *weft_proc_spawn(const char *path, char *const argv[], const weft_proc_attr *attr)
{
    static const weft_proc_attr defaults;
    const weft_proc_attr *a = attr ? attr : &defaults;
    if (slow(!path || !argv || !attr_ok(a))) {
        errno = EINVAL;
        return NULL;
    }
    struct weft_proc *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->pid = -1;
    p->pidfd = -1;
    list_init(&p->pollers);
    int child[3] = { -1, -1, -1 };
    int e = 0;
    for (int i = 0; i < 3; i++) {
        p->fd[i] = -1;
        if (a->mode[i] != WEFT_PROC_PIPE || e != 0)
            continue;
        int fds[2];
        e = pipe_high(fds);
        if (e == 0) {
            p->fd[i] = fds[i == 0];     /* the parent writes stdin, reads the others */
            child[i] = fds[i != 0];
        }
    }
    if (e == 0)
        e = start(p, path, argv, a, child);
    for (int i = 0; i < 3; i++)
        close_quiet(child[i]);
    if (e == 0) {
        /* Our child, not yet reaped: its pid cannot have been reused. */
        p->pidfd = (int)syscall(SYS_pidfd_open, (long)p->pid, 0L);
        if (p->pidfd < 0 && errno == ENOSYS) {
            p->pidfd = -1;      /* waits poll waitpid instead */
        } else if (p->pidfd < 0) {
            e = errno;
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    if (e != 0) {
        for (int i = 0; i < 3; i++)
            close_quiet(p->fd[i]);
        free(p);
        errno = e;
        return NULL;
    }
    const char *cmd = argv[0] ? argv[0] : path;
    snprintf(p->label, sizeof p->label, "pid %ld %s", (long)p->pid, cmd);
    return p;
}

/* ---- accessors -------------------------------------------------------------------------- */

pid_t weft_proc_pid(const weft_proc *p)
{
    if (!p) {
        errno = EINVAL;
        return -1;
    }
    return p->pid;
}

static int stream_fd(const weft_proc *p, int i)
{
    if (!p) {
        errno = EINVAL;
        return -1;
    }
    return p->fd[i];
}

int weft_proc_stdin(const weft_proc *p) { return stream_fd(p, 0); }
int weft_proc_stdout(const weft_proc *p) { return stream_fd(p, 1); }
int weft_proc_stderr(const weft_proc *p) { return stream_fd(p, 2); }

int weft_proc_close_pipe(weft_proc *p, int stream)
{
    if (!p || stream < 0 || stream > 2) {
        errno = EINVAL;
        return -1;
    }
    int fd = p->fd[stream];
    if (fd < 0) {
        errno = EBADF;
        return -1;
    }
    p->fd[stream] = -1;
    return weft_close(fd);
}

/* ---- wait ------------------------------------------------------------------------------- */

/* Reap the child if it has ended: 1 (p->status set), 0 (still running), or an errno value
 * negated (ECHILD: reaped by someone else). */
static int reap_now(struct weft_proc *p)
{
    if (p->reaped)
        return 1;
    int st;
    pid_t r;
    while ((r = waitpid(p->pid, &st, WNOHANG)) < 0 && errno == EINTR)
        ;
    if (r < 0)
        return -errno;
    if (r == 0)
        return 0;
    p->reaped = 1;
    p->status = st;
    return 1;
}

/* Without a pidfd: park on p->pollers until a timer that doubles from 1 ms to 64 ms, then
 * look again (*woken counts the rounds). 0 (look again) or an errno value; EBADF when p was
 * freed meanwhile (weft_proc_free wakes p->pollers so: p must not be touched then). */
static int park_poll(struct sched *s, struct weft_proc *p, int64_t deadline, int *woken)
{
    struct weft_task *t = s->cur;
    int shift = *woken < 6 ? *woken : 6;
    int64_t tick = weft_now() + ((int64_t)1 << shift);
    int64_t d = deadline >= 0 && deadline < tick ? deadline : tick;
    t->wait_obj = p;
    t->wait_info = proc_wait_info;
    int e = weft_sched_park(s, &p->pollers, 0, WAIT_PROC, d);
    t->wait_obj = NULL;
    t->wait_info = NULL;
    if (e == ETIMEDOUT) {
        int64_t now = weft_now();
        int mine = (deadline >= 0 && now >= deadline) || (t->deadline >= 0 && now >= t->deadline);
        if (!mine) {
            ++*woken;
            e = 0;
        }
    }
    return e;
}

/* Park the running task on p's pidfd until it is readable (the child ended), the deadline
 * passes or a cancel comes. Returns 0 (look again) or an errno value; EBADF when the pidfd
 * was closed meanwhile (p freed by another task: p must not be touched then). */
static int park_pidfd(struct sched *s, struct weft_proc *p, int64_t deadline, int *woken)
{
    struct weft_task *t = s->cur;
    if (p->pidfd < 0)
        return park_poll(s, p, deadline, woken);
    struct fdent *f = weft_fd_get(s, p->pidfd);
    if (!f)
        return errno;
    uint32_t seq = f->seq;
    int e = weft_reactor_arm(s, f, p->pidfd, 0);
    if (e != 0)
        return e;
    t->wait_obj = p;
    t->wait_info = proc_wait_info;
    e = weft_sched_park(s, &f->waiters[DIR_READ], *woken, WAIT_PROC, deadline);
    t->wait_obj = NULL;     /* when the park failed at once (a wake clears them too) */
    t->wait_info = NULL;
    if (f->seq != seq)
        return EBADF;
    *woken = e == 0;
    return e;
}

/* Let the next task waiting on p's pidfd look too: the reactor wakes one per event. */
static void pass_on(struct sched *s, struct weft_proc *p)
{
    struct fdent *f = p->pidfd >= 0 ? weft_fd_lookup(s, p->pidfd) : NULL;
    if (f)
        weft_reactor_pass(s, f, DIR_READ);
}

/* Outside any task: poll the pidfd until the deadline; 0 (look again) or an errno value. */
static int block_pidfd(struct weft_proc *p, int64_t deadline)
{
    int ms = -1;
    if (deadline >= 0) {
        int64_t left = deadline - weft_now();
        if (left <= 0)
            return ETIMEDOUT;
        ms = left > 1000000 ? 1000000 : (int)left;
    }
    if (p->pidfd < 0 && ms < 0) {
        int st;
        pid_t r = waitpid(p->pid, &st, 0);
        if (r < 0)
            return errno;
        p->reaped = 1;
        p->status = st;
        return 0;
    }
    if (p->pidfd < 0 && ms > 10)
        ms = 10;                /* no pidfd: look every 10 ms */
    struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };
    int n = weft_sys_poll(&pfd, p->pidfd >= 0, ms);
    if (n < 0)
        return errno;
    return n == 0 && deadline >= 0 && weft_now() >= deadline ? ETIMEDOUT : 0;
}

int weft_proc_reap(struct weft_proc *p, int64_t deadline, int hard)
{
    struct sched *s = weft_sched_tls;
    struct weft_task *t = s ? s->cur : NULL;
    int woken = 0;
    for (;;) {
        int r = reap_now(p);
        if (r != 0) {
            if (woken)
                pass_on(s, p);
            return r > 0 ? 0 : -r;
        }
        if (deadline >= 0 && deadline <= weft_now())
            return ETIMEDOUT;
        int e;
        if (!t) {
            e = block_pidfd(p, deadline);
        } else if (!hard) {
            e = park_pidfd(s, p, deadline, &woken);
        } else {
            unsigned char had = t->flags & TF_CANCELLED;
            int64_t scope = t->deadline;
            t->flags &= (unsigned char)~TF_CANCELLED;
            t->deadline = -1;
            e = park_pidfd(s, p, -1, &woken);
            t->flags |= had;    /* a cancel that came meanwhile has set the flag itself */
            t->deadline = scope;
            if (e == ECANCELED)
                e = 0;
        }
        if (e == EBADF)
            return e;
        if (e != 0 && e != EAGAIN) {
            if (woken)
                pass_on(s, p);
            return e;
        }
    }
}

int weft_proc_wait(weft_proc *p, int *status, int64_t deadline)
{
    if (!p) {
        errno = EINVAL;
        return -1;
    }
    int e = weft_proc_reap(p, deadline, 0);
    if (e != 0) {
        errno = e;
        return -1;
    }
    if (status)
        *status = p->status;
    return 0;
}

/* Unreaped, the child's pid cannot name another process: kill(2) is as safe as the pidfd,
 * unless someone else reaps it behind weft (then only the pidfd is). */
static int send_signal(struct weft_proc *p, int sig)
{
    if (p->pidfd < 0)
        return kill(p->pid, sig);
    return syscall(SYS_pidfd_send_signal, (long)p->pidfd, (long)sig, NULL, 0L) == 0 ? 0 : -1;
}

int weft_proc_kill(weft_proc *p, int sig)
{
    if (!p) {
        errno = EINVAL;
        return -1;
    }
    if (p->reaped) {
        errno = ESRCH;
        return -1;
    }
    return send_signal(p, sig);
}

int weft_proc_free(weft_proc *p)
{
    if (!p)
        return 0;
    int e = errno;
    for (int i = 0; i < 3; i++) {
        if (p->fd[i] >= 0)
            weft_close(p->fd[i]);
    }
    if (!p->reaped) {
        send_signal(p, SIGKILL);
        weft_proc_reap(p, -1, 1);
    }
    if (p->pidfd >= 0) {
        weft_close(p->pidfd);   /* tasks still waiting on it get EBADF */
    } else {
        struct sched *s = weft_sched_tls;
        while (s && weft_sched_wake_one(s, &p->pollers, EBADF))
            ;
    }
    free(p);
    errno = e;
    return 0;
}

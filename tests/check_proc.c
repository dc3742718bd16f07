/* Child processes (src/proc.c): spawn and its errors, pipes in every direction, exit codes
 * and signals, waits with deadlines and cancels, kill through the pidfd, weft_proc_run with
 * big streams both ways and a deadline, and the rule that no handle leaves a zombie. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iotest.h"

/* Children of this process that are zombies, counted from /proc. */
static int zombie_children(void)
{
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        const char *rp = strrchr(buf, ')');     /* the command may hold spaces */
        char state;
        long ppid;
        if (rp && sscanf(rp + 1, " %c %ld", &state, &ppid) == 2 && ppid == (long)getpid() &&
            state == 'Z')
            n++;
    }
    closedir(d);
    return n;
}

/* Every test ends with no child left unreaped. */
static void ck_assert_no_children(void)
{
    ck_assert_int_eq(zombie_children(), 0);
    errno = 0;
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}

/* A pid that has been reaped (by weft) is no child of ours any more. */
static void ck_assert_reaped(pid_t pid)
{
    errno = 0;
    ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
    ck_assert_int_eq(errno, ECHILD);
}

static int64_t in_ms(int64_t ms)
{
    return weft_now() + ms;
}

#define SH(script) ((char *const[]){ "sh", "-c", (char *)(script), NULL })

static weft_proc *spawn_sh(const char *script, int in, int out, int err)
{
    weft_proc_attr a = { .mode = { in, out, err } };
    weft_proc *p = weft_proc_spawn("/bin/sh", SH(script), &a);
    ck_assert_msg(p != NULL, "spawn %s: %s", script, strerror(errno));
    return p;
}

/* Read fd to EOF (weft_read: parks in a task) into a string the caller frees. */
static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    for (;;) {
        if (cap - len < 2) {
            cap *= 2;
            s = realloc(s, cap);
            ck_assert_ptr_nonnull(s);
        }
        ssize_t n = weft_read(fd, s + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_msg(n >= 0, "read: %s", strerror(errno));
        if (n == 0)
            break;
        len += (size_t)n;
    }
    s[len] = '\0';
    return s;
}

static int wait_status(weft_proc *p)
{
    int st = -1;
    ck_assert_msg(weft_proc_wait(p, &st, in_ms(30000)) == 0, "wait: %s", strerror(errno));
    return st;
}

#define ck_assert_exited(st, code)                                                          \
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == (code), "status %#x, want exit %d",   \
                  (unsigned)(st), (code))
#define ck_assert_killed(st, sig)                                                           \
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == (sig), "status %#x, want signal %d",   \
                  (unsigned)(st), (sig))

/* ---- spawn -------------------------------------------------------------------------------- */

START_TEST(bad_input_gives_einval)
{
    char *const argv[] = { "true", NULL };
    ck_assert_fails(weft_proc_spawn(NULL, argv, NULL), EINVAL);
    ck_assert_fails(weft_proc_spawn("/bin/true", NULL, NULL), EINVAL);
    weft_proc_attr a = { .mode = { 0, 5, 0 } };
    ck_assert_fails(weft_proc_spawn("/bin/true", argv, &a), EINVAL);
    a = (weft_proc_attr){ .mode = { -1, 0, 0 } };
    ck_assert_fails(weft_proc_spawn("/bin/true", argv, &a), EINVAL);
    a = (weft_proc_attr){ .mode = { 0, WEFT_PROC_STDOUT, 0 } };
    ck_assert_fails(weft_proc_spawn("/bin/true", argv, &a), EINVAL);
    a = (weft_proc_attr){ .mode = { WEFT_PROC_FD, 0, 0 }, .fd = { -1, 0, 0 } };
    ck_assert_fails(weft_proc_spawn("/bin/true", argv, &a), EINVAL);
    ck_assert_fails(weft_proc_wait(NULL, NULL, -1), EINVAL);
    ck_assert_fails(weft_proc_kill(NULL, SIGTERM), EINVAL);
    ck_assert_fails(weft_proc_pid(NULL), EINVAL);
    ck_assert_fails(weft_proc_stdout(NULL), EINVAL);
    ck_assert_int_eq(weft_proc_free(NULL), 0);
    weft_proc_result r;
    ck_assert_fails(weft_proc_run("/bin/true", argv, NULL, NULL, 1, &r, -1), EINVAL);
    ck_assert_ptr_null(r.out);
    ck_assert_fails(weft_proc_run("/bin/true", argv, NULL, NULL, 0, NULL, -1), EINVAL);

    weft_proc *p = weft_proc_spawn("/bin/true", argv, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_fails(weft_proc_close_pipe(p, 3), EINVAL);
    ck_assert_fails(weft_proc_close_pipe(p, 1), EBADF);     /* inherited: no pipe */
    ck_assert_int_eq(weft_proc_stdin(p), -1);
    ck_assert_exited(wait_status(p), 0);
    ck_assert_fails(weft_proc_kill(p, SIGTERM), ESRCH);     /* reaped */
    ck_assert_int_eq(weft_proc_free(p), 0);
    ck_assert_no_children();
}
END_TEST

/* posix_spawn learns of a failed exec from the child (which shares its memory until the
 * exec). Valgrind runs that clone as a fork, so there the failure shows as exit 127. */
static void ck_spawn_fails(const char *path, int search, int err)
{
    weft_proc_attr a = { .search_path = search };
    errno = 0;
    weft_proc *p = weft_proc_spawn(path, (char *const[]){ (char *)path, NULL }, &a);
    if (p && UNDER_VALGRIND) {
        ck_assert_exited(wait_status(p), 127);
        weft_proc_free(p);
        return;
    }
    ck_assert_msg(!p && errno == err, "spawn %s: %p, %s; want %s", path, (void *)p,
                  strerror(errno), strerror(err));
}

START_TEST(failed_exec_comes_back_as_errno)
{
    ck_spawn_fails("/nonexistent/program", 0, ENOENT);
    ck_spawn_fails("weft-no-such-program", 1, ENOENT);
    ck_spawn_fails("true", 0, ENOENT);          /* no PATH search asked for */
    ck_spawn_fails("/etc/passwd", 0, EACCES);   /* not executable */
    ck_spawn_fails("/", 0, EACCES);
    weft_proc_attr a = { .cwd = "/nonexistent/dir" };
    weft_proc *p = weft_proc_spawn("/bin/true", (char *const[]){ "true", NULL }, &a);
    if (p && UNDER_VALGRIND) {
        wait_status(p);
        weft_proc_free(p);
    } else {
        ck_assert_msg(!p && errno == ENOENT, "cwd missing: %s", strerror(errno));
    }
    ck_assert_no_children();
}
END_TEST

/* ---- pipes, statuses -------------------------------------------------------------------- */

TASK_TEST(pipes_in_all_three_directions)
{
    weft_proc *p = spawn_sh("read x; echo \"out:$x\"; echo \"err:$x\" >&2; exit 3",
                            WEFT_PROC_PIPE, WEFT_PROC_PIPE, WEFT_PROC_PIPE);
    int in = weft_proc_stdin(p);
    ck_assert_int_gt(in, 2);
    ck_assert_int_eq(fcntl(in, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    ck_assert_int_eq(weft_write(in, "hello\n", 6), 6);
    ck_assert_int_eq(weft_proc_close_pipe(p, 0), 0);
    ck_assert_fails(weft_proc_close_pipe(p, 0), EBADF);
    char *out = read_all(weft_proc_stdout(p));
    char *err = read_all(weft_proc_stderr(p));
    ck_assert_str_eq(out, "out:hello\n");
    ck_assert_str_eq(err, "err:hello\n");
    free(out);
    free(err);
    ck_assert_exited(wait_status(p), 3);
    int st;
    ck_assert_int_eq(weft_proc_wait(p, &st, 0), 0);          /* again: the same status */
    ck_assert_exited(st, 3);
    pid_t pid = weft_proc_pid(p);
    ck_assert_int_gt(pid, 0);
    weft_proc_free(p);
    ck_assert_reaped(pid);
    ck_assert_no_children();
}

TASK_TEST(exit_codes_and_signals)
{
    weft_proc *p = spawn_sh("exit 7", 0, 0, 0);
    ck_assert_exited(wait_status(p), 7);
    weft_proc_free(p);
    p = spawn_sh("kill -TERM $$", 0, 0, 0);
    ck_assert_killed(wait_status(p), SIGTERM);
    weft_proc_free(p);
    /* The child starts with SIGPIPE at its default even when the parent ignores it. */
    signal(SIGPIPE, SIG_IGN);
    p = spawn_sh("sleep 0.2; echo x", 0, WEFT_PROC_PIPE, 0);
    ck_assert_int_eq(weft_proc_close_pipe(p, 1), 0);
    ck_assert_killed(wait_status(p), SIGPIPE);
    signal(SIGPIPE, SIG_DFL);
    weft_proc_free(p);
    ck_assert_no_children();
}

struct echo_job {
    int i;
    int ok;
};

/* One cat child: write a line, close, read it back. */
static void *echo_child(void *arg)
{
    struct echo_job *j = arg;
    weft_proc_attr a = { .mode = { WEFT_PROC_PIPE, WEFT_PROC_PIPE, WEFT_PROC_INHERIT } };
    weft_proc *p = weft_proc_spawn("/bin/cat", (char *const[]){ "cat", NULL }, &a);
    if (!p)
        return NULL;
    char line[32], got[32];
    int n = snprintf(line, sizeof line, "child %d\n", j->i);
    int st = -1;
    ssize_t r = -1;
    if (weft_write(weft_proc_stdin(p), line, (size_t)n) == n && weft_proc_close_pipe(p, 0) == 0)
        r = weft_read_full(weft_proc_stdout(p), got, sizeof got);
    if (weft_proc_wait(p, &st, -1) == 0 && r == n && memcmp(got, line, (size_t)n) == 0 &&
        WIFEXITED(st) && WEXITSTATUS(st) == 0)
        j->ok = 1;
    weft_proc_free(p);
    return NULL;
}

START_TEST(hundred_concurrent_children_with_pipes)
{
    int n = UNDER_VALGRIND ? 10 : 100;
    struct echo_job *j = calloc((size_t)n, sizeof *j);
    ck_assert_ptr_nonnull(j);
    for (int i = 0; i < n; i++) {
        j[i].i = i;
        ck_assert_ptr_nonnull(weft_go(echo_child, &j[i]));
    }
    ck_assert_int_eq(weft_run(), 0);
    for (int i = 0; i < n; i++)
        ck_assert_msg(j[i].ok, "child %d failed", i);
    free(j);
    ck_assert_no_children();
}
END_TEST

/* ---- weft_proc_run ---------------------------------------------------------------------- */

#define BIG (1 << 20)

static void run_big_through_cat(void)
{
    char *in = malloc(BIG);
    ck_assert_ptr_nonnull(in);
    for (size_t i = 0; i < BIG; i++)
        in[i] = (char)('a' + i % 23);
    weft_proc_result r;
    /* cat copies to stdout and (tee) to stderr: 1 MiB each way at once, more than a pipe
     * holds, while 1 MiB is still being fed. */
    int rc = weft_proc_run("/bin/sh", SH("tee /dev/stderr"), NULL, in, BIG, &r, in_ms(60000));
    ck_assert_msg(rc == 0, "run: %s", strerror(errno));
    ck_assert_exited(r.status, 0);
    ck_assert_uint_eq(r.out_len, BIG);
    ck_assert_uint_eq(r.err_len, BIG);
    ck_assert(memcmp(r.out, in, BIG) == 0);
    ck_assert(memcmp(r.err, in, BIG) == 0);
    ck_assert_int_eq(r.out[r.out_len], '\0');
    free(r.out);
    free(r.err);
    free(in);
}

TASK_TEST(run_moves_a_mebibyte_each_way_at_once)
{
    run_big_through_cat();
    ck_assert_no_children();
}

START_TEST(run_outside_a_task)
{
    run_big_through_cat();
    weft_proc_result r;
    ck_assert_int_eq(weft_proc_run("/bin/sh", SH("echo out; echo err >&2; exit 2"), NULL, NULL,
                                   0, &r, -1), 0);
    ck_assert_exited(r.status, 2);
    ck_assert_str_eq(r.out, "out\n");
    ck_assert_str_eq(r.err, "err\n");
    free(r.out);
    free(r.err);
    int rc = weft_proc_run("/nonexistent", (char *const[]){ "x", NULL }, NULL, NULL, 0, &r, -1);
    if (UNDER_VALGRIND)     /* see ck_spawn_fails */
        ck_assert(rc == 0 && WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127);
    else
        ck_assert(rc == -1 && errno == ENOENT && !r.out && !r.err);
    free(r.out);
    free(r.err);
    ck_assert_no_children();
}
END_TEST

TASK_TEST(run_kills_the_child_at_the_deadline)
{
    weft_proc_result r;
    int64_t t0 = weft_now();
    ck_assert_fails(weft_proc_run("/bin/sh", SH("echo started; exec sleep 10"), NULL, NULL, 0, &r,
                                  in_ms(300)), ETIMEDOUT);
    ck_assert_elapsed(t0, 300, 8000);
    ck_assert_killed(r.status, SIGKILL);
    ck_assert_str_eq(r.out, "started\n");       /* what came before the deadline is kept */
    free(r.out);
    free(r.err);
    /* A deadline already past: the child is started, killed and reaped. */
    ck_assert_fails(weft_proc_run("/bin/sleep", (char *const[]){ "sleep", "10", NULL }, NULL,
                                  NULL, 0, &r, weft_now() - 1), ETIMEDOUT);
    free(r.out);
    free(r.err);
    ck_assert_no_children();
}

/* A grandchild keeps the pipes open after the child has exited: the deadline still ends it. */
TASK_TEST(run_deadline_with_pipes_held_by_a_grandchild)
{
    weft_proc_result r;
    ck_assert_fails(weft_proc_run("/bin/sh", SH("sleep 3 & exit 0"), NULL, NULL, 0, &r,
                                  in_ms(200)), ETIMEDOUT);
    ck_assert_exited(r.status, 0);
    free(r.out);
    free(r.err);
    ck_assert_no_children();
}

static void *run_sleep(void *arg)
{
    weft_proc_result *r = arg;
    int rc = weft_proc_run("/bin/sleep", (char *const[]){ "sleep", "10", NULL }, NULL, NULL, 0,
                           r, -1);
    return (void *)(intptr_t)(rc == 0 ? 0 : errno);
}

TASK_TEST(run_cancelled_kills_and_reaps)
{
    weft_proc_result r;
    weft_task *t = weft_go(run_sleep, &r);
    ck_assert_ptr_nonnull(t);
    weft_sleep(100);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, ECANCELED);
    ck_assert_killed(r.status, SIGKILL);
    free(r.out);
    free(r.err);
    ck_assert_no_children();
}

TASK_TEST(run_with_attr_streams)
{
    /* stdout captured, stderr merged into it, stdin fed. */
    weft_proc_attr a = { .mode = { 0, WEFT_PROC_PIPE, WEFT_PROC_STDOUT } };
    weft_proc_result r;
    ck_assert_int_eq(weft_proc_run("/bin/sh", SH("read x; echo \"1$x\"; echo \"2$x\" >&2"), &a,
                                   "z\n", 2, &r, in_ms(30000)), 0);
    ck_assert_str_eq(r.out, "1z\n2z\n");
    ck_assert_ptr_null(r.err);
    free(r.out);
    /* A child that stops reading: what is left of the input is dropped, no SIGPIPE here. */
    char *big = calloc(1, BIG);
    ck_assert_ptr_nonnull(big);
    ck_assert_int_eq(weft_proc_run("/bin/sh", SH("exec 0<&-; echo done"), NULL, big, BIG, &r,
                                   in_ms(30000)), 0);
    ck_assert_str_eq(r.out, "done\n");
    free(big);
    free(r.out);
    free(r.err);
    ck_assert_no_children();
}

/* ---- wait, kill, free ------------------------------------------------------------------- */

TASK_TEST(wait_timeout_leaves_the_child_waitable)
{
    weft_proc *p = spawn_sh("exec sleep 10", 0, 0, 0);
    int st = 12345;
    int64_t t0 = weft_now();
    ck_assert_fails(weft_proc_wait(p, &st, in_ms(100)), ETIMEDOUT);
    ck_assert_elapsed(t0, 100, 5000);
    ck_assert_int_eq(st, 12345);
    ck_assert_fails(weft_proc_wait(p, &st, weft_now() - 1), ETIMEDOUT);    /* past: checks */
    ck_assert_int_eq(weft_proc_kill(p, 0), 0);                              /* alive */
    ck_assert_int_eq(weft_proc_kill(p, SIGUSR1), 0);
    ck_assert_killed(wait_status(p), SIGUSR1);
    ck_assert_fails(weft_proc_kill(p, SIGUSR1), ESRCH);
    weft_proc_free(p);
    ck_assert_no_children();
}

TASK_TEST(wait_in_a_deadline_scope)
{
    weft_proc *p = spawn_sh("exec sleep 10", 0, 0, 0);
    int64_t old = weft_set_task_deadline(in_ms(100));
    ck_assert_fails(weft_proc_wait(p, NULL, -1), ETIMEDOUT);
    weft_set_task_deadline(old);
    weft_proc_free(p);                          /* kills and reaps */
    ck_assert_no_children();
}

struct waiter_arg {
    weft_proc *p;
    int err;
    int status;
};

static void *waiter(void *arg)
{
    struct waiter_arg *w = arg;
    w->err = weft_proc_wait(w->p, &w->status, -1) == 0 ? 0 : errno;
    return NULL;
}

/* Free p from a task that is cancelled already. */
static void *cancelled_free(void *arg)
{
    weft_cancel(weft_self());
    weft_proc_free(arg);
    return NULL;
}

TASK_TEST(wait_cancelled_leaves_the_child_alive)
{
    weft_proc *p = spawn_sh("exec sleep 10", 0, 0, 0);
    struct waiter_arg w = { p, -1, 0 };
    weft_task *t = weft_go(waiter, &w);
    weft_sleep(50);
    ck_assert_int_eq(w.err, -1);                /* parked */
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(w.err, ECANCELED);
    ck_assert_int_eq(weft_proc_kill(p, 0), 0);
    /* A cancelled task frees it: killed and reaped all the same. */
    t = weft_go(waiter, &w);
    weft_sleep(20);
    pid_t pid = weft_proc_pid(p);
    weft_task *f = weft_go(cancelled_free, p);
    ck_assert_int_eq(weft_join(f, NULL), 0);
    ck_assert_reaped(pid);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    /* The waiter saw the child reaped (its status), or its pidfd closed. */
    ck_assert_msg(w.err == EBADF || (w.err == 0 && WIFSIGNALED(w.status)), "waiter: %d", w.err);
    ck_assert_no_children();
}

TASK_TEST(several_tasks_wait_for_one_child)
{
    weft_proc *p = spawn_sh("sleep 0.2; exit 5", 0, 0, 0);
    struct waiter_arg w[3];
    weft_task *t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter_arg){ p, -1, 0 };
        t[i] = weft_go(waiter, &w[i]);
    }
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
        ck_assert_int_eq(w[i].err, 0);
        ck_assert_exited(w[i].status, 5);
    }
    weft_proc_free(p);
    ck_assert_no_children();
}

START_TEST(wait_outside_a_task_blocks)
{
    weft_proc *p = weft_proc_spawn("/bin/sleep", (char *const[]){ "sleep", "10", NULL }, NULL);
    ck_assert_ptr_nonnull(p);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_proc_wait(p, NULL, in_ms(100)), ETIMEDOUT);
    ck_assert_elapsed(t0, 100, 5000);
    ck_assert_int_eq(weft_proc_kill(p, SIGTERM), 0);
    int st;
    ck_assert_int_eq(weft_proc_wait(p, &st, -1), 0);
    ck_assert_killed(st, SIGTERM);
    weft_proc_free(p);
    ck_assert_no_children();
}
END_TEST

static void free_leaves_no_zombie(void)
{
    /* Running: killed and reaped. */
    weft_proc *p = weft_proc_spawn("/bin/sleep", (char *const[]){ "sleep", "10", NULL }, NULL);
    ck_assert_ptr_nonnull(p);
    pid_t pid = weft_proc_pid(p);
    ck_assert_int_eq(weft_proc_free(p), 0);
    ck_assert_reaped(pid);
    /* Ended and not reaped (a zombie until the free). */
    p = weft_proc_spawn("/bin/true", (char *const[]){ "true", NULL }, NULL);
    ck_assert_ptr_nonnull(p);
    pid = weft_proc_pid(p);
    siginfo_t si;
    ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    ck_assert_int_eq(zombie_children(), 1);
    ck_assert_int_eq(weft_proc_free(p), 0);
    ck_assert_reaped(pid);
    ck_assert_no_children();
}

TASK_TEST(free_of_an_unreaped_child_in_a_task)
{
    free_leaves_no_zombie();
}

START_TEST(free_of_an_unreaped_child_outside_a_task)
{
    free_leaves_no_zombie();
}
END_TEST

/* A program that reaps weft's child behind its back: the wait says so, the free still works. */
TASK_TEST(wait_gives_echild_when_someone_else_reaped)
{
    weft_proc *p = weft_proc_spawn("/bin/true", (char *const[]){ "true", NULL }, NULL);
    ck_assert_ptr_nonnull(p);
    int st;
    ck_assert_int_eq(waitpid(weft_proc_pid(p), &st, 0), weft_proc_pid(p));
    ck_assert_fails(weft_proc_wait(p, &st, in_ms(5000)), ECHILD);
    ck_assert_int_eq(weft_proc_free(p), 0);
    ck_assert_no_children();
}

/* ---- environment, directory, streams ---------------------------------------------------- */

TASK_TEST(env_cwd_path_search_and_group)
{
    char tmpl[] = "/tmp/weft-proc-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(tmpl, real));
    char *envp[] = { "WEFT_TEST_VAR=hello there", "PATH=/usr/bin:/bin", NULL };
    weft_proc_attr a = { .mode = { 0, WEFT_PROC_PIPE, 0 }, .envp = envp, .cwd = real,
                         .search_path = 1 };
    weft_proc *p = weft_proc_spawn("sh", SH("echo \"$WEFT_TEST_VAR\"; pwd -P; echo ${HOME-unset}"),
                                   &a);
    ck_assert_ptr_nonnull(p);
    char *out = read_all(weft_proc_stdout(p));
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "hello there\n%s\nunset\n", real);
    ck_assert_str_eq(out, want);
    free(out);
    ck_assert_exited(wait_status(p), 0);
    weft_proc_free(p);
    /* Inherited environment: the parent's own. */
    setenv("WEFT_TEST_VAR", "inherited", 1);
    weft_proc_result r;
    ck_assert_int_eq(weft_proc_run("/bin/sh", SH("echo $WEFT_TEST_VAR"), NULL, NULL, 0, &r, -1), 0);
    ck_assert_str_eq(r.out, "inherited\n");
    free(r.out);
    free(r.err);
    unsetenv("WEFT_TEST_VAR");
    /* new_group: the child leads a process group of its own. */
    weft_proc_attr g = { .new_group = 1 };
    p = weft_proc_spawn("/bin/sleep", (char *const[]){ "sleep", "10", NULL }, &g);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(getpgid(weft_proc_pid(p)), weft_proc_pid(p));
    weft_proc_free(p);
    p = weft_proc_spawn("/bin/sleep", (char *const[]){ "sleep", "10", NULL }, NULL);
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(getpgid(weft_proc_pid(p)), getpgrp());
    weft_proc_free(p);
    ck_assert_int_eq(rmdir(real), 0);
    ck_assert_no_children();
}

TASK_TEST(devnull_inherit_and_fd_modes)
{
    /* stdin /dev/null: cat sees EOF at once; stderr /dev/null: nothing comes back. */
    weft_proc *p = spawn_sh("cat; echo gone >&2; echo end", WEFT_PROC_DEVNULL, WEFT_PROC_PIPE,
                            WEFT_PROC_DEVNULL);
    char *out = read_all(weft_proc_stdout(p));
    ck_assert_str_eq(out, "end\n");
    free(out);
    ck_assert_exited(wait_status(p), 0);
    weft_proc_free(p);

    /* Inherit: the child writes to our own fd 1 (a pipe here). */
    int pp[2];
    ck_assert_int_eq(pipe2(pp, O_CLOEXEC), 0);
    fflush(stdout);
    int saved = dup(1);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_eq(dup2(pp[1], 1), 1);
    p = spawn_sh("echo inherited", 0, WEFT_PROC_INHERIT, 0);
    ck_assert_exited(wait_status(p), 0);
    weft_proc_free(p);
    ck_assert_int_eq(dup2(saved, 1), 1);
    close(saved);

    /* An fd of ours, given for stdout. */
    weft_proc_attr a = { .mode = { 0, WEFT_PROC_FD, 0 }, .fd = { 0, pp[1], 0 } };
    p = weft_proc_spawn("/bin/sh", SH("echo given"), &a);
    ck_assert_ptr_nonnull(p);
    ck_assert_exited(wait_status(p), 0);
    weft_proc_free(p);
    close(pp[1]);
    out = read_all(pp[0]);
    ck_assert_str_eq(out, "inherited\ngiven\n");
    free(out);
    weft_close(pp[0]);
    ck_assert_no_children();
}

/* weft's own fds (the epoll fd, the debug socket, other pipes) stay out of the child. */
TASK_TEST(no_fd_of_the_parent_leaks_into_the_child)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/weft-proc-%ld.sock", (long)getpid());
    int listening = weft_debug_listen(path) == 0;
    weft_proc *other = spawn_sh("exec sleep 10", WEFT_PROC_PIPE, WEFT_PROC_PIPE, WEFT_PROC_PIPE);
    ck_assert_ok(weft_fdwait(weft_proc_stdin(other), WEFT_WRITE, -1));   /* the reactor is made */
    weft_proc *p = weft_proc_spawn("/bin/ls", (char *const[]){ "ls", "-l", "/proc/self/fd", NULL },
                                   &(weft_proc_attr){ .mode = { WEFT_PROC_DEVNULL, WEFT_PROC_PIPE,
                                                                WEFT_PROC_DEVNULL } });
    ck_assert_ptr_nonnull(p);
    char *out = read_all(weft_proc_stdout(p));
    /* What the test harness leaves open may be there; nothing of weft's may. */
    ck_assert_msg(!strstr(out, "eventpoll") && !strstr(out, "pidfd") && !strstr(out, "socket:"),
                  "child's fds:\n%s", out);
    for (int i = 0; i < 3; i++) {
        struct stat st;
        int fd = i == 0 ? weft_proc_stdin(other) : i == 1 ? weft_proc_stdout(other)
                                                           : weft_proc_stderr(other);
        ck_assert_int_eq(fstat(fd, &st), 0);
        char ino[64];
        snprintf(ino, sizeof ino, "pipe:[%lu]", (unsigned long)st.st_ino);
        ck_assert_msg(!strstr(out, ino), "%s leaked:\n%s", ino, out);
    }
    free(out);
    ck_assert_exited(wait_status(p), 0);
    weft_proc_free(p);
    weft_proc_free(other);
    if (listening)
        unlink(path);
    ck_assert_no_children();
}

struct reader_arg {
    int fd;
    int err;
};

static void *pipe_reader(void *arg)
{
    struct reader_arg *r = arg;
    char c;
    r->err = weft_read(r->fd, &c, 1) < 0 ? errno : 0;
    return NULL;
}

TASK_TEST(reading_task_woken_by_close_pipe)
{
    weft_proc *p = spawn_sh("exec sleep 10", 0, WEFT_PROC_PIPE, 0);
    struct reader_arg r = { weft_proc_stdout(p), -1 };
    weft_task *t = weft_go(pipe_reader, &r);
    weft_sleep(20);
    ck_assert_int_eq(r.err, -1);                /* parked in weft_read */
    ck_assert_int_eq(weft_proc_close_pipe(p, 1), 0);
    ck_assert_int_eq(weft_proc_stdout(p), -1);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(r.err, EBADF);
    weft_proc_free(p);
    ck_assert_no_children();
}

/* ---- the dump --------------------------------------------------------------------------- */

static char *dump_string(int flags)
{
    return test_dump(flags | WEFT_DUMP_NO_BACKTRACE);
}

static void *named_waiter(void *arg)
{
    weft_set_name(NULL, "reaper");
    return waiter(arg);
}

TASK_TEST(dump_shows_proc_wait)
{
    weft_proc *p = weft_proc_spawn("/bin/sleep", (char *const[]){ "sleep", "10", NULL }, NULL);
    ck_assert_ptr_nonnull(p);
    struct waiter_arg w = { p, -1, 0 };
    weft_task *t = weft_go(named_waiter, &w);
    weft_sleep(20);
    char want[96];
    snprintf(want, sizeof want, "\"reaper\" [proc-wait wait \"pid %ld sleep\"",
             (long)weft_proc_pid(p));
    char *d = dump_string(0);
    ck_assert_msg(strstr(d, want) != NULL, "expected %s in:\n%s", want, d);
    free(d);
    d = dump_string(WEFT_DUMP_JSON);
    snprintf(want, sizeof want, "\"name\":\"pid %ld sleep\"", (long)weft_proc_pid(p));
    ck_assert_msg(strstr(d, "\"state\":\"proc-wait\"") && strstr(d, "\"kind\":\"proc\"") &&
                  strstr(d, "\"op\":\"wait\"") && strstr(d, want), "JSON dump:\n%s", d);
    free(d);
    ck_assert_int_eq(weft_proc_kill(p, SIGKILL), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_killed(w.status, SIGKILL);
    weft_proc_free(p);
    ck_assert_no_children();
}

/* Last: with CK_FORK=no (Valgrind) every test ran in this process; none left a zombie. */
START_TEST(no_zombie_children_at_the_end)
{
    ck_assert_no_children();
}
END_TEST

static Suite *proc_suite(void)
{
    Suite *s = suite_create("proc");
    ADD_TEST(s, bad_input_gives_einval, 10);
    ADD_TEST(s, failed_exec_comes_back_as_errno, 10);
    ADD_TEST(s, pipes_in_all_three_directions, 10);
    ADD_TEST(s, exit_codes_and_signals, 10);
    ADD_TEST(s, hundred_concurrent_children_with_pipes, 60);
    ADD_TEST(s, run_moves_a_mebibyte_each_way_at_once, 60);
    ADD_TEST(s, run_outside_a_task, 60);
    ADD_TEST(s, run_kills_the_child_at_the_deadline, 20);
    ADD_TEST(s, run_deadline_with_pipes_held_by_a_grandchild, 20);
    ADD_TEST(s, run_cancelled_kills_and_reaps, 20);
    ADD_TEST(s, run_with_attr_streams, 30);
    ADD_TEST(s, wait_timeout_leaves_the_child_waitable, 20);
    ADD_TEST(s, wait_in_a_deadline_scope, 20);
    ADD_TEST(s, wait_cancelled_leaves_the_child_alive, 20);
    ADD_TEST(s, several_tasks_wait_for_one_child, 20);
    ADD_TEST(s, wait_outside_a_task_blocks, 20);
    ADD_TEST(s, free_of_an_unreaped_child_in_a_task, 20);
    ADD_TEST(s, free_of_an_unreaped_child_outside_a_task, 20);
    ADD_TEST(s, wait_gives_echild_when_someone_else_reaped, 10);
    ADD_TEST(s, env_cwd_path_search_and_group, 20);
    ADD_TEST(s, devnull_inherit_and_fd_modes, 20);
    ADD_TEST(s, no_fd_of_the_parent_leaks_into_the_child, 20);
    ADD_TEST(s, reading_task_woken_by_close_pipe, 20);
    ADD_TEST(s, dump_shows_proc_wait, 20);
    ADD_TEST(s, no_zombie_children_at_the_end, 10);
    return s;
}

int main(void)
{
    return test_run(proc_suite());
}

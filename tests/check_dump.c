/* The task dump: states, wait objects and backtraces in text and JSON, the signal dump of a
 * spinning task, the watchdog, and the control socket (same user only). Task functions are
 * extern and never inlined, so the backtraces can be checked for them by name. */
#define _GNU_SOURCE
#include "testutil.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

void *dumptest_sleeper(void *arg);
void *dumptest_reader(void *arg);
void *dumptest_fdwaiter(void *arg);
void *dumptest_joiner(void *arg);
void *dumptest_finisher(void *arg);
void *dumptest_yielder(void *arg);
void *dumptest_newborn(void *arg);
void *dumptest_dumper(void *arg);
void *dumptest_spinner(void *arg);
void *dumptest_stall(void *arg);
void *dumptest_busy_yielder(void *arg);
void *dumptest_client_waiter(void *arg);
char *dumptest_dump_string(int flags);

/* ---- helpers ------------------------------------------------------------------------------ */

/* Everything fd yields until EOF, or until 'marker' has been read (NULL: EOF only), or
 * timeout_ms passes. Returns a malloc'd string. */
static char *read_until(int fd, const char *marker, int timeout_ms)
{
    size_t cap = 4096, len = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    int64_t end = weft_now() + timeout_ms;
    for (;;) {
        s[len] = '\0';
        if (marker && strstr(s, marker))
            break;
        int64_t left = end - weft_now();
        if (left <= 0)
            break;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        if (len + 1024 >= cap) {
            cap *= 2;
            s = realloc(s, cap);
            ck_assert_ptr_nonnull(s);
        }
        ssize_t r = read(fd, s + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    s[len] = '\0';
    return s;
}

NOINLINE char *dumptest_dump_string(int flags)
{
    int m = memfd_create("dump", MFD_CLOEXEC);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(weft_dump(m, flags), 0);
    ck_assert_int_eq(lseek(m, 0, SEEK_SET), 0);
    char *s = read_until(m, NULL, 5000);
    close(m);
    return s;
}

/* A copy of the text block of the task named name (header line to the blank line). */
static char *task_block(const char *dump, const char *name)
{
    char key[80];
    snprintf(key, sizeof key, " \"%s\" [", name);
    for (const char *line = dump; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *eol = strchr(line, '\n');
        const char *k = strstr(line, key);
        if (strncmp(line, "task ", 5) == 0 && k && (!eol || k < eol)) {
            const char *end = strstr(line, "\n\n");
            size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
            char *b = malloc(n + 1);
            ck_assert_ptr_nonnull(b);
            memcpy(b, line, n);
            b[n] = '\0';
            return b;
        }
    }
    ck_abort_msg("no task \"%s\" in the dump:\n%s", name, dump);
    return NULL;
}

#define ck_assert_has(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))
#define ck_assert_lacks(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) == NULL, "did not expect \"%s\" in:\n%s", (needle), (hay))

static int have_python3(void)
{
    return system("python3 -c 'import json' >/dev/null 2>&1") == 0;
}

/* ---- a scheduler with a task in every state ---------------------------------------------- */

static int pfd[2], pfd2[2];
static weft_task *t_sleeper, *t_dumper;
static unsigned long long sleeper_id, dumper_id;    /* the handles go when joined */
static volatile int stop_yielding;
static char *scenario_out;

static int go_fd = -1;     /* when set, the sleeper says it is about to park */

NOINLINE void *dumptest_sleeper(void *arg)
{
    (void)arg;
    if (go_fd >= 0)
        ck_assert_int_eq(write(go_fd, "g", 1), 1);
    weft_sleep(20000);
    return NULL;
}

NOINLINE void *dumptest_reader(void *arg)
{
    (void)arg;
    char c;
    weft_read(pfd[0], &c, 1);
    return NULL;
}

NOINLINE void *dumptest_fdwaiter(void *arg)
{
    (void)arg;
    weft_fdwait(pfd2[0], WEFT_READ, -1);
    return NULL;
}

NOINLINE void *dumptest_joiner(void *arg)
{
    weft_join(arg, NULL);
    return NULL;
}

NOINLINE void *dumptest_finisher(void *arg)
{
    return arg;
}

NOINLINE void *dumptest_yielder(void *arg)
{
    (void)arg;
    while (!stop_yielding)
        weft_yield();
    return NULL;
}

NOINLINE void *dumptest_newborn(void *arg)
{
    return arg;
}

NOINLINE void *dumptest_dumper(void *arg)
{
    weft_sleep(30);     /* everyone else parks meanwhile; the yielder stays runnable */
    weft_attr nb = { .name = "newborn", .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&nb, dumptest_newborn, NULL));
    scenario_out = dumptest_dump_string((int)(intptr_t)arg);
    stop_yielding = 1;
    weft_cancel(t_sleeper);
    ck_assert_int_eq(write(pfd[1], "x", 1), 1);
    ck_assert_int_eq(write(pfd2[1], "x", 1), 1);
    return NULL;
}

/* Run tasks in each state; the dumper dumps with flags. Returns the dump. */
static char *run_scenario(int flags)
{
    ck_assert_int_eq(pipe(pfd), 0);
    ck_assert_int_eq(pipe(pfd2), 0);
    stop_yielding = 0;
    weft_attr a = { .name = "sleeper" };
    t_sleeper = weft_spawn(&a, dumptest_sleeper, NULL);
    sleeper_id = weft_id(t_sleeper);
    weft_attr r = { .name = "reader", .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&r, dumptest_reader, NULL));
    weft_attr f = { .name = "fdwaiter", .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&f, dumptest_fdwaiter, NULL));
    weft_attr j = { .name = "joiner", .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&j, dumptest_joiner, t_sleeper));
    weft_attr fi = { .name = "finisher" };
    weft_task *finisher = weft_spawn(&fi, dumptest_finisher, NULL);
    weft_attr y = { .name = "yielder", .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&y, dumptest_yielder, NULL));
    weft_attr d = { .name = "dumper" };
    t_dumper = weft_spawn(&d, dumptest_dumper, (void *)(intptr_t)flags);
    ck_assert_ptr_nonnull(t_dumper);
    dumper_id = weft_id(t_dumper);
    ck_assert_ptr_nonnull(finisher);
    ck_assert_int_eq(weft_join(t_dumper, NULL), 0);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(weft_join(finisher, NULL), 0);
    ck_assert_int_eq(weft_run(), 0);    /* nothing left: releases the scheduler */
    for (int i = 0; i < 2; i++) {
        close(pfd[i]);
        close(pfd2[i]);
    }
    char *out = scenario_out;
    scenario_out = NULL;
    return out;
}

START_TEST(text_dump_shows_state_wait_and_parking_function_of_each_task)
{
    char *out = run_scenario(0);
    char line[160];
    ck_assert_msg(strncmp(out, "weft dump: pid ", 15) == 0, "summary line first:\n%s", out);
    const char *eol = strchr(out, '\n');
    ck_assert_ptr_nonnull(eol);
    char *summary = strndup(out, (size_t)(eol - out));
    ck_assert_has(summary, "8 tasks: 1 running, 2 runnable, 2 io-wait, 1 sleeping, 1 join-wait, 1 done");
    free(summary);

    char *b = task_block(out, "sleeper");
    ck_assert_has(b, "[sleeping, ");
    ck_assert_has(b, " ms, wakes in ");
    ck_assert_has(b, " dumptest_sleeper+");
    ck_assert_has(b, " weft_sleep");
    ck_assert_has(b, "spawned at ");
    ck_assert_has(b, "check_dump.c:");
    ck_assert_has(b, "stack 131072 bytes, ");
    ck_assert_has(b, " resident (high-water)");
    free(b);

    b = task_block(out, "reader");
    snprintf(line, sizeof line, "[io-wait read fd %d, ", pfd[0]);
    ck_assert_has(b, line);
    ck_assert_has(b, " dumptest_reader+");
    ck_assert_has(b, " weft_read+");
    free(b);

    b = task_block(out, "fdwaiter");
    snprintf(line, sizeof line, "[io-wait read fd %d, ", pfd2[0]);
    ck_assert_has(b, line);
    ck_assert_has(b, " dumptest_fdwaiter+");
    ck_assert_has(b, " weft_fdwait+");
    free(b);

    b = task_block(out, "joiner");
    snprintf(line, sizeof line, "[join-wait task %llu, ", sleeper_id);
    ck_assert_has(b, line);
    ck_assert_has(b, " dumptest_joiner+");
    ck_assert_has(b, " weft_join");
    free(b);

    b = task_block(out, "finisher");
    ck_assert_has(b, "[done]:");
    ck_assert_lacks(b, "#0");
    free(b);

    b = task_block(out, "yielder");
    ck_assert_has(b, "[runnable]:");
    ck_assert_has(b, " dumptest_yielder+");
    ck_assert_has(b, " weft_yield+");
    free(b);

    b = task_block(out, "newborn");
    ck_assert_has(b, "[runnable]:");
    ck_assert_has(b, "(not started)");
    ck_assert_has(b, "never ran");
    ck_assert_has(b, "entry dumptest_newborn (");
    snprintf(line, sizeof line, " by task %llu,", dumper_id);
    ck_assert_has(b, line);
    free(b);

    b = task_block(out, "dumper");
    ck_assert_has(b, "[running, ");
    ck_assert_has(b, " ms without yielding]:");
    ck_assert_has(b, " dumptest_dumper+");
    ck_assert_has(b, "#0  ");
    free(b);

    const char *m = strstr(out, "main context [parked]:\n");
    ck_assert_msg(m != NULL, "main context block:\n%s", out);
    ck_assert_has(m, " weft_join");
    ck_assert_has(m, " run_scenario+");
    ck_assert_has(out, "end of weft dump\n");
    free(out);
}
END_TEST

START_TEST(text_dump_without_backtraces_has_no_frames)
{
    char *out = run_scenario(WEFT_DUMP_NO_BACKTRACE);
    ck_assert_has(out, "[sleeping, ");
    ck_assert_lacks(out, "#0");
    ck_assert_lacks(out, "\"weft-debug\"");
    free(out);
}
END_TEST

/* The JSON is checked by Python's json module: it must parse, and say the same as the text. */
static const char json_checker[] =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "assert d['weft_dump'] == 1 and d['ntasks'] == len(d['tasks'])\n"
    "for t in d['tasks']:\n"
    "    w = t['wait'] or {}\n"
    "    fr = ','.join(f['func'] or '?' for f in t['frames'])\n"
    "    assert all(f['pc'].startswith('0x') and f['module_off'].startswith('0x') for f in t['frames'])\n"
    "    print('task', t['name'], t['state'], w.get('kind', '-'), w.get('fd', '-'), w.get('task', '-'),\n"
    "          t['entry']['func'], t['stack']['size'], t['switches'], fr)\n"
    "print('counts', ' '.join('%s=%d' % kv for kv in sorted(d['counts'].items())))\n"
    "print('main', d['main']['state'], ','.join(f['func'] or '?' for f in d['main']['frames']))\n";

static char *json_lines(const char *json)
{
    char dir[] = "/tmp/weft-dump-jsonXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char data[128], script[128], cmd[400];
    snprintf(data, sizeof data, "%s/dump.json", dir);
    snprintf(script, sizeof script, "%s/check.py", dir);
    FILE *f = fopen(data, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json, f);
    fclose(f);
    f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json_checker, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "python3 %s %s 2>&1", script, data);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char *out = read_until(fileno(p), NULL, 20000);
    int st = pclose(p);
    unlink(data);
    unlink(script);
    rmdir(dir);
    ck_assert_msg(st == 0, "python3 json check failed:\n%s\n--- json:\n%s", out, json);
    return out;
}

START_TEST(json_dump_parses_and_describes_each_task)
{
    if (!have_python3()) {
        printf("json_dump_parses_and_describes_each_task: skipped, no python3\n");
        return;
    }
    char *json = run_scenario(WEFT_DUMP_JSON);
    char *out = json_lines(json);
    char line[200];
    ck_assert_has(out, "task sleeper sleeping sleep - - dumptest_sleeper 131072 1 ");
    ck_assert_has(out, ",dumptest_sleeper,");
    snprintf(line, sizeof line, "task reader io-wait io %d - dumptest_reader ", pfd[0]);
    ck_assert_has(out, line);
    ck_assert_has(out, ",dumptest_reader,");
    snprintf(line, sizeof line, "task fdwaiter io-wait io %d - dumptest_fdwaiter ", pfd2[0]);
    ck_assert_has(out, line);
    snprintf(line, sizeof line, "task joiner join-wait join - %llu dumptest_joiner ",
             sleeper_id);
    ck_assert_has(out, line);
    ck_assert_has(out, "task finisher done - - - dumptest_finisher 131072 1 \n");
    ck_assert_has(out, "task yielder runnable - - - dumptest_yielder ");
    ck_assert_has(out, "task newborn runnable - - - dumptest_newborn 131072 0 \n");
    ck_assert_has(out, "task dumper running - - - dumptest_dumper ");
    ck_assert_has(out, ",dumptest_dumper,");
    ck_assert_has(out, "counts chan-wait=0 cond-wait=0 done=1 gen-wait=0 io-wait=2 join-wait=1 "
                       "lock-wait=0 offload-wait=0 proc-wait=0 runnable=2 running=1 sem-wait=0 "
                       "signal-wait=0 sleeping=1 waiting=0 wg-wait=0\n");
    ck_assert_has(out, "main parked ");
    free(out);
    free(json);
}
END_TEST

START_TEST(dump_rejects_bad_fd_and_unknown_flags)
{
    ck_assert_fails(weft_dump(-1, 0), EBADF);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[1]);
    ck_assert_fails(weft_dump(p[1], 0), EBADF);
    ck_assert_fails(weft_dump(p[0], 0x100), EINVAL);
    close(p[0]);
}
END_TEST

START_TEST(dump_reports_write_error)
{
    signal(SIGPIPE, SIG_IGN);
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[0]);
    ck_assert_fails(weft_dump(p[1], 0), EPIPE);
    close(p[1]);
}
END_TEST

NOINLINE static void dump_from_main(char **out)
{
    *out = dumptest_dump_string(0);
}

START_TEST(dump_outside_tasks_shows_main_context_running)
{
    char *out = dumptest_dump_string(0);
    ck_assert_has(out, ": 0 tasks; 0 switches\n");
    free(out);
    weft_attr a = { .name = "waiting" };
    weft_task *t = weft_spawn(&a, dumptest_newborn, NULL);
    ck_assert_ptr_nonnull(t);
    dump_from_main(&out);
    ck_assert_has(out, ": 1 task: 1 runnable;");
    ck_assert_has(out, "main context [running]:\n");
    ck_assert_has(strstr(out, "main context"), " dump_from_main+");
    free(out);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

/* A dump to a full non-blocking pipe waits for the reader instead of losing the rest. */
static void *slow_reader(void *arg)
{
    int fd = (int)(intptr_t)arg;
    return read_until(fd, "end of weft dump\n", 20000);
}

START_TEST(dump_to_full_nonblocking_pipe_is_complete)
{
    weft_task *ts[400];
    for (int i = 0; i < 400; i++) {
        weft_attr a = { .name = "filler" };
        ts[i] = weft_spawn(&a, dumptest_newborn, NULL);
        ck_assert_ptr_nonnull(ts[i]);
    }
    int p[2];
    ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, slow_reader, (void *)(intptr_t)p[0]), 0);
    ck_assert_int_eq(weft_dump(p[1], 0), 0);
    void *res;
    pthread_join(th, &res);
    char *out = res;
    ck_assert_msg(strlen(out) > 65536, "more than a pipe's worth: %zu bytes", strlen(out));
    ck_assert_msg(strstr(out, "400 tasks: 400 runnable"), "in:\n%.300s", out);
    ck_assert_has(out, "end of weft dump\n");
    free(out);
    close(p[0]);
    close(p[1]);
    for (int i = 0; i < 400; i++)
        ck_assert_int_eq(weft_join(ts[i], NULL), 0);
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

/* ---- signal dump and watchdog (in forked children) ---------------------------------------- */

static int ready_fd = -1;

NOINLINE void *dumptest_spinner(void *arg)
{
    (void)arg;
    ck_assert_int_eq(write(ready_fd, "R", 1), 1);
    for (volatile unsigned long i = 0;; i++)
        ;
    return NULL;
}

/* Fork a child whose stderr is *err_fd; in it, optionally set env NAME=VALUE, then spin in a
 * task (after opting in with signo unless it is 0). Returns the pid once the spinner runs. */
static pid_t spawn_spinner_child(int signo, const char *env, const char *value, int *err_fd,
                                 int helper_thread, pid_t *helper_tid);

static volatile pid_t helper_tid_value;

static void *idle_helper(void *arg)
{
    (void)arg;
    helper_tid_value = (pid_t)syscall(SYS_gettid);
    for (;;)
        pause();
    return NULL;
}

static pid_t spawn_spinner_child(int signo, const char *env, const char *value, int *err_fd,
                                 int helper_thread, pid_t *helper_tid)
{
    int ep[2], rp[2];
    ck_assert_int_eq(pipe(ep), 0);
    ck_assert_int_eq(pipe(rp), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(ep[1], STDERR_FILENO);
        close(ep[0]);
        close(rp[0]);
        ready_fd = rp[1];
        if (env)
            setenv(env, value, 1);
        if (signo && weft_dump_on_signal(signo) != 0)
            _exit(3);
        if (helper_thread) {
            pthread_t th;
            if (pthread_create(&th, NULL, idle_helper, NULL) != 0)
                _exit(4);
            while (!helper_tid_value)
                usleep(1000);
            pid_t tid = helper_tid_value;
            if (write(rp[1], &tid, sizeof tid) != (ssize_t)sizeof tid)
                _exit(6);
        }
        weft_attr a = { .name = "spinner" };
        weft_spawn(&a, dumptest_spinner, NULL);
        weft_run();
        _exit(5);
    }
    close(ep[1]);
    close(rp[1]);
    if (helper_thread) {
        ck_assert_int_eq(read(rp[0], helper_tid, sizeof *helper_tid), (ssize_t)sizeof *helper_tid);
    }
    char c;
    ck_assert_int_eq(read(rp[0], &c, 1), 1);
    close(rp[0]);
    *err_fd = ep[0];
    return pid;
}

static void check_spinner_dump(const char *out)
{
    ck_assert_has(out, "weft dump: pid ");
    ck_assert_has(out, "task 1 \"spinner\" holds the thread: running ");
    char *b = task_block(out, "spinner");
    ck_assert_has(b, "[running, ");
    ck_assert_has(b, " ms without yielding]:");
    ck_assert_has(b, " dumptest_spinner+");
    long ms = atol(strstr(b, "[running, ") + 10);
    ck_assert_msg(ms >= 150, "spun for at least 200 ms before the signal, dump says %ld", ms);
    free(b);
    ck_assert_has(out, "main context [parked]:");
    ck_assert_has(out, "end of weft dump\n");
}

static void finish_child(pid_t pid, int err_fd)
{
    kill(pid, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    close(err_fd);
}

START_TEST(sigquit_dump_shows_spinning_task_holding_the_thread)
{
    int err_fd;
    pid_t pid = spawn_spinner_child(SIGQUIT, NULL, NULL, &err_fd, 0, NULL);
    usleep(200 * 1000);
    ck_assert_int_eq(kill(pid, SIGQUIT), 0);
    char *out = read_until(err_fd, "end of weft dump\n", 20000);
    check_spinner_dump(out);
    free(out);
    /* A second signal dumps again: the process lives on. */
    ck_assert_int_eq(kill(pid, SIGQUIT), 0);
    out = read_until(err_fd, "end of weft dump\n", 20000);
    check_spinner_dump(out);
    free(out);
    finish_child(pid, err_fd);
}
END_TEST

START_TEST(env_dump_signal_installs_the_dump)
{
    int err_fd;
    pid_t pid = spawn_spinner_child(0, "WEFT_DUMP_SIGNAL", "USR1", &err_fd, 0, NULL);
    usleep(200 * 1000);
    ck_assert_int_eq(kill(pid, SIGUSR1), 0);
    char *out = read_until(err_fd, "end of weft dump\n", 20000);
    check_spinner_dump(out);
    ck_assert_has(out, ", signal 10: ");
    free(out);
    finish_child(pid, err_fd);
}
END_TEST

START_TEST(signal_on_thread_without_scheduler_is_passed_on)
{
    int err_fd;
    pid_t tid;
    pid_t pid = spawn_spinner_child(SIGQUIT, NULL, NULL, &err_fd, 1, &tid);
    usleep(200 * 1000);
    ck_assert_int_eq(syscall(SYS_tgkill, pid, tid, SIGQUIT), 0);
    char *out = read_until(err_fd, "end of weft dump\n", 20000);
    check_spinner_dump(out);
    char want[64];
    snprintf(want, sizeof want, "weft dump: pid %ld, thread %ld,", (long)pid, (long)pid);
    ck_assert_has(out, want);   /* dumped by the scheduler's own thread */
    free(out);
    finish_child(pid, err_fd);
}
END_TEST

START_TEST(dump_on_signal_rejects_unusable_signals)
{
    ck_assert_fails(weft_dump_on_signal(-1), EINVAL);
    ck_assert_fails(weft_dump_on_signal(SIGKILL), EINVAL);
    ck_assert_fails(weft_dump_on_signal(SIGSEGV), EINVAL);
    ck_assert_fails(weft_dump_on_signal(1000), EINVAL);
    ck_assert_int_eq(weft_dump_on_signal(SIGUSR2), 0);
    struct sigaction sa;
    sigaction(SIGUSR2, NULL, &sa);
    ck_assert(sa.sa_flags & SA_SIGINFO);
    ck_assert_int_eq(weft_dump_on_signal(0), 0);
    sigaction(SIGUSR2, NULL, &sa);
    ck_assert(sa.sa_handler == SIG_DFL);
}
END_TEST

NOINLINE void *dumptest_stall(void *arg)
{
    int64_t ms = (int64_t)(intptr_t)arg, end = weft_now() + ms;
    while (weft_now() < end) {
        for (volatile int i = 0; i < 100000; i++)
            ;
    }
    return NULL;
}

NOINLINE void *dumptest_busy_yielder(void *arg)
{
    int64_t ms = (int64_t)(intptr_t)arg, end = weft_now() + ms;
    while (weft_now() < end)
        weft_yield();
    return NULL;
}

/* Run fn(ms) as the only task in a child with the watchdog at limit ms (set by the call, or
 * by env); returns the child's stderr. */
static char *watchdog_child_at(void *(*fn)(void *), int ms, int by_env, int limit)
{
    int ep[2];
    ck_assert_int_eq(pipe(ep), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(ep[1], STDERR_FILENO);
        close(ep[0]);
        close(ep[1]);
        char lim[16];
        snprintf(lim, sizeof lim, "%d", limit);
        if (by_env)
            setenv("WEFT_WATCHDOG", lim, 1);
        else if (weft_watchdog(limit) != 0)
            _exit(3);
        weft_attr a = { .name = "stuck" };
        weft_spawn(&a, fn, (void *)(intptr_t)ms);
        weft_run();
        weft_watchdog(0);
        _exit(0);
    }
    close(ep[1]);
    char *out = read_until(ep[0], NULL, 30000);
    close(ep[0]);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d; stderr:\n%s", st, out);
    return out;
}

static char *watchdog_child(void *(*fn)(void *), int ms, int by_env)
{
    return watchdog_child_at(fn, ms, by_env, 50);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

START_TEST(watchdog_reports_a_stall_once_with_backtrace)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "the watchdog is a timing race between threads, which valgrind serialises");
    char *out = watchdog_child(dumptest_stall, 400, 0);
    ck_assert_msg(count(out, "weft watchdog: task ") == 1, "one report per stall:\n%s", out);
    ck_assert_has(out, "weft watchdog: task 1 \"stuck\" has run ");
    ck_assert_has(out, " ms without yielding (threshold 50 ms)");
    ck_assert_has(out, "spawned at ");
    ck_assert_has(out, "check_dump.c:");
    ck_assert_has(out, "entry dumptest_stall (");
    ck_assert_has(out, " dumptest_stall+");
    long ms = atol(strstr(out, "has run ") + 8);
    ck_assert_msg(ms >= 50, "reported after the threshold, not %ld ms", ms);
    free(out);
}
END_TEST

START_TEST(env_watchdog_starts_the_watchdog)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "the watchdog is a timing race between threads, which valgrind serialises");
    char *out = watchdog_child(dumptest_stall, 400, 1);
    ck_assert_msg(count(out, "weft watchdog: task ") == 1, "one report:\n%s", out);
    free(out);
}
END_TEST

START_TEST(watchdog_is_quiet_for_a_task_that_yields)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "the watchdog is a timing race between threads, which valgrind serialises");
    /* The watchdog measures wall time (a task stuck in a blocking call uses no CPU), so a
     * thread the kernel leaves off its CPU for a while looks stalled too: on a loaded
     * machine that can last 50 ms, hence a threshold of 300 for 1 s of yielding. */
    char *out = watchdog_child_at(dumptest_busy_yielder, 1000, 0, 300);
    ck_assert_msg(out[0] == '\0', "no report for a task that yields:\n%s", out);
    free(out);
}
END_TEST

START_TEST(watchdog_rejects_negative_threshold)
{
    ck_assert_fails(weft_watchdog(-5), EINVAL);
    ck_assert_int_eq(weft_watchdog(1000), 0);
    ck_assert_int_eq(weft_watchdog(0), 0);
    ck_assert_int_eq(weft_watchdog(0), 0);
}
END_TEST

/* The profiler shares the watchdog's thread: each can be turned on and off while the other
 * runs, in any order, and a bad rate changes nothing. */
START_TEST(profile_rejects_bad_rates_and_shares_the_thread)
{
    ck_assert_fails(weft_profile(-1), EINVAL);
    ck_assert_fails(weft_profile(10001), EINVAL);
    ck_assert_int_eq(weft_profile(1000), 0);
    ck_assert_int_eq(weft_watchdog(1000), 0);
    ck_assert_int_eq(weft_profile(0), 0);
    ck_assert_int_eq(weft_profile(0), 0);
    ck_assert_int_eq(weft_profile(10000), 0);
    ck_assert_int_eq(weft_watchdog(0), 0);
    ck_assert_fails(weft_profile(-1), EINVAL);
    ck_assert_int_eq(weft_profile(0), 0);
}
END_TEST

/* ---- the control socket ------------------------------------------------------------------- */

struct client {
    const char *path;
    const char *request;
    int go;             /* readable once the tasks are about to park */
    int notify;         /* written when done, to wake the waiting task */
    char *reply;
    int connect_errno;
};

static void *client_thread(void *arg)
{
    struct client *c = arg;
    char g;
    if (read(c->go, &g, 1) != 1)
        abort();
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    strncpy(sun.sun_path, c->path, sizeof sun.sun_path - 1);
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
        c->connect_errno = errno;
        c->reply = strdup("");
    } else {
        ssize_t n = (ssize_t)strlen(c->request);
        if (write(fd, c->request, (size_t)n) == n)
            c->reply = read_until(fd, NULL, 20000);
        else
            c->reply = strdup("");
    }
    close(fd);
    if (write(c->notify, "d", 1) != 1)
        abort();
    return NULL;
}

/* Parks until the client thread reports, then ends the scenario's other tasks. */
NOINLINE void *dumptest_client_waiter(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char c;
    weft_read(fd, &c, 1);
    weft_cancel(t_sleeper);
    return NULL;
}

/* Ask the server at path with request while a sleeper and a waiter are parked. */
static char *ask_server(const char *path, const char *request, int *connect_errno)
{
    int np[2], gp[2];
    ck_assert_int_eq(pipe(np), 0);
    ck_assert_int_eq(pipe(gp), 0);
    go_fd = gp[1];
    struct client c = { .path = path, .request = request, .go = gp[0], .notify = np[1] };
    weft_attr a = { .name = "sleeper", .detached = 1 };
    t_sleeper = weft_spawn(&a, dumptest_sleeper, NULL);
    weft_attr w = { .name = "waiter", .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&w, dumptest_client_waiter, (void *)(intptr_t)np[0]));
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, client_thread, &c), 0);
    ck_assert_int_eq(weft_run(), 0);
    pthread_join(th, NULL);
    close(np[0]);
    close(np[1]);
    close(gp[0]);
    close(gp[1]);
    go_fd = -1;
    if (connect_errno)
        *connect_errno = c.connect_errno;
    return c.reply;
}

static char *temp_socket_path(char *dir, size_t n)
{
    char tmpl[] = "/tmp/weft-dump-sockXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(tmpl));
    snprintf(dir, n, "%s", tmpl);
    char *p = malloc(strlen(tmpl) + 16);
    sprintf(p, "%s/test.sock", tmpl);
    return p;
}

START_TEST(control_socket_serves_text_and_json_then_goes_away)
{
    char dir[64];
    char *path = temp_socket_path(dir, sizeof dir);
    ck_assert_int_eq(weft_debug_listen(path), 0);
    ck_assert_fails(weft_debug_listen(path), EEXIST);
    char *out = ask_server(path, "dump\n", NULL);
    ck_assert_has(out, "weft dump: pid ");
    char *b = task_block(out, "sleeper");
    ck_assert_has(b, "[sleeping, ");
    ck_assert_has(b, " dumptest_sleeper+");
    free(b);
    b = task_block(out, "waiter");
    ck_assert_has(b, "[io-wait read fd ");
    ck_assert_has(b, " dumptest_client_waiter+");
    free(b);
    ck_assert_lacks(out, "\"weft-debug\"");     /* the server itself is weft's own */
    free(out);
    /* weft_run ended: the server was cancelled and removed its socket. */
    struct stat st;
    ck_assert_fails(stat(path, &st), ENOENT);

    ck_assert_int_eq(weft_debug_listen(path), 0);
    out = ask_server(path, "dump json system\n", NULL);
    ck_assert_msg(out[0] == '{', "json:\n%s", out);
    ck_assert_has(out, "\"name\":\"weft-debug\",\"state\":\"running\",\"system\":true");
    ck_assert_has(out, "\"name\":\"sleeper\",\"state\":\"sleeping\"");
    free(out);

    ck_assert_int_eq(weft_debug_listen(path), 0);
    out = ask_server(path, "gimme\n", NULL);
    ck_assert_has(out, "error: unknown request");
    free(out);
    ck_assert_fails(stat(path, &st), ENOENT);
    rmdir(dir);
    free(path);
}
END_TEST

START_TEST(env_debug_opens_the_control_socket)
{
    char dir[64];
    char *path = temp_socket_path(dir, sizeof dir);
    setenv("WEFT_DEBUG", path, 1);
    char *out = ask_server(path, "dump nobt\n", NULL);
    unsetenv("WEFT_DEBUG");
    ck_assert_has(out, "[sleeping, ");
    ck_assert_lacks(out, "#0");
    free(out);
    rmdir(dir);
    free(path);
}
END_TEST

START_TEST(default_socket_lives_in_a_private_directory)
{
    char dir[64];
    char *path = temp_socket_path(dir, sizeof dir);
    setenv("XDG_RUNTIME_DIR", dir, 1);
    ck_assert_int_eq(weft_debug_listen(NULL), 0);
    char want[128];
    snprintf(want, sizeof want, "%s/weft/%ld.sock", dir, (long)getpid());
    struct stat st;
    ck_assert_int_eq(stat(want, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    char wdir[96];
    snprintf(wdir, sizeof wdir, "%s/weft", dir);
    ck_assert_int_eq(stat(wdir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    char *out = ask_server(want, "dump\n", NULL);
    ck_assert_has(out, "\"sleeper\" [sleeping");
    free(out);
    unsetenv("XDG_RUNTIME_DIR");
    rmdir(wdir);
    rmdir(dir);
    free(path);
}
END_TEST

/* Connect as uid 65534 in a child; report what happened on fd: "E<errno>" or the reply. */
static void *other_uid_client(void *arg)
{
    struct client *c = arg;
    char g;
    if (read(c->go, &g, 1) != 1)
        abort();
    int rp[2];
    if (pipe(rp) != 0)
        abort();
    pid_t pid = fork();
    if (pid == 0) {
        close(rp[0]);
        if (setgid(65534) != 0 || setuid(65534) != 0)
            _exit(3);
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un sun = { .sun_family = AF_UNIX };
        strncpy(sun.sun_path, c->path, sizeof sun.sun_path - 1);
        char buf[256];
        int n;
        if (connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
            n = snprintf(buf, sizeof buf, "E%d", errno);
        } else {
            if (write(fd, "dump\n", 5) != 5)
                _exit(4);
            ssize_t r, got = 0;
            while ((r = read(fd, buf + got, sizeof buf - 1 - (size_t)got)) > 0)
                got += r;
            n = (int)got;
        }
        if (write(rp[1], buf, (size_t)n) != n)
            _exit(5);
        _exit(0);
    }
    close(rp[1]);
    c->reply = read_until(rp[0], NULL, 20000);
    close(rp[0]);
    int st;
    waitpid(pid, &st, 0);
    /* The reply is the verdict; the status only explains an empty one (under valgrind, a
     * forked child's exit status is valgrind's leak verdict on memory of other threads). */
    if (c->reply[0] == '\0') {
        free(c->reply);
        c->reply = malloc(64);
        snprintf(c->reply, 64, "child status %d", st);
    }
    if (write(c->notify, "d", 1) != 1)
        abort();
    return NULL;
}

static char *ask_as_other_uid(const char *path)
{
    int np[2], gp[2];
    ck_assert_int_eq(pipe(np), 0);
    ck_assert_int_eq(pipe(gp), 0);
    go_fd = gp[1];
    struct client c = { .path = path, .go = gp[0], .notify = np[1] };
    weft_attr a = { .name = "sleeper", .detached = 1 };
    t_sleeper = weft_spawn(&a, dumptest_sleeper, NULL);
    weft_attr w = { .name = "waiter", .detached = 1 };
    ck_assert_ptr_nonnull(weft_spawn(&w, dumptest_client_waiter, (void *)(intptr_t)np[0]));
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, other_uid_client, &c), 0);
    ck_assert_int_eq(weft_run(), 0);
    pthread_join(th, NULL);
    close(np[0]);
    close(np[1]);
    close(gp[0]);
    close(gp[1]);
    go_fd = -1;
    return c.reply;
}

START_TEST(control_socket_refuses_another_user)
{
    if (geteuid() != 0) {
        printf("control_socket_refuses_another_user: skipped, needs root to switch uid\n");
        return;
    }
    /* A socket anyone may connect to: the server's SO_PEERCRED check must refuse. */
    char dir[64];
    char *path = temp_socket_path(dir, sizeof dir);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    ck_assert_int_eq(weft_debug_listen(path), 0);
    ck_assert_int_eq(chmod(path, 0777), 0);
    char *out = ask_as_other_uid(path);
    ck_assert_has(out, "error: permission denied");
    ck_assert_lacks(out, "weft dump");
    free(out);
    rmdir(dir);
    free(path);

    /* The default socket's directory is 0700: the other user cannot even connect. */
    path = temp_socket_path(dir, sizeof dir);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    setenv("XDG_RUNTIME_DIR", dir, 1);
    ck_assert_int_eq(weft_debug_listen(NULL), 0);
    char want[128];
    snprintf(want, sizeof want, "%s/weft/%ld.sock", dir, (long)getpid());
    out = ask_as_other_uid(want);
    char eacces[16];
    snprintf(eacces, sizeof eacces, "E%d", EACCES);
    ck_assert_str_eq(out, eacces);
    free(out);
    unsetenv("XDG_RUNTIME_DIR");
    char wdir[96];
    snprintf(wdir, sizeof wdir, "%s/weft", dir);
    rmdir(wdir);
    rmdir(dir);
    free(path);
}
END_TEST

/* ---- wait cycles --------------------------------------------------------------------------- */

static weft_task *cyc_a, *cyc_b, *cyc_c;     /* each joined by the one before it */

static void *cyc_join(void *arg)
{
    weft_task **target = arg;
    weft_join(*target, NULL);
    return NULL;
}

/* Three tasks joining each other in a ring: weft_run fails with EDEADLK, and the dump names
 * the ring once (from its member with the lowest id), in text and JSON. */
START_TEST(dump_names_a_wait_cycle_once)
{
    weft_attr a = { .name = "ring-a" }, b = { .name = "ring-b" }, c = { .name = "ring-c" };
    cyc_a = weft_spawn(&a, cyc_join, &cyc_b);
    cyc_b = weft_spawn(&b, cyc_join, &cyc_c);
    cyc_c = weft_spawn(&c, cyc_join, &cyc_a);
    ck_assert_fails(weft_run(), EDEADLK);
    char *text = dumptest_dump_string(WEFT_DUMP_NO_BACKTRACE);
    char line[256];
    unsigned long long ia = weft_id(cyc_a), ib = weft_id(cyc_b), ic = weft_id(cyc_c);
    snprintf(line, sizeof line,
             "wait cycle (nothing can wake these): task %llu \"ring-a\" [join-wait task %llu] -> "
             "task %llu \"ring-b\" [join-wait task %llu] -> task %llu \"ring-c\" [join-wait task "
             "%llu] -> task %llu\n", ia, ib, ib, ic, ic, ia, ia);
    ck_assert_has(text, line);
    ck_assert_int_eq(count(text, "wait cycle"), 1);
    char *json = dumptest_dump_string(WEFT_DUMP_NO_BACKTRACE | WEFT_DUMP_JSON);
    snprintf(line, sizeof line, "\"cycles\":[[%llu,%llu,%llu]]", ia, ib, ic);
    ck_assert_has(json, line);
    /* Break the ring: a's join returns ECANCELED, so a ends and c's join of it returns, then
     * b's of c; b, whose joiner gave up, is left done and is joined here. */
    ck_assert_ok(weft_cancel(cyc_a));
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_ok(weft_join(cyc_b, NULL));
    ck_assert_int_eq(weft_run(), 0);    /* nothing left: the scheduler goes, ids start again */
    free(text);
    free(json);
    char *after = dumptest_dump_string(WEFT_DUMP_NO_BACKTRACE);
    ck_assert(strstr(after, "wait cycle") == NULL);
    free(after);
}
END_TEST

/* A task woken after the loop slept in epoll: its "without yielding" and wait times count
 * from when it was switched in, not from before the loop slept. */
static int idle_pipe[2];

static void *idle_writer(void *arg)
{
    (void)arg;
    usleep(400 * 1000);
    ck_assert_int_eq(write(idle_pipe[1], "x", 1), 1);
    return NULL;
}

static void *woken_after_idle(void *arg)
{
    (void)arg;
    char c;
    ck_assert_int_eq(weft_read(idle_pipe[0], &c, 1), 1);
    int fd = memfd_create("dump", 0);
    ck_assert_int_eq(weft_dump(fd, WEFT_DUMP_NO_BACKTRACE), 0);
    off_t n = lseek(fd, 0, SEEK_CUR);
    char *text = calloc(1, (size_t)n + 1);
    ck_assert_int_eq(pread(fd, text, (size_t)n, 0), n);
    close(fd);
    char *p = strstr(text, "\"idler\" [running, ");
    ck_assert_msg(p != NULL, "in:\n%.3000s", text);
    long ms = strtol(p + strlen("\"idler\" [running, "), NULL, 10);
    ck_assert_msg(ms < 300, "%ld ms without yielding, counted from before the loop slept", ms);
    free(text);
    return NULL;
}

START_TEST(a_task_woken_after_an_idle_loop_counts_from_its_wake)
{
    ck_assert_int_eq(pipe(idle_pipe), 0);
    pthread_t th;
    weft_task *t = weft_spawn(&(weft_attr){ .name = "idler" }, woken_after_idle, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(pthread_create(&th, NULL, idle_writer, NULL), 0);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    pthread_join(th, NULL);
    close(idle_pipe[0]);
    close(idle_pipe[1]);
}
END_TEST

static Suite *dump_suite(void)
{
    Suite *s = suite_create("dump");
    TCase *tc = test_case(s, "registry", 20);
    tcase_add_test(tc, text_dump_shows_state_wait_and_parking_function_of_each_task);
    tcase_add_test(tc, text_dump_without_backtraces_has_no_frames);
    tcase_add_test(tc, json_dump_parses_and_describes_each_task);
    tcase_add_test(tc, dump_rejects_bad_fd_and_unknown_flags);
    tcase_add_test(tc, dump_reports_write_error);
    tcase_add_test(tc, dump_outside_tasks_shows_main_context_running);
    tcase_add_test(tc, a_task_woken_after_an_idle_loop_counts_from_its_wake);
    tcase_add_test(tc, dump_to_full_nonblocking_pipe_is_complete);
    tcase_add_test(tc, dump_names_a_wait_cycle_once);
    tc = test_case(s, "signal", 30);
    tcase_add_test(tc, sigquit_dump_shows_spinning_task_holding_the_thread);
    tcase_add_test(tc, env_dump_signal_installs_the_dump);
    tcase_add_test(tc, signal_on_thread_without_scheduler_is_passed_on);
    tcase_add_test(tc, dump_on_signal_rejects_unusable_signals);
    tc = test_case(s, "watchdog", 30);
    tcase_add_test(tc, watchdog_reports_a_stall_once_with_backtrace);
    tcase_add_test(tc, env_watchdog_starts_the_watchdog);
    tcase_add_test(tc, watchdog_is_quiet_for_a_task_that_yields);
    tcase_add_test(tc, watchdog_rejects_negative_threshold);
    tcase_add_test(tc, profile_rejects_bad_rates_and_shares_the_thread);
    tc = test_case(s, "control socket", 30);
    tcase_add_test(tc, control_socket_serves_text_and_json_then_goes_away);
    tcase_add_test(tc, env_debug_opens_the_control_socket);
    tcase_add_test(tc, default_socket_lives_in_a_private_directory);
    tcase_add_test(tc, control_socket_refuses_another_user);
    return s;
}

int main(void)
{
    return test_run(dump_suite());
}

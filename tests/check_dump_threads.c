/* The dump of a process with several scheduler threads: weft_dump's WEFT_DUMP_ALL_THREADS in
 * text and JSON, a thread that cannot answer, the dump signal sent to the process (every
 * scheduler thread answers on stderr), and the control socket (it serves every thread). */
#include "iotest.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#define WORKERS 2

/* ---- scheduler threads with a parked task each ---------------------------------------------- */

struct worker {
    pthread_t th;
    int stop[2];                /* a byte here ends the worker's reader */
    int ready;                  /* written once the reader is parked */
    int block_requests;         /* block the dump's request signal on this thread */
    char name[16];
    atomic_int tid;
};

static void *reader(void *arg)
{
    struct worker *w = arg;
    char c;
    weft_read(w->stop[0], &c, 1);
    return NULL;
}

/* Runs after the reader has parked (the run queue is FIFO): tell the test. */
static void *announce(void *arg)
{
    struct worker *w = arg;
    if (write(w->ready, "r", 1) != 1)
        abort();
    return NULL;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (w->block_requests) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGRTMAX - 4);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    atomic_store(&w->tid, (int)syscall(SYS_gettid));
    weft_attr a = { .name = w->name };
    weft_task *r = weft_spawn(&a, reader, w);
    weft_task *n = weft_go(announce, w);
    if (!r || !n || weft_join(n, NULL) != 0 || weft_join(r, NULL) != 0)
        abort();
    return NULL;
}

static struct worker workers[WORKERS];

/* Start the workers; returns once each has its reader parked. */
static void start_workers(int block_first)
{
    int rp[2];
    ck_assert_int_eq(pipe(rp), 0);
    for (int i = 0; i < WORKERS; i++) {
        struct worker *w = &workers[i];
        memset(w, 0, sizeof *w);
        ck_assert_int_eq(pipe(w->stop), 0);
        w->ready = rp[1];
        w->block_requests = block_first && i == 0;
        snprintf(w->name, sizeof w->name, "reader-%d", i + 1);
        ck_assert_int_eq(pthread_create(&w->th, NULL, worker_main, w), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        char c;
        ck_assert_int_eq(read(rp[0], &c, 1), 1);
    }
    close(rp[0]);
    close(rp[1]);
}

static void stop_workers(void)
{
    for (int i = 0; i < WORKERS; i++) {
        ck_assert_int_eq(write(workers[i].stop[1], "x", 1), 1);
        pthread_join(workers[i].th, NULL);
        close(workers[i].stop[0]);
        close(workers[i].stop[1]);
    }
}

/* ---- reading dumps ------------------------------------------------------------------------- */

/* All of fd until EOF, or until 'marker' has been seen n times, or timeout_ms. */
static char *read_marks(int fd, const char *marker, int n, int timeout_ms)
{
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    ck_assert_ptr_nonnull(s);
    s[0] = '\0';
    int64_t end = weft_now() + timeout_ms;
    for (;;) {
        int seen = 0;
        for (const char *p = s; marker && (p = strstr(p, marker)); p++)
            seen++;
        if (marker && seen >= n)
            break;
        int64_t left = end - weft_now();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        if (len + 4096 >= cap) {
            cap *= 2;
            s = realloc(s, cap);
            ck_assert_ptr_nonnull(s);
        }
        ssize_t r = read(fd, s + len, cap - len - 1);
        if (r <= 0)
            break;
        len += (size_t)r;
        s[len] = '\0';
    }
    return s;
}

static char *dump_string(int flags)
{
    int m = memfd_create("dump", MFD_CLOEXEC);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(weft_dump(m, flags), 0);
    ck_assert_int_eq(lseek(m, 0, SEEK_SET), 0);
    char *s = read_marks(m, NULL, 0, 10000);
    close(m);
    return s;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

#define ck_assert_has(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

/* The text block of each worker is there, under a header naming its thread. */
static void check_workers_in_text(const char *out)
{
    char line[96];
    for (int i = 0; i < WORKERS; i++) {
        snprintf(line, sizeof line, ", thread %d", atomic_load(&workers[i].tid));
        ck_assert_has(out, line);
        snprintf(line, sizeof line, "\"%s\" [io-wait read fd %d", workers[i].name,
                 workers[i].stop[0]);
        ck_assert_has(out, line);
    }
}

/* ---- weft_dump ----------------------------------------------------------------------------- */

TASK_TEST(all_threads_text_dump_has_every_scheduler_thread)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "a thread's answer to the request signal is slow under Valgrind");
    start_workers(0);
    char *one = dump_string(0);
    ck_assert_int_eq(count(one, "weft dump: pid "), 1);
    ck_assert(strstr(one, "reader-1") == NULL);
    char *all = dump_string(WEFT_DUMP_ALL_THREADS);
    ck_assert_int_eq(count(all, "weft dump: pid "), 1 + WORKERS);
    ck_assert_int_eq(count(all, "end of weft dump\n"), 1 + WORKERS);
    check_workers_in_text(all);
    /* The caller's own dump comes first, as without the flag. */
    ck_assert(strncmp(all, one, (size_t)(strchr(one, ':') - one)) == 0);
    /* Backtraces were walked on each thread's own stacks: the reader parks in weft_read. */
    ck_assert_int_ge(count(all, "weft_read"), WORKERS);
    stop_workers();
    free(one);
    free(all);
}

static const char json_check[] =
    "import json, sys\n"
    "d = json.load(open(sys.argv[1]))\n"
    "assert 'threads' in d and len(d['threads']) == int(sys.argv[2]), d.get('threads')\n"
    "for t in d['threads']:\n"
    "    assert t['weft_dump'] == 1 and t['ntasks'] == len(t['tasks'])\n"
    "    for k in t['tasks']:\n"
    "        print(t['tid'], k['name'], k['state'], k['wait']['kind'] if k['wait'] else '-')\n";

/* Run json_check over doc; returns its output. */
static char *check_json(const char *doc, int nthreads)
{
    char dir[] = "/tmp/weft-dumpthr-XXXXXX", data[64], script[64], cmd[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(data, sizeof data, "%s/d.json", dir);
    snprintf(script, sizeof script, "%s/c.py", dir);
    FILE *f = fopen(data, "w");
    ck_assert_ptr_nonnull(f);
    fputs(doc, f);
    fclose(f);
    f = fopen(script, "w");
    ck_assert_ptr_nonnull(f);
    fputs(json_check, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "python3 %s %s %d 2>&1", script, data, nthreads);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char *out = read_marks(fileno(p), NULL, 0, 20000);
    int st = pclose(p);
    unlink(data);
    unlink(script);
    rmdir(dir);
    ck_assert_msg(st == 0, "JSON check failed:\n%s\n--- JSON:\n%s", out, doc);
    return out;
}

TASK_TEST(all_threads_json_dump_lists_the_other_threads)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "a thread's answer to the request signal is slow under Valgrind");
    SKIP_IF(system("python3 -c 'import json' >/dev/null 2>&1") != 0, "no python3");
    start_workers(0);
    char *doc = dump_string(WEFT_DUMP_ALL_THREADS | WEFT_DUMP_JSON);
    char *out = check_json(doc, WORKERS);
    char line[64];
    for (int i = 0; i < WORKERS; i++) {
        snprintf(line, sizeof line, "%d %s io-wait io\n", atomic_load(&workers[i].tid),
                 workers[i].name);
        ck_assert_has(out, line);
    }
    stop_workers();
    free(doc);
    free(out);
}

TASK_TEST(all_threads_dump_of_a_lone_scheduler_is_the_plain_one)
{
    char *doc = dump_string(WEFT_DUMP_ALL_THREADS | WEFT_DUMP_JSON | WEFT_DUMP_NO_BACKTRACE);
    ck_assert_has(doc, ",\"threads\":[]}\n");
    char *text = dump_string(WEFT_DUMP_ALL_THREADS);
    ck_assert_int_eq(count(text, "weft dump: pid "), 1);
    ck_assert_int_eq(count(text, "end of weft dump\n"), 1);
    free(doc);
    free(text);
}

TASK_TEST(thread_that_blocks_the_request_is_named_and_the_others_answer)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "a thread's answer to the request signal is slow under Valgrind");
    start_workers(1);
    int64_t t0 = weft_now();
    char *all = dump_string(WEFT_DUMP_ALL_THREADS | WEFT_DUMP_NO_BACKTRACE);
    ck_assert_int_lt(weft_now() - t0, 30000);   /* it gave up on the blocked one */
    char line[96];
    snprintf(line, sizeof line, "thread %d: did not answer", atomic_load(&workers[0].tid));
    ck_assert_has(all, line);
    snprintf(line, sizeof line, "\"%s\" [io-wait", workers[1].name);
    ck_assert_has(all, line);
    ck_assert(strstr(all, "\"reader-1\" [") == NULL);
    /* Still usable afterwards: the late signal, once unblocked, must find nothing to do. */
    stop_workers();
    char *again = dump_string(WEFT_DUMP_ALL_THREADS);
    ck_assert_int_eq(count(again, "weft dump: pid "), 1);
    free(all);
    free(again);
}

/* ---- the dump signal sent to the process ---------------------------------------------------- */

static void *sleeper(void *arg)
{
    (void)arg;
    weft_sleep(60000);          /* killed long before */
    return NULL;
}

/* In the child: a sleeper parked on this thread, the workers parked on theirs, then say so. */
static void *child_starter(void *arg)
{
    int ready = (int)(intptr_t)arg;
    weft_attr a = { .name = "main-sleeper" };
    if (!weft_spawn(&a, sleeper, NULL))
        _exit(3);
    int rp[2];
    if (pipe(rp) != 0)
        _exit(3);
    for (int i = 0; i < WORKERS; i++) {
        struct worker *w = &workers[i];
        if (pipe(w->stop) != 0)
            _exit(3);
        w->ready = rp[1];
        snprintf(w->name, sizeof w->name, "reader-%d", i + 1);
        if (pthread_create(&w->th, NULL, worker_main, w) != 0)
            _exit(3);
    }
    for (int i = 0; i < WORKERS; i++) {
        char c;
        if (read(rp[0], &c, 1) != 1)
            _exit(3);
    }
    weft_yield();               /* the sleeper parks */
    if (write(ready, "r", 1) != 1)
        _exit(3);
    weft_sleep(60000);
    return NULL;
}

START_TEST(dump_signal_to_the_process_dumps_every_scheduler_thread)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "signals between threads are slow under Valgrind");
    int err[2], ready[2];
    ck_assert_int_eq(pipe(err), 0);
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(err[1], STDERR_FILENO);
        if (weft_dump_on_signal(SIGQUIT) != 0)
            _exit(2);
        weft_go(child_starter, (void *)(intptr_t)ready[1]);
        weft_run();
        _exit(0);
    }
    close(err[1]);
    char c;
    ck_assert_int_eq(read(ready[0], &c, 1), 1);
    ck_assert_int_eq(kill(pid, SIGQUIT), 0);
    char *out = read_marks(err[0], "end of weft dump\n", 1 + WORKERS, 20000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_assert_int_eq(count(out, "end of weft dump\n"), 1 + WORKERS);
    ck_assert_has(out, "\"main-sleeper\" [sleeping");
    ck_assert_has(out, "\"reader-1\" [io-wait");
    ck_assert_has(out, "\"reader-2\" [io-wait");
    free(out);
    close(err[0]);
    close(ready[0]);
    close(ready[1]);
}
END_TEST

/* ---- the control socket --------------------------------------------------------------------- */

struct ask {
    char path[108];
    char *reply;
    atomic_int done;
};

static void *ask_thread(void *arg)
{
    struct ask *k = arg;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", k->path);
    static const char req[] = "dump nobt\n";
    if (connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0 &&
        write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1))
        k->reply = read_marks(fd, NULL, 0, 20000);
    else
        k->reply = strdup("");
    close(fd);
    atomic_store(&k->done, 1);
    return NULL;
}

TASK_TEST(control_socket_serves_every_scheduler_thread)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "a thread's answer to the request signal is slow under Valgrind");
    struct ask k = { .reply = NULL };
    char dir[] = "/tmp/weft-dumpthr-sockXXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(k.path, sizeof k.path, "%s/s.sock", dir);
    ck_assert_ok(weft_debug_listen(k.path));
    start_workers(0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, ask_thread, &k), 0);
    while (!atomic_load(&k.done))
        weft_sleep(5);          /* the server task runs on this loop */
    pthread_join(th, NULL);
    ck_assert_int_eq(count(k.reply, "weft dump: pid "), 1 + WORKERS);
    check_workers_in_text(k.reply);
    stop_workers();
    free(k.reply);
    rmdir(dir);
}

static Suite *threads_suite(void)
{
    Suite *s = suite_create("dump-threads");
    ADD_TEST(s, all_threads_text_dump_has_every_scheduler_thread, 30);
    ADD_TEST(s, all_threads_json_dump_lists_the_other_threads, 30);
    ADD_TEST(s, all_threads_dump_of_a_lone_scheduler_is_the_plain_one, 30);
    ADD_TEST(s, thread_that_blocks_the_request_is_named_and_the_others_answer, 30);
    ADD_TEST(s, dump_signal_to_the_process_dumps_every_scheduler_thread, 30);
    ADD_TEST(s, control_socket_serves_every_scheduler_thread, 30);
    return s;
}

int main(void)
{
    return test_run(threads_suite());
}

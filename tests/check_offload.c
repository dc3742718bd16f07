/* The offload pool (src/offload.c): calls run on pool threads while the loop keeps serving,
 * deadlines and cancels that leave a running job behind, queued jobs dropped unrun, discard,
 * batched completions, several scheduler threads, a fork, the dump's offload-wait. */
#define _GNU_SOURCE
#include "testutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADD_TEST(s, fn, secs) tcase_add_test(test_case((s), #fn, (secs)), fn)

/* A gate pool threads block on until the test opens it. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int entered;
};
#define GATE_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0 }

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static int gate_entered(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    int n = g->entered;
    pthread_mutex_unlock(&g->mu);
    return n;
}

/* One job's record: what ran where, and whether discard saw it. */
struct job {
    struct gate *gate;
    pthread_t ran_on;
    _Atomic int ran;
    _Atomic int finished;
    _Atomic int discarded;
    long in, out;
};

static void blocking_fn(void *arg)
{
    struct job *j = arg;
    j->ran_on = pthread_self();
    atomic_store(&j->ran, 1);
    if (j->gate) {
        pthread_mutex_lock(&j->gate->mu);
        j->gate->entered++;
        while (!j->gate->open)
            pthread_cond_wait(&j->gate->cv, &j->gate->mu);
        pthread_mutex_unlock(&j->gate->mu);
    }
    j->out = j->in * 2;
    atomic_store(&j->finished, 1);
}

static void discard_fn(void *arg)
{
    struct job *j = arg;
    atomic_fetch_add(&j->discarded, 1);
}

/* Wait (outside the loop's tasks, or in one: it yields) until cond, at most ~10 s. */
#define WAIT_FOR(cond)                                                                       \
    do {                                                                                     \
        for (int w_ = 0; !(cond) && w_ < 10000; w_++) {                                      \
            if (weft_self())                                                                 \
                weft_sleep(1);                                                               \
            else                                                                             \
                usleep(1000);                                                                \
        }                                                                                    \
        ck_assert_msg((cond), "timed out waiting for %s", #cond);                           \
    } while (0)

static void *one_call(void *arg)
{
    struct job *j = arg;
    ck_assert_int_eq(weft_offload(blocking_fn, j, -1), 0);
    return NULL;
}

START_TEST(runs_on_a_pool_thread_and_returns_its_result)
{
    struct job j = { .in = 21 };
    ck_assert_int_eq(weft_main(one_call, &j), 0);
    ck_assert_int_eq(j.out, 42);
    ck_assert(atomic_load(&j.finished));
    ck_assert(!pthread_equal(j.ran_on, pthread_self()));
    ck_assert_int_eq(atomic_load(&j.discarded), 0);
}
END_TEST

START_TEST(outside_a_task_calls_fn_on_the_caller)
{
    struct job j = { .in = 5 };
    ck_assert_int_eq(weft_offload(blocking_fn, &j, -1), 0);
    ck_assert_int_eq(j.out, 10);
    ck_assert(pthread_equal(j.ran_on, pthread_self()));
}
END_TEST

/* ---- the loop keeps serving while a job blocks ------------------------------------------ */

static _Atomic int ticks;
static _Atomic int ticking;

static void *ticker(void *arg)
{
    (void)arg;
    while (atomic_load(&ticking)) {
        weft_sleep(5);
        atomic_fetch_add(&ticks, 1);
    }
    return NULL;
}

static void sleepy_fn(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
}

static void *sleepy_caller(void *arg)
{
    (void)arg;
    atomic_store(&ticking, 1);
    weft_task *t = weft_go(ticker, NULL);
    int before = atomic_load(&ticks);
    ck_assert_int_eq(weft_offload(sleepy_fn, NULL, -1), 0);
    int during = atomic_load(&ticks) - before;
    atomic_store(&ticking, 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    /* 300 ms of a blocked pool thread; the ticker sleeps 5 ms a tick: a blocked loop would
     * give 0 ticks, a free one dozens (3 is generous for a slow machine). */
    ck_assert_msg(during >= 3, "only %d ticks while the job blocked", during);
    return NULL;
}

START_TEST(the_loop_keeps_running_tasks_while_a_job_blocks)
{
    ck_assert_int_eq(weft_main(sleepy_caller, NULL), 0);
}
END_TEST

/* ---- many calls, bounded by the pool's size ---------------------------------------------- */

static _Atomic int in_fn, max_in_fn;

static void counting_fn(void *arg)
{
    long *v = arg;
    int n = atomic_fetch_add(&in_fn, 1) + 1;
    int m = atomic_load(&max_in_fn);
    while (n > m && !atomic_compare_exchange_weak(&max_in_fn, &m, n)) {
    }
    usleep(500);
    *v = *v * 3;
    atomic_fetch_sub(&in_fn, 1);
}

static void *counting_caller(void *arg)
{
    long *v = arg;
    ck_assert_int_eq(weft_offload(counting_fn, v, -1), 0);
    return NULL;
}

static void *many_calls(void *arg)
{
    (void)arg;
    enum { N = 300 };
    long *vals = calloc(N, sizeof *vals);
    weft_task *t[N];
    for (int i = 0; i < N; i++) {
        vals[i] = i;
        ck_assert_ptr_nonnull(t[i] = weft_go(counting_caller, &vals[i]));
    }
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(vals[i], 3L * i);
    free(vals);
    return NULL;
}

START_TEST(many_concurrent_calls_stay_within_the_pool_size)
{
    ck_assert_int_eq(weft_offload_set_threads(3), 0);
    ck_assert_int_eq(weft_offload_threads(), 3);
    atomic_store(&max_in_fn, 0);
    ck_assert_int_eq(weft_main(many_calls, NULL), 0);
    ck_assert_int_le(atomic_load(&max_in_fn), 3);
    ck_assert_int_ge(atomic_load(&max_in_fn), 1);
}
END_TEST

START_TEST(bad_input)
{
    ck_assert_fails(weft_offload(NULL, NULL, -1), EINVAL);
    ck_assert_fails(weft_offload_ex(NULL, NULL, discard_fn, -1), EINVAL);
    ck_assert_fails(weft_offload_set_threads(0), EINVAL);
    ck_assert_fails(weft_offload_set_threads(-5), EINVAL);
    ck_assert_fails(weft_offload_set_threads(WEFT_OFFLOAD_MAX_THREADS + 1), EINVAL);
    ck_assert_int_eq(weft_offload_set_threads(WEFT_OFFLOAD_MAX_THREADS), 0);
    ck_assert_int_eq(weft_offload_threads(), WEFT_OFFLOAD_MAX_THREADS);
}
END_TEST

/* The size is decided once per process: these need a process of their own. */
#define NEEDS_FORK_MODE() SKIP_IF(getenv("CK_FORK") != NULL, "needs Check's fork mode")

START_TEST(size_from_the_environment)
{
    NEEDS_FORK_MODE();
    setenv("WEFT_OFFLOAD_THREADS", "7", 1);
    ck_assert_int_eq(weft_offload_threads(), 7);
}
END_TEST

START_TEST(bad_size_in_the_environment_gives_the_default)
{
    NEEDS_FORK_MODE();
    setenv("WEFT_OFFLOAD_THREADS", "lots", 1);
    ck_assert_int_eq(weft_offload_threads(), 4);
}
END_TEST

/* ---- deadlines and cancels --------------------------------------------------------------- */

static struct gate gate_a = GATE_INIT;

static void *times_out_while_running(void *arg)
{
    struct job *j = arg;
    int64_t start = weft_now();
    ck_assert_fails(weft_offload_ex(blocking_fn, j, discard_fn, weft_now() + 50), ETIMEDOUT);
    ck_assert_elapsed(start, 50, 5000);
    ck_assert(atomic_load(&j->ran));
    ck_assert(!atomic_load(&j->finished));     /* still running on its thread */
    ck_assert_int_eq(atomic_load(&j->discarded), 0);
    gate_open(j->gate);
    WAIT_FOR(atomic_load(&j->discarded) == 1);
    ck_assert(atomic_load(&j->finished));
    return NULL;
}

START_TEST(timeout_returns_at_once_and_the_job_finishes_into_discard)
{
    struct job *j = calloc(1, sizeof *j);
    j->gate = &gate_a;
    j->in = 1;
    ck_assert_int_eq(weft_main(times_out_while_running, j), 0);
    usleep(20 * 1000);
    ck_assert_int_eq(atomic_load(&j->discarded), 1);   /* once */
    free(j);
}
END_TEST

static struct gate gate_b = GATE_INIT;

static void *cancel_target(void *arg)
{
    struct job *j = arg;
    ck_assert_fails(weft_offload_ex(blocking_fn, j, discard_fn, -1), ECANCELED);
    return NULL;
}

static void *cancels_a_running_call(void *arg)
{
    struct job *j = arg;
    weft_task *t = weft_go(cancel_target, j);
    WAIT_FOR(gate_entered(j->gate) == 1);
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert(!atomic_load(&j->finished));
    gate_open(j->gate);
    WAIT_FOR(atomic_load(&j->discarded) == 1);
    return NULL;
}

START_TEST(cancel_wakes_the_caller_and_the_job_finishes_into_discard)
{
    struct job *j = calloc(1, sizeof *j);
    j->gate = &gate_b;
    ck_assert_int_eq(weft_main(cancels_a_running_call, j), 0);
    ck_assert(atomic_load(&j->finished));
    free(j);
}
END_TEST

static struct gate gate_c = GATE_INIT;

static void *queued_caller(void *arg)
{
    struct job *j = arg;
    ck_assert_fails(weft_offload_ex(blocking_fn, j, discard_fn, weft_now() + 30), ETIMEDOUT);
    return NULL;
}

static void *drops_a_queued_call(void *arg)
{
    struct job *jobs = arg;     /* [0] holds the only thread, [1] waits behind it */
    weft_task *a = weft_go(one_call, &jobs[0]);
    WAIT_FOR(gate_entered(&gate_c) == 1);
    weft_task *b = weft_go(queued_caller, &jobs[1]);
    ck_assert_int_eq(weft_join(b, NULL), 0);
    gate_open(&gate_c);
    ck_assert_int_eq(weft_join(a, NULL), 0);
    WAIT_FOR(atomic_load(&jobs[1].discarded) == 1);
    ck_assert_int_eq(atomic_load(&jobs[1].ran), 0);    /* dropped before it started */
    return NULL;
}

START_TEST(a_call_that_leaves_before_its_job_starts_never_runs_it)
{
    ck_assert_int_eq(weft_offload_set_threads(1), 0);
    struct job *jobs = calloc(2, sizeof *jobs);
    jobs[0].gate = &gate_c;
    jobs[1].gate = &gate_c;
    ck_assert_int_eq(weft_main(drops_a_queued_call, jobs), 0);
    free(jobs);
}
END_TEST

static void *fails_before_queueing(void *arg)
{
    struct job *j = arg;
    ck_assert_fails(weft_offload_ex(blocking_fn, j, discard_fn, 0), ETIMEDOUT);
    ck_assert_fails(weft_offload(blocking_fn, j, weft_now() - 5), ETIMEDOUT);
    int64_t old = weft_set_task_deadline(weft_now() - 1);
    ck_assert_fails(weft_offload(blocking_fn, j, -1), ETIMEDOUT);
    weft_set_task_deadline(old);
    weft_cancel(weft_self());
    ck_assert_fails(weft_offload_ex(blocking_fn, j, discard_fn, -1), ECANCELED);
    return NULL;
}

START_TEST(past_deadline_or_cancelled_task_fails_without_running_fn)
{
    struct job j = { 0 };
    ck_assert_int_eq(weft_main(fails_before_queueing, &j), 0);
    usleep(20 * 1000);
    ck_assert_int_eq(atomic_load(&j.ran), 0);
    ck_assert_int_eq(atomic_load(&j.discarded), 0);   /* never queued: nothing to give back */
}
END_TEST

/* ---- completions come back in batches ------------------------------------------------------ */

static _Atomic int quick_done;

static void quick_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&quick_done, 1);
}

static void *quick_caller(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_offload(quick_fn, NULL, -1), 0);
    return NULL;
}

/* The reaper's switch count, from a JSON dump with weft's own tasks. */
static long reaper_switches(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    int fd = memfd_create("dump", 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(weft_dump(fd, WEFT_DUMP_JSON | WEFT_DUMP_SYSTEM | WEFT_DUMP_NO_BACKTRACE), 0);
    off_t n = lseek(fd, 0, SEEK_CUR);
    char *text = calloc(1, (size_t)n + 1);
    ck_assert_int_eq(pread(fd, text, (size_t)n, 0), n);
    close(fd);
    fclose(f);
    free(buf);
    char *p = strstr(text, "\"name\":\"weft-offload\"");
    ck_assert_ptr_nonnull(p);
    p = strstr(p, "\"switches\":");
    ck_assert_ptr_nonnull(p);
    long v = strtol(p + strlen("\"switches\":"), NULL, 10);
    free(text);
    return v;
}

static void *batched(void *arg)
{
    (void)arg;
    enum { N = 64 };
    weft_task *t[N];
    ck_assert_int_eq(weft_offload(quick_fn, NULL, -1), 0);     /* the port and reaper exist */
    atomic_store(&quick_done, 0);
    long before = reaper_switches();
    for (int i = 0; i < N; i++)
        t[i] = weft_go(quick_caller, NULL);
    weft_yield();               /* every caller queues its job and parks */
    /* Hold the thread (no weft call) while every job completes: they pile up on the port. */
    for (int w = 0; atomic_load(&quick_done) < N && w < 10000; w++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&quick_done), N);
    usleep(20 * 1000);          /* the last one posted too */
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    long woke = reaper_switches() - before;
    ck_assert_msg(woke >= 1 && woke <= 3, "the reaper ran %ld times for %d completions", woke, N);
    return NULL;
}

START_TEST(a_burst_of_completions_costs_one_wakeup)
{
    ck_assert_int_eq(weft_main(batched, NULL), 0);
}
END_TEST

/* ---- the dump --------------------------------------------------------------------------- */

static struct gate gate_d = GATE_INIT;

static void *dumper(void *arg)
{
    struct job *j = arg;
    weft_task *t = weft_spawn(&(weft_attr){ .name = "offloader" }, one_call, j);
    WAIT_FOR(gate_entered(j->gate) == 1);
    int fd = memfd_create("dump", 0);
    ck_assert_int_eq(weft_dump(fd, 0), 0);
    off_t n = lseek(fd, 0, SEEK_CUR);
    char *text = calloc(1, (size_t)n + 1);
    ck_assert_int_eq(pread(fd, text, (size_t)n, 0), n);
    ck_assert_msg(strstr(text, "\"offloader\" [offload-wait call blocking_fn"), "in:\n%s", text);
    ck_assert_int_eq(weft_dump(fd, WEFT_DUMP_JSON), 0);
    off_t m = lseek(fd, 0, SEEK_CUR);
    char *json = calloc(1, (size_t)(m - n) + 1);
    ck_assert_int_eq(pread(fd, json, (size_t)(m - n), n), m - n);
    ck_assert_msg(strstr(json, "\"kind\":\"offload\""), "in:\n%s", json);
    ck_assert_msg(strstr(json, "\"fn\":{") && strstr(json, "blocking_fn"), "in:\n%s", json);
    ck_assert_msg(strstr(json, "\"offload-wait\":1"), "in:\n%s", json);
    free(text);
    free(json);
    close(fd);
    gate_open(j->gate);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    return NULL;
}

START_TEST(the_dump_shows_offload_wait_with_the_function)
{
    struct job j = { .gate = &gate_d };
    ck_assert_int_eq(weft_main(dumper, &j), 0);
}
END_TEST

/* ---- several scheduler threads share the pool ------------------------------------------- */

static void *thread_loop(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_main(many_calls, NULL);
}

START_TEST(several_scheduler_threads_share_the_pool)
{
    ck_assert_int_eq(weft_offload_set_threads(2), 0);
    atomic_store(&max_in_fn, 0);
    pthread_t th[3];
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, thread_loop, NULL), 0);
    for (int i = 0; i < 3; i++) {
        void *rc;
        ck_assert_int_eq(pthread_join(th[i], &rc), 0);
        ck_assert_int_eq((int)(intptr_t)rc, 0);
    }
    ck_assert_int_le(atomic_load(&max_in_fn), 2);
}
END_TEST

/* ---- a fork ------------------------------------------------------------------------------- */

static struct gate gate_e = GATE_INIT;

static void *fork_running(void *arg)
{
    return (void *)(intptr_t)weft_offload(blocking_fn, arg, -1);
}

static void *forker(void *arg)
{
    struct job *jobs = arg;     /* [0] runs on the only thread at the fork, [1] is queued */
    weft_task *a = weft_go(fork_running, &jobs[0]);
    WAIT_FOR(gate_entered(&gate_e) == 1);
    weft_task *b = weft_go(fork_running, &jobs[1]);
    weft_yield();               /* b has queued its job */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* The child: a's job is lost with the parent's thread, b's runs on a new one. The
         * gate's mutex was free at the fork (the pool thread waits on the condition). */
        void *ra, *rb;
        int ok = weft_join(a, &ra) == 0 && (int)(intptr_t)ra == -1 &&
                 weft_join(b, &rb) == 0 && (int)(intptr_t)rb == 0 &&
                 atomic_load(&jobs[1].finished);
        _exit(ok ? 11 : 10);
    }
    gate_open(&gate_e);
    void *ra, *rb;
    ck_assert_int_eq(weft_join(a, &ra), 0);
    ck_assert_int_eq(weft_join(b, &rb), 0);
    ck_assert_int_eq((int)(intptr_t)ra, 0);
    ck_assert_int_eq((int)(intptr_t)rb, 0);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 11);
    return NULL;
}

START_TEST(a_forked_child_gets_a_pool_of_its_own)
{
#ifdef __SANITIZE_THREAD__
    SKIP_IF(1, "ThreadSanitizer does not follow a multithreaded process into a forked child");
#endif
    NEEDS_FORK_MODE();          /* the child's pool is the whole process's: start from none */
    ck_assert_int_eq(weft_offload_set_threads(1), 0);
    struct job *jobs = calloc(2, sizeof *jobs);
    jobs[0].gate = &gate_e;
    ck_assert_int_eq(weft_main(forker, jobs), 0);
    ck_assert(atomic_load(&jobs[0].finished) && atomic_load(&jobs[1].finished));
    free(jobs);
}
END_TEST

static Suite *offload_suite(void)
{
    Suite *s = suite_create("offload");
    ADD_TEST(s, runs_on_a_pool_thread_and_returns_its_result, 10);
    ADD_TEST(s, outside_a_task_calls_fn_on_the_caller, 10);
    ADD_TEST(s, the_loop_keeps_running_tasks_while_a_job_blocks, 10);
    ADD_TEST(s, many_concurrent_calls_stay_within_the_pool_size, 30);
    ADD_TEST(s, bad_input, 10);
    ADD_TEST(s, size_from_the_environment, 10);
    ADD_TEST(s, bad_size_in_the_environment_gives_the_default, 10);
    ADD_TEST(s, timeout_returns_at_once_and_the_job_finishes_into_discard, 10);
    ADD_TEST(s, cancel_wakes_the_caller_and_the_job_finishes_into_discard, 10);
    ADD_TEST(s, a_call_that_leaves_before_its_job_starts_never_runs_it, 10);
    ADD_TEST(s, past_deadline_or_cancelled_task_fails_without_running_fn, 10);
    ADD_TEST(s, a_burst_of_completions_costs_one_wakeup, 20);
    ADD_TEST(s, the_dump_shows_offload_wait_with_the_function, 10);
    ADD_TEST(s, several_scheduler_threads_share_the_pool, 30);
    ADD_TEST(s, a_forked_child_gets_a_pool_of_its_own, 20);
    return s;
}

int main(void)
{
    return test_run(offload_suite());
}

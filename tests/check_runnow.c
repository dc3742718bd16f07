/* Run-now spawns (weft_attr.run_now, weft_go_now): the new task runs before the spawn
 * returns and the spawner resumes before every other runnable task; joined and detached,
 * nested, from outside a task (the ordinary spawn), inside a generator and a task group,
 * cancelled, shown in the dump, seen by the deadlock detector, and the spawn's errors.
 * Ordinary spawns and the run queue are check_sched's. */
#include "config.h"
#include "eventlog.h"
#include "testutil.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#define V(i) ((void *)(intptr_t)(i))
#define I(p) ((int)(intptr_t)(p))


static const weft_attr now_joined = { .run_now = 1 };
static const weft_attr now_detached = { .run_now = 1, .detached = 1 };

/* Logs its argument and returns it. */
static void *logger(void *arg)
{
    log_add(I(arg));
    return arg;
}

/* Logs its argument, yields, logs it plus 100. */
static void *log_yield_log(void *arg)
{
    log_add(I(arg));
    ck_assert_int_eq(weft_yield(), 0);
    log_add(I(arg) + 100);
    return NULL;
}

/* ---- order ----------------------------------------------------------------------------------- */

static void *spawn_joined_parent(void *arg)
{
    (void)arg;
    log_add(1);
    weft_task *t = weft_spawn(&now_joined, logger, V(2));
    ck_assert_ptr_nonnull(t);
    log_add(3);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq(I(v), 2);
    return NULL;
}

START_TEST(run_now_child_runs_before_the_spawn_returns)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(spawn_joined_parent, NULL));
    run_ok();
    log_expect((int[]){ 1, 2, 3 }, 3);
}
END_TEST

static void *go_now_parent(void *arg)
{
    (void)arg;
    weft_task *t = weft_go_now(logger, V(7));
    ck_assert_ptr_nonnull(t);
    log_add(8);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    return NULL;
}

START_TEST(go_now_macro_runs_the_child_at_once_and_is_joinable)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(go_now_parent, NULL));
    run_ok();
    log_expect((int[]){ 7, 8 }, 2);
}
END_TEST

static void *front_parent(void *arg)
{
    (void)arg;
    weft_task *a = weft_go(logger, V(1));
    weft_task *b = weft_go(logger, V(2));
    ck_assert_int_eq(weft_runnable(), 2);
    weft_task *c = weft_spawn(&now_joined, log_yield_log, V(3));
    ck_assert_ptr_nonnull(c);
    log_add(4);     /* c yielded: the spawner comes first, before a and b */
    ck_assert_int_eq(weft_runnable(), 3);   /* a, b, then c at the back */
    ck_assert_int_eq(weft_join(a, NULL), 0);
    ck_assert_int_eq(weft_join(b, NULL), 0);
    ck_assert_int_eq(weft_join(c, NULL), 0);
    return NULL;
}

START_TEST(spawner_resumes_before_other_runnable_tasks_and_keeps_their_order)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(front_parent, NULL));
    run_ok();
    log_expect((int[]){ 3, 4, 1, 2, 103 }, 5);
}
END_TEST

static int detached_ran;

static void *set_flag(void *arg)
{
    (void)arg;
    detached_ran++;
    return NULL;
}

static void *detached_parent(void *arg)
{
    (void)arg;
    int before = weft_runnable();
    weft_task *t = weft_spawn(&now_detached, set_flag, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(detached_ran, 1);
    ck_assert_int_eq(weft_runnable(), before);  /* nothing left queued, the spawner neither */
    errno = 0;
    ck_assert_uint_eq(weft_id(t), 0);           /* ended and reaped: the handle is stale */
    ck_assert_int_eq(errno, EINVAL);
    for (int i = 0; i < 1000; i++)              /* each reuses the stack the last gave back */
        ck_assert_ptr_nonnull(weft_spawn(&now_detached, set_flag, NULL));
    ck_assert_int_eq(detached_ran, 1001);
    return NULL;
}

START_TEST(detached_run_now_child_has_ended_when_the_spawn_returns)
{
    detached_ran = 0;
    ck_assert_ptr_nonnull(weft_go(detached_parent, NULL));
    run_ok();
    ck_assert_int_eq(detached_ran, 1001);
}
END_TEST

static void *sleep_then_log(void *arg)
{
    log_add(I(arg));
    ck_assert_int_eq(weft_sleep(20), 0);
    log_add(I(arg) + 100);
    return arg;
}

static void *blocking_parent(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(&now_joined, sleep_then_log, V(1));
    log_add(2);     /* the child parked in its sleep: the spawner went on */
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq(I(v), 1);
    log_add(3);
    return NULL;
}

START_TEST(spawner_resumes_when_the_run_now_child_blocks)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(blocking_parent, NULL));
    run_ok();
    log_expect((int[]){ 1, 2, 101, 3 }, 4);
}
END_TEST

/* ---- nesting --------------------------------------------------------------------------------- */

static void *nest(void *arg)
{
    int depth = I(arg);
    log_add(depth);
    if (depth < 50) {
        weft_task *t = weft_spawn(&now_joined, nest, V(depth + 1));
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(weft_join(t, NULL), 0);
    }
    log_add(-depth);
    return NULL;
}

START_TEST(nested_run_now_spawns_run_depth_first)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(nest, V(1)));
    run_ok();
    int want[100];
    for (int i = 0; i < 50; i++) {
        want[i] = i + 1;
        want[99 - i] = -(i + 1);
    }
    log_expect(want, 100);
}
END_TEST

/* ---- outside a task: the ordinary spawn -------------------------------------------------------- */

START_TEST(run_now_outside_any_task_is_the_ordinary_spawn)
{
    log_n = 0;
    weft_task *a = weft_spawn(&now_joined, logger, V(1));
    weft_task *b = weft_go_now(logger, V(2));
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(log_n, 0);             /* nothing ran yet */
    ck_assert_int_eq(weft_runnable(), 2);
    ck_assert_int_eq(weft_join(a, NULL), 0);
    ck_assert_int_eq(weft_join(b, NULL), 0);
    log_expect((int[]){ 1, 2 }, 2);
    run_ok();
}
END_TEST

/* ---- generators and groups --------------------------------------------------------------------- */

static void *gen_spawning(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++) {
        weft_task *t = weft_spawn(&now_joined, logger, V(10 + i));
        ck_assert_ptr_nonnull(t);
        ck_assert_int_eq(weft_join(t, NULL), 0);
        ck_assert_int_eq(weft_gen_yield(V(i), NULL), 0);
    }
    return NULL;
}

static void *gen_caller(void *arg)
{
    (void)arg;
    weft_gen *g = weft_gen_make(&now_joined, gen_spawning, NULL);   /* run_now: ignored */
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(log_n, 0);         /* a generator starts at the first send, never before */
    void *v;
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(weft_gen_next(g, &v), 0);
        ck_assert_int_eq(I(v), i);
        log_add(i);
    }
    ck_assert_fails(weft_gen_next(g, &v), EPIPE);
    ck_assert_int_eq(weft_gen_close(g), 0);
    return NULL;
}

START_TEST(run_now_spawn_inside_a_generator_runs_before_its_yield)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(gen_caller, NULL));
    run_ok();
    log_expect((int[]){ 10, 0, 11, 1, 12, 2 }, 6);
}
END_TEST

static weft_group grp = WEFT_GROUP_INIT;

static void *member(void *arg)
{
    log_add(I(arg));
    ck_assert_int_eq(weft_group_size(&grp), 1);     /* counted before it runs */
    if (I(arg) == 2)
        ck_assert_int_eq(weft_sleep(10), 0);
    return NULL;
}

static void *group_parent(void *arg)
{
    (void)arg;
    ck_assert_ptr_nonnull(weft_group_spawn(&grp, &now_joined, member, V(1)));
    log_add(10);
    ck_assert_int_eq(weft_group_size(&grp), 0);     /* it ran and ended */
    ck_assert_ptr_nonnull(weft_group_spawn(&grp, &now_joined, member, V(2)));
    log_add(20);
    ck_assert_int_eq(weft_group_size(&grp), 1);     /* parked in its sleep */
    ck_assert_int_eq(weft_group_wait(&grp, -1), 0);
    log_add(30);
    return NULL;
}

START_TEST(run_now_group_member_runs_before_the_spawn_returns)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(group_parent, NULL));
    run_ok();
    log_expect((int[]){ 1, 10, 2, 20, 30 }, 5);
}
END_TEST

/* ---- cancel, dump, deadlock ---------------------------------------------------------------------- */

static void *sleep_forever(void *arg)
{
    (void)arg;
    int r = weft_sleep_until(-1);
    return V(r == 0 ? 0 : errno);
}

static void *cancel_parent(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(&now_joined, sleep_forever, NULL);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq(I(v), ECANCELED);
    return NULL;
}

START_TEST(cancel_of_a_parked_run_now_child_wakes_it_with_ecanceled)
{
    ck_assert_ptr_nonnull(weft_go(cancel_parent, NULL));
    run_ok();
}
END_TEST

static void *cancelled_spawner(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_cancel(weft_self()), 0);
    log_add(1);
    weft_task *t = weft_spawn(&now_joined, logger, V(2));   /* spawning is no blocking call */
    ck_assert_ptr_nonnull(t);
    log_add(3);
    ck_assert_int_eq(weft_join(t, NULL), 0);     /* ended already: the join does not park */
    ck_assert_fails(weft_yield(), ECANCELED);    /* the spawner is still the cancelled one */
    return NULL;
}

START_TEST(cancelled_task_still_spawns_run_now_and_the_child_is_not_cancelled)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(cancelled_spawner, NULL));
    run_ok();
    log_expect((int[]){ 1, 2, 3 }, 3);
}
END_TEST

static char *dump_text;

static void *dumping_child(void *arg)
{
    (void)arg;
    int m = memfd_create("dump", MFD_CLOEXEC);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(weft_dump(m, WEFT_DUMP_NO_BACKTRACE), 0);
    off_t len = lseek(m, 0, SEEK_END);
    ck_assert_int_gt(len, 0);
    dump_text = calloc(1, (size_t)len + 1);
    ck_assert_ptr_nonnull(dump_text);
    ck_assert_int_eq(pread(m, dump_text, (size_t)len, 0), len);
    close(m);
    return NULL;
}

static void *dump_parent(void *arg)
{
    (void)arg;
    weft_attr a = { .run_now = 1, .name = "nowchild" };
    weft_task *t = weft_spawn(&a, dumping_child, NULL);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    return NULL;
}

START_TEST(dump_shows_the_run_now_spawner_runnable_and_the_child_running)
{
    dump_text = NULL;
    ck_assert_ptr_nonnull(weft_spawn(&(weft_attr){ .name = "nowparent" }, dump_parent, NULL));
    run_ok();
    ck_assert_ptr_nonnull(dump_text);
    ck_assert_msg(strstr(dump_text, "\"nowparent\" [runnable]") != NULL, "%s", dump_text);
    ck_assert_msg(strstr(dump_text, "\"nowchild\" [running") != NULL, "%s", dump_text);
    free(dump_text);
}
END_TEST

static weft_task *waited_parent;

static void *join_the_spawner(void *arg)
{
    (void)arg;
    void *v;
    ck_assert_int_eq(weft_join(waited_parent, &v), 0);  /* runnable, not a deadlock */
    return v;
}

static void *spawner_joined_by_child(void *arg)
{
    (void)arg;
    waited_parent = weft_self();
    ck_assert_ptr_nonnull(weft_spawn(&now_detached, join_the_spawner, NULL));
    return V(5);
}

static weft_wg never;

static void *wait_never(void *arg)
{
    (void)arg;
    weft_wg_wait(&never, -1);
    return NULL;
}

static void *join_never(void *arg)
{
    (void)arg;
    weft_task *t = weft_spawn(&now_joined, wait_never, NULL);
    weft_join(t, NULL);
    return NULL;
}

START_TEST(deadlock_detector_sees_run_now_tasks_as_any_others)
{
    waited_parent = NULL;
    weft_task *p = weft_go(spawner_joined_by_child, NULL);
    ck_assert_ptr_nonnull(p);
    run_ok();
    ck_assert_int_eq(weft_wg_init(&never, "never"), 0);
    ck_assert_int_eq(weft_wg_add(&never, 1), 0);
    ck_assert_ptr_nonnull(weft_go(join_never, NULL));
    ck_assert_fails(weft_run(), EDEADLK);
    ck_assert_int_eq(weft_wg_done(&never), 0);  /* and they end (CK_FORK=no runs on after) */
    run_ok();
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------------- */

static void *error_parent(void *arg)
{
    (void)arg;
    ck_assert_ptr_nonnull(weft_go(logger, V(1)));      /* queued: must stay so */
    ck_assert_fails(weft_spawn(&now_joined, NULL, NULL), EINVAL);
    ck_assert_fails(weft_spawn(&(weft_attr){ .run_now = 1, .reserved = { 1 } }, logger, V(9)),
                    EINVAL);
    ck_assert_fails(weft_spawn(&(weft_attr){ .run_now = 1, .stack_size = 1 }, logger, V(9)),
                    EINVAL);
    ck_assert_int_eq(weft_runnable(), 1);
    ck_assert_int_eq(log_n, 0);
    return NULL;
}

START_TEST(failed_run_now_spawn_switches_nothing)
{
    log_n = 0;
    ck_assert_ptr_nonnull(weft_go(error_parent, NULL));
    run_ok();
    log_expect((int[]){ 1 }, 1);
}
END_TEST

static int as_unlimited;

static void *enomem_parent(void *arg)
{
    (void)arg;
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_AS, &old), 0);
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long pages;
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
    fclose(f);
    lim = old;
    lim.rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (rlim_t)256 * 1024 * 1024;
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &lim), 0);
    void *big = mmap(NULL, (size_t)1 << 30, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (big != MAP_FAILED) {        /* over the limit, yet mapped: the limit is not kept */
        munmap(big, (size_t)1 << 30);
        as_unlimited = 1;
    } else {
        ck_assert_fails(weft_spawn(&(weft_attr){ .run_now = 1, .stack_size = WEFT_STACK_MAX },
                                   logger, V(9)), ENOMEM);
        ck_assert_int_eq(log_n, 0);
        ck_assert_int_eq(weft_runnable(), 0);
    }
    ck_assert_int_eq(setrlimit(RLIMIT_AS, &old), 0);
    weft_task *t = weft_spawn(&now_joined, logger, V(1));   /* and the thread goes on */
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    return NULL;
}

START_TEST(run_now_spawn_out_of_address_space_fails_enomem_and_switches_nothing)
{
    SKIP_IF(RUNNING_ON_VALGRIND, "valgrind keeps its own address-space accounting");
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
    SKIP_IF(1, "the sanitizers' shadow memory does not keep to RLIMIT_AS");
#endif
    log_n = 0;
    as_unlimited = 0;
    ck_assert_ptr_nonnull(weft_go(enomem_parent, NULL));
    run_ok();
    if (as_unlimited)
        fprintf(stderr, "%s: RLIMIT_AS not enforced here; ENOMEM part skipped\n", __func__);
    log_expect((int[]){ 1 }, 1);
}
END_TEST

static Suite *runnow_suite(void)
{
    Suite *s = suite_create("runnow");
    TCase *tc = test_case(s, "order", 20);
    tcase_add_test(tc, run_now_child_runs_before_the_spawn_returns);
    tcase_add_test(tc, go_now_macro_runs_the_child_at_once_and_is_joinable);
    tcase_add_test(tc, spawner_resumes_before_other_runnable_tasks_and_keeps_their_order);
    tcase_add_test(tc, detached_run_now_child_has_ended_when_the_spawn_returns);
    tcase_add_test(tc, spawner_resumes_when_the_run_now_child_blocks);
    tcase_add_test(tc, nested_run_now_spawns_run_depth_first);
    tcase_add_test(tc, run_now_outside_any_task_is_the_ordinary_spawn);

    tc = test_case(s, "layers", 20);
    tcase_add_test(tc, run_now_spawn_inside_a_generator_runs_before_its_yield);
    tcase_add_test(tc, run_now_group_member_runs_before_the_spawn_returns);
    tcase_add_test(tc, cancel_of_a_parked_run_now_child_wakes_it_with_ecanceled);
    tcase_add_test(tc, cancelled_task_still_spawns_run_now_and_the_child_is_not_cancelled);
    tcase_add_test(tc, dump_shows_the_run_now_spawner_runnable_and_the_child_running);
    tcase_add_test(tc, deadlock_detector_sees_run_now_tasks_as_any_others);

    tc = test_case(s, "errors", 20);
    tcase_add_test(tc, failed_run_now_spawn_switches_nothing);
    tcase_add_test(tc, run_now_spawn_out_of_address_space_fails_enomem_and_switches_nothing);
    return s;
}

int main(void)
{
    return test_run(runnow_suite());
}

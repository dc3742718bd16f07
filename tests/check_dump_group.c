/* The grouped dump (WEFT_DUMP_GROUP) and the folded stacks (WEFT_DUMP_FOLDED): thousands of
 * tasks parked in three places fold into three groups with the right counts, in text and
 * JSON; the folded lines name the stack outermost first; another thread's grouped dump is
 * made in its signal handler. Task functions are extern and never inlined, so the frames can
 * be checked by name. */
#define _GNU_SOURCE
#include "testutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

void *dumpgroup_sleeper(void *arg);
void *dumpgroup_receiver(void *arg);
void *dumpgroup_reader(void *arg);

static weft_chan *chan;
static int pipefd[2];

NOINLINE void *dumpgroup_sleeper(void *arg)
{
    weft_sleep_until(-1);
    return arg;
}

NOINLINE void *dumpgroup_receiver(void *arg)
{
    int v;
    weft_chan_recv(chan, &v, -1);
    return arg;
}

NOINLINE void *dumpgroup_reader(void *arg)
{
    weft_fdwait(pipefd[0], WEFT_READ, -1);
    return arg;
}

/* weft_dump(flags) into a malloc'd string. */
static char *dump_string(int flags)
{
    return test_dump(flags);
}

static size_t count_of(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The block of the text dump that starts with prefix, up to its blank line. */
static char *block_starting(const char *s, const char *prefix)
{
    const char *p = strstr(s, prefix);
    if (!p)
        return NULL;
    const char *end = strstr(p, "\n\n");
    return strndup(p, end ? (size_t)(end - p) : strlen(p));
}

struct parked {
    int n[3];                   /* sleepers, receivers, readers */
    weft_task **tasks;
    int total;
};

static void park_all(struct parked *pk, int a, int b, int c)
{
    pk->n[0] = a;
    pk->n[1] = b;
    pk->n[2] = c;
    pk->total = a + b + c;
    pk->tasks = calloc((size_t)pk->total, sizeof *pk->tasks);
    ck_assert_ptr_nonnull(pk->tasks);
    chan = weft_chan_make(sizeof(int), 0);
    ck_assert_ptr_nonnull(chan);
    ck_assert_int_eq(pipe(pipefd), 0);
    void *(*fns[3])(void *) = { dumpgroup_sleeper, dumpgroup_receiver, dumpgroup_reader };
    weft_attr attr = { .stack_size = WEFT_STACK_MIN };
    int k = 0;
    /* Interleaved, so a group's tasks are not neighbours in the registry. */
    for (int i = 0; k < pk->total; i++) {
        for (int f = 0; f < 3; f++) {
            if (i < pk->n[f]) {
                pk->tasks[k] = weft_spawn(&attr, fns[f], NULL);
                ck_assert_ptr_nonnull(pk->tasks[k]);
                k++;
            }
        }
    }
    ck_assert_int_eq(weft_sleep(1), 0);     /* every one of them runs and parks */
    ck_assert_int_eq(weft_runnable(), 0);
}

static void unpark_all(struct parked *pk)
{
    for (int i = 0; i < pk->total; i++)
        ck_assert_int_eq(weft_cancel(pk->tasks[i]), 0);
    for (int i = 0; i < pk->total; i++)
        ck_assert_int_eq(weft_join(pk->tasks[i], NULL), 0);
    free(pk->tasks);
    ck_assert_int_eq(weft_chan_free(chan), 0);
    close(pipefd[0]);
    close(pipefd[1]);
}

static int big_sleepers(void) { return RUNNING_ON_VALGRIND ? 500 : 5000; }

static void *grouped_text_body(void *arg)
{
    struct parked pk;
    int a = big_sleepers();
    park_all(&pk, a, a * 3 / 5, a * 2 / 5);     /* 10,000 tasks: 5000, 3000, 2000 */
    char *s = dump_string(WEFT_DUMP_GROUP);
    char want[128];
    const char *states[3] = { "sleeping", "chan-wait", "io-wait" };
    const char *fns[3] = { "dumpgroup_sleeper+", "dumpgroup_receiver+", "dumpgroup_reader+" };
    for (int g = 0; g < 3; g++) {
        snprintf(want, sizeof want, "group %d: %d tasks [%s], waiting ", g + 1, pk.n[g], states[g]);
        char *blk = block_starting(s, want);
        ck_assert_msg(blk != NULL, "no \"%s\" in:\n%.3000s", want, s);
        /* the first lines of the block: the waits, a few examples, then the frames */
        ck_assert_msg(strstr(blk, " ms, e.g. tasks ") != NULL, "%s", blk);
        ck_assert_msg(strstr(blk, fns[g]) != NULL, "no %s in:\n%s", fns[g], blk);
        ck_assert_msg(strstr(blk, " task_entry+") != NULL, "%s", blk);
        for (int o = 0; o < 3; o++)
            ck_assert_msg(o == g || strstr(blk, fns[o]) == NULL, "%s in:\n%s", fns[o], blk);
        free(blk);
    }
    /* The dumper itself: a group of its own. No other groups: three, and this one. */
    ck_assert_msg(strstr(s, "group 4: 1 task [running], task ") != NULL, "%.3000s", s);
    ck_assert_int_eq(count_of(s, "\ngroup "), 4);
    ck_assert_int_eq(count_of(s, "\ntask "), 0);
    snprintf(want, sizeof want, ": %d tasks: 1 running, %d io-wait, %d sleeping, %d chan-wait;",
             pk.total + 1, pk.n[2], pk.n[0], pk.n[1]);
    ck_assert_msg(strstr(s, want) != NULL, "no \"%s\" in:\n%.500s", want, s);
    free(s);

    /* Without backtraces: by state alone, the same counts. */
    s = dump_string(WEFT_DUMP_GROUP | WEFT_DUMP_NO_BACKTRACE);
    snprintf(want, sizeof want, "group 1: %d tasks [sleeping], waiting ", pk.n[0]);
    ck_assert_msg(strstr(s, want) != NULL, "%.2000s", s);
    ck_assert_int_eq(count_of(s, "    #"), 0);
    free(s);
    unpark_all(&pk);
    *(int *)arg = 1;
    return NULL;
}

START_TEST(grouped_dump_folds_ten_thousand_tasks_into_three_groups)
{
    int done = 0;
    ck_assert_int_eq(weft_main(grouped_text_body, &done), 0);
    ck_assert_int_eq(done, 1);
}
END_TEST

static void *grouped_json_body(void *arg)
{
    struct parked pk;
    int a = big_sleepers();
    park_all(&pk, a, a * 3 / 5, a * 2 / 5);
    char *s = dump_string(WEFT_DUMP_GROUP | WEFT_DUMP_JSON);
    ck_assert_msg(strstr(s, "\"groups\":[{\"count\":") != NULL, "%.1000s", s);
    ck_assert_ptr_null(strstr(s, "\"tasks\":"));
    const char *states[3] = { "sleeping", "chan-wait", "io-wait" };
    const char *prev = s;
    for (int g = 0; g < 3; g++) {
        char want[96];
        snprintf(want, sizeof want, "{\"count\":%d,\"state\":\"%s\",\"oldest_wait_ms\":", pk.n[g],
                 states[g]);
        const char *at = strstr(s, want);
        ck_assert_msg(at != NULL, "no %s in:\n%.2000s", want, s);
        ck_assert_msg(at >= prev, "group %d out of order", g + 1);   /* sorted by count */
        prev = at;
        const char *ex = strstr(at, "\"examples\":[");
        ck_assert_ptr_nonnull(ex);
        char *exs = strndup(ex, strcspn(ex, "]"));
        ck_assert_int_eq(count_of(exs, ","), 4);       /* five example ids */
        free(exs);
    }
    ck_assert_int_eq(count_of(s, "{\"count\":"), 4);
    ck_assert_msg(strstr(s, "\"func\":\"dumpgroup_receiver\"") != NULL, "%.2000s", s);
    free(s);
    unpark_all(&pk);
    *(int *)arg = 1;
    return NULL;
}

START_TEST(grouped_json_has_a_group_per_place_sorted_by_count)
{
    int done = 0;
    ck_assert_int_eq(weft_main(grouped_json_body, &done), 0);
    ck_assert_int_eq(done, 1);
}
END_TEST

static void *folded_body(void *arg)
{
    struct parked pk;
    park_all(&pk, 15, 10, 5);
    char *s = dump_string(WEFT_DUMP_FOLDED);
    /* one line per distinct stack: the three places and the dumper */
    ck_assert_int_eq(count_of(s, "\n"), 4);
    const char *fns[3] = { ";dumpgroup_sleeper;", ";dumpgroup_receiver;", ";dumpgroup_reader;" };
    for (int g = 0; g < 3; g++) {
        char *line = NULL;
        for (const char *p = s; *p; p += strcspn(p, "\n") + 1) {
            char *l = strndup(p, strcspn(p, "\n"));
            if (strstr(l, fns[g]))
                line = l;
            else
                free(l);
        }
        ck_assert_msg(line != NULL, "no %s in:\n%s", fns[g], s);
        /* frame;frame;...;frame COUNT */
        char want[16];
        snprintf(want, sizeof want, " %d", pk.n[g]);
        const char *sp = strrchr(line, ' ');
        ck_assert_msg(sp && strcmp(sp, want) == 0, "%s", line);
        /* outermost first: the task's entry path comes before its function */
        const char *te = strstr(line, "task_entry;");
        ck_assert_msg(te != NULL && (te == line || te[-1] == ';'), "%s", line);
        ck_assert_msg(te < strstr(line, fns[g]), "%s", line);
        ck_assert_msg(strstr(line, ";weft_sched_park ") != NULL || g == 1, "%s", line);
        ck_assert_ptr_null(strchr(te, '+'));        /* names, no offsets (an unknown frame
                                                       outside weft is [module+0xoff]) */
        ck_assert_int_eq(count_of(line, " "), 1);
        free(line);
    }
    ck_assert_msg(strstr(s, ";folded_body;") != NULL, "%s", s);
    free(s);
    ck_assert_fails(weft_dump(1, WEFT_DUMP_FOLDED | WEFT_DUMP_JSON), EINVAL);
    ck_assert_fails(weft_dump(1, WEFT_DUMP_FOLDED | WEFT_DUMP_GROUP), EINVAL);
    ck_assert_fails(weft_dump(1, WEFT_DUMP_FOLDED | WEFT_DUMP_NO_BACKTRACE), EINVAL);
    ck_assert_fails(weft_dump(1, 0x40), EINVAL);
    unpark_all(&pk);
    *(int *)arg = 1;
    return NULL;
}

START_TEST(folded_stacks_give_one_line_per_stack_outermost_first)
{
    int done = 0;
    ck_assert_int_eq(weft_main(folded_body, &done), 0);
    ck_assert_int_eq(done, 1);
}
END_TEST

/* Another scheduler thread with 7 sleepers: its grouped dump is written by its handler. */
static int other_fds[2];

static void *other_main(void *arg)
{
    weft_task *t[7];
    for (int i = 0; i < 7; i++)
        ck_assert_ptr_nonnull(t[i] = weft_go(dumpgroup_sleeper, NULL));
    char c;
    ck_assert_int_eq(weft_read(other_fds[0], &c, 1), 1);   /* until the test says stop */
    for (int i = 0; i < 7; i++) {
        ck_assert_int_eq(weft_cancel(t[i]), 0);
        ck_assert_int_eq(weft_join(t[i], NULL), 0);
    }
    return arg;
}

static void *other_thread(void *arg)
{
    ck_assert_int_eq(weft_main(other_main, NULL), 0);
    return arg;
}

START_TEST(grouped_dump_of_another_thread_is_made_in_its_handler)
{
    ck_assert_int_eq(pipe(other_fds), 0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    char *s = NULL;
    for (int i = 0; i < 200; i++) {
        free(s);
        s = dump_string(WEFT_DUMP_GROUP | WEFT_DUMP_ALL_THREADS);
        if (strstr(s, "group 1: 7 tasks [sleeping]"))
            break;
        usleep(10 * 1000);
    }
    ck_assert_msg(strstr(s, "group 1: 7 tasks [sleeping], waiting ") != NULL, "%s", s);
    ck_assert_msg(strstr(s, ", signal ") != NULL, "%s", s);
    ck_assert_msg(strstr(s, "dumpgroup_sleeper+") != NULL, "%s", s);
    free(s);
    ck_assert_int_eq(write(other_fds[1], "x", 1), 1);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    close(other_fds[0]);
    close(other_fds[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dump_group");
    TCase *tc = test_case(s, "group", 120);
    tcase_add_test(tc, grouped_dump_folds_ten_thousand_tasks_into_three_groups);
    tcase_add_test(tc, grouped_json_has_a_group_per_place_sorted_by_count);
    tcase_add_test(tc, folded_stacks_give_one_line_per_stack_outermost_first);
    tcase_add_test(tc, grouped_dump_of_another_thread_is_made_in_its_handler);
    return test_run(s);
}

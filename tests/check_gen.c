/* Check suite for generators (src/gen.c): send/yield rounds, the end and fn's value, close
 * (early, never started, mid-round, from a cancelled task), generators that sleep or read a
 * pipe while other tasks run, the caller's cancel and deadline paths, misuse errnos, the
 * main context as a caller, the dump's gen-wait line, and many generators at once. */
#include "iotest.h"

#include <stdint.h>
#include <sys/mman.h>

#define P(x) ((void *)(intptr_t)(x))
#define I(p) ((intptr_t)(p))

/* ---- 1..N, summing what is sent ----------------------------------------------------------- */

struct counter {
    int n;
    intptr_t sum;               /* of the values sent */
    int cleaned;                /* set when fn returns after a failed yield */
    int yield_err;
};

static void *count_to_n(void *arg)
{
    struct counter *c = arg;
    for (int i = 1; i <= c->n; i++) {
        void *in;
        if (weft_gen_yield(P(i), &in) != 0) {
            c->yield_err = errno;
            /* After ECANCELED, a further yield fails at once, delivering nothing. */
            if (weft_gen_yield(P(-1), NULL) == 0 || errno != ECANCELED)
                c->yield_err = -1;
            c->cleaned = 1;
            return P(-1);
        }
        c->sum += I(in);
    }
    return P(c->sum);
}

TASK_TEST(yields_1_to_n_and_sums_what_is_sent)
{
    struct counter c = { .n = 100 };
    weft_gen *g = weft_gen_make(NULL, count_to_n, &c);
    ck_assert_ptr_nonnull(g);
    ck_assert_fails(weft_gen_result(g, NULL), EAGAIN);
    void *out;
    intptr_t expect = 0;
    ck_assert_int_eq(weft_gen_next(g, &out), 0);        /* the first value sent is ignored */
    ck_assert_int_eq(I(out), 1);
    for (int i = 2; i <= c.n; i++) {
        ck_assert_int_eq(weft_gen_send(g, P(i * 10), &out), 0);
        expect += i * 10;
        ck_assert_int_eq(I(out), i);
    }
    ck_assert_fails(weft_gen_send(g, P(7), &out), EPIPE);   /* fn returns: the end */
    expect += 7;
    void *r;
    ck_assert_int_eq(weft_gen_result(g, &r), 0);
    ck_assert_int_eq(I(r), expect);
    ck_assert_int_eq(c.sum, expect);
    ck_assert_fails(weft_gen_next(g, &out), EPIPE);     /* and it stays ended */
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_fails(weft_gen_next(g, &out), EPIPE);     /* closed: stale handle */
    ck_assert_fails(weft_gen_result(g, &r), EPIPE);
    ck_assert_fails(weft_gen_close(g), EPIPE);
}

static void *exits_after_two(void *arg)
{
    (void)arg;
    weft_gen_yield(P(1), NULL);
    weft_gen_yield(P(2), NULL);
    weft_sleep(1);          /* the caller parked in send meanwhile */
    weft_exit(P(42));
    return P(-1);           /* never reached */
}

/* fn ending with weft_exit ends the generator as returning that value would. */
TASK_TEST(weft_exit_in_the_generator_ends_it_with_its_value)
{
    weft_gen *g = weft_gen_make(NULL, exits_after_two, NULL);
    ck_assert_ptr_nonnull(g);
    void *out, *r;
    ck_assert_int_eq(weft_gen_next(g, &out), 0);
    ck_assert_int_eq(I(out), 1);
    ck_assert_int_eq(weft_gen_next(g, &out), 0);
    ck_assert_int_eq(I(out), 2);
    ck_assert_fails(weft_gen_send(g, NULL, &out), EPIPE);
    ck_assert_int_eq(weft_gen_result(g, &r), 0);
    ck_assert_int_eq(I(r), 42);
    ck_assert_int_eq(weft_gen_close(g), 0);
}

TASK_TEST(closed_early_its_yield_fails_and_it_cleans_up)
{
    struct counter c = { .n = 1000 };
    weft_gen *g = weft_gen_make(NULL, count_to_n, &c);
    void *out;
    for (int i = 1; i <= 5; i++) {
        ck_assert_int_eq(weft_gen_send(g, P(1), &out), 0);
        ck_assert_int_eq(I(out), i);
    }
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(c.cleaned, 1);                      /* ran before close returned */
    ck_assert_int_eq(c.yield_err, ECANCELED);
    ck_assert_int_eq(c.sum, 4);
    ck_assert_fails(weft_gen_send(g, P(1), &out), EPIPE);
}

static int started;

static void *never_run(void *arg)
{
    (void)arg;
    started = 1;
    return NULL;
}

TASK_TEST(closed_before_its_first_send_fn_never_runs)
{
    started = 0;
    weft_gen *g = weft_gen_make(NULL, never_run, NULL);
    ck_assert_int_eq(weft_gen_close(g), 0);
    /* Also when it has been run from the run queue (parked waiting for the first send). */
    weft_gen *h = weft_gen_make(&(weft_attr){ .name = "idle" }, never_run, NULL);
    settle();
    ck_assert_int_eq(weft_gen_close(h), 0);
    ck_assert_int_eq(started, 0);
}

/* ---- generators that block ---------------------------------------------------------------- */

static int ticks;

static void *ticker(void *arg)
{
    int *stop = arg;
    while (!*stop) {
        ticks++;
        weft_sleep(1);
    }
    return NULL;
}

static void *sleepy(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++) {
        if (weft_sleep(5) != 0)
            return P(-1);
        if (weft_gen_yield(P(i), NULL) != 0)
            return P(-2);
    }
    return P(n);
}

TASK_TEST(sleeps_between_yields_while_another_task_runs)
{
    int stop = 0, n = 10;
    ticks = 0;
    weft_task *t = weft_go(ticker, &stop);
    weft_gen *g = weft_gen_make(NULL, sleepy, &n);
    void *out;
    int64_t t0 = weft_now();
    for (int i = 0; i < n; i++) {
        int before = ticks;
        ck_assert_int_eq(weft_gen_next(g, &out), 0);
        ck_assert_int_eq(I(out), i);
        ck_assert_int_gt(ticks, before);                 /* the ticker ran meanwhile */
    }
    ck_assert_int_ge(weft_now() - t0, 50);
    ck_assert_fails(weft_gen_next(g, &out), EPIPE);
    void *r;
    ck_assert_int_eq(weft_gen_result(g, &r), 0);
    ck_assert_int_eq(I(r), n);
    ck_assert_int_eq(weft_gen_close(g), 0);
    stop = 1;
    ck_assert_int_eq(weft_join(t, NULL), 0);
}

/* Yields each byte read from a pipe; returns the count at EOF. */
static void *pipe_bytes(void *arg)
{
    int fd = *(int *)arg;
    intptr_t n = 0;
    char ch;
    ssize_t r;
    while ((r = weft_read(fd, &ch, 1)) == 1) {
        n++;
        if (weft_gen_yield(P((unsigned char)ch), NULL) != 0)
            return P(-1);
    }
    return r == 0 ? P(n) : P(-errno);
}

struct writer {
    int fd;
    const char *text;
};

static void *slow_writer(void *arg)
{
    struct writer *w = arg;
    for (const char *p = w->text; *p; p++) {
        weft_sleep(2);
        if (weft_write(w->fd, p, 1) != 1)
            return P(-1);
    }
    close(w->fd);
    return NULL;
}

TASK_TEST(reads_a_pipe_inside_the_generator)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct writer w = { p[1], "hello" };
    weft_task *t = weft_go(slow_writer, &w);
    weft_gen *g = weft_gen_make(NULL, pipe_bytes, &p[0]);
    char got[8] = { 0 };
    void *out;
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(weft_gen_next(g, &out), 0);
        got[i] = (char)I(out);
    }
    ck_assert_str_eq(got, "hello");
    ck_assert_fails(weft_gen_next(g, &out), EPIPE);
    void *r;
    ck_assert_int_eq(weft_gen_result(g, &r), 0);
    ck_assert_int_eq(I(r), 5);
    ck_assert_int_eq(weft_gen_close(g), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    weft_close(p[0]);
}

/* ---- the caller's cancel and deadline paths ----------------------------------------------- */

struct driver {
    weft_gen *g;
    int rc, err;
    void *out;
    int64_t deadline;           /* task deadline scope for the send; -1 none */
};

static void *drive_once(void *arg)
{
    struct driver *d = arg;
    if (d->deadline >= 0)
        weft_set_task_deadline(d->deadline);
    errno = 0;
    d->rc = weft_gen_next(d->g, &d->out);
    d->err = errno;
    return NULL;
}

TASK_TEST(cancel_of_caller_parked_in_send_leaves_generator_consistent)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    weft_gen *g = weft_gen_make(NULL, pipe_bytes, &p[0]);
    struct driver d = { .g = g, .deadline = -1 };
    weft_task *t = weft_go(drive_once, &d);
    settle();                                   /* d parked in send; g parked reading */
    struct driver busy = { .g = g, .deadline = -1 };
    drive_once(&busy);
    ck_assert_int_eq(busy.rc, -1);
    ck_assert_int_eq(busy.err, EBUSY);          /* another task drives it */
    ck_assert_int_eq(weft_cancel(t), 0);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(d.rc, -1);
    ck_assert_int_eq(d.err, ECANCELED);
    /* The round goes on: the byte read now is kept for the next send, which is its retry. */
    ck_assert_int_eq(write(p[1], "xy", 2), 2);
    settle();
    void *out;
    ck_assert_int_eq(weft_gen_send(g, P(99), &out), 0);
    ck_assert_int_eq(I(out), 'x');
    ck_assert_int_eq(weft_gen_next(g, &out), 0);
    ck_assert_int_eq(I(out), 'y');
    close(p[1]);
    ck_assert_fails(weft_gen_next(g, &out), EPIPE);
    ck_assert_int_eq(weft_gen_close(g), 0);
    weft_close(p[0]);
}

TASK_TEST(caller_deadline_scope_ends_send_and_a_retry_waits_for_the_round)
{
    int n = 1;
    weft_gen *g = weft_gen_make(NULL, sleepy, &n);
    struct driver d = { .g = g, .deadline = weft_now() + 1 };  /* sleepy sleeps 5 ms first */
    weft_task *t = weft_go(drive_once, &d);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(d.rc, -1);
    ck_assert_int_eq(d.err, ETIMEDOUT);
    void *out;
    ck_assert_int_eq(weft_gen_next(g, &out), 0);   /* still mid-round, or kept: either way 0 */
    ck_assert_int_eq(I(out), 0);
    ck_assert_fails(weft_gen_next(g, &out), EPIPE);
    ck_assert_int_eq(weft_gen_close(g), 0);
}

TASK_TEST(close_mid_round_without_caller_cancels_its_blocking_call)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    weft_gen *g = weft_gen_make(NULL, pipe_bytes, &p[0]);
    struct driver d = { .g = g, .deadline = -1 };
    weft_task *t = weft_go(drive_once, &d);
    settle();
    weft_cancel(t);
    weft_join(t, NULL);
    ck_assert_int_eq(weft_gen_close(g), 0);     /* its read fails with ECANCELED; it returns */
    ck_assert_fails(weft_gen_next(g, NULL), EPIPE);
    close(p[1]);
    weft_close(p[0]);
}

static void *close_when_cancelled(void *arg)
{
    weft_gen *g = arg;
    weft_sleep(-1);                             /* until cancelled */
    return P(weft_gen_close(g));
}

struct slow_clean {
    int yielded, done, sleep_err;
};

/* Yields once, then on ECANCELED tries to sleep while cleaning up. */
static void *slow_cleanup(void *arg)
{
    struct slow_clean *c = arg;
    for (;;) {
        if (weft_gen_yield(P(c->yielded++), NULL) != 0)
            break;
    }
    c->sleep_err = weft_sleep(1000) == 0 ? 0 : errno;
    c->done = 1;
    return NULL;
}

TASK_TEST(close_from_a_cancelled_task_lets_the_generator_finish_alone)
{
    struct slow_clean c = { 0 };
    weft_gen *g = weft_gen_make(NULL, slow_cleanup, &c);
    ck_assert_int_eq(weft_gen_next(g, NULL), 0);
    weft_task *t = weft_go(close_when_cancelled, g);
    settle();
    weft_cancel(t);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(I(r), 0);
    ck_assert_fails(weft_gen_next(g, NULL), EPIPE);     /* closed, even while it finishes */
    for (int i = 0; i < 100 && !c.done; i++)
        weft_sleep(1);
    ck_assert_int_eq(c.done, 1);
    ck_assert_int_eq(c.sleep_err, ECANCELED);           /* its cleanup could not block */
}

static void *self_cancel_gen(void *arg)
{
    (void)arg;
    weft_cancel(weft_self());
    if (weft_gen_yield(P(1), NULL) == 0 || errno != ECANCELED)
        return P(-1);
    return P(42);
}

TASK_TEST(a_cancelled_generator_task_yields_nothing_and_ends)
{
    weft_gen *g = weft_gen_make(NULL, self_cancel_gen, NULL);
    ck_assert_fails(weft_gen_next(g, NULL), EPIPE);
    void *r;
    ck_assert_int_eq(weft_gen_result(g, &r), 0);
    ck_assert_int_eq(I(r), 42);
    ck_assert_int_eq(weft_gen_close(g), 0);
}

/* ---- misuse --------------------------------------------------------------------------------- */

static weft_gen *self_gen;
static int inner_errs[4];

static void *misuser(void *arg)
{
    (void)arg;
    errno = 0;
    inner_errs[0] = weft_gen_send(self_gen, NULL, NULL) == -1 ? errno : 0;
    inner_errs[1] = weft_gen_close(self_gen) == -1 ? errno : 0;
    inner_errs[2] = weft_join(weft_self(), NULL) == -1 ? errno : 0;
    inner_errs[3] = weft_detach(weft_self()) == -1 ? errno : 0;
    weft_gen_yield(NULL, NULL);
    return NULL;
}

static void *plain_task(void *arg)
{
    (void)arg;
    return P(weft_gen_yield(NULL, NULL) == -1 ? errno : 0);
}

TASK_TEST(misuse_gets_an_errno)
{
    ck_assert_fails(weft_gen_yield(NULL, NULL), EPERM);
    void *r;
    weft_task *t = weft_go(plain_task, NULL);
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(I(r), EPERM);
    ck_assert_fails(weft_gen_make(NULL, NULL, NULL), EINVAL);
    ck_assert_fails(weft_gen_make(&(weft_attr){ .stack_size = 1 }, never_run, NULL), EINVAL);
    ck_assert_fails(weft_gen_send(NULL, NULL, NULL), EINVAL);
    ck_assert_fails(weft_gen_next(NULL, NULL), EINVAL);
    ck_assert_fails(weft_gen_close(NULL), EINVAL);
    ck_assert_fails(weft_gen_result(NULL, NULL), EINVAL);
    ck_assert_fails(weft_gen_next((weft_gen *)weft_self(), NULL), EINVAL);  /* a plain task */
    self_gen = weft_gen_make(NULL, misuser, NULL);
    ck_assert_int_eq(weft_gen_next(self_gen, NULL), 0);
    ck_assert_int_eq(inner_errs[0], EDEADLK);
    ck_assert_int_eq(inner_errs[1], EDEADLK);
    ck_assert_int_eq(inner_errs[2], EDEADLK);
    ck_assert_int_eq(inner_errs[3], EINVAL);
    ck_assert_int_eq(weft_gen_close(self_gen), 0);
    weft_cancel(weft_self());
    struct counter c = { .n = 3 };
    weft_gen *g = weft_gen_make(NULL, count_to_n, &c);
    ck_assert_fails(weft_gen_next(g, NULL), ECANCELED);  /* a cancelled caller cannot wait */
    ck_assert_int_eq(weft_gen_close(g), 0);              /* but close works */
}

START_TEST(yield_outside_any_task_is_eperm)
{
    ck_assert_fails(weft_gen_yield(NULL, NULL), EPERM);
    ck_assert_fails(weft_gen_send((weft_gen *)(uintptr_t)0x100000001ull, NULL, NULL), EPIPE);
}
END_TEST

/* ---- the main context as a caller --------------------------------------------------------- */

START_TEST(main_context_drives_a_generator)
{
    struct counter c = { .n = 3 };
    weft_gen *g = weft_gen_make(NULL, count_to_n, &c);
    void *out;
    for (int i = 1; i <= 3; i++) {
        ck_assert_int_eq(weft_gen_send(g, P(i), &out), 0);
        ck_assert_int_eq(I(out), i);
    }
    ck_assert_fails(weft_gen_send(g, P(4), &out), EPIPE);
    void *r;
    ck_assert_int_eq(weft_gen_result(g, &r), 0);
    ck_assert_int_eq(I(r), 2 + 3 + 4);
    ck_assert_int_eq(weft_gen_close(g), 0);
    /* One that sleeps: main runs the scheduler meanwhile, and the other tasks run. */
    int stop = 0, n = 3;
    ticks = 0;
    weft_task *t = weft_go(ticker, &stop);
    weft_gen *s = weft_gen_make(NULL, sleepy, &n);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(weft_gen_next(s, &out), 0);
        ck_assert_int_eq(I(out), i);
    }
    ck_assert_int_gt(ticks, 0);
    ck_assert_int_eq(weft_gen_close(s), 0);         /* suspended: its yield fails, it ends */
    stop = 1;
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_eq(weft_run(), 0);
}
END_TEST

START_TEST(weft_run_ends_with_generators_left_suspended)
{
    struct counter c = { .n = 10 };
    weft_gen *g = weft_gen_make(NULL, count_to_n, &c);
    ck_assert_int_eq(weft_gen_next(g, NULL), 0);
    ck_assert_int_eq(weft_run(), 0);                /* not alive: cancelled, it ends */
    ck_assert_int_eq(c.cleaned, 1);
    ck_assert_int_eq(c.yield_err, ECANCELED);
    ck_assert_int_eq(weft_gen_close(g), 0);
}
END_TEST

/* ---- nesting and counts --------------------------------------------------------------------- */

static void *doubler(void *arg)
{
    weft_gen *inner = arg;
    void *v;
    while (weft_gen_next(inner, &v) == 0)
        if (weft_gen_yield(P(I(v) * 2), NULL) != 0)
            break;
    return NULL;
}

TASK_TEST(a_generator_drives_another)
{
    struct counter c = { .n = 4 };
    weft_gen *inner = weft_gen_make(NULL, count_to_n, &c);
    weft_gen *outer = weft_gen_make(NULL, doubler, inner);
    void *out;
    for (int i = 1; i <= 4; i++) {
        ck_assert_int_eq(weft_gen_next(outer, &out), 0);
        ck_assert_int_eq(I(out), 2 * i);
    }
    ck_assert_fails(weft_gen_next(outer, &out), EPIPE);
    ck_assert_int_eq(weft_gen_close(outer), 0);
    ck_assert_int_eq(weft_gen_close(inner), 0);
}

/* ---- the dump ------------------------------------------------------------------------------- */

static char *dump_string(int flags)
{
    return test_dump(flags | WEFT_DUMP_NO_BACKTRACE);
}

static uint64_t numbers_id;

static void *long_sleeper(void *arg)
{
    (void)arg;
    numbers_id = weft_id(NULL);
    weft_sleep(10000);
    weft_gen_yield(NULL, NULL);
    return NULL;
}

static void *named_driver(void *arg)
{
    weft_set_name(NULL, "driver");
    return P(weft_gen_next(arg, NULL) == -1 ? errno : 0);
}

TASK_TEST(dump_shows_the_caller_in_gen_wait)
{
    weft_gen *g = weft_gen_make(&(weft_attr){ .name = "numbers" }, long_sleeper, NULL);
    weft_task *t = weft_go(named_driver, g);
    settle();
    char *text = dump_string(0);
    char want[160];
    snprintf(want, sizeof want, "\"driver\" [gen-wait send \"numbers\" held by task %llu, ",
             (unsigned long long)numbers_id);
    ck_assert_msg(strstr(text, want), "no '%s' in:\n%s", want, text);
    ck_assert_msg(strstr(text, "\"numbers\" [sleeping"), "generator not shown:\n%s", text);
    free(text);
    char *json = dump_string(WEFT_DUMP_JSON);
    snprintf(want, sizeof want, "\"wait\":{\"kind\":\"gen\",\"obj\":\"0x");
    ck_assert_msg(strstr(json, want), "no gen wait in:\n%s", json);
    snprintf(want, sizeof want, ",\"op\":\"send\",\"name\":\"numbers\",\"holder\":%llu,"
             "\"waiting\":1", (unsigned long long)numbers_id);
    ck_assert_msg(strstr(json, want), "no '%s' in:\n%s", want, json);
    free(json);
    weft_cancel(t);
    void *r;
    ck_assert_int_eq(weft_join(t, &r), 0);
    ck_assert_int_eq(I(r), ECANCELED);
    ck_assert_int_eq(weft_gen_close(g), 0);         /* its sleep is cancelled; it ends */
}

/* The switch count the text dump prints for the task named name ("N switches, " on the line
 * after its header), or -1 when it is not there. */
static long dumped_switches(const char *text, const char *name)
{
    char head[64];
    snprintf(head, sizeof head, "\"%s\" [", name);
    const char *at = strstr(text, head);
    const char *sw = at ? strstr(at, " switches, ") : NULL;
    if (!sw)
        return -1;
    while (sw > at && sw[-1] >= '0' && sw[-1] <= '9')
        sw--;
    return strtol(sw, NULL, 10);
}

/* The scheduler's total, from the dump's header line ("...; M switches"). */
static long dumped_total(const char *text)
{
    const char *at = strstr(text, " switches\n"), *end = strchr(text, '\n');
    if (!at || at > end)
        return -1;
    while (at > text && at[-1] >= '0' && at[-1] <= '9')
        at--;
    return strtol(at, NULL, 10);
}

static void *echo_forever(void *arg)
{
    void *v = arg;
    while (weft_gen_yield(v, &v) == 0)
        ;
    return NULL;
}

/* Each round trip is two switches, counted for both sides and in the total, whichever way
 * the switch goes: the direct one (no deadline anywhere) or the full one (the caller has a
 * deadline scope, so each wait arms a timer). Between two dumps nothing else switches. */
TASK_TEST(round_trips_count_their_switches_with_and_without_a_deadline_scope)
{
    weft_set_name(NULL, "driver");
    weft_gen *g = weft_gen_make(&(weft_attr){ .name = "echo" }, echo_forever, NULL);
    ck_assert_ptr_nonnull(g);
    void *out;
    ck_assert_int_eq(weft_gen_send(g, P(0), &out), 0);     /* started: from the run queue */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            weft_set_task_deadline(weft_now() + 100000);
        char *before = dump_string(0);
        long g0 = dumped_switches(before, "echo"), d0 = dumped_switches(before, "driver");
        long t0 = dumped_total(before);
        free(before);
        ck_assert(g0 > 0 && d0 > 0 && t0 > 0);
        for (int i = 1; i <= 50; i++) {
            ck_assert_int_eq(weft_gen_send(g, P(i), &out), 0);
            ck_assert_int_eq(I(out), i);
        }
        char *after = dump_string(0);
        ck_assert_int_eq(dumped_switches(after, "echo"), g0 + 50);
        ck_assert_int_eq(dumped_switches(after, "driver"), d0 + 50);
        ck_assert_int_eq(dumped_total(after), t0 + 100);
        ck_assert_msg(strstr(after, "\"echo\" [gen-wait yield \"echo\""), "in:\n%s", after);
        free(after);
    }
    weft_set_task_deadline(-1);
    ck_assert_int_eq(weft_gen_close(g), 0);
}

static void *just_yield(void *arg)
{
    (void)arg;
    while (weft_gen_yield(P(1), NULL) == 0)
        ;
    return NULL;
}

TASK_TEST(dump_shows_a_suspended_generator_in_yield)
{
    weft_gen *g = weft_gen_make(&(weft_attr){ .name = "susp" }, just_yield, NULL);
    ck_assert_int_eq(weft_gen_next(g, NULL), 0);
    char *text = dump_string(0);
    ck_assert_msg(strstr(text, "\"susp\" [gen-wait yield \"susp\""), "in:\n%s", text);
    free(text);
    ck_assert_int_eq(weft_gen_close(g), 0);
}

TASK_TEST(a_caller_that_could_not_wait_shows_no_gen_wait)
{
    weft_set_name(NULL, "victim");
    weft_cancel(weft_self());
    weft_gen *g = weft_gen_make(NULL, just_yield, NULL);
    ck_assert_fails(weft_gen_next(g, NULL), ECANCELED);
    ck_assert_int_eq(weft_gen_close(g), 0);     /* orphaned: freed when it has run */
    for (int i = 0; i < 8; i++)
        weft_yield();
    ck_assert_fails(weft_gen_next(g, NULL), EPIPE);
    char *text = dump_string(0);
    ck_assert_msg(strstr(text, "\"victim\" [running, "), "in:\n%s", text);
    free(text);
}

/* ---- many at once --------------------------------------------------------------------------- */

#define MANY 10000

TASK_TEST(ten_thousand_generators_alive_at_once)
{
    static weft_gen *gs[MANY];
    static struct counter cs[MANY];
    int n = RUNNING_ON_VALGRIND ? 500 : MANY;
    weft_attr a = { .stack_size = WEFT_STACK_MIN };
    for (int i = 0; i < n; i++) {
        cs[i] = (struct counter){ .n = 3 };
        gs[i] = weft_gen_make(&a, count_to_n, &cs[i]);
        ck_assert_ptr_nonnull(gs[i]);
    }
    void *out;
    for (int round = 1; round <= 2; round++)
        for (int i = 0; i < n; i++) {
            test_require(weft_gen_send(gs[i], P(i), &out) == 0, "send %d: %s", i, strerror(errno));
            test_require(I(out) == round, "gen %d gave %ld", i, (long)I(out));
        }
    for (int i = 0; i < n; i++) {
        test_require(weft_gen_close(gs[i]) == 0, "close %d", i);
        test_require(cs[i].cleaned && cs[i].sum == i, "gen %d: sum %ld", i, (long)cs[i].sum);
    }
}

int main(void)
{
    Suite *s = suite_create("gen");
    ADD_TEST(s, yields_1_to_n_and_sums_what_is_sent, 10);
    ADD_TEST(s, weft_exit_in_the_generator_ends_it_with_its_value, 10);
    ADD_TEST(s, closed_early_its_yield_fails_and_it_cleans_up, 10);
    ADD_TEST(s, closed_before_its_first_send_fn_never_runs, 10);
    ADD_TEST(s, sleeps_between_yields_while_another_task_runs, 20);
    ADD_TEST(s, reads_a_pipe_inside_the_generator, 20);
    ADD_TEST(s, cancel_of_caller_parked_in_send_leaves_generator_consistent, 10);
    ADD_TEST(s, caller_deadline_scope_ends_send_and_a_retry_waits_for_the_round, 10);
    ADD_TEST(s, close_mid_round_without_caller_cancels_its_blocking_call, 10);
    ADD_TEST(s, close_from_a_cancelled_task_lets_the_generator_finish_alone, 10);
    ADD_TEST(s, a_cancelled_generator_task_yields_nothing_and_ends, 10);
    ADD_TEST(s, misuse_gets_an_errno, 10);
    ADD_TEST(s, yield_outside_any_task_is_eperm, 10);
    ADD_TEST(s, main_context_drives_a_generator, 20);
    ADD_TEST(s, weft_run_ends_with_generators_left_suspended, 10);
    ADD_TEST(s, a_generator_drives_another, 10);
    ADD_TEST(s, dump_shows_the_caller_in_gen_wait, 20);
    ADD_TEST(s, dump_shows_a_suspended_generator_in_yield, 20);
    ADD_TEST(s, a_caller_that_could_not_wait_shows_no_gen_wait, 20);
    ADD_TEST(s, round_trips_count_their_switches_with_and_without_a_deadline_scope, 20);
    ADD_TEST(s, ten_thousand_generators_alive_at_once, 60);
    return test_run(s);
}

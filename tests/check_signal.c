/* Signals as events: weft_signal_wait hands each signal to one waiting task, keeps what
 * comes while nobody waits, ends on its deadline or a cancel, refuses bad sets, shows in the
 * dump, and takes signals sent from other threads and in a forked child. */
#define _GNU_SOURCE
#include "testutil.h"

#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static sigset_t set_of(int a, int b)
{
    sigset_t s;
    sigemptyset(&s);
    if (a)
        sigaddset(&s, a);
    if (b)
        sigaddset(&s, b);
    return s;
}

/* Every test blocks the signals it uses first, as a program would before its threads. */
static void block_all(void)
{
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    sigaddset(&s, SIGUSR2);
    sigaddset(&s, SIGINT);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGRTMIN);
    ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &s, NULL), 0);
}

struct waiter {
    sigset_t set;
    int64_t deadline;
    int got;            /* the call's result */
    int err;
    int order;          /* when it returned, counting from 1 */
    pid_t sender;
};

static int returned;

static void *wait_task(void *arg)
{
    struct waiter *w = arg;
    struct signalfd_siginfo si;
    errno = 0;
    w->got = weft_signal_waitinfo(&w->set, &si, w->deadline);
    w->err = errno;
    w->order = ++returned;
    if (w->got > 0)
        w->sender = (pid_t)si.ssi_pid;
    return NULL;
}

static struct waiter waiter_of(int a, int b)
{
    struct waiter w = { .set = set_of(a, b), .deadline = weft_now() + 20000, .got = 0 };
    return w;
}

/* Let the others run (and park) for a while. */
static void settle(void)
{
    for (int i = 0; i < 5; i++)
        weft_yield();
    weft_sleep(5);
}

struct sender {
    int sigs[4];
    int n;
};

static void *send_task(void *arg)
{
    struct sender *sd = arg;
    settle();
    for (int i = 0; i < sd->n; i++)
        ck_assert_int_eq(kill(getpid(), sd->sigs[i]), 0);
    return NULL;
}

START_TEST(one_waiter_gets_the_signal)
{
    block_all();
    returned = 0;
    struct waiter a = waiter_of(SIGUSR1, 0);
    struct sender sd = { { SIGUSR1 }, 1 };
    weft_go(wait_task, &a);
    weft_go(send_task, &sd);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(a.got, SIGUSR1);
    ck_assert_int_eq(a.sender, getpid());
}
END_TEST

START_TEST(each_waiter_gets_its_own_signal)
{
    block_all();
    returned = 0;
    struct waiter a = waiter_of(SIGUSR1, 0), b = waiter_of(SIGUSR2, 0), c = waiter_of(SIGTERM, 0);
    struct sender sd = { { SIGUSR2, SIGTERM, SIGUSR1 }, 3 };
    weft_go(wait_task, &a);
    weft_go(wait_task, &b);
    weft_go(wait_task, &c);
    weft_go(send_task, &sd);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(a.got, SIGUSR1);
    ck_assert_int_eq(b.got, SIGUSR2);
    ck_assert_int_eq(c.got, SIGTERM);
}
END_TEST

/* Two waiters for one signal: the first to wait takes the first, the other the next. */
static void *send_twice_task(void *arg)
{
    struct waiter *first = arg;
    settle();
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    while (!first->order)
        weft_sleep(1);
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    return NULL;
}

START_TEST(same_signal_twice_goes_to_each_waiter_in_order)
{
    block_all();
    returned = 0;
    struct waiter a = waiter_of(SIGUSR1, 0), b = waiter_of(SIGUSR1, 0);
    weft_go(wait_task, &a);
    weft_go(wait_task, &b);
    weft_go(send_twice_task, &a);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(a.got, SIGUSR1);
    ck_assert_int_eq(b.got, SIGUSR1);
    ck_assert_int_eq(a.order, 1);
    ck_assert_int_eq(b.order, 2);
}
END_TEST

/* Queued (real-time) signals sent at once: one each, first waiter first. */
static void *queue_task(void *arg)
{
    (void)arg;
    settle();
    union sigval v = { .sival_int = 1 };
    ck_assert_int_eq(sigqueue(getpid(), SIGRTMIN, v), 0);
    v.sival_int = 2;
    ck_assert_int_eq(sigqueue(getpid(), SIGRTMIN, v), 0);
    return NULL;
}

static void *queued_wait_task(void *arg)
{
    struct waiter *w = arg;
    struct signalfd_siginfo si;
    w->got = weft_signal_waitinfo(&w->set, &si, w->deadline);
    w->err = si.ssi_int;        /* the value sent */
    w->order = ++returned;
    return NULL;
}

START_TEST(queued_signals_sent_together_go_one_to_each)
{
    block_all();
    returned = 0;
    struct waiter a = waiter_of(SIGRTMIN, 0), b = waiter_of(SIGRTMIN, 0);
    weft_go(queued_wait_task, &a);
    weft_go(queued_wait_task, &b);
    weft_go(queue_task, NULL);
    ck_assert_int_eq(weft_run(), 0);
    ck_assert_int_eq(a.got, SIGRTMIN);
    ck_assert_int_eq(b.got, SIGRTMIN);
    ck_assert_int_eq(a.err, 1);
    ck_assert_int_eq(b.err, 2);
}
END_TEST

/* Overlapping sets: a signal goes to the earliest waiter whose set holds it, only to it. */
static void *overlap_main(void *arg)
{
    (void)arg;
    struct waiter a = waiter_of(SIGUSR1, SIGUSR2), b = waiter_of(SIGUSR2, 0);
    weft_task *ta = weft_go(wait_task, &a), *tb = weft_go(wait_task, &b);
    settle();
    kill(getpid(), SIGUSR2);
    ck_assert_int_eq(weft_join(ta, NULL), 0);
    ck_assert_int_eq(a.got, SIGUSR2);
    settle();
    ck_assert_int_eq(b.order, 0);        /* still waiting */
    kill(getpid(), SIGUSR2);
    ck_assert_int_eq(weft_join(tb, NULL), 0);
    ck_assert_int_eq(b.got, SIGUSR2);
    return NULL;
}

START_TEST(overlapping_sets_take_one_signal_each)
{
    block_all();
    returned = 0;
    ck_assert_int_eq(weft_main(overlap_main, NULL), 0);
}
END_TEST

/* Sent while nobody waits for it (while another waits for something else): kept. */
static void *not_lost_main(void *arg)
{
    (void)arg;
    struct waiter other = waiter_of(SIGUSR2, 0);
    other.deadline = weft_now() + 200;
    weft_task *to = weft_go(wait_task, &other);
    settle();
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    settle();
    sigset_t s = set_of(SIGUSR1, 0);
    ck_assert_int_eq(weft_signal_wait(&s, weft_now() + 5000), SIGUSR1);
    ck_assert_int_eq(weft_join(to, NULL), 0);
    ck_assert_int_eq(other.got, -1);
    ck_assert_int_eq(other.err, ETIMEDOUT);
    /* Nobody waits at all now: sent, then waited for with a deadline already past. */
    ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
    ck_assert_int_eq(weft_signal_wait(&s, 0), SIGUSR1);
    ck_assert_fails(weft_signal_wait(&s, 0), ETIMEDOUT);
    return NULL;
}

START_TEST(signals_sent_while_nobody_waits_are_kept)
{
    block_all();
    returned = 0;
    ck_assert_int_eq(weft_main(not_lost_main, NULL), 0);
}
END_TEST

static void *deadline_main(void *arg)
{
    (void)arg;
    sigset_t s = set_of(SIGUSR1, 0);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_signal_wait(&s, t0 + 50), ETIMEDOUT);
    ck_assert_elapsed(t0, 50, 5000);
    /* The task's deadline scope applies too. */
    weft_set_task_deadline(weft_now() + 30);
    ck_assert_fails(weft_signal_wait(&s, -1), ETIMEDOUT);
    weft_set_task_deadline(-1);
    return NULL;
}

START_TEST(deadline_ends_the_wait_with_etimedout)
{
    block_all();
    ck_assert_int_eq(weft_main(deadline_main, NULL), 0);
}
END_TEST

static void *cancel_main(void *arg)
{
    (void)arg;
    struct waiter a = waiter_of(SIGUSR1, 0), b = waiter_of(SIGUSR1, 0);
    a.deadline = -1;
    weft_task *ta = weft_go(wait_task, &a), *tb = weft_go(wait_task, &b);
    settle();
    ck_assert_int_eq(weft_cancel(ta), 0);
    ck_assert_int_eq(weft_join(ta, NULL), 0);
    ck_assert_int_eq(a.got, -1);
    ck_assert_int_eq(a.err, ECANCELED);
    /* The signal goes to the one still waiting. */
    kill(getpid(), SIGUSR1);
    ck_assert_int_eq(weft_join(tb, NULL), 0);
    ck_assert_int_eq(b.got, SIGUSR1);
    /* Cancelled before the call: ECANCELED even with the signal pending, which stays. */
    struct waiter c = waiter_of(SIGUSR1, 0);
    kill(getpid(), SIGUSR1);
    weft_task *tc = weft_go(wait_task, &c);
    weft_cancel(tc);
    weft_join(tc, NULL);
    ck_assert_int_eq(c.err, ECANCELED);
    sigset_t s = set_of(SIGUSR1, 0);
    ck_assert_int_eq(weft_signal_wait(&s, 0), SIGUSR1);
    return NULL;
}

START_TEST(cancel_ends_the_wait_and_the_signal_goes_to_the_next)
{
    block_all();
    returned = 0;
    ck_assert_int_eq(weft_main(cancel_main, NULL), 0);
}
END_TEST

static void *bad_main(void *arg)
{
    (void)arg;
    sigset_t s;
    ck_assert_fails(weft_signal_wait(NULL, -1), EINVAL);
    sigemptyset(&s);
    ck_assert_fails(weft_signal_wait(&s, -1), EINVAL);
    int bad[] = { SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        s = set_of(SIGUSR1, bad[i]);
        ck_assert_fails(weft_signal_wait(&s, -1), EINVAL);
    }
    return NULL;
}

START_TEST(bad_sets_fail_with_einval)
{
    block_all();
    ck_assert_int_eq(weft_main(bad_main, NULL), 0);
    sigset_t s;                          /* outside any task too */
    ck_assert_fails(weft_signal_wait(NULL, 0), EINVAL);
    s = set_of(SIGKILL, 0);
    ck_assert_fails(weft_signal_wait(&s, 0), EINVAL);
}
END_TEST

static void *dump_main(void *arg)
{
    (void)arg;
    struct waiter a = waiter_of(SIGINT, SIGTERM);
    weft_task *ta = weft_spawn(&(weft_attr){ .name = "stopper" }, wait_task, &a);
    settle();
    int m = memfd_create("dump", MFD_CLOEXEC);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(weft_dump(m, 0), 0);
    char buf[8192];
    ssize_t n = pread(m, buf, sizeof buf - 1, 0);
    ck_assert_int_gt(n, 0);
    buf[n] = '\0';
    close(m);
    ck_assert_msg(strstr(buf, "signal-wait") != NULL, "dump: %s", buf);
    ck_assert_msg(strstr(buf, "SIGINT,SIGTERM") != NULL, "dump: %s", buf);
    kill(getpid(), SIGTERM);
    weft_join(ta, NULL);
    ck_assert_int_eq(a.got, SIGTERM);
    return NULL;
}

START_TEST(dump_shows_signal_wait_and_the_set)
{
    block_all();
    ck_assert_int_eq(weft_main(dump_main, NULL), 0);
}
END_TEST

/* Another thread (the signals blocked there, inherited) sends to the process (kill) and to
 * the scheduler's thread (pthread_kill); raise() in another thread would be aimed at that
 * thread, where no signalfd of weft's looks. */
static pthread_t sched_thread;

static void *other_thread(void *arg)
{
    (void)arg;
    struct timespec ts = { 0, 20 * 1000000 };
    nanosleep(&ts, NULL);
    kill(getpid(), SIGUSR1);
    nanosleep(&ts, NULL);
    pthread_kill(sched_thread, SIGUSR2);
    return NULL;
}

static void *thread_main(void *arg)
{
    (void)arg;
    pthread_t th;
    sched_thread = pthread_self();
    ck_assert_int_eq(pthread_create(&th, NULL, other_thread, NULL), 0);
    sigset_t s = set_of(SIGUSR1, SIGUSR2);
    int a = weft_signal_wait(&s, weft_now() + 10000);
    int b = weft_signal_wait(&s, weft_now() + 10000);
    pthread_join(th, NULL);
    ck_assert_int_eq(a, SIGUSR1);
    ck_assert_int_eq(b, SIGUSR2);
    /* raise() in the scheduler's own thread is aimed at it: it arrives too. */
    ck_assert_int_eq(raise(SIGUSR1), 0);
    ck_assert_int_eq(weft_signal_wait(&s, weft_now() + 10000), SIGUSR1);
    return NULL;
}

START_TEST(signals_from_another_thread_arrive)
{
    block_all();
    ck_assert_int_eq(weft_main(thread_main, NULL), 0);
}
END_TEST

START_TEST(outside_a_task_it_waits_like_sigtimedwait)
{
    block_all();
    sigset_t s = set_of(SIGUSR2, 0);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_signal_wait(&s, t0 + 30), ETIMEDOUT);
    ck_assert_elapsed(t0, 30, 5000);
    kill(getpid(), SIGUSR2);
    struct signalfd_siginfo si;
    ck_assert_int_eq(weft_signal_waitinfo(&s, &si, -1), SIGUSR2);
    ck_assert_int_eq((pid_t)si.ssi_pid, getpid());
}
END_TEST

/* A forked child waits with a signalfd of its own: the parent's waiter (copied into the
 * child too) and its mask are left alone. */
static void *fork_main(void *arg)
{
    (void)arg;
    struct waiter p = waiter_of(SIGUSR2, 0);
    weft_task *tp = weft_go(wait_task, &p);
    settle();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        sigset_t s = set_of(SIGUSR1, 0);
        kill(getpid(), SIGUSR1);
        int r = weft_signal_wait(&s, weft_now() + 5000);
        kill(getpid(), SIGUSR2);        /* the child's copy of p takes it */
        weft_join(tp, NULL);
        _exit(r == SIGUSR1 && p.got == SIGUSR2 ? 0 : 1);
    }
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0)
        weft_sleep(5);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    ck_assert_int_eq(p.order, 0);       /* the child's signals were not the parent's */
    kill(getpid(), SIGUSR2);
    weft_join(tp, NULL);
    ck_assert_int_eq(p.got, SIGUSR2);
    return NULL;
}

START_TEST(forked_child_waits_on_its_own_signalfd)
{
    block_all();
    returned = 0;
    ck_assert_int_eq(weft_main(fork_main, NULL), 0);
}
END_TEST

/* The signalfd may take the number of an fd that weft knew and that was closed with plain
 * close(2): the wait must still be woken (the stale record is re-armed). */
static void *stale_main(void *arg)
{
    (void)arg;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    ck_assert_fails(weft_fdwait(p[0], WEFT_READ, weft_now() + 1), ETIMEDOUT);
    close(p[0]);
    close(p[1]);
    struct waiter a = waiter_of(SIGUSR1, 0);
    a.deadline = weft_now() + 5000;
    struct sender sd = { { SIGUSR1 }, 1 };
    weft_task *ta = weft_go(wait_task, &a);
    weft_go(send_task, &sd);
    weft_join(ta, NULL);
    ck_assert_int_eq(a.got, SIGUSR1);
    return NULL;
}

START_TEST(signalfd_on_a_reused_fd_number_still_wakes)
{
    block_all();
    returned = 0;
    ck_assert_int_eq(weft_main(stale_main, NULL), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("signal");
    TCase *tc = test_case(s, "signal", 20);
    tcase_add_test(tc, one_waiter_gets_the_signal);
    tcase_add_test(tc, each_waiter_gets_its_own_signal);
    tcase_add_test(tc, same_signal_twice_goes_to_each_waiter_in_order);
    tcase_add_test(tc, queued_signals_sent_together_go_one_to_each);
    tcase_add_test(tc, overlapping_sets_take_one_signal_each);
    tcase_add_test(tc, signals_sent_while_nobody_waits_are_kept);
    tcase_add_test(tc, deadline_ends_the_wait_with_etimedout);
    tcase_add_test(tc, cancel_ends_the_wait_and_the_signal_goes_to_the_next);
    tcase_add_test(tc, bad_sets_fail_with_einval);
    tcase_add_test(tc, dump_shows_signal_wait_and_the_set);
    tcase_add_test(tc, signals_from_another_thread_arrive);
    tcase_add_test(tc, outside_a_task_it_waits_like_sigtimedwait);
    tcase_add_test(tc, forked_child_waits_on_its_own_signalfd);
    tcase_add_test(tc, signalfd_on_a_reused_fd_number_still_wakes);
    return test_run(s);
}

/* A live process for tests/dump_cli.sh (and tools/weft-gdb.py): it opts in to the control
 * socket (weft_debug_listen, or WEFT_DEBUG when set), parks tasks in known states, on this
 * thread and on a second scheduler thread (a channel and a lock), prints "ready PID", and
 * quits cleanly when a line arrives on the control fifo given as argv[1]. */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>

static int pipefd[2];
static int ctl = -1;
static weft_task *sleeper, *readers[3];

/* Not static, never inlined: the dump's backtraces name them. */
void *dumptarget_sleeper(void *arg);
void *dumptarget_reader(void *arg);
void *dumptarget_joiner(void *arg);
void *dumptarget_control(void *arg);

__attribute__((noinline)) void *dumptarget_sleeper(void *arg)
{
    (void)arg;
    weft_sleep(60000);
    return NULL;
}

__attribute__((noinline)) void *dumptarget_reader(void *arg)
{
    (void)arg;
    char c;
    weft_read(pipefd[0], &c, 1);
    return NULL;
}

__attribute__((noinline)) void *dumptarget_joiner(void *arg)
{
    weft_join(arg, NULL);
    return NULL;
}

__attribute__((noinline)) void *dumptarget_control(void *arg)
{
    (void)arg;
    char buf[64];
    weft_read(ctl, buf, sizeof buf);    /* any line: quit (O_RDWR: never EOF) */
    weft_cancel(sleeper);
    for (int i = 0; i < 3; i++)
        weft_cancel(readers[i]);
    return NULL;
}

/* ---- the second thread: two tasks on a channel, one on a lock another holds ---- */

static weft_mutex cache = WEFT_MUTEX_INIT_NAMED("cache");
static weft_chan *jobs;
static int worker_ready[2];

static void *lock_holder(void *arg)
{
    (void)arg;
    weft_mutex_lock(&cache, -1);
    weft_sleep(600000);
    return NULL;
}

static void *lock_waiter(void *arg)
{
    (void)arg;
    weft_mutex_lock(&cache, -1);
    return NULL;
}

static void *chan_rx(void *arg)
{
    (void)arg;
    int v;
    weft_chan_recv(jobs, &v, -1);
    return NULL;
}

/* Runs last (the run queue is FIFO): every other task of the thread has parked. */
static void *worker_up(void *arg)
{
    (void)arg;
    if (write(worker_ready[1], "w", 1) != 1)
        abort();
    return NULL;
}

static void *worker_thread(void *arg)
{
    (void)arg;
    jobs = weft_chan_make(sizeof(int), 0);
    weft_chan_set_name(jobs, "jobs");
    weft_attr h = { .name = "lock-holder", .detached = 1 }, w = { .name = "lock-waiter", .detached = 1 };
    weft_spawn(&h, lock_holder, NULL);
    weft_spawn(&w, lock_waiter, NULL);
    for (int i = 0; i < 2; i++) {
        weft_attr r = { .name = i ? "chan-rx-1" : "chan-rx-0", .detached = 1 };
        weft_spawn(&r, chan_rx, NULL);
    }
    weft_attr u = { .detached = 1 };
    weft_spawn(&u, worker_up, NULL);
    weft_run();                 /* until the process ends */
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dump_target CONTROL-FIFO\n");
        return 2;
    }
    if (pipe(pipefd) != 0 || (ctl = open(argv[1], O_RDWR | O_CLOEXEC)) < 0) {
        perror("dump_target");
        return 1;
    }
    if (!getenv("WEFT_DEBUG") && weft_debug_listen(NULL) != 0) {
        perror("weft_debug_listen");
        return 1;
    }
    weft_attr a = { .name = "sleeper" };
    sleeper = weft_spawn(&a, dumptarget_sleeper, NULL);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "reader-%d", i);
        weft_attr r = { .name = name };
        readers[i] = weft_spawn(&r, dumptarget_reader, NULL);
    }
    weft_attr j = { .name = "joiner", .detached = 1 };
    weft_spawn(&j, dumptarget_joiner, sleeper);
    weft_attr c = { .name = "control", .detached = 1 };
    weft_spawn(&c, dumptarget_control, NULL);
    pthread_t th;
    char up;
    if (pipe(worker_ready) != 0 || pthread_create(&th, NULL, worker_thread, NULL) != 0 ||
        read(worker_ready[0], &up, 1) != 1) {
        perror("dump_target: worker thread");
        return 1;
    }
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    weft_run();
    for (int i = 0; i < 3; i++)
        weft_join(readers[i], NULL);
    printf("done\n");
    return 0;
}

/* A live process for tests/dump_cli.sh (and tools/weft-gdb.py): it opts in to the control
 * socket (weft_debug_listen, or WEFT_DEBUG when set), parks tasks in known states, prints
 * "ready PID", and quits cleanly when a line arrives on the control fifo given as argv[1]. */
#include <fcntl.h>
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
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    weft_run();
    for (int i = 0; i < 3; i++)
        weft_join(readers[i], NULL);
    printf("done\n");
    return 0;
}

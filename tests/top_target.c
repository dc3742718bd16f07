/* A live process for tests/top.test: two tasks spinning, each a fixed amount of work then a
 * yield, one doing three times the other's work, so the profiler must charge them about 3:1.
 * It opens the control socket at argv[1], prints "ready", and quits when a line arrives on
 * stdin (or after a minute, so a lost test leaves nothing behind). */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>
#include <weft.h>

#define UNIT 20000          /* loop rounds of one unit of work */

static volatile int quit;

/* Not static, never inlined: the dump and the folded stacks name them. */
void *toptarget_spin(void *arg);
void *toptarget_control(void *arg);

__attribute__((noinline)) void *toptarget_spin(void *arg)
{
    long units = (long)(intptr_t)arg;
    volatile uint64_t x = 0;
    while (!quit) {
        for (long i = 0; i < units * UNIT; i++)
            x = x * 6364136223846793005ull + 1;
        weft_yield();
    }
    return NULL;
}

__attribute__((noinline)) void *toptarget_control(void *arg)
{
    (void)arg;
    char buf[64];
    weft_set_task_deadline(weft_now() + 60000);
    weft_read(0, buf, sizeof buf);      /* a line, EOF or a minute: quit */
    quit = 1;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: top_target SOCKET\n");
        return 2;
    }
    if (weft_debug_listen(argv[1]) != 0) {
        perror("weft_debug_listen");
        return 1;
    }
    weft_task *spin3 = weft_spawn(&(weft_attr){ .name = "spin-3x" }, toptarget_spin, (void *)3);
    weft_task *spin1 = weft_spawn(&(weft_attr){ .name = "spin-1x" }, toptarget_spin, (void *)1);
    weft_task *ctl = weft_go(toptarget_control, NULL);
    printf("ready %ld\n", (long)getpid());
    fflush(stdout);
    weft_join(ctl, NULL);
    quit = 1;
    weft_join(spin3, NULL);
    weft_join(spin1, NULL);
    return 0;
}

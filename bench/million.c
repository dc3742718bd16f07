/* bench/million: park N tasks (default 1,000,000) in weft_sleep, each with a guarded stack
 * (WEFT_STACK_DEFAULT, or -s BYTES), and report the time to spawn them, to park them (each
 * runs once), to wake them (cancel: each runs to its end), to reclaim them (join) and to
 * unmap their stacks (the scheduler's end); the resident memory per parked task, alone and
 * with the page tables the kernel keeps for it (VmPTE); and the process's mapping count.
 * Run it with WEFT_GUARD=mprotect for the peers' approach (one mprotect'd guard per stack),
 * which runs out of mappings near vm.max_map_count / 2 and falls back to canaries. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

static long ntasks = 1000000;
static size_t stack_size;       /* 0: WEFT_STACK_DEFAULT */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0)
            v = atol(line + klen);
    if (f)
        fclose(f);
    return v;
}

static long map_count(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int c;
    while (f && (c = fgetc(f)) != EOF)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

static void *sleeper(void *arg)
{
    (void)arg;
    weft_sleep_until(-1);   /* parked until cancelled */
    return NULL;
}

static weft_task **tasks;
static long spawned, rss_kb, pte_kb, maps;
static double t_spawn, t_park, t_wake, t_reclaim, t_end;

static void *run(void *arg)
{
    (void)arg;
    long rss0 = status_kb("VmRSS:"), pte0 = status_kb("VmPTE:");
    weft_attr a = { .stack_size = stack_size };
    double t0 = now_ns();
    long n = 0;
    for (; n < ntasks; n++) {
        if (!(tasks[n] = weft_spawn(&a, sleeper, NULL))) {
            perror("weft_spawn");
            break;
        }
    }
    double t1 = now_ns();
    weft_yield();           /* every task runs once and parks */
    double t2 = now_ns();
    rss_kb = status_kb("VmRSS:") - rss0;
    pte_kb = status_kb("VmPTE:") - pte0;
    maps = map_count();
    double t3 = now_ns();
    for (long i = 0; i < n; i++)
        weft_cancel(tasks[i]);
    weft_yield();           /* every task runs to its end */
    double t4 = now_ns();
    for (long i = 0; i < n; i++)
        weft_join(tasks[i], NULL);
    double t5 = now_ns();
    spawned = n;
    t_spawn = t1 - t0;
    t_park = t2 - t1;
    t_wake = t4 - t3;
    t_reclaim = t5 - t4;
    t_end = t5;
    return NULL;
}

int main(int argc, char **argv)
{
    int c;
    while ((c = getopt(argc, argv, "s:")) != -1) {
        if (c == 's') {
            stack_size = (size_t)atol(optarg);
        } else {
            fprintf(stderr, "usage: %s [-s stack_bytes] [tasks]\n", argv[0]);
            return 2;
        }
    }
    if (optind < argc)
        ntasks = atol(argv[optind]);
    tasks = malloc((size_t)ntasks * sizeof *tasks);
    if (!tasks)
        return 1;
    memset(tasks, 0, (size_t)ntasks * sizeof *tasks);  /* resident before the count starts */
    if (weft_main(run, NULL) != 0)
        return 1;
    double t6 = now_ns();   /* weft_main's end: the scheduler is gone, its stacks unmapped */
    double n = (double)(spawned ? spawned : 1);
    printf("million: %ld tasks, stack %zu KiB: RSS %.2f KiB/task (%.2f with page tables), "
           "%ld mappings\n", spawned, (stack_size ? stack_size : WEFT_STACK_DEFAULT) / 1024,
           (double)rss_kb / n, (double)(rss_kb + pte_kb) / n, maps);
    printf("million: ns/task: spawn %.0f, park %.0f, wake %.0f, reclaim %.0f, unmap %.0f\n",
           t_spawn / n, t_park / n, t_wake / n, t_reclaim / n, (t6 - t_end) / n);
    free(tasks);
    return 0;
}

/* bench/million: park N tasks (default 1,000,000) in weft_sleep, each with a guarded 16 KiB
 * stack, and report RSS per task, the process's mapping count, and the time to spawn, park,
 * cancel and join them all. Run it with WEFT_GUARD=mprotect for the peers' approach (one
 * mprotect'd guard page per stack), which runs out of mappings near vm.max_map_count / 2. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

static long ntasks = 1000000;

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

static void *run(void *arg)
{
    (void)arg;
    weft_task **t = malloc((size_t)ntasks * sizeof *t);
    if (!t)
        return NULL;
    long rss0 = status_kb("VmRSS:");
    int64_t t0 = weft_now();
    weft_attr a = { .stack_size = 16 * 1024 };
    long n = 0;
    for (; n < ntasks; n++) {
        if (!(t[n] = weft_spawn(&a, sleeper, NULL))) {
            perror("weft_spawn");
            break;
        }
    }
    int64_t t1 = weft_now();
    weft_yield();           /* every task runs once and parks */
    int64_t t2 = weft_now();
    long rss = status_kb("VmRSS:") - rss0;
    long maps = map_count();
    for (long i = 0; i < n; i++)
        weft_cancel(t[i]);
    for (long i = 0; i < n; i++)
        weft_join(t[i], NULL);
    int64_t t3 = weft_now();
    printf("million: %ld tasks parked, RSS %.2f KiB/task, %ld mappings; spawn %.0f ns/task, "
           "first run+park %.0f ns/task, cancel+join %.0f ns/task\n",
           n, (double)rss / (double)n, maps, (double)(t1 - t0) * 1e6 / (double)n,
           (double)(t2 - t1) * 1e6 / (double)n, (double)(t3 - t2) * 1e6 / (double)n);
    free(t);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        ntasks = atol(argv[1]);
    return weft_main(run, NULL) == 0 ? 0 : 1;
}

/* The Quickstart demo: thousands of tasks that sleep, yield and are joined, on one thread. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <weft.h>

enum { WORKERS = 10000, ROUNDS = 5 };

static long yields;

static void *worker(void *arg)
{
    intptr_t i = (intptr_t)arg;
    long sum = 0;
    for (int r = 0; r < ROUNDS; r++) {
        weft_sleep(1 + (i * 7 + r) % 20);   /* up to 20 ms, out of order */
        sum += i;
        weft_yield();
        yields++;
    }
    return (void *)(intptr_t)sum;
}

static void *run(void *arg)
{
    (void)arg;
    static weft_task *tasks[WORKERS];
    int64_t start = weft_now();
    for (intptr_t i = 0; i < WORKERS; i++) {
        if (!(tasks[i] = weft_go(worker, (void *)i))) {
            perror("weft_go");
            exit(1);
        }
    }
    long total = 0, expect = 0;
    for (intptr_t i = 0; i < WORKERS; i++) {
        void *v;
        if (weft_join(tasks[i], &v) != 0) {
            perror("weft_join");
            exit(1);
        }
        total += (long)(intptr_t)v;
        expect += (long)i * ROUNDS;
    }
    printf("demo: %d tasks x %d rounds of sleep+yield on one thread: %ld yields, joined all in %lld ms, "
           "sum %s\n", WORKERS, ROUNDS, yields, (long long)(weft_now() - start),
           total == expect ? "correct" : "WRONG");
    return NULL;
}

int main(void)
{
    if (weft_main(run, NULL) != 0) {
        perror("weft_main");
        return 1;
    }
    return 0;
}

/* bench/proc: spawn + wait of /bin/true. A: plain posix_spawn then a blocking waitpid. B:
 * weft_proc_spawn then weft_proc_wait inside a task, which parks on the child's pidfd while
 * the loop sits in epoll_wait. Both run in the same driver task, interleaved A B A B (the
 * order swapped every round); prints the median and best us per child of each and the
 * median of the per-round ratio B/A.
 *
 * -m MIB first allocates and touches that much heap: posix_spawn's clone(CLONE_VM|CLONE_VFORK)
 * copies no page tables, so neither side should slow down with it (a fork would).
 *
 * usage: bench/proc [-r ROUNDS] [-n CHILDREN_PER_ROUND] [-m MIB] */
#include "bench.h"

#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>

#include "weft.h"

extern char **environ;

static char *const argv_true[] = { "true", NULL };
static const char *prog = "/bin/true";
static int rounds = 21, per_round = 200;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static double plain_round(void)
{
    double t0 = now_ns();
    for (int i = 0; i < per_round; i++) {
        pid_t pid;
        int e = posix_spawn(&pid, prog, NULL, NULL, argv_true, environ);
        if (e != 0) {
            errno = e;
            die("posix_spawn");
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die("waitpid");
    }
    return (now_ns() - t0) / per_round;
}

static double weft_round(void)
{
    double t0 = now_ns();
    for (int i = 0; i < per_round; i++) {
        weft_proc *p = weft_proc_spawn(prog, argv_true, NULL);
        if (!p)
            die("weft_proc_spawn");
        int st;
        if (weft_proc_wait(p, &st, -1) != 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            die("weft_proc_wait");
        weft_proc_free(p);
    }
    return (now_ns() - t0) / per_round;
}

static void *driver(void *arg)
{
    (void)arg;
    double *a = calloc((size_t)rounds, sizeof *a), *b = calloc((size_t)rounds, sizeof *b);
    double *ratio = calloc((size_t)rounds, sizeof *ratio);
    if (!a || !b || !ratio)
        die("calloc");
    plain_round();      /* warm-up: page cache, the reactor, the stack pool */
    weft_round();
    for (int r = 0; r < rounds; r++) {
        if (r % 2 == 0) {
            a[r] = plain_round();
            b[r] = weft_round();
        } else {
            b[r] = weft_round();
            a[r] = plain_round();
        }
        ratio[r] = b[r] / a[r];
    }
    double ra = minimum(a, rounds), rb = minimum(b, rounds);
    printf("proc posix_spawn+waitpid median %.1f us best %.1f us\n", median(a, rounds) / 1e3,
           ra / 1e3);
    printf("proc weft_proc_spawn+wait median %.1f us best %.1f us\n", median(b, rounds) / 1e3,
           rb / 1e3);
    printf("ratio weft/plain %.3f (median of %d rounds of %d children)\n", median(ratio, rounds),
           rounds, per_round);
    free(a);
    free(b);
    free(ratio);
    return NULL;
}

int main(int argc, char **argv)
{
    int c;
    long mib = 0;
    while ((c = getopt(argc, argv, "r:n:m:")) != -1) {
        if (c == 'r')
            rounds = atoi(optarg);
        else if (c == 'n')
            per_round = atoi(optarg);
        else if (c == 'm')
            mib = atol(optarg);
        else {
            fprintf(stderr, "usage: %s [-r ROUNDS] [-n CHILDREN_PER_ROUND] [-m MIB]\n", argv[0]);
            return 2;
        }
    }
    if (rounds < 1 || per_round < 1) {
        fprintf(stderr, "%s: -r and -n must be positive\n", argv[0]);
        return 2;
    }
    if (mib > 0) {
        char *heap = malloc((size_t)mib << 20);
        if (!heap)
            die("malloc");
        memset(heap, 1, (size_t)mib << 20);     /* kept until exit */
        printf("heap %ld MiB touched\n", mib);
    }
    if (!weft_go(driver, NULL))
        die("weft_go");
    return weft_run() == 0 ? 0 : 1;
}

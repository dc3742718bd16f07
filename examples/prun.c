/* examples/prun: run shell commands in parallel, at most N at a time, each line of their
 * output tagged with the command's number.
 *
 *   prun [-j N] [-t SECONDS] 'CMD' ...     (no CMD: one command per line of stdin)
 *
 * Each command runs as /bin/sh -c CMD. Its stdout lines go to stdout and its stderr lines to
 * stderr, as "[K] line" (K counts the commands from 1), as they come. A command still
 * running SECONDS after it started gets SIGTERM, and SIGKILL a second later. When a
 * command ends, stderr gets "[K] exit S", "[K] killed by signal S" or "[K] timed out after
 * SECONDS s"; at the end "prun: N commands, N ok, N failed, N timed out". Exit status: 0
 * when every command exited 0, 1 otherwise, 2 for a usage error.
 *
 * One task per command; a semaphore of N permits bounds how many run. Each command's task
 * starts two reader tasks, one per pipe, and waits for the child with the deadline. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft.h"

struct cmd {
    int index;
    char *line;
    int status;
    int timed_out;
    int failed_to_start;
};

static weft_sem slots;
static double timeout_s;            /* 0: none */

/* Read fd to its end (or the deadline), writing each line to out as "[K] line". */
struct reader {
    int fd, out, index;
    int64_t deadline;
};

static void put_line(int out, int index, const char *s, size_t n)
{
    char tag[24];
    int t = snprintf(tag, sizeof tag, "[%d] ", index);
    struct iovec iov[3] = { { tag, (size_t)t }, { (void *)s, n }, { "\n", 1 } };
    weft_writev(out, iov, 3);       /* one call: lines of different commands never mix */
}

static void *read_lines(void *arg)
{
    struct reader *r = arg;
    char buf[4096];
    size_t len = 0;
    weft_set_task_deadline(r->deadline);
    for (;;) {
        ssize_t n = weft_read(r->fd, buf + len, sizeof buf - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', len - (size_t)(start - buf))) != NULL) {
            put_line(r->out, r->index, start, (size_t)(nl - start));
            start = nl + 1;
        }
        len -= (size_t)(start - buf);
        memmove(buf, start, len);
        if (len == sizeof buf) {    /* a line longer than the buffer: pass it on in pieces */
            put_line(r->out, r->index, buf, len);
            len = 0;
        }
    }
    if (len > 0)                    /* a last line without its newline */
        put_line(r->out, r->index, buf, len);
    return NULL;
}

static void *run_one(void *arg)
{
    struct cmd *c = arg;
    if (weft_sem_acquire(&slots, -1) != 0)
        return NULL;
    /* A process group of its own: the kill at the timeout reaches what the shell started. */
    weft_proc_attr a = { .mode = { WEFT_PROC_DEVNULL, WEFT_PROC_PIPE, WEFT_PROC_PIPE },
                         .new_group = 1 };
    char *argv[] = { "sh", "-c", c->line, NULL };
    weft_proc *p = weft_proc_spawn("/bin/sh", argv, &a);
    if (!p) {
        fprintf(stderr, "[%d] cannot run: %s\n", c->index, strerror(errno));
        c->failed_to_start = 1;
        weft_sem_release(&slots);
        return NULL;
    }
    int64_t deadline = timeout_s > 0 ? weft_now() + (int64_t)(timeout_s * 1000) : -1;
    /* The readers stop at the deadline too (plus the second SIGKILL may take): a command
     * may leave children behind, outside its group, that hold the pipes open. */
    int64_t rd_deadline = deadline < 0 ? -1 : deadline + 1500;
    struct reader out = { weft_proc_stdout(p), 1, c->index, rd_deadline };
    struct reader err = { weft_proc_stderr(p), 2, c->index, rd_deadline };
    weft_task *ro = weft_go(read_lines, &out), *re = weft_go(read_lines, &err);

    if (weft_proc_wait(p, &c->status, deadline) != 0 && errno == ETIMEDOUT) {
        /* Not reaped yet, so the group's number cannot have been reused. */
        pid_t group = -weft_proc_pid(p);
        c->timed_out = 1;
        kill(group, SIGTERM);
        if (weft_proc_wait(p, &c->status, weft_now() + 1000) != 0)
            weft_proc_kill(p, SIGKILL);
        kill(group, SIGKILL);       /* whatever of the group outlived the shell */
        weft_proc_wait(p, &c->status, -1);
    }
    if (ro)
        weft_join(ro, NULL);
    if (re)
        weft_join(re, NULL);
    weft_proc_free(p);
    weft_sem_release(&slots);

    if (c->timed_out)
        fprintf(stderr, "[%d] timed out after %g s\n", c->index, timeout_s);
    else if (WIFEXITED(c->status))
        fprintf(stderr, "[%d] exit %d\n", c->index, WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status))
        fprintf(stderr, "[%d] killed by signal %d\n", c->index, WTERMSIG(c->status));
    return NULL;
}

/* The commands from stdin, one per nonempty line. */
static char **read_commands(int *n)
{
    char **v = NULL, *line = NULL;
    size_t cap = 0;
    ssize_t len;
    *n = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0)
            continue;
        char **nv = realloc(v, (size_t)(*n + 1) * sizeof *v);
        char *copy = strdup(line);
        if (!nv || !copy) {
            perror("prun");
            exit(2);
        }
        v = nv;
        v[(*n)++] = copy;
    }
    free(line);
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: prun [-j N] [-t SECONDS] 'CMD' ...   (no CMD: read them from stdin)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long jobs = 4;
    int opt;
    while ((opt = getopt(argc, argv, "j:t:")) != -1) {
        char *end;
        if (opt == 'j') {
            jobs = strtol(optarg, &end, 10);
            if (*end || jobs < 1)
                usage();
        } else if (opt == 't') {
            timeout_s = strtod(optarg, &end);
            if (*end || timeout_s < 0)
                usage();
        } else {
            usage();
        }
    }
    int n = argc - optind;
    char **lines = n > 0 ? argv + optind : read_commands(&n);
    struct cmd *cmds = calloc((size_t)n + 1, sizeof *cmds);
    weft_task **tasks = calloc((size_t)n + 1, sizeof *tasks);
    if (!cmds || !tasks || weft_sem_init(&slots, jobs, "slots") != 0) {
        perror("prun");
        return 2;
    }
    for (int i = 0; i < n; i++) {
        cmds[i] = (struct cmd){ .index = i + 1, .line = lines[i] };
        tasks[i] = weft_go(run_one, &cmds[i]);
        if (!tasks[i]) {
            perror("prun: weft_go");
            return 2;
        }
    }
    if (weft_run() != 0)
        perror("prun: weft_run");
    int ok = 0, failed = 0, timed_out = 0;
    for (int i = 0; i < n; i++) {
        weft_join(tasks[i], NULL);
        if (cmds[i].timed_out)
            timed_out++;
        else if (!cmds[i].failed_to_start && WIFEXITED(cmds[i].status) &&
                 WEXITSTATUS(cmds[i].status) == 0)
            ok++;
        else
            failed++;
    }
    fprintf(stderr, "prun: %d commands, %d ok, %d failed, %d timed out\n", n, ok, failed,
            timed_out);
    if (lines != argv + optind) {
        for (int i = 0; i < n; i++)
            free(lines[i]);
        free(lines);
    }
    free(cmds);
    free(tasks);
    return ok == n ? 0 : 1;
}

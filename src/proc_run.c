/* weft_proc_run: start a child, feed its stdin and collect its stdout and stderr at once
 * (weft_poll over the three pipes, so neither side can fill a pipe and wait on the other),
 * reap it, and kill it at the deadline or on a cancel. Spawning and reaping are proc.c's. */
#include "config.h"
#include "proc.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

struct sink {
    char *buf;
    size_t len, cap;
};

#define RUN_CHUNK 65536

/* Read what fd has into k; 0 (more may come), 1 (EOF or an error: done with fd), or -1 with
 * errno ENOMEM. */
static int drain(int fd, struct sink *k)
{
    for (;;) {
        if (k->cap - k->len < RUN_CHUNK + 1) {
            size_t cap = k->cap ? k->cap * 2 : RUN_CHUNK * 2;
            char *b = realloc(k->buf, cap);
            if (!b)
                return -1;
            k->buf = b;
            k->cap = cap;
        }
        ssize_t n = weft_sys_read(fd, k->buf + k->len, RUN_CHUNK);
        if (n > 0) {
            k->len += (size_t)n;
            k->buf[k->len] = '\0';
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && errno == EAGAIN ? 0 : 1;
    }
}

/* write(2) to a pipe whose reader may be gone: EPIPE, not SIGPIPE. The signal is held back
 * for the call, and one the call raised is taken off the pending set. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n)
{
    sigset_t set, old, pending;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int was = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    ssize_t r = weft_sys_write(fd, buf, n);
    int e = errno;
    if (r < 0 && e == EPIPE && !was) {
        struct timespec zero = { 0, 0 };
        sigtimedwait(&set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

/* Serve p's pipes until the child has closed its outputs and taken its input, or the
 * deadline or a cancel ends it; 0 or an errno value. */
static int serve(struct weft_proc *p, const char *in, size_t in_len, struct sink k[3],
                 int64_t deadline)
{
    size_t fed = 0;
    for (;;) {
        struct pollfd pf[3];
        int which[3];
        nfds_t n = 0;
        for (int i = 0; i < 3; i++) {
            if (p->fd[i] < 0)
                continue;
            pf[n] = (struct pollfd){ .fd = p->fd[i], .events = i == 0 ? POLLOUT : POLLIN };
            which[n++] = i;
        }
        if (n == 0)
            return 0;
        int ms = -1;
        if (deadline >= 0) {
            int64_t left = deadline - weft_now();
            if (left <= 0)
                return ETIMEDOUT;
            ms = left > 1000000 ? 1000000 : (int)left;
        }
        int r = weft_poll(pf, n, ms);
        if (r < 0)
            return errno;
        for (nfds_t j = 0; j < n; j++) {
            int i = which[j];
            if (pf[j].revents == 0)
                continue;
            int done;
            if (i == 0) {
                size_t len = in_len - fed < RUN_CHUNK ? in_len - fed : RUN_CHUNK;
                ssize_t w = write_nosigpipe(p->fd[0], in + fed, len);
                if (w > 0)
                    fed += (size_t)w;
                done = fed == in_len || (w < 0 && errno != EAGAIN && errno != EINTR);
            } else {
                done = drain(p->fd[i], &k[i]);
                if (done < 0)
                    return ENOMEM;
            }
            if (done)
                weft_proc_close_pipe(p, i);
        }
    }
}

int weft_proc_run(const char *path, char *const argv[], const weft_proc_attr *attr,
                  const void *in, size_t in_len, weft_proc_result *res, int64_t deadline)
{
    if (res)
        *res = (weft_proc_result){ 0, NULL, 0, NULL, 0 };
    if (!res || (!in && in_len)) {
        errno = EINVAL;
        return -1;
    }
    weft_proc_attr a = { .mode = { WEFT_PROC_DEVNULL, WEFT_PROC_PIPE, WEFT_PROC_PIPE } };
    if (attr)
        a = *attr;
    if (in)
        a.mode[0] = WEFT_PROC_PIPE;
    struct weft_proc *p = weft_proc_spawn(path, argv, &a);
    if (!p)
        return -1;
    for (int i = 0; i < 3; i++) {   /* ours alone: poll tells when to read and write */
        long fl = p->fd[i] < 0 ? 0 : weft_sys_fcntl(p->fd[i], F_GETFL, 0);
        if (fl >= 0 && p->fd[i] >= 0)
            weft_sys_fcntl(p->fd[i], F_SETFL, (unsigned long)fl | O_NONBLOCK);
    }
    if (p->fd[0] >= 0 && in_len == 0)
        weft_proc_close_pipe(p, 0);
    struct sink k[3] = { { NULL, 0, 0 }, { NULL, 0, 0 }, { NULL, 0, 0 } };
    int e = serve(p, in, in_len, k, deadline);
    if (e == 0)
        e = weft_proc_reap(p, deadline, 0);
    if (e != 0 && !p->reaped)
        weft_proc_kill(p, SIGKILL);
    if (!p->reaped)
        weft_proc_reap(p, -1, 1);
    res->status = p->status;
    for (int i = 1; i < 3; i++) {
        if (a.mode[i] == WEFT_PROC_PIPE && !k[i].buf)
            k[i].buf = calloc(1, 1);
    }
    res->out = k[1].buf;
    res->out_len = k[1].len;
    res->err = k[2].buf;
    res->err_len = k[2].len;
    weft_proc_free(p);
    if (e != 0) {
        errno = e;
        return -1;
    }
    if ((a.mode[1] == WEFT_PROC_PIPE && !res->out) || (a.mode[2] == WEFT_PROC_PIPE && !res->err)) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

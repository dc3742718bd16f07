/* Readiness of many fds at once: weft_poll, which parks a task on the queues of every fd it
 * is given, and weft_select on top of it. Single-fd waits are the wrappers' (io.c) and
 * weft_fdwait's (reactor_epoll.c). */
#include "config.h"
#include "io.h"
#include "sys.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

/* poll(2) for tasks: a non-blocking poll first; if nothing is ready, park on the queues of
 * every fd at once (waiter nodes owned by this call), then poll again. */
struct poll_wait {
    struct fdent *f;
    uint32_t seq;
    nfds_t i;       /* its place in fds */
    int dir;
};

/* After a wake: the fds closed meanwhile (their record's seq moved) are reported POLLNVAL,
 * as poll(2) reports a closed fd, and are not polled again, since their numbers may now
 * hold other files; the rest are polled once. Returns poll's count, or 0 when none was
 * closed (then nothing is changed). */
static int poll_closed(struct pollfd *fds, nfds_t nfds, const struct poll_wait *pw, int nw)
{
    int any = 0;
    for (int k = 0; k < nw; k++) {
        if (pw[k].f->seq != pw[k].seq && fds[pw[k].i].fd >= 0) {
            fds[pw[k].i].fd = ~fds[pw[k].i].fd;    /* negative: poll skips it */
            any = 1;
        }
    }
    if (!any)
        return 0;
    int n = weft_sys_poll(fds, nfds, 0);
    int e = errno;
    if (n < 0)
        n = 0;
    for (int k = 0; k < nw; k++) {
        struct pollfd *p = &fds[pw[k].i];
        if (p->fd < 0 && p->revents == 0) {
            p->fd = ~p->fd;
            p->revents = POLLNVAL;
            n++;
        }
    }
    errno = e;
    return n;
}

int weft_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms)
{
    struct sched *s = weft_sched_tls;
    if (!s || !s->cur || timeout_ms == 0)
        return weft_sys_poll(fds, nfds, timeout_ms);
    if (nfds > 65536) {
        errno = EINVAL;
        return -1;
    }
    struct weft_task *t = s->cur;
    int64_t deadline = timeout_ms < 0 ? -1 : weft_deadline_after(timeout_ms);   /* never early */
    int cut = t->deadline >= 0 && (deadline < 0 || t->deadline < deadline);
    struct waiter wl[16], *w = wl;
    struct poll_wait pl[16], *pw = pl;
    if (nfds > 8) {
        w = malloc(2 * nfds * sizeof *w);
        pw = malloc(2 * nfds * sizeof *pw);
        if (!w || !pw) {
            free(w);
            free(pw);
            errno = ENOMEM;
            return -1;
        }
    }
    int result;
    for (;;) {
        int n = weft_sys_poll(fds, nfds, 0);
        if (n != 0) {
            result = n;
            break;
        }
        int nw = 0, e = 0;
        for (nfds_t i = 0; i < nfds && !e; i++) {
            if (fds[i].fd < 0)
                continue;
            struct fdent *f = weft_fd_get(s, fds[i].fd);
            if (!f) {
                e = errno;
                break;
            }
            /* Re-armed: weft may not have seen this fd's last close (poll is given any fd). */
            if ((e = weft_reactor_arm(s, f, fds[i].fd, 1)) != 0)
                break;
            /* Errors and hang-ups wake readers, so wait for reading unless only POLLOUT. */
            int dirs = (fds[i].events & POLLOUT) ? 2 : 0;
            if ((fds[i].events & (POLLIN | POLLPRI | POLLRDHUP)) || !dirs)
                dirs |= 1;
            for (int d = 0; d < 2; d++) {
                if (!(dirs & (1 << d)))
                    continue;
                w[nw].task = t;
                list_push_back(&f->waiters[d], &w[nw].link);
                pw[nw].f = f;
                pw[nw].seq = f->seq;
                pw[nw].i = i;
                pw[nw].dir = d;
                nw++;
            }
        }
        if (!e) {
            t->extra = w;
            t->nextra = nw;
            t->wait_fd = nfds ? fds[0].fd : -1;
            t->wait_events = 0;
            e = weft_sched_park(s, NULL, 0, WAIT_IO, deadline);
        }
        t->extra = NULL;
        t->nextra = 0;
        for (int i = 0; i < nw; i++) {
            list_remove(&w[i].link);
            if (e == 0)     /* woken by readiness: others on those fds may want it too */
                weft_reactor_pass(s, pw[i].f, pw[i].dir);
        }
        if ((e == 0 || e == EAGAIN || e == EBADF) && (result = poll_closed(fds, nfds, pw, nw)) > 0)
            break;
        if (e == ETIMEDOUT && !cut) {
            result = 0;     /* the poll's own timeout: nothing ready */
            break;
        }
        /* EBADF: weft_close closed one of the fds (poll_closed reported it). EAGAIN: an fd
         * deadline changed. */
        if (e != 0 && e != EAGAIN && e != EBADF) {
            errno = e;
            result = -1;
            break;
        }
    }
    if (w != wl) {
        free(w);
        free(pw);
    }
    return result;
}

/* ---- select, as poll -------------------------------------------------------------------- */

/* select(2) on top of weft_poll, inside a task or not: the sets become a pollfd array (on the
 * stack up to 64 fds), the timeout milliseconds rounded up, and Linux's habit of leaving the
 * time not slept in *tv is kept. An fd that reports only what was not asked for (a hang-up
 * on an fd watched for exceptions only) is dropped from the wait, so the loop never spins. */
#define SELECT_STACK_FDS 64

static int select_collect(struct pollfd *p, int n, fd_set *rd, fd_set *wr, fd_set *ex)
{
    int count = 0, badfd = 0;
    for (int i = 0; i < n; i++) {
        short re = p[i].revents;
        if (p[i].fd < 0 || !re)
            continue;
        if (re & POLLNVAL) {
            badfd = 1;
            continue;
        }
        int got = count;
        if ((p[i].events & POLLIN) && (re & (POLLIN | POLLHUP | POLLERR))) {
            FD_SET(p[i].fd, rd);
            count++;
        }
        if ((p[i].events & POLLOUT) && (re & (POLLOUT | POLLERR))) {
            FD_SET(p[i].fd, wr);
            count++;
        }
        if ((p[i].events & POLLPRI) && (re & POLLPRI)) {
            FD_SET(p[i].fd, ex);
            count++;
        }
        if (count == got)
            p[i].fd = -1;   /* only unasked-for events: stop waiting on it */
    }
    if (badfd) {
        errno = EBADF;
        return -1;
    }
    return count;
}

int weft_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv)
{
    if (nfds < 0 || nfds > FD_SETSIZE ||
        (tv && (tv->tv_sec < 0 || tv->tv_usec < 0 || tv->tv_usec >= 1000000))) {
        errno = EINVAL;
        return -1;
    }
    int64_t deadline = -1;
    if (tv) {
        int64_t ms = (int64_t)tv->tv_sec > INT_MAX / 1000 ? INT_MAX
                   : (int64_t)tv->tv_sec * 1000 + (tv->tv_usec + 999) / 1000;
        deadline = weft_deadline_after(ms);     /* never early */
    }
    struct pollfd pl[SELECT_STACK_FDS], *p = pl;
    int n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short ev = (short)((rd && FD_ISSET(fd, rd) ? POLLIN : 0) | (wr && FD_ISSET(fd, wr) ? POLLOUT : 0) |
                           (ex && FD_ISSET(fd, ex) ? POLLPRI : 0));
        if (!ev)
            continue;
        if (n == SELECT_STACK_FDS && p == pl) {
            if (!(p = malloc((size_t)nfds * sizeof *p))) {
                errno = ENOMEM;
                return -1;
            }
            memcpy(p, pl, sizeof pl);
        }
        p[n].fd = fd;
        p[n].events = ev;
        p[n].revents = 0;
        n++;
    }
    fd_set r0, w0, e0;
    FD_ZERO(&r0);
    FD_ZERO(&w0);
    FD_ZERO(&e0);
    int result;
    for (;;) {
        int64_t left = deadline < 0 ? -1 : deadline - weft_now();
        if (left < 0 && deadline >= 0)
            left = 0;
        int r = weft_poll(p, (nfds_t)n, left > INT_MAX ? INT_MAX : (int)left);
        if (r < 0) {
            result = -1;
            break;
        }
        result = select_collect(p, n, &r0, &w0, &e0);
        if (result != 0 || r == 0 || (deadline >= 0 && weft_now() >= deadline))
            break;
        for (int i = 0; i < n; i++)
            p[i].revents = 0;
    }
    int e = errno;
    if (p != pl)
        free(p);
    if (result >= 0) {
        for (int fd = 0; fd < nfds; fd++) {
            if (rd && FD_ISSET(fd, rd) && !FD_ISSET(fd, &r0))
                FD_CLR(fd, rd);
            if (wr && FD_ISSET(fd, wr) && !FD_ISSET(fd, &w0))
                FD_CLR(fd, wr);
            if (ex && FD_ISSET(fd, ex) && !FD_ISSET(fd, &e0))
                FD_CLR(fd, ex);
        }
    }
    if (tv) {
        int64_t left = deadline - weft_now();
        if (left < 0 || result == 0)
            left = 0;
        tv->tv_sec = (time_t)(left / 1000);
        tv->tv_usec = (suseconds_t)(left % 1000) * 1000;
    }
    errno = e;
    return result;
}

/* The reactor layer: the fd table (indexed by fd), epoll registration, parking a task on
 * (fd, direction, deadline) and waking it. It knows fds and readiness, never sockets: what
 * an fd is and how it is read is the IO layer's (io.h). */
#ifndef WEFT_REACTOR_H
#define WEFT_REACTOR_H

#include <stdint.h>

#include "sched.h"

enum { DIR_READ = 0, DIR_WRITE = 1 };

/* What the reactor knows of one fd. Entries never move (the table grows by chunks), so
 * wait queues can point into them. seq changes at every weft_close (and whenever a record is
 * found stale), so an epoll event for a closed and reused fd number is recognised and
 * dropped, and a call that parked on the fd sees, once woken, that its file is gone. */
struct fdent {
    struct list waiters[2];     /* parked tasks, FIFO, per direction */
    int64_t deadline[2];        /* weft_fd_set_deadline, per direction; -1 none */
    uint32_t seq;
    unsigned char registered;   /* in the epoll set */
    unsigned char rearm;        /* the layer above may miss its close: re-arm at every park */
    unsigned char rd_event;     /* a read-readiness event came (the layer above clears it) */
    unsigned char rd_final;     /* a hang-up, error or urgent-data event came, until forgotten */
    unsigned char upper[8];     /* the layer above's (io.h); the reactor only zeroes it */
};

/* The record of fd, made on first sight (an fd never seen is checked to be open). NULL with
 * errno EBADF or ENOMEM (or epoll_create1's, for the thread's first). */
struct fdent *weft_fd_get(struct sched *s, int fd);
/* The record of fd if one was made, else NULL; never creates one. */
struct fdent *weft_fd_lookup(struct sched *s, int fd);
/* Called for each fd whose upper bytes are not all zero when the reactor is released, so the
 * layer above can give back what it changed of the fd (process-wide; set once). */
typedef void (*weft_fd_release_hook)(int fd, struct fdent *f);
void weft_reactor_on_release(weft_fd_release_hook fn);
/* Arm fd in epoll before a park: register it if it is not, and for records that may be
 * stale ('rearm' or f->rearm) re-arm it, which registers a new file behind an old number.
 * Returns 0 or an errno value. */
int weft_reactor_arm(struct sched *s, struct fdent *f, int fd, int rearm);
/* Park the running task until fd may be ready for dir, its deadline (the call's, the fd's,
 * the task's) passes, it is cancelled, or fd is closed. 'front' re-parks a task that was
 * woken but found nothing, ahead of later arrivals. seq is f->seq when the call began: a
 * record closed (or found stale) since then gives EBADF, also after a wake for readiness.
 * Returns 0 (try again), or an errno value: ETIMEDOUT, ECANCELED, EBADF, ENOMEM, EAGAIN (the
 * fd's deadline changed: try again), or epoll_ctl's error. */
int weft_reactor_wait(struct sched *s, struct fdent *f, int fd, int dir, int front, int64_t deadline,
                      uint32_t seq);
/* A task woken for dir has used the readiness (its call did not end in EAGAIN): let the
 * next waiter try too, so readiness never stays unused while tasks wait. */
static inline void weft_reactor_pass(struct sched *s, struct fdent *f, int dir)
{
    if (slow(!list_empty(&f->waiters[dir])))
        weft_sched_wake_one(s, &f->waiters[dir], 0);
}
/* Wake every task parked on fd with EBADF, drop fd from epoll, forget what was known of it. */
void weft_reactor_forget(struct sched *s, int fd);

#endif

/* The processes layer's child record (proc.c spawns, waits and reaps; proc_run.c feeds and
 * collects a child's streams). A task waits for a child on its pidfd through the reactor. */
#ifndef WEFT_PROC_H
#define WEFT_PROC_H

#include <stdint.h>
#include <sys/types.h>

#include "list.h"
#include "reactor.h"

struct weft_proc {
    pid_t pid;
    int pidfd;          /* -1: the kernel (or Valgrind) has no pidfd_open; waits then poll */
    struct list pollers;/* without a pidfd: the tasks waiting, parked with a timer */
    int fd[3];          /* the parent's ends of the pipes; -1 none or closed */
    int reaped;         /* waitpid has given status */
    int status;
    char label[64];     /* "pid N command": what the dump says of a task waiting for it */
};

/* Wait for and reap p's child (p->reaped, p->status), parking a task on the pidfd; outside
 * any task, block. 'hard': neither a cancel nor the task's deadline scope ends the wait (for
 * what must complete: a free). 0, or an errno value: ETIMEDOUT, ECANCELED, ECHILD, EINTR
 * (outside a task), ENOMEM, EBADF (p was freed meanwhile: p must not be touched then). */
int weft_proc_reap(struct weft_proc *p, int64_t deadline, int hard);

#endif

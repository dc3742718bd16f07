/* The introspection layer's internal calls: how a scheduler's life reaches the registry of
 * the signal dump and the watchdog, and the control socket's state. */
#ifndef WEFT_DUMP_H
#define WEFT_DUMP_H

#include "sched.h"

/* A scheduler was created on this thread: register it for the signal dump and the watchdog,
 * and apply WEFT_DUMP_SIGNAL, WEFT_WATCHDOG, WEFT_PROFILE and WEFT_DEBUG. Called last in weft_sched_get. */
void weft_dump_sched_created(struct sched *s);
/* The scheduler is about to be freed: forget it (the watchdog thread must not read it). */
void weft_dump_sched_destroyed(struct sched *s);
/* Is the control socket open? (dump_server.c; env WEFT_DEBUG starts it when not.) */
int weft_debug_listening(void);
/* The profiler's last complete window of every scheduler, and the longest waits on this
 * thread's, as the control socket's "top" answer (dump_profile.c), first turning the
 * profiler on at start_hz when it is off (0: leave it); 0, or -1 and errno. */
int weft_dump_top(int fd, int start_hz);

#endif

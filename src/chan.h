/* The sync layer's channel calls reach a channel of another kind through its ops: a shared
 * channel (offload_chan.c, below this layer, since it needs the reactor) begins with a
 * pointer to its ops, as a thread's own channel begins with NULL. A select with a clause on a
 * shared channel is run by the offload layer (offload_select.c), which reaches this thread's
 * channels through the calls below. */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include <stdatomic.h>
#include <stdint.h>

#include "sched.h"
#include "weft.h"

struct chan_ops {
    int (*send)(weft_chan *c, const void *elem, int64_t deadline);
    int (*recv)(weft_chan *c, void *elem, int64_t deadline);
    int (*close)(weft_chan *c);
    int (*free)(weft_chan *c);
    int (*set_name)(weft_chan *c, const char *name);
    int (*select)(weft_chan_clause *cl, int n, int64_t deadline);   /* any mix of clauses */
};

/* The ops of c, NULL for a channel of one thread. */
static inline const struct chan_ops *chan_ops(const weft_chan *c)
{
    return *(const struct chan_ops *const *)(const void *)c;
}

/* A select's claim word, when it waits on shared channels too: SEL_WAITING until exactly one
 * party changes it, with a compare-and-swap, to the index of the clause it completes (a
 * waker, on this thread or another) or to SEL_GONE (the select itself, timed out or
 * cancelled: nobody may complete a clause any more). */
#define SEL_WAITING (-1)
#define SEL_GONE    (-2)

/* What a parked select waits with, on its stack (t->wait_arg): its clauses, clause i's node
 * t->extra[i] (t->nextra of them), which clause completed (set by a waker of this thread, who
 * wakes it with the result, 0 or EPIPE), and the claim word: NULL for a select of this
 * thread's channels only, which nothing but this thread can end. */
struct chan_wait {
    weft_chan_clause *cl;
    int fired;
    _Atomic int *claim;
};

/* For a select with a clause on a shared channel: this thread's channel's side. Could clause
 * cl (on a channel of this thread) complete now? */
int chan_local_ready(const weft_chan_clause *cl);
/* Complete it now if it can: 0, EPIPE (closed) or EAGAIN (it would have to wait). */
int chan_local_complete(weft_chan_clause *cl);
/* Link w (w->task set) on cl's channel's queue of senders or receivers. */
void chan_local_link(const weft_chan_clause *cl, struct waiter *w);
/* A uniform choice in [0, n), from this thread's generator (select's fair choice). */
uint32_t chan_rand_below(uint32_t n);

#endif

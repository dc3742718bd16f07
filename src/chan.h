/* The sync layer's channel calls reach a channel of another kind through its ops: a shared
 * channel (offload_chan.c, below this layer, since it needs the reactor) begins with a
 * pointer to its ops, as a thread's own channel begins with NULL. */
#ifndef WEFT_CHAN_H
#define WEFT_CHAN_H

#include <stdint.h>

#include "weft.h"

struct chan_ops {
    int (*send)(weft_chan *c, const void *elem, int64_t deadline);
    int (*recv)(weft_chan *c, void *elem, int64_t deadline);
    int (*close)(weft_chan *c);
    int (*free)(weft_chan *c);
    int (*set_name)(weft_chan *c, const char *name);
};

/* The ops of c, NULL for a channel of one thread. */
static inline const struct chan_ops *chan_ops(const weft_chan *c)
{
    return *(const struct chan_ops *const *)(const void *)c;
}

#endif

/* The offload layer's own calls: the pool's entry with a label for the dump, which the file
 * calls and name lookups (offload_fs.c, offload_dns.c) go through. offload.c has them. */
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include <stdint.h>

/* weft_offload_ex, with op the word the dump shows before the function's name ("pread",
 * "getaddrinfo"; a string that outlives the call). */
int weft_offload_op(const char *op, void (*fn)(void *), void *arg, void (*discard)(void *),
                    int64_t deadline);

/* weft_offload_op for a call that hands arg over whenever it fails: every -1 leaves arg to
 * discard, which the pool calls on its thread after an early return (as weft_offload_op),
 * and this call on the caller's before it returns when the job was never queued (a past
 * deadline, a cancelled task, no memory, no thread). So after -1 the caller never touches
 * arg again, whichever errno it got; after 0, arg is the caller's. discard must not be NULL
 * (fn(arg) outside any task: 0, arg the caller's). */
int weft_offload_give(const char *op, void (*fn)(void *), void *arg, void (*discard)(void *),
                      int64_t deadline);

/* weft_getaddrinfo with a deadline of its own besides the task's scope (offload_dns.c). */
struct addrinfo;
int weft_getaddrinfo_until(const char *node, const char *service, const struct addrinfo *hints,
                           struct addrinfo **res, int64_t deadline);

#endif

/* The offload layer's own calls: the pool's entry with a label for the dump, which the file
 * calls and name lookups (offload_fs.c, offload_dns.c) go through. offload.c has them. */
#ifndef WEFT_OFFLOAD_H
#define WEFT_OFFLOAD_H

#include <stdint.h>

/* weft_offload_ex, with op the word the dump shows before the function's name ("pread",
 * "getaddrinfo"; a string that outlives the call). */
int weft_offload_op(const char *op, void (*fn)(void *), void *arg, void (*discard)(void *),
                    int64_t deadline);

#endif

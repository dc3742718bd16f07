/* Async-signal-safe formatting: a fixed buffer that strings and numbers are appended to and
 * written out with write(2), for reports made from signal handlers (overflow, dump). */
#ifndef WEFT_SIGFMT_H
#define WEFT_SIGFMT_H

#include <stddef.h>
#include <stdint.h>

/* A fixed buffer that strings and numbers are appended to, and written out with write(2)
 * (waiting with poll when fd is non-blocking and full). err: the errno of a failed write;
 * the caller zeroes it when it wants to know. */
struct sigbuf {
    char buf[1024];
    size_t len;
    int fd;
    int err;
};
void weft_sigbuf_str(struct sigbuf *b, const char *s);
void weft_sigbuf_u64(struct sigbuf *b, uint64_t v);
void weft_sigbuf_i64(struct sigbuf *b, int64_t v);
void weft_sigbuf_hex(struct sigbuf *b, uintptr_t v);
void weft_sigbuf_flush(struct sigbuf *b);

#endif

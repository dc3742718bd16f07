/* Formatting that is safe in a signal handler (no malloc, no stdio, no locale): the stack
 * overflow report and the SIGQUIT dump are written with it. */
#include "config.h"
#include "sigfmt.h"
#include "sys.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

void weft_sigbuf_flush(struct sigbuf *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = weft_sys_write(b->fd, b->buf + off, b->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            /* A non-blocking fd (a task's socket, a pipe): wait until it drains. */
            struct pollfd p = { .fd = b->fd, .events = POLLOUT };
            if (weft_sys_poll(&p, 1, -1) >= 0 || errno == EINTR)
                continue;
        }
        if (w <= 0) {
            b->err = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    b->len = 0;
}

void weft_sigbuf_str(struct sigbuf *b, const char *s)
{
    if (!s)
        s = "(null)";
    for (; *s; s++) {
        if (b->len == sizeof b->buf)
            weft_sigbuf_flush(b);
        b->buf[b->len++] = *s;
    }
}

void weft_sigbuf_u64(struct sigbuf *b, uint64_t v)
{
    char tmp[24];
    int i = (int)sizeof tmp - 1;
    tmp[i] = '\0';
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    weft_sigbuf_str(b, tmp + i);
}

void weft_sigbuf_i64(struct sigbuf *b, int64_t v)
{
    if (v < 0) {
        weft_sigbuf_str(b, "-");
        weft_sigbuf_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        weft_sigbuf_u64(b, (uint64_t)v);
    }
}

void weft_sigbuf_hex(struct sigbuf *b, uintptr_t v)
{
    char tmp[2 + 2 * sizeof v + 1];
    int i = (int)sizeof tmp - 1;
    tmp[i] = '\0';
    do {
        tmp[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    tmp[--i] = 'x';
    tmp[--i] = '0';
    weft_sigbuf_str(b, tmp + i);
}

/* resp.h: an incremental parser of Redis protocol (RESP2) requests, header-only, no weft
 * calls, so that a fuzzer can drive it alone. Both request forms redis accepts:
 *   multibulk  *<n>\r\n then n times $<len>\r\n<len bytes>\r\n
 *   inline     words on one line ending in \n (\r\n), with "..." (C escapes) and '...' quoting
 *
 * Use: struct resp_parser p; resp_init(&p); then, with buf[0..len) the bytes received since
 * the start of the current request:
 *   r = resp_parse(&p, buf, len);
 *   RESP_MORE (0)   the request is incomplete: keep buf[0..len), append what arrives next (the
 *                   bytes may be moved meanwhile: the parser keeps offsets, not pointers) and
 *                   call again with the same start. Work already done is not redone.
 *   RESP_CMD (1)    a whole request: p.argc arguments, argument i at buf + p.off[i], p.len[i]
 *                   bytes (binary safe); it used p.used bytes of buf. argc 0 is an empty
 *                   request (a blank line, *0): skip it. The next call starts a new request.
 *   RESP_ERROR (-1) a protocol error, p.err its text as redis words it ("Protocol error:
 *                   ..."); the connection cannot be resynchronised: reply and close.
 * An inline request is unquoted in place (buf is written to). Limits, in the struct and set by
 * resp_init, bound what a request may claim: an element count above max_args, a bulk length
 * above max_bulk, or a count line or inline request longer than max_inline is an error at once,
 * before any byte of it is stored; nothing is ever allocated from a claimed size (the argument
 * table grows with the arguments actually received). resp_free releases that table. */
#ifndef WEFT_EXAMPLES_RESP_H
#define WEFT_EXAMPLES_RESP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RESP_MORE 0
#define RESP_CMD 1
#define RESP_ERROR (-1)

#define RESP_INLINE_ARGS 16

struct resp_parser {
    /* results */
    int argc;
    size_t *off, *len;          /* argc entries each */
    size_t used;
    const char *err;
    /* limits */
    long long max_args, max_bulk;
    size_t max_inline;
    /* progress through the current request */
    size_t pos;                 /* bytes of it parsed so far */
    long long nargs;            /* elements announced; -1: count line not parsed yet */
    long long bulk;             /* length of the bulk being read; -1: its $ line is next */
    int done;                   /* the last call returned RESP_CMD: start afresh */
    int cap;
    size_t off0[RESP_INLINE_ARGS], len0[RESP_INLINE_ARGS];
    char errbuf[64];
};

static inline void resp_reset(struct resp_parser *p)
{
    p->argc = 0;
    p->used = 0;
    p->pos = 0;
    p->nargs = -1;
    p->bulk = -1;
    p->done = 0;
}

static inline void resp_init(struct resp_parser *p)
{
    memset(p, 0, sizeof *p);
    p->off = p->off0;
    p->len = p->len0;
    p->cap = RESP_INLINE_ARGS;
    p->max_args = 1024 * 1024;
    p->max_bulk = 512LL * 1024 * 1024;
    p->max_inline = 64 * 1024;
    p->err = "";
    resp_reset(p);
}

static inline void resp_free(struct resp_parser *p)
{
    if (p->off != p->off0) {
        free(p->off);
        free(p->len);
    }
    p->off = p->off0;
    p->len = p->len0;
    p->cap = RESP_INLINE_ARGS;
}

/* Room for one more argument; 0, or -1 when out of memory. */
static inline int resp_push(struct resp_parser *p, size_t off, size_t len)
{
    if (p->argc == p->cap) {
        int cap = p->cap * 2;
        size_t *o = malloc((size_t)cap * sizeof *o), *l = malloc((size_t)cap * sizeof *l);
        if (!o || !l) {
            free(o);
            free(l);
            return -1;
        }
        memcpy(o, p->off, (size_t)p->argc * sizeof *o);
        memcpy(l, p->len, (size_t)p->argc * sizeof *l);
        resp_free(p);
        p->off = o;
        p->len = l;
        p->cap = cap;
    }
    p->off[p->argc] = off;
    p->len[p->argc] = len;
    p->argc++;
    return 0;
}

/* Redis's strict integer syntax: optional '-', no leading zeros, no '+' or spaces, fits in
 * a long long. 1 and *v on success. */
static inline int resp_ll(const char *s, size_t n, long long *v)
{
    if (n == 0 || n > 20)
        return 0;
    if (n == 1 && s[0] == '0') {
        *v = 0;
        return 1;
    }
    size_t i = 0;
    int neg = s[0] == '-';
    if (neg)
        i = 1;
    if (i >= n || s[i] < '1' || s[i] > '9')
        return 0;
    unsigned long long u = 0;
    if (n - i <= 18) {      /* the common case: too few digits to overflow */
        for (; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return 0;
            u = u * 10 + (unsigned)(s[i] - '0');
        }
    } else {
        for (; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return 0;
            unsigned d = (unsigned)(s[i] - '0');
            if (u > (~0ULL - d) / 10)
                return 0;
            u = u * 10 + d;
        }
    }
    if (neg) {
        if (u > (unsigned long long)INT64_MAX + 1)
            return 0;
        *v = u == (unsigned long long)INT64_MAX + 1 ? INT64_MIN : -(long long)u;
    } else {
        if (u > (unsigned long long)INT64_MAX)
            return 0;
        *v = (long long)u;
    }
    return 1;
}

/* The first '\r' in s[0..n), or NULL: count lines are short, so a plain loop. */
static inline const char *resp_cr(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r')
            return s + i;
    return NULL;
}

static inline int resp_fail(struct resp_parser *p, const char *msg)
{
    p->err = msg;
    return RESP_ERROR;
}

static inline int resp_hex(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static inline int resp_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Split buf[0..n) into arguments the way redis's inline parser does, unquoting in place. */
static inline int resp_inline_split(struct resp_parser *p, char *buf, size_t n)
{
    size_t r = 0;
    for (;;) {
        while (r < n && resp_space((unsigned char)buf[r]))
            r++;
        if (r == n)
            return RESP_CMD;
        size_t start = r, w = r;
        char q = buf[r] == '"' || buf[r] == '\'' ? buf[r++] : 0;
        for (;;) {
            if (r == n) {
                if (q)
                    return resp_fail(p, "Protocol error: unbalanced quotes in request");
                break;
            }
            char c = buf[r];
            if (!q) {
                if (resp_space((unsigned char)c))
                    break;
                buf[w++] = c;
                r++;
            } else if (q == '"' && c == '\\' && r + 3 < n && buf[r + 1] == 'x' &&
                       resp_hex((unsigned char)buf[r + 2]) >= 0 && resp_hex((unsigned char)buf[r + 3]) >= 0) {
                buf[w++] = (char)(resp_hex((unsigned char)buf[r + 2]) * 16 + resp_hex((unsigned char)buf[r + 3]));
                r += 4;
            } else if (q == '"' && c == '\\' && r + 1 < n) {
                char e = buf[r + 1];
                buf[w++] = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
                r += 2;
            } else if (q == '\'' && c == '\\' && r + 1 < n && buf[r + 1] == '\'') {
                buf[w++] = '\'';
                r += 2;
            } else if (c == q) {
                r++;
                /* the closing quote must end the argument */
                if (r < n && !resp_space((unsigned char)buf[r]))
                    return resp_fail(p, "Protocol error: unbalanced quotes in request");
                break;
            } else {
                buf[w++] = c;
                r++;
            }
        }
        if (resp_push(p, start, w - start) != 0)
            return resp_fail(p, "out of memory");
    }
}

static inline int resp_parse(struct resp_parser *p, char *buf, size_t len)
{
    if (p->done)
        resp_reset(p);
    if (len == 0)
        return RESP_MORE;
    if (buf[0] != '*') {
        /* inline: wait for the whole line (scanning only the new bytes) */
        char *nl = memchr(buf + p->pos, '\n', len - p->pos);
        if (!nl) {
            if (len > p->max_inline)
                return resp_fail(p, "Protocol error: too big inline request");
            p->pos = len;
            return RESP_MORE;
        }
        size_t n = (size_t)(nl - buf);
        if (n > p->max_inline)      /* the same verdict however the bytes were split */
            return resp_fail(p, "Protocol error: too big inline request");
        p->used = n + 1;
        if (n > 0 && buf[n - 1] == '\r')
            n--;
        int r = resp_inline_split(p, buf, n);
        if (r == RESP_CMD)
            p->done = 1;
        return r;
    }
    if (p->nargs < 0) {
        const char *cr = resp_cr(buf, len);
        if (!cr || (size_t)(cr - buf) + 1 >= len) {
            if (len > p->max_inline)
                return resp_fail(p, "Protocol error: too big mbulk count string");
            return RESP_MORE;
        }
        long long n;
        size_t nl = (size_t)(cr - buf);
        if (nl + 1 > p->max_inline)
            return resp_fail(p, "Protocol error: too big mbulk count string");
        if (!resp_ll(buf + 1, nl - 1, &n) || n > p->max_args)
            return resp_fail(p, "Protocol error: invalid multibulk length");
        p->pos = nl + 2;
        p->nargs = n;
    }
    while (p->argc < p->nargs) {
        if (p->bulk < 0) {
            if (p->pos >= len)
                return RESP_MORE;
            if (buf[p->pos] != '$') {
                snprintf(p->errbuf, sizeof p->errbuf, "Protocol error: expected '$', got '%c'", buf[p->pos]);
                return resp_fail(p, p->errbuf);
            }
            const char *cr = resp_cr(buf + p->pos, len - p->pos);
            if (!cr || (size_t)(cr - buf) + 1 >= len) {
                if (len - p->pos > p->max_inline)
                    return resp_fail(p, "Protocol error: too big bulk count string");
                return RESP_MORE;
            }
            long long n;
            size_t nl = (size_t)(cr - buf);
            if (nl - p->pos + 1 > p->max_inline)
                return resp_fail(p, "Protocol error: too big bulk count string");
            if (!resp_ll(buf + p->pos + 1, nl - p->pos - 1, &n) || n < 0 || n > p->max_bulk)
                return resp_fail(p, "Protocol error: invalid bulk length");
            p->pos = nl + 2;
            p->bulk = n;
        }
        if (len - p->pos < (size_t)p->bulk + 2)
            return RESP_MORE;
        if (resp_push(p, p->pos, (size_t)p->bulk) != 0)
            return resp_fail(p, "out of memory");
        p->pos += (size_t)p->bulk + 2;
        p->bulk = -1;
    }
    p->used = p->pos;
    p->done = 1;
    return RESP_CMD;
}

#endif

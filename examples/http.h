/* HTTP/1.x for the hello servers: a request-head parser that works on whatever bytes have
 * arrived (a head split across reads is just "incomplete"), and the fixed responses. Shared
 * by examples/httpd.c and the benchmark's baseline (bench/epoll_httpd.c), so both parse alike
 * and send the same bytes; reading, writing and connections are theirs. */
#ifndef EXAMPLES_HTTP_H
#define EXAMPLES_HTTP_H

#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HTTP_HEAD_MAX 8192          /* longest request head accepted (431 beyond) */
#define HTTP_RESPONSE_MAX 256       /* longest response http_respond writes */

struct http_req {
    size_t head_len;    /* bytes of the head, up to and including its empty line */
    uint64_t body_len;  /* Content-Length: bytes after the head to skip */
    int status;         /* 200, or the error to answer (400, 501, 505) */
    int keep_alive;     /* the connection stays open after the response */
    int keep_alive_10;  /* an HTTP/1.0 client asked to keep it open: say so */
    int head_only;      /* HEAD: no body in the response */
};

/* A token character (RFC 9110: letters, digits and !#$%&'*+-.^_`|~), as a bitmap. */
static inline int http_tchar(unsigned char c)
{
    static const uint64_t map[2] = { 0x03ff6cfa00000000ull, 0x57ffffffc7fffffeull };
    return c < 128 && (map[c >> 6] >> (c & 63)) & 1;
}

/* The line at p (ending in LF or CRLF, CR allowed only there): its length without the
 * terminator in *len, and the start of the next line; NULL when no LF has arrived yet. */
static inline const char *http_line(const char *p, const char *end, size_t *len)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf)
        return NULL;
    *len = (size_t)(lf - p) - (lf > p && lf[-1] == '\r');
    return lf + 1;
}

/* Does the comma-separated list v (n bytes) hold the token tok, in any case? */
static inline int http_has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i < n;) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0)
            return 1;
    }
    return 0;
}

static inline int http_error(struct http_req *r, int status, size_t head_len)
{
    r->status = status;
    r->keep_alive = 0;      /* after an error the stream cannot be trusted: close */
    r->head_len = head_len;
    return 1;
}

/* Parse the request head at the start of buf[0..n). Returns 0 when it is incomplete (read
 * more), else 1 with *r filled in; r->status says whether it is a request to answer (200)
 * or an error (then keep_alive is 0). A head that cannot end within HTTP_HEAD_MAX bytes
 * gives 431. Bytes that cannot start a valid request give 400 as soon as they are seen. */
static inline int http_parse(const char *buf, size_t n, struct http_req *r)
{
    const char *p = buf, *end = buf + n, *line;
    size_t len;
    memset(r, 0, sizeof *r);
    for (;;) {      /* empty lines before a request are allowed (RFC 9112 2.2) */
        if (p < end && *p == '\n')
            p++;
        else if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
            p += 2;
        else if (end - p == 1 && *p == '\r')
            return n >= HTTP_HEAD_MAX ? http_error(r, 431, n) : 0;
        else
            break;
    }
    /* Request line: method SP target SP HTTP/x.y */
    size_t i = 0, rest = (size_t)(end - p);
    while (i < rest && http_tchar((unsigned char)p[i]))
        i++;
    if (i < rest && (i == 0 || p[i] != ' '))
        return http_error(r, 400, n);
    if (!(line = http_line(p, end, &len)))
        return n >= HTTP_HEAD_MAX ? http_error(r, 431, n) : 0;
    size_t m = i;
    r->head_only = m == 4 && memcmp(p, "HEAD", 4) == 0;
    size_t t = ++i;
    while (i < len && (unsigned char)p[i] > ' ' && p[i] != 0x7f)
        i++;
    if (i == t || i + 9 != len || p[i] != ' ' || memcmp(p + i + 1, "HTTP/", 5) != 0 ||
        p[i + 6] < '0' || p[i + 6] > '9' || p[i + 7] != '.' || p[i + 8] < '0' || p[i + 8] > '9')
        return http_error(r, 400, n);
    if (p[i + 6] != '1')
        return http_error(r, 505, n);
    int http11 = p[i + 8] != '0';
    int close = 0, keep = 0, hosts = 0, te = 0, cl_seen = 0;
    /* Header fields up to the empty line. */
    for (;;) {
        p = line;
        if (!(line = http_line(p, end, &len)))
            return n >= HTTP_HEAD_MAX ? http_error(r, 431, n) : 0;
        if (len == 0)
            break;
        size_t k = 0;
        while (k < len && http_tchar((unsigned char)p[k]))
            k++;
        if (k == 0 || k == len || p[k] != ':')
            return http_error(r, 400, n);   /* no name, no colon, or space before it */
        const char *v = p + k + 1, *ve = p + len;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *c = v; c < ve; c++)
            if ((unsigned char)*c < ' ' && *c != '\t')
                return http_error(r, 400, n);
        size_t vl = (size_t)(ve - v);
        if (k == 4 && strncasecmp(p, "host", 4) == 0) {
            hosts++;
        } else if (k == 10 && strncasecmp(p, "connection", 10) == 0) {
            close |= http_has_token(v, vl, "close");
            keep |= http_has_token(v, vl, "keep-alive");
        } else if (k == 14 && strncasecmp(p, "content-length", 14) == 0) {
            uint64_t cl = 0;
            if (vl == 0 || vl > 15)
                return http_error(r, 400, n);
            for (size_t d = 0; d < vl; d++) {
                if (v[d] < '0' || v[d] > '9')
                    return http_error(r, 400, n);
                cl = cl * 10 + (uint64_t)(v[d] - '0');
            }
            if (cl_seen && cl != r->body_len)
                return http_error(r, 400, n);
            r->body_len = cl;
            cl_seen = 1;
        } else if (k == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
            te = 1;
        }
    }
    size_t head = (size_t)(line - buf);
    if (te)     /* bodies of unknown length: refuse rather than misread the stream */
        return http_error(r, cl_seen ? 400 : 501, head);
    if (hosts > 1 || (http11 && hosts == 0))
        return http_error(r, 400, head);
    r->status = 200;
    r->head_len = head;
    r->keep_alive = !close && (http11 || keep);
    r->keep_alive_10 = !http11 && r->keep_alive;
    return 1;
}

/* The Date header's value, formatted once a second. */
static inline const char *http_date(void)
{
    static char date[32];
    static time_t at;
    time_t now = time(NULL);
    if (now != at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        at = now;
    }
    return date;
}

static inline size_t http_put(char *out, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(out + at, s, n);
    return at + n;
}

/* Write the response to r at out (room for HTTP_RESPONSE_MAX bytes); returns its length.
 * 200: "Hello, World!" as text/plain; errors: the status line and its reason as the body. */
static inline size_t http_respond(char *out, const struct http_req *r)
{
    const char *status = "200 OK", *body = "Hello, World!", *len = "13";
    switch (r->status) {
    case 400: status = "400 Bad Request"; body = "Bad Request\n"; len = "12"; break;
    case 431: status = "431 Request Header Fields Too Large"; body = "Too Large\n"; len = "10"; break;
    case 501: status = "501 Not Implemented"; body = "Not Implemented\n"; len = "16"; break;
    case 505: status = "505 HTTP Version Not Supported"; body = "Bad Version\n"; len = "12"; break;
    }
    size_t n = http_put(out, 0, "HTTP/1.1 ");
    n = http_put(out, n, status);
    n = http_put(out, n, "\r\nServer: weft\r\nDate: ");
    n = http_put(out, n, http_date());
    n = http_put(out, n, "\r\nContent-Type: text/plain\r\nContent-Length: ");
    n = http_put(out, n, len);
    if (!r->keep_alive)
        n = http_put(out, n, "\r\nConnection: close");
    else if (r->keep_alive_10)
        n = http_put(out, n, "\r\nConnection: keep-alive");
    n = http_put(out, n, "\r\n\r\n");
    if (!r->head_only)
        n = http_put(out, n, body);
    return n;
}

#endif

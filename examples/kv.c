/* kv: a key-value server speaking the Redis protocol (RESP2), enough of it for redis-cli and
 * redis-benchmark: strings with expiry, one task per connection written as plain blocking
 * code, a hash table shared by the tasks of the thread (no locks: tasks switch only where they
 * wait, so each command runs whole). Requests are parsed by examples/resp.h; every complete
 * request in the buffer is answered, and the replies leave in one write once the input is
 * drained. Expired keys go lazily (when touched) and actively (a task samples keys with a
 * deadline ten times a second, as redis does).
 *
 * --threads N runs N loops, each on its own thread with its own listener on the same port
 * (SO_REUSEPORT) and its own table: a key lives in the table of the thread whose connection
 * wrote it, so N threads are N independent cache shards behind one port, not one database. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <weft.h>

#include "resp.h"

#define IN_SMALL (16 * 1024)
#define OUT_SMALL (16 * 1024)
#define OUT_FLUSH (64 * 1024)           /* write out replies mid-batch beyond this */
#define MAX_REQUEST (64LL * 1024 * 1024) /* a request longer than this closes the connection */

static const char *host = "127.0.0.1";
static int port = 6379;
static long long max_bulk = 16 * 1024 * 1024, max_args = 1024 * 1024;
static uint64_t hash_seed;

/* ---- the table ----------------------------------------------------------------------------- */

struct ent {
    struct ent *next;
    uint64_t h;
    int64_t exp;            /* absolute weft_now() ms; -1: none */
    size_t xi;              /* index in db.xs when exp >= 0 */
    uint32_t klen, vlen, vcap;
    char kv[];              /* key, then value */
};

struct db {
    struct ent **b;
    size_t mask, n;
    struct ent **xs;        /* the entries with an expiry, for sampling */
    size_t xn, xcap;
    uint64_t rng;
    long long expired;
};

static _Thread_local struct db db;

static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = hash_seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 32);
}

static uint64_t rnd(void)
{
    uint64_t x = db.rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return db.rng = x;
}

static int db_init(void)
{
    db.mask = 15;
    db.b = calloc(db.mask + 1, sizeof *db.b);
    db.rng = hash_seed | 1;
    return db.b ? 0 : -1;
}

static void xs_del(struct ent *e)
{
    if (e->exp < 0)
        return;
    struct ent *last = db.xs[--db.xn];
    db.xs[e->xi] = last;
    last->xi = e->xi;
    e->exp = -1;
}

/* Give e the expiry exp (-1: none); 0, or -1 out of memory. */
static int set_exp(struct ent *e, int64_t exp)
{
    if (exp < 0) {
        xs_del(e);
        return 0;
    }
    if (e->exp < 0) {
        if (db.xn == db.xcap) {
            size_t cap = db.xcap ? db.xcap * 2 : 64;
            struct ent **x = realloc(db.xs, cap * sizeof *x);
            if (!x)
                return -1;
            db.xs = x;
            db.xcap = cap;
        }
        e->xi = db.xn;
        db.xs[db.xn++] = e;
    }
    e->exp = exp;
    return 0;
}

static void ent_unlink(struct ent **pp)
{
    struct ent *e = *pp;
    *pp = e->next;
    xs_del(e);
    free(e);
    db.n--;
}

/* The link that points at key's entry (or the bucket's last NULL link). Expired entries met
 * on the way are deleted. */
static struct ent **db_slot(const char *k, size_t n, uint64_t h)
{
    struct ent **pp = &db.b[h & db.mask];
    int64_t now = -1;
    while (*pp) {
        struct ent *e = *pp;
        if (e->exp >= 0) {
            if (now < 0)
                now = weft_now();
            if (e->exp <= now) {
                ent_unlink(pp);
                db.expired++;
                continue;
            }
        }
        if (e->h == h && e->klen == n && memcmp(e->kv, k, n) == 0)
            return pp;
        pp = &e->next;
    }
    return pp;
}

static struct ent *db_get(const char *k, size_t n)
{
    return *db_slot(k, n, hash(k, n));
}

static void db_grow(void)
{
    size_t mask = db.mask * 2 + 1;
    struct ent **b = calloc(mask + 1, sizeof *b);
    if (!b)
        return;     /* stay at this size: longer chains, still correct */
    for (size_t i = 0; i <= db.mask; i++) {
        for (struct ent *e = db.b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->h & mask];
            b[e->h & mask] = e;
        }
    }
    free(db.b);
    db.b = b;
    db.mask = mask;
}

/* Store value v under key k, keeping the entry's expiry if it exists (the caller sets it);
 * the entry, or NULL when out of memory. */
static struct ent *db_set(const char *k, size_t kn, const char *v, size_t vn)
{
    uint64_t h = hash(k, kn);
    struct ent **pp = db_slot(k, kn, h), *e = *pp;
    if (e && e->vcap >= vn && e->vcap <= 2 * vn + 64) {
        memcpy(e->kv + kn, v, vn);
        e->vlen = (uint32_t)vn;
        return e;
    }
    if (kn > UINT32_MAX || vn > UINT32_MAX)
        return NULL;
    struct ent *ne = malloc(sizeof *ne + kn + vn);
    if (!ne)
        return NULL;
    ne->h = h;
    ne->klen = (uint32_t)kn;
    ne->vlen = ne->vcap = (uint32_t)vn;
    memcpy(ne->kv, k, kn);
    memcpy(ne->kv + kn, v, vn);
    ne->exp = -1;
    if (e) {            /* replace e in place: same chain position, same expiry slot */
        ne->next = e->next;
        ne->exp = e->exp;
        ne->xi = e->xi;
        if (e->exp >= 0)
            db.xs[e->xi] = ne;
        free(e);
        *pp = ne;
        return ne;
    }
    ne->next = NULL;
    *pp = ne;
    if (++db.n > db.mask + 1)
        db_grow();
    return ne;
}

static int db_del(const char *k, size_t n)
{
    struct ent **pp = db_slot(k, n, hash(k, n));
    if (!*pp)
        return 0;
    ent_unlink(pp);
    return 1;
}

static void db_flush(void)
{
    for (size_t i = 0; i <= db.mask; i++) {
        for (struct ent *e = db.b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
        db.b[i] = NULL;
    }
    db.n = db.xn = 0;
}

/* Active expiry, as redis's: every 100 ms, sample 20 keys that have a deadline and delete the
 * expired ones; go on while more than a quarter of a sample was expired (yielding between
 * rounds so connections keep being served). */
static void *expire_loop(void *arg)
{
    (void)arg;
    for (;;) {
        if (weft_sleep(100) != 0 && errno == ECANCELED)
            return NULL;
        for (int round = 0; db.xn > 0; round++) {
            int64_t now = weft_now();
            int found = 0;
            for (int i = 0; i < 20 && db.xn > 0; i++) {
                struct ent *e = db.xs[rnd() % db.xn];
                if (e->exp <= now) {
                    db_del(e->kv, e->klen);     /* finds it expired and unlinks it */
                    found++;
                }
            }
            if (found <= 5)
                break;
            if (round % 16 == 15)
                weft_yield();
        }
    }
    return NULL;
}

/* ---- replies ------------------------------------------------------------------------------- */

struct out {
    char *p, *small;
    size_t len, cap;
    int oom;
};

static char *out_room(struct out *o, size_t n)
{
    if (o->cap - o->len < n) {
        size_t cap = o->cap * 2;
        while (cap - o->len < n)
            cap *= 2;
        char *p = o->p == o->small ? malloc(cap) : realloc(o->p, cap);
        if (!p) {
            o->oom = 1;
            return NULL;
        }
        if (o->p == o->small)
            memcpy(p, o->small, o->len);
        o->p = p;
        o->cap = cap;
    }
    return o->p + o->len;
}

static void add(struct out *o, const void *s, size_t n)
{
    char *d = out_room(o, n);
    if (d) {
        memcpy(d, s, n);
        o->len += n;
    }
}

#define ADDLIT(o, s) add((o), s, sizeof s - 1)

static size_t fmt_ll(char *d, long long v)
{
    char tmp[24];
    size_t n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do
        tmp[n++] = (char)('0' + u % 10);
    while (u /= 10);
    size_t k = 0;
    if (v < 0)
        d[k++] = '-';
    while (n)
        d[k++] = tmp[--n];
    return k;
}

/* ":<v>\r\n", "*<v>\r\n" or "$<v>\r\n" */
static void add_num(struct out *o, char type, long long v)
{
    char *d = out_room(o, 24);
    if (!d)
        return;
    d[0] = type;
    size_t k = 1 + fmt_ll(d + 1, v);
    d[k++] = '\r';
    d[k++] = '\n';
    o->len += k;
}

static void add_int(struct out *o, long long v) { add_num(o, ':', v); }
static void add_arr(struct out *o, long long n) { add_num(o, '*', n); }

static void add_bulk(struct out *o, const char *s, size_t n)
{
    char *d = out_room(o, n + 32);
    if (!d)
        return;
    d[0] = '$';
    size_t k = 1 + fmt_ll(d + 1, (long long)n);
    d[k++] = '\r';
    d[k++] = '\n';
    memcpy(d + k, s, n);
    k += n;
    d[k++] = '\r';
    d[k++] = '\n';
    o->len += k;
}

static void add_nil(struct out *o) { ADDLIT(o, "$-1\r\n"); }
static void add_ok(struct out *o) { ADDLIT(o, "+OK\r\n"); }

/* "-ERR ...\r\n"; newlines in the text become spaces, as redis does. */
static void add_err(struct out *o, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    for (int i = 0; i < n; i++)
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = ' ';
    ADDLIT(o, "-ERR ");
    add(o, buf, (size_t)n);
    ADDLIT(o, "\r\n");
}

#define E_NOTINT "value is not an integer or out of range"
#define E_SYNTAX "syntax error"

/* ---- commands ------------------------------------------------------------------------------ */

struct req {
    int argc;
    char **argv;
    size_t *len;
    struct out *o;
    int quit;
};

#define A(i) (r->argv[i])
#define L(i) (r->len[i])

static int is(const struct req *r, int i, const char *word)
{
    size_t n = strlen(word);
    return L(i) == n && strncasecmp(A(i), word, n) == 0;
}

static int arg_ll(const struct req *r, int i, long long *v)
{
    return resp_ll(A(i), L(i), v);
}

static void c_ping(struct req *r)
{
    if (r->argc > 2)
        add_err(r->o, "wrong number of arguments for 'ping' command");
    else if (r->argc == 2)
        add_bulk(r->o, A(1), L(1));
    else
        ADDLIT(r->o, "+PONG\r\n");
}

static void c_echo(struct req *r) { add_bulk(r->o, A(1), L(1)); }

static void c_get(struct req *r)
{
    struct ent *e = db_get(A(1), L(1));
    if (e)
        add_bulk(r->o, e->kv + e->klen, e->vlen);
    else
        add_nil(r->o);
}

/* An expiry of v units (1000: seconds, 1: ms) from now, or absolute (abs) in that unit, as
 * weft_now() ms in *exp; 0, or -1 after an error reply. */
static int expire_arg(struct req *r, int i, long long unit, int abs, const char *cmd, int64_t *exp)
{
    long long v;
    if (!arg_ll(r, i, &v)) {
        add_err(r->o, E_NOTINT);
        return -1;
    }
    if (v <= 0 || v > LLONG_MAX / unit)
        goto bad;
    v *= unit;
    if (abs) {
        /* weft_now() is a monotonic clock: map the wall-clock time onto it */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long wall = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        v -= wall;
        v = v < 1 ? 1 : v;
    }
    int64_t now = weft_now();
    if (v > INT64_MAX - now)
        goto bad;
    *exp = now + v;
    return 0;
bad:
    add_err(r->o, "invalid expire time in '%s' command", cmd);
    return -1;
}

static void c_set(struct req *r)
{
    enum { NX = 1, XX = 2, EX = 4, PX = 8, EXAT = 16, PXAT = 32, KEEPTTL = 64, GET = 128 };
    int fl = 0, ti = 0;
    for (int i = 3; i < r->argc; i++) {
        int more = i + 1 < r->argc;
        if (is(r, i, "nx") && !(fl & XX))
            fl |= NX;
        else if (is(r, i, "xx") && !(fl & NX))
            fl |= XX;
        else if (is(r, i, "get"))
            fl |= GET;
        else if (is(r, i, "keepttl") && !(fl & (EX | PX | EXAT | PXAT)))
            fl |= KEEPTTL;
        else if (more && !(fl & (KEEPTTL | EX | PX | EXAT | PXAT)) &&
                 (is(r, i, "ex") || is(r, i, "px") || is(r, i, "exat") || is(r, i, "pxat"))) {
            fl |= is(r, i, "ex") ? EX : is(r, i, "px") ? PX : is(r, i, "exat") ? EXAT : PXAT;
            ti = ++i;
        } else {
            add_err(r->o, E_SYNTAX);
            return;
        }
    }
    int64_t exp = -1;
    if (ti && expire_arg(r, ti, (fl & (EX | EXAT)) ? 1000 : 1, !!(fl & (EXAT | PXAT)), "set", &exp) != 0)
        return;
    struct ent *e = db_get(A(1), L(1));
    if (fl & GET) {
        if (e)
            add_bulk(r->o, e->kv + e->klen, e->vlen);
        else
            add_nil(r->o);
    }
    if (((fl & NX) && e) || ((fl & XX) && !e)) {
        if (!(fl & GET))
            add_nil(r->o);
        return;
    }
    e = db_set(A(1), L(1), A(2), L(2));
    if (!e || set_exp(e, (fl & KEEPTTL) ? e->exp : exp) != 0) {
        r->o->oom = 1;
        return;
    }
    if (!(fl & GET))
        add_ok(r->o);
}

static void c_del(struct req *r)
{
    long long n = 0;
    for (int i = 1; i < r->argc; i++)
        n += db_del(A(i), L(i));
    add_int(r->o, n);
}

static void c_exists(struct req *r)
{
    long long n = 0;
    for (int i = 1; i < r->argc; i++)
        n += db_get(A(i), L(i)) != NULL;
    add_int(r->o, n);
}

static void incr_by(struct req *r, long long by)
{
    struct ent *e = db_get(A(1), L(1));
    long long v = 0;
    if (e && !resp_ll(e->kv + e->klen, e->vlen, &v)) {
        add_err(r->o, E_NOTINT);
        return;
    }
    if ((by < 0 && v < LLONG_MIN - by) || (by > 0 && v > LLONG_MAX - by)) {
        add_err(r->o, "increment or decrement would overflow");
        return;
    }
    v += by;
    char buf[24];
    size_t n = fmt_ll(buf, v);
    if (!db_set(A(1), L(1), buf, n)) {     /* keeps the key's expiry, as redis does */
        r->o->oom = 1;
        return;
    }
    add_int(r->o, v);
}

static void c_incr(struct req *r) { incr_by(r, 1); }
static void c_decr(struct req *r) { incr_by(r, -1); }

static void c_incrby(struct req *r)
{
    long long by;
    if (!arg_ll(r, 2, &by))
        add_err(r->o, E_NOTINT);
    else
        incr_by(r, by);
}

static void c_decrby(struct req *r)
{
    long long by;
    if (!arg_ll(r, 2, &by))
        add_err(r->o, E_NOTINT);
    else if (by == LLONG_MIN)
        add_err(r->o, "decrement would overflow");
    else
        incr_by(r, -by);
}

static void c_mget(struct req *r)
{
    add_arr(r->o, r->argc - 1);
    for (int i = 1; i < r->argc; i++) {
        struct ent *e = db_get(A(i), L(i));
        if (e)
            add_bulk(r->o, e->kv + e->klen, e->vlen);
        else
            add_nil(r->o);
    }
}

static void c_mset(struct req *r)
{
    if (r->argc % 2 == 0) {
        add_err(r->o, "wrong number of arguments for 'mset' command");
        return;
    }
    for (int i = 1; i < r->argc; i += 2) {
        struct ent *e = db_set(A(i), L(i), A(i + 1), L(i + 1));
        if (!e) {
            r->o->oom = 1;
            return;
        }
        set_exp(e, -1);
    }
    add_ok(r->o);
}

/* EXPIRE / PEXPIRE key time [NX | XX | GT | LT] */
static void expire_cmd(struct req *r, long long unit, const char *cmd)
{
    int nx = 0, xx = 0, gt = 0, lt = 0;
    for (int i = 3; i < r->argc; i++) {
        if (is(r, i, "nx"))
            nx = 1;
        else if (is(r, i, "xx"))
            xx = 1;
        else if (is(r, i, "gt"))
            gt = 1;
        else if (is(r, i, "lt"))
            lt = 1;
        else {
            add_err(r->o, "Unsupported option %.*s", (int)(L(i) > 128 ? 128 : L(i)), A(i));
            return;
        }
    }
    if (nx && (xx || gt || lt)) {
        add_err(r->o, "NX and XX, GT or LT options at the same time are not compatible");
        return;
    }
    if (gt && lt) {
        add_err(r->o, "GT and LT options at the same time are not compatible");
        return;
    }
    long long v;
    if (!arg_ll(r, 2, &v)) {
        add_err(r->o, E_NOTINT);
        return;
    }
    int64_t now = weft_now();
    if (v > LLONG_MAX / unit || v < LLONG_MIN / unit || (v *= unit, v > 0 && v > INT64_MAX - now)) {
        add_err(r->o, "invalid expire time in '%s' command", cmd);
        return;
    }
    struct ent *e = db_get(A(1), L(1));
    int64_t exp = now + v;
    if (!e || (nx && e->exp >= 0) || (xx && e->exp < 0) || (gt && (e->exp < 0 || exp <= e->exp)) ||
        (lt && e->exp >= 0 && exp >= e->exp)) {
        add_int(r->o, 0);
        return;
    }
    if (v <= 0)
        db_del(A(1), L(1));     /* a time already past deletes the key */
    else if (set_exp(e, exp) != 0) {
        r->o->oom = 1;
        return;
    }
    add_int(r->o, 1);
}

static void c_expire(struct req *r) { expire_cmd(r, 1000, "expire"); }
static void c_pexpire(struct req *r) { expire_cmd(r, 1, "pexpire"); }

static void ttl_cmd(struct req *r, int ms)
{
    struct ent *e = db_get(A(1), L(1));
    if (!e)
        add_int(r->o, -2);
    else if (e->exp < 0)
        add_int(r->o, -1);
    else {
        long long t = e->exp - weft_now();
        t = t < 0 ? 0 : t;
        add_int(r->o, ms ? t : (t + 500) / 1000);
    }
}

static void c_ttl(struct req *r) { ttl_cmd(r, 0); }
static void c_pttl(struct req *r) { ttl_cmd(r, 1); }

static void c_persist(struct req *r)
{
    struct ent *e = db_get(A(1), L(1));
    int had = e && e->exp >= 0;
    if (had)
        xs_del(e);
    add_int(r->o, had);
}

/* Glob matching as redis's KEYS: * ? [abc] [^a-z] and \x. Iterative (backtracking to the last
 * star only), so no pattern can exhaust the stack. */
static int class_match(const char **pp, const char *pe, char c)
{
    const char *p = *pp + 1;
    int neg = p < pe && *p == '^', hit = 0;
    p += neg;
    while (p < pe && *p != ']') {
        if (*p == '\\' && p + 1 < pe) {
            hit |= p[1] == c;
            p += 2;
        } else if (p + 2 < pe && p[1] == '-' && p[2] != ']') {
            char a = p[0], b = p[2];
            if (a > b) {
                char t = a;
                a = b;
                b = t;
            }
            hit |= c >= a && c <= b;
            p += 3;
        } else {
            hit |= *p == c;
            p++;
        }
    }
    *pp = p < pe ? p + 1 : pe;      /* past the ']' (an unclosed class runs to the end) */
    return neg ? !hit : hit;
}

static int glob(const char *pat, size_t pn, const char *s, size_t sn)
{
    const char *p = pat, *pe = pat + pn, *e = s + sn, *star = NULL, *mark = NULL;
    while (s < e) {
        if (p < pe && *p == '*') {
            while (p < pe && *p == '*')
                p++;
            if (p == pe)
                return 1;
            star = p;
            mark = s;
            continue;
        }
        if (p < pe) {
            const char *q = p;
            int ok;
            if (*q == '?') {
                ok = 1;
                q++;
            } else if (*q == '[') {
                ok = class_match(&q, pe, *s);
            } else if (*q == '\\' && q + 1 < pe) {
                ok = q[1] == *s;
                q += 2;
            } else {
                ok = *q == *s;
                q++;
            }
            if (ok) {
                p = q;
                s++;
                continue;
            }
        }
        if (!star)
            return 0;
        p = star;
        s = ++mark;
    }
    while (p < pe && *p == '*')
        p++;
    return p == pe;
}

static void c_keys(struct req *r)
{
    size_t at = r->o->len;
    add_arr(r->o, 0);       /* a placeholder: rewritten below with the count */
    size_t hdr = r->o->len - at;
    long long n = 0;
    int all = L(1) == 1 && A(1)[0] == '*';
    for (size_t i = 0; i <= db.mask; i++) {
        struct ent **pp = &db.b[i];
        int64_t now = weft_now();
        while (*pp) {
            struct ent *e = *pp;
            if (e->exp >= 0 && e->exp <= now) {
                ent_unlink(pp);
                continue;
            }
            if (all || glob(A(1), L(1), e->kv, e->klen)) {
                add_bulk(r->o, e->kv, e->klen);
                n++;
            }
            pp = &e->next;
        }
    }
    if (r->o->oom)
        return;
    char h[24];
    h[0] = '*';
    size_t k = 1 + fmt_ll(h + 1, n);
    h[k++] = '\r';
    h[k++] = '\n';
    if (!out_room(r->o, k))
        return;
    memmove(r->o->p + at + k, r->o->p + at + hdr, r->o->len - at - hdr);
    memcpy(r->o->p + at, h, k);
    r->o->len += k - hdr;
}

static uint64_t rev(uint64_t v)
{
    v = ((v >> 1) & 0x5555555555555555ULL) | ((v & 0x5555555555555555ULL) << 1);
    v = ((v >> 2) & 0x3333333333333333ULL) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v >> 4) & 0x0f0f0f0f0f0f0f0fULL) | ((v & 0x0f0f0f0f0f0f0f0fULL) << 4);
    return __builtin_bswap64(v);
}

/* SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]: the cursor walks the buckets in reversed-bit
 * order, so a key present for a whole scan is returned at least once even if the table grows
 * in between (redis's guarantee and method). */
static void c_scan(struct req *r)
{
    long long cnt = 10;
    const char *pat = NULL, *type = NULL;
    size_t pn = 0;
    unsigned long long cur = 0;
    for (size_t i = 0; i < L(1); i++) {
        unsigned d = (unsigned)(A(1)[i] - '0');
        if (d > 9 || cur > (~0ULL - d) / 10 || L(1) > 20) {
            add_err(r->o, "invalid cursor");
            return;
        }
        cur = cur * 10 + d;
    }
    if (L(1) == 0) {
        add_err(r->o, "invalid cursor");
        return;
    }
    for (int i = 2; i < r->argc; i += 2) {
        if (i + 1 >= r->argc) {
            add_err(r->o, E_SYNTAX);
            return;
        }
        if (is(r, i, "count")) {
            if (!arg_ll(r, i + 1, &cnt)) {
                add_err(r->o, E_NOTINT);
                return;
            }
            if (cnt < 1) {
                add_err(r->o, E_SYNTAX);
                return;
            }
        } else if (is(r, i, "match")) {
            pat = A(i + 1);
            pn = L(i + 1);
        } else if (is(r, i, "type")) {
            type = A(i + 1);
            if (!is(r, i + 1, "string"))
                type = "";
        } else {
            add_err(r->o, E_SYNTAX);
            return;
        }
    }
    /* collect first (the cursor leads the reply) */
    size_t nk = 0, ck = 16;
    struct ent **keys = malloc(ck * sizeof *keys);
    if (!keys) {
        r->o->oom = 1;
        return;
    }
    uint64_t m = db.mask, v = cur;
    long long visited = 0;
    int64_t now = weft_now();
    do {
        for (struct ent **pp = &db.b[v & m]; *pp;) {
            struct ent *e = *pp;
            if (e->exp >= 0 && e->exp <= now) {
                ent_unlink(pp);
                continue;
            }
            visited++;
            if ((!pat || glob(pat, pn, e->kv, e->klen)) && (!type || *type)) {
                if (nk == ck) {
                    struct ent **k2 = realloc(keys, ck * 2 * sizeof *keys);
                    if (!k2) {
                        free(keys);
                        r->o->oom = 1;
                        return;
                    }
                    keys = k2;
                    ck *= 2;
                }
                keys[nk++] = e;
            }
            pp = &e->next;
        }
        v |= ~m;
        v = rev(v);
        v++;
        v = rev(v);
    } while (v && visited < cnt);
    add_arr(r->o, 2);
    char num[24];
    add_bulk(r->o, num, fmt_ll(num, (long long)v));
    add_arr(r->o, (long long)nk);
    for (size_t i = 0; i < nk; i++)
        add_bulk(r->o, keys[i]->kv, keys[i]->klen);
    free(keys);
}

static void c_dbsize(struct req *r) { add_int(r->o, (long long)db.n); }

static void c_flushall(struct req *r)
{
    if (r->argc > 2 || (r->argc == 2 && !is(r, 1, "async") && !is(r, 1, "sync"))) {
        add_err(r->o, E_SYNTAX);
        return;
    }
    db_flush();
    add_ok(r->o);
}

static void c_select(struct req *r)
{
    long long v;
    if (!arg_ll(r, 1, &v))
        add_err(r->o, E_NOTINT);
    else if (v != 0)
        add_err(r->o, "DB index is out of range");
    else
        add_ok(r->o);
}

static void c_quit(struct req *r)
{
    add_ok(r->o);
    r->quit = 1;
}

static void c_config(struct req *r);
static void c_command(struct req *r);

struct cmd {
    const char *name;
    size_t len;
    int arity;      /* redis's convention: n exactly, -n at least n (the name counts) */
    void (*fn)(struct req *);
};

static const struct cmd cmds[] = {
    { "get", 3, 2, c_get },          { "set", 3, -3, c_set },          { "ping", 4, -1, c_ping },
    { "echo", 4, 2, c_echo },        { "del", 3, -2, c_del },          { "exists", 6, -2, c_exists },
    { "incr", 4, 2, c_incr },        { "decr", 4, 2, c_decr },         { "incrby", 6, 3, c_incrby },
    { "decrby", 6, 3, c_decrby },    { "mget", 4, -2, c_mget },        { "mset", 4, -3, c_mset },
    { "expire", 6, -3, c_expire },   { "pexpire", 7, -3, c_pexpire },  { "ttl", 3, 2, c_ttl },
    { "pttl", 4, 2, c_pttl },        { "persist", 7, 2, c_persist },   { "keys", 4, 2, c_keys },
    { "scan", 4, -2, c_scan },       { "dbsize", 6, 1, c_dbsize },     { "flushall", 8, -1, c_flushall },
    { "flushdb", 7, -1, c_flushall }, { "select", 6, 2, c_select },    { "quit", 4, -1, c_quit },
    { "command", 7, -1, c_command }, { "config", 6, -2, c_config },
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void c_command(struct req *r)
{
    if (r->argc == 1) {         /* name, arity, flags, first key, last key, step */
        add_arr(r->o, (long long)NCMDS);
        for (size_t i = 0; i < NCMDS; i++) {
            add_arr(r->o, 6);
            add_bulk(r->o, cmds[i].name, strlen(cmds[i].name));
            add_int(r->o, cmds[i].arity);
            add_arr(r->o, 0);
            int keys = cmds[i].fn == c_get || cmds[i].fn == c_set || cmds[i].arity == -2 ||
                       cmds[i].fn == c_ttl || cmds[i].fn == c_pttl || cmds[i].fn == c_expire ||
                       cmds[i].fn == c_pexpire || cmds[i].fn == c_incr || cmds[i].fn == c_decr ||
                       cmds[i].fn == c_incrby || cmds[i].fn == c_decrby || cmds[i].fn == c_persist;
            keys = keys && cmds[i].fn != c_scan && cmds[i].fn != c_config;
            add_int(r->o, keys);
            add_int(r->o, !keys ? 0 : cmds[i].arity == -2 ? -1 : 1);
            add_int(r->o, !keys ? 0 : cmds[i].fn == c_mset ? 2 : 1);
        }
    } else if (is(r, 1, "count") && r->argc == 2) {
        add_int(r->o, (long long)NCMDS);
    } else if (is(r, 1, "docs")) {
        add_arr(r->o, 0);
    } else {
        add_err(r->o, "unknown subcommand '%.128s'. Try COMMAND HELP.", A(1));
    }
}

/* CONFIG GET, for redis-benchmark's start-up probe: no persistence, nothing else to tell. */
static void c_config(struct req *r)
{
    if (!is(r, 1, "get")) {
        add_err(r->o, "unknown subcommand '%.128s'. Try CONFIG HELP.", A(1));
        return;
    }
    if (r->argc < 3) {
        add_err(r->o, "wrong number of arguments for 'config|get' command");
        return;
    }
    static const char *const kv[][2] = { { "save", "" }, { "appendonly", "no" } };
    int n = 0;
    for (size_t k = 0; k < 2; k++)
        for (int i = 2; i < r->argc; i++)
            if (glob(A(i), L(i), kv[k][0], strlen(kv[k][0]))) {
                n++;
                break;
            }
    add_arr(r->o, 2 * n);
    for (size_t k = 0; k < 2; k++)
        for (int i = 2; i < r->argc; i++)
            if (glob(A(i), L(i), kv[k][0], strlen(kv[k][0]))) {
                add_bulk(r->o, kv[k][0], strlen(kv[k][0]));
                add_bulk(r->o, kv[k][1], strlen(kv[k][1]));
                break;
            }
}

static void dispatch(struct req *r)
{
    char name[16];
    size_t n = L(0);
    const struct cmd *c = NULL;
    if (n < sizeof name) {
        for (size_t i = 0; i < n; i++) {
            char ch = A(0)[i];
            name[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
        }
        for (size_t i = 0; i < NCMDS; i++)
            if (cmds[i].len == n && memcmp(cmds[i].name, name, n) == 0) {
                c = &cmds[i];
                break;
            }
    }
    if (!c) {
        char args[160];
        size_t al = 0;
        args[0] = 0;
        for (int i = 1; i < r->argc && al < 128; i++) {
            int w = snprintf(args + al, sizeof args - al, "'%.*s' ",
                             (int)(L(i) < 128 - al ? L(i) : 128 - al), A(i));
            if (w < 0)
                break;
            al += (size_t)w < sizeof args - al ? (size_t)w : sizeof args - al - 1;
        }
        add_err(r->o, "unknown command '%.*s', with args beginning with: %s",
                (int)(n > 128 ? 128 : n), A(0), args);
        return;
    }
    if ((c->arity > 0 && r->argc != c->arity) || r->argc < -c->arity) {
        add_err(r->o, "wrong number of arguments for '%s' command", c->name);
        return;
    }
    c->fn(r);
}

/* ---- connections --------------------------------------------------------------------------- */

static int flush(int fd, struct out *o)
{
    int ok = o->len == 0 || weft_write_full(fd, o->p, o->len) == (ssize_t)o->len;
    o->len = 0;
    if (o->p != o->small) {     /* a big reply's buffer goes once sent */
        free(o->p);
        o->p = o->small;
        o->cap = OUT_SMALL;
    }
    return ok;
}

static void *serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char small[IN_SMALL], osmall[OUT_SMALL], *in = small;
    size_t cap = sizeof small, len = 0;     /* in[0..len): bytes not yet answered */
    struct out o = { .p = osmall, .small = osmall, .cap = sizeof osmall };
    struct resp_parser p;
    resp_init(&p);
    p.max_bulk = max_bulk;
    p.max_args = max_args;
    int quit = 0;
    while (!quit) {
        ssize_t n = weft_read(fd, in + len, cap - len);
        if (n <= 0)
            break;          /* closed, reset, or a read error: nothing to answer to */
        len += (size_t)n;
        size_t off = 0;
        int rc = RESP_MORE;
        while (!quit && (rc = resp_parse(&p, in + off, len - off)) == RESP_CMD) {
            if (p.argc > 0) {
                char *argv[RESP_INLINE_ARGS], **av = argv;
                if (p.argc > RESP_INLINE_ARGS && !(av = malloc((size_t)p.argc * sizeof *av))) {
                    o.oom = 1;
                    break;
                }
                for (int i = 0; i < p.argc; i++)
                    av[i] = in + off + p.off[i];
                struct req r = { .argc = p.argc, .argv = av, .len = p.len, .o = &o };
                dispatch(&r);
                quit = r.quit;
                if (av != argv)
                    free(av);
            }
            off += p.used;
            if (o.oom)
                break;
            if (o.len >= OUT_FLUSH && !flush(fd, &o))
                goto out;
        }
        if (o.oom) {        /* out of memory: say so, as redis does, and drop the client */
            o.len = 0;
            o.oom = 0;
            ADDLIT(&o, "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
            quit = 1;
        } else if (!quit && rc == RESP_ERROR) {
            add_err(&o, "%s", p.err);
            quit = 1;
        }
        if (!flush(fd, &o) || quit)
            break;
        memmove(in, in + off, len - off);
        len -= off;
        if (len == cap) {   /* a long request: grow with what arrives, up to the limit */
            if ((long long)cap * 2 > MAX_REQUEST)
                break;
            char *big = in == small ? malloc(cap * 2) : realloc(in, cap * 2);
            if (!big)
                break;
            if (in == small)
                memcpy(big, small, len);
            in = big;
            cap *= 2;
        } else if (len == 0 && in != small) {
            free(in);
            in = small;
            cap = sizeof small;
        }
    }
out:
    if (quit) {     /* FIN after the last reply, then drain (for a second at most), so that
                     * closing with unread input does not reset the connection under it */
        shutdown(fd, SHUT_WR);
        weft_fd_set_deadline(fd, WEFT_READ, weft_now() + 1000);
        while (weft_read(fd, in, cap) > 0)
            ;
    }
    weft_close(fd);
    if (in != small)
        free(in);
    if (o.p != o.small)
        free(o.p);
    resp_free(&p);
    return NULL;
}

static void *accept_loop(void *arg)
{
    int lfd = *(int *)arg;
    if (db_init() != 0) {
        fprintf(stderr, "kv: out of memory\n");
        exit(1);
    }
    weft_attr sys = { .stack_size = 64 * 1024, .detached = 1, .name = "expire" };
    if (!weft_spawn(&sys, expire_loop, NULL)) {
        perror("kv: spawn");
        exit(1);
    }
    weft_attr conn = { .stack_size = 64 * 1024, .detached = 1, .name = "conn" };
    for (;;) {
        int fd = weft_accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                weft_sleep(50);     /* out of fds or memory: let connections finish first */
            } else if (errno != ECONNABORTED && errno != EINTR && errno != EPROTO) {
                perror("kv: accept");
                exit(1);
            }
            continue;
        }
        if (!weft_spawn(&conn, serve, (void *)(intptr_t)fd)) {
            weft_close(fd);         /* no memory for a task: drop this one */
            weft_sleep(50);
        }
    }
    return NULL;
}

static int threads = 1, *lfd;
static pthread_barrier_t listening;

/* Thread i > 0: its own listener on thread 0's port (made here: weft keeps a thread's fds in
 * that thread's table), then its loop. */
static int listen_on(int i)
{
    lfd[i] = weft_tcp_listen(host, i ? weft_local_port(lfd[0]) : port, 4096,
                             WEFT_NODELAY | (threads > 1 ? WEFT_REUSEPORT : 0));
    if (lfd[i] < 0) {
        fprintf(stderr, "kv: listen on %s:%d: %s\n", host, port, strerror(errno));
        return -1;
    }
    return 0;
}

static void *thread_main(void *arg)
{
    int i = (int)(intptr_t)arg;
    if (i > 0) {
        if (listen_on(i) != 0)
            exit(1);
        pthread_barrier_wait(&listening);
    }
    if (weft_main(accept_loop, &lfd[i]) != 0) {
        perror("kv: weft_main");
        exit(1);
    }
    return NULL;
}

static long long size_arg(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    return *end || v < 1 ? -1 : v;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc && (threads = atoi(argv[++i])) >= 1 &&
                   threads <= 1024) {
        } else if (strcmp(argv[i], "--max-bulk") == 0 && i + 1 < argc && (max_bulk = size_arg(argv[++i])) > 0 &&
                   max_bulk <= MAX_REQUEST / 2) {
        } else if (strcmp(argv[i], "--max-args") == 0 && i + 1 < argc && (max_args = size_arg(argv[++i])) > 0 &&
                   max_args <= INT_MAX / 2) {
        } else {
            fprintf(stderr, "usage: %s [--host ADDR] [--port PORT] [--threads N] [--max-bulk BYTES] "
                            "[--max-args N]\n", argv[0]);
            return 2;
        }
    }
    if (getrandom(&hash_seed, sizeof hash_seed, 0) != sizeof hash_seed)
        hash_seed = (uint64_t)weft_now() * 0x9e3779b97f4a7c15ULL;
    lfd = calloc((size_t)threads, sizeof *lfd);
    if (!lfd || pthread_barrier_init(&listening, NULL, (unsigned)threads) != 0) {
        perror("kv");
        return 1;
    }
    if (listen_on(0) != 0)
        return 1;
    for (int i = 1; i < threads; i++) {
        pthread_t t;
        int e = pthread_create(&t, NULL, thread_main, (void *)(intptr_t)i);
        if (e) {
            fprintf(stderr, "kv: pthread_create: %s\n", strerror(e));
            return 1;
        }
    }
    pthread_barrier_wait(&listening);
    const char *br = strchr(host, ':') ? "[" : "";
    printf("kv listening on %s%s%s:%d\n", br, host, *br ? "]" : "", weft_local_port(lfd[0]));
    fflush(stdout);
    thread_main((void *)0);
    return 0;
}

/* kv: a key-value server speaking the Redis protocol (RESP2), enough of it for redis-cli and
 * redis-benchmark: strings with expiry, one task per connection written as plain blocking
 * code, a hash table shared by the tasks of the thread (no locks: tasks switch only where they
 * wait, so each command runs whole). Requests are parsed by examples/resp.h; every complete
 * request in the buffer is answered, and the replies leave in one write once the input is
 * drained. Expired keys go lazily (when touched) and actively (a task samples keys with a
 * deadline ten times a second, as redis does).
 *
 * --threads N runs N loops, each on its own thread with its own listener on the same port
 * (SO_REUSEPORT), and they are one database: each key has an owner thread (the Redis Cluster
 * key slot, CRC16 of the key or of its {hash tag} mod 16384, mod N), only the owner's table
 * holds it, and a connection on any thread sees every key. Commands on keys of the
 * connection's own thread run at once, as with one thread; the others are forwarded to their
 * owner in one batch per owner and read (over shared channels, see "shards" below) and the
 * replies merged back in request order. Multi-key commands split by owner; KEYS, SCAN, DBSIZE
 * and FLUSHALL cover every shard. SIGINT or SIGTERM stops it (examples/shutdown.h). */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
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
#include "shutdown.h"

#define IN_SMALL (16 * 1024)
#define OUT_SMALL (16 * 1024)
#define OUT_FLUSH (64 * 1024)           /* write out replies mid-batch beyond this */
#define MAX_REQUEST (64LL * 1024 * 1024) /* a request longer than this closes the connection */

static const char *host = "127.0.0.1";
static int port = 6379;
static long long max_bulk = 16 * 1024 * 1024, max_args = 1024 * 1024;
static uint64_t hash_seed;
static int threads = 1;                 /* --threads: the shards, one per thread */
static _Thread_local int me;            /* this thread's shard, 0..threads-1 */

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
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap - o->len < n)
            cap *= 2;
        int small = o->small && o->p == o->small;     /* small NULL: a heap buffer from the start */
        char *p = small ? malloc(cap) : realloc(o->p, cap);
        if (!p) {
            o->oom = 1;
            return NULL;
        }
        if (small)
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

/* Rewrite the placeholder array header of hdr bytes at o->p + at with the count n. */
static void arr_fix(struct out *o, size_t at, size_t hdr, long long n)
{
    if (o->oom)
        return;
    char h[24];
    h[0] = '*';
    size_t k = 1 + fmt_ll(h + 1, n);
    h[k++] = '\r';
    h[k++] = '\n';
    if (!out_room(o, k))
        return;
    memmove(o->p + at + k, o->p + at + hdr, o->len - at - hdr);
    memcpy(o->p + at, h, k);
    o->len += k - hdr;
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
    arr_fix(r->o, at, hdr, n);
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
    uint64_t m = db.mask, v = cur / (unsigned)threads;   /* the cursor: inner * threads + shard */
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
    v = v ? v * (unsigned)threads + (unsigned)me : me + 1 < threads ? (uint64_t)me + 1 : 0;
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

/* How a command meets the shards (--threads N; see "sharding" below). */
enum route {
    R_NONE,     /* no key: runs where it is asked */
    R_KEY,      /* one key, A(1): runs on its owner */
    R_MGET,     /* each key on its owner, the values gathered in order */
    R_SUM,      /* DEL, EXISTS: the keys split by owner, the counts added */
    R_MSET,     /* the pairs split by owner, one OK */
    R_ALLSUM,   /* DBSIZE: every shard, the counts added */
    R_ALLOK,    /* FLUSHALL, FLUSHDB: every shard, one OK */
    R_ALLCAT,   /* KEYS: every shard, the arrays joined */
    R_SCAN,     /* the shard the cursor names */
};

struct cmd {
    const char *name;
    size_t len;
    int arity;      /* redis's convention: n exactly, -n at least n (the name counts) */
    void (*fn)(struct req *);
    enum route route;
};

static const struct cmd cmds[] = {      /* get first: MGET forwards its keys as GETs, cmds[0] */
    { "get", 3, 2, c_get, R_KEY },          { "set", 3, -3, c_set, R_KEY },
    { "ping", 4, -1, c_ping, R_NONE },      { "echo", 4, 2, c_echo, R_NONE },
    { "del", 3, -2, c_del, R_SUM },         { "exists", 6, -2, c_exists, R_SUM },
    { "incr", 4, 2, c_incr, R_KEY },        { "decr", 4, 2, c_decr, R_KEY },
    { "incrby", 6, 3, c_incrby, R_KEY },    { "decrby", 6, 3, c_decrby, R_KEY },
    { "mget", 4, -2, c_mget, R_MGET },      { "mset", 4, -3, c_mset, R_MSET },
    { "expire", 6, -3, c_expire, R_KEY },   { "pexpire", 7, -3, c_pexpire, R_KEY },
    { "ttl", 3, 2, c_ttl, R_KEY },          { "pttl", 4, 2, c_pttl, R_KEY },
    { "persist", 7, 2, c_persist, R_KEY },  { "keys", 4, 2, c_keys, R_ALLCAT },
    { "scan", 4, -2, c_scan, R_SCAN },      { "dbsize", 6, 1, c_dbsize, R_ALLSUM },
    { "flushall", 8, -1, c_flushall, R_ALLOK }, { "flushdb", 7, -1, c_flushall, R_ALLOK },
    { "select", 6, 2, c_select, R_NONE },   { "quit", 4, -1, c_quit, R_NONE },
    { "command", 7, -1, c_command, R_NONE }, { "config", 6, -2, c_config, R_NONE },
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

/* The command r names, or NULL after an error reply (unknown, or the wrong arity). */
static inline __attribute__((always_inline)) const struct cmd *lookup(struct req *r)
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
        return NULL;
    }
    if ((c->arity > 0 && r->argc != c->arity) || r->argc < -c->arity) {
        add_err(r->o, "wrong number of arguments for '%s' command", c->name);
        return NULL;
    }
    return c;
}

static void dispatch(struct req *r)
{
    const struct cmd *c = lookup(r);
    if (c)
        c->fn(r);
}

/* ---- shards (--threads N) ------------------------------------------------------------------ *
 *
 * Every key has one owner thread, and only the owner's table holds it: owner = slot % N, with
 * slot the Redis Cluster key slot (CRC16-XMODEM of the key's bytes, or of its hash tag, the
 * bytes between the first '{' and the next '}' when there are any, mod 16384). A connection
 * runs a command whose keys its own thread owns at once, as with one thread. Any other it
 * forwards: while it answers one read's worth of pipelined requests it appends each forwarded
 * command (a copy of its arguments) to the batch of the owner, and a list of slots says where
 * each reply goes among the local ones. Once the requests in hand are done (or the replies
 * pass OUT_FLUSH) it sends each owner's batch, all at once, over that owner's inbox (a shared
 * channel), and waits on its own "replies" shared channel for them; the owner's shard task runs
 * each command whole and appends its reply to the batch. Then the replies are merged in
 * request order. The buffers are the connection's, made on its first forward and reused, so a
 * forward allocates nothing once warm. They are reference-counted (the connection and each
 * batch in flight), so a connection that goes away mid-batch leaves the owner to finish it and
 * the last one out frees them. */

struct fconn;

struct batch {              /* one connection's commands for one owner, and their replies */
    struct fconn *fc;
    char *req;              /* per command: u16 command index, u32 argc, (u32 length, bytes)* */
    size_t rlen, rcap;
    struct out rep;         /* per reply: u32 length, the reply */
    size_t rpos;            /* where the merge reads rep */
    int n;                  /* commands in req */
};

enum { S_LOCAL, S_PART, S_SUM, S_OK, S_CAT };

struct slot {
    int kind;
    int owner;              /* S_PART: whose batch holds the reply */
    size_t n;               /* S_LOCAL: bytes of the connection's own replies; else parts */
};

struct fconn {
    _Atomic int refs;
    weft_chan *done;        /* "replies": one byte per batch done; room for one per shard */
    struct slot *s;
    size_t ns, cs;
    size_t mark;            /* the connection's reply bytes before this are in slots */
    size_t bytes;           /* forwarded request bytes not yet sent */
    struct out m;           /* the merge's buffer */
    struct batch b[];       /* one per shard */
};

static weft_chan **inbox;   /* thread i's shard task receives batches (struct batch *) here */
static uint16_t crc_tab[256];

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        unsigned c = i << 8;
        for (int k = 0; k < 8; k++)
            c = (c & 0x8000) ? (c << 1) ^ 0x1021 : c << 1;
        crc_tab[i] = (uint16_t)c;
    }
}

static int owner(const char *k, size_t n)
{
    const char *l = memchr(k, '{', n);
    if (l) {
        const char *r = memchr(l + 1, '}', n - (size_t)(l + 1 - k));
        if (r && r > l + 1) {
            k = l + 1;
            n = (size_t)(r - k);
        }
    }
    unsigned crc = 0;
    for (size_t i = 0; i < n; i++)
        crc = ((crc << 8) ^ crc_tab[((crc >> 8) ^ (unsigned char)k[i]) & 0xff]) & 0xffff;
    return (int)((crc & 16383) % (unsigned)threads);
}

static void out_drop(struct out *o)
{
    free(o->p);
    *o = (struct out){ 0 };
}

static struct fconn *fconn_new(void)
{
    struct fconn *fc = calloc(1, sizeof *fc + (size_t)threads * sizeof fc->b[0]);
    if (!fc)
        return NULL;
    if (!(fc->done = weft_chan_make_shared(1, (size_t)threads)) || weft_chan_set_name(fc->done, "replies")) {
        if (fc->done)
            weft_chan_free(fc->done);
        free(fc);
        return NULL;
    }
    atomic_init(&fc->refs, 1);
    for (int i = 0; i < threads; i++)
        fc->b[i].fc = fc;
    return fc;
}

/* Drop a reference; the last one frees (on whichever thread drops it). */
static void fconn_unref(struct fconn *fc)
{
    if (atomic_fetch_sub_explicit(&fc->refs, 1, memory_order_acq_rel) != 1)
        return;
    weft_chan_free(fc->done);
    for (int i = 0; i < threads; i++) {
        free(fc->b[i].req);
        out_drop(&fc->b[i].rep);
    }
    out_drop(&fc->m);
    free(fc->s);
    free(fc);
}

static int slot_add(struct fconn *fc, int kind, int own, size_t n)
{
    if (fc->ns == fc->cs) {
        size_t cs = fc->cs ? fc->cs * 2 : 64;
        struct slot *s = realloc(fc->s, cs * sizeof *s);
        if (!s)
            return -1;
        fc->s = s;
        fc->cs = cs;
    }
    fc->s[fc->ns++] = (struct slot){ kind, own, n };
    return 0;
}

/* The connection's replies since the last slot become a slot of their own. */
static int close_local(struct fconn *fc, struct out *o)
{
    if (o->len == fc->mark)
        return 0;
    size_t n = o->len - fc->mark;
    fc->mark = o->len;
    return slot_add(fc, S_LOCAL, 0, n);
}

static size_t rep_begin(struct out *o)
{
    uint32_t z = 0;
    size_t at = o->len;
    add(o, &z, sizeof z);
    return at;
}

static void rep_end(struct out *o, size_t at)
{
    if (o->oom)
        return;
    uint32_t n = (uint32_t)(o->len - at - sizeof n);
    memcpy(o->p + at, &n, sizeof n);
}

static int req_put(struct batch *b, const void *p, size_t n)
{
    if (b->rcap - b->rlen < n) {
        size_t cap = b->rcap ? b->rcap : 4096;
        while (cap - b->rlen < n)
            cap *= 2;
        char *q = realloc(b->req, cap);
        if (!q)
            return -1;
        b->req = q;
        b->rcap = cap;
    }
    memcpy(b->req + b->rlen, p, n);
    b->rlen += n;
    return 0;
}

/* Command c with arguments av/lv, for shard k, its reply in slot order: run at once into this
 * thread's batch when k is this thread (a part of a command split over shards), else copied
 * into k's batch. Out of memory sets o->oom. */
static void part(struct fconn *fc, struct out *o, const struct cmd *c, int k, int argc, char **av,
                 size_t *lv)
{
    struct batch *b = &fc->b[k];
    if (close_local(fc, o) != 0 || slot_add(fc, S_PART, k, 0) != 0) {
        o->oom = 1;
        return;
    }
    if (k == me) {
        size_t at = rep_begin(&b->rep);
        struct req r = { .argc = argc, .argv = av, .len = lv, .o = &b->rep };
        c->fn(&r);
        rep_end(&b->rep, at);
        return;
    }
    uint16_t idx = (uint16_t)(c - cmds);
    uint32_t n = (uint32_t)argc;
    int bad = req_put(b, &idx, sizeof idx) || req_put(b, &n, sizeof n);
    for (int i = 0; i < argc && !bad; i++) {
        n = (uint32_t)lv[i];
        bad = req_put(b, &n, sizeof n) || req_put(b, av[i], lv[i]);
        fc->bytes += lv[i] + 8;
    }
    if (bad)
        o->oom = 1;
    b->n++;
}

/* Run a batch that came over this thread's inbox, each reply appended to b->rep. */
static void run_batch(struct batch *b)
{
    size_t pos = 0;
    while (pos < b->rlen && !b->rep.oom) {
        uint16_t idx;
        uint32_t argc, n;
        memcpy(&idx, b->req + pos, sizeof idx);
        memcpy(&argc, b->req + pos + sizeof idx, sizeof argc);
        pos += sizeof idx + sizeof argc;
        char *av0[RESP_INLINE_ARGS], **av = av0;
        size_t lv0[RESP_INLINE_ARGS], *lv = lv0;
        if (argc > RESP_INLINE_ARGS &&
            (!(av = malloc(argc * sizeof *av)) || !(lv = malloc(argc * sizeof *lv)))) {
            free(av == av0 ? NULL : av);
            b->rep.oom = 1;
            return;
        }
        for (uint32_t i = 0; i < argc; i++) {
            memcpy(&n, b->req + pos, sizeof n);
            av[i] = b->req + pos + sizeof n;
            lv[i] = n;
            pos += sizeof n + n;
        }
        size_t at = rep_begin(&b->rep);
        struct req r = { .argc = (int)argc, .argv = av, .len = lv, .o = &b->rep };
        cmds[idx].fn(&r);
        rep_end(&b->rep, at);
        if (av != av0) {
            free(av);
            free(lv);
        }
    }
}

/* The shard task of each thread (with --threads > 1): runs the batches other threads send.
 * Cancelled (a daemon, once the server has stopped: every connection has ended), it still
 * runs what is queued, so that no batch, and no connection's buffers, is left behind. */
static void *shard_loop(void *arg)
{
    (void)arg;
    int64_t deadline = -1;
    for (;;) {
        struct batch *b;
        if (weft_chan_recv(inbox[me], &b, deadline) != 0) {
            if (errno == ECANCELED) {
                deadline = 0;   /* drain what is there without waiting, then end */
                continue;
            }
            if (errno == ETIMEDOUT || errno == EPIPE)
                return NULL;
            continue;
        }
        run_batch(b);
        struct fconn *fc = b->fc;           /* b is the connection's again once done is sent */
        char x = 0;
        weft_chan_send(fc->done, &x, -1);   /* room for one per shard: never waits */
        fconn_unref(fc);
    }
    return NULL;
}

static void rep_next(struct batch *b, const char **p, size_t *n)
{
    uint32_t len;
    memcpy(&len, b->rep.p + b->rpos, sizeof len);
    *p = b->rep.p + b->rpos + sizeof len;
    *n = len;
    b->rpos += sizeof len + len;
}

/* Send the batches, wait for them, and leave the replies in o in request order. 0, or -1
 * when the wait failed (the connection must go; the owners finish without it). */
static int round_end(struct fconn *fc, struct out *o)
{
    if (!fc || fc->ns == 0)
        return 0;
    if (o->oom)
        goto reset;
    if (close_local(fc, o) != 0) {
        o->oom = 1;
        goto reset;
    }
    int sent = 0;
    for (int k = 0; k < threads; k++) {
        struct batch *b = &fc->b[k];
        if (k == me || b->n == 0)
            continue;
        b->rep.len = 0;
        b->rep.oom = 0;
        atomic_fetch_add_explicit(&fc->refs, 1, memory_order_relaxed);
        if (weft_chan_send(inbox[k], &b, -1) != 0) {
            fconn_unref(fc);
            return -1;
        }
        sent++;
    }
    for (; sent > 0; sent--)
        if (weft_chan_recv(fc->done, NULL, -1) != 0)
            return -1;
    for (int k = 0; k < threads; k++)
        o->oom |= fc->b[k].rep.oom;     /* a batch cut short: its replies cannot be merged */
    if (o->oom)
        goto reset;
    struct out *m = &fc->m;
    m->len = 0;
    size_t lpos = 0;
    for (size_t i = 0; i < fc->ns; i++) {
        struct slot *s = &fc->s[i];
        const char *p;
        size_t n;
        if (s->kind == S_LOCAL) {
            add(m, o->p + lpos, s->n);
            lpos += s->n;
        } else if (s->kind == S_PART) {
            rep_next(&fc->b[s->owner], &p, &n);
            add(m, p, n);
        } else {
            long long sum = 0, cnt;
            const char *err = NULL;
            size_t errn = 0, at = m->len, hdr = 0;
            if (s->kind == S_CAT) {
                add_arr(m, 0);
                hdr = m->len - at;
            }
            for (size_t j = 1; j <= s->n; j++) {
                rep_next(&fc->b[fc->s[i + j].owner], &p, &n);
                const char *nl = memchr(p, '\r', n);
                int num = nl && (p[0] == ':' || p[0] == '*') && resp_ll(p + 1, (size_t)(nl - p - 1), &cnt);
                if (s->kind == S_CAT && num && p[0] == '*') {
                    sum += cnt;
                    add(m, nl + 2, n - (size_t)(nl + 2 - p));
                } else if (s->kind == S_SUM && num && p[0] == ':') {
                    sum += cnt;
                } else if (!(s->kind == S_OK && n == 5 && memcmp(p, "+OK\r\n", 5) == 0) && !err) {
                    err = p;
                    errn = n;
                }
            }
            if (s->kind == S_CAT)
                arr_fix(m, at, hdr, sum);
            else if (err)
                add(m, err, errn);
            else if (s->kind == S_SUM)
                add_int(m, sum);
            else
                add_ok(m);
            i += s->n;
        }
    }
    o->len = 0;
    add(o, m->p, m->len);
    o->oom |= m->oom;
reset:
    fc->ns = fc->mark = fc->bytes = 0;
    for (int k = 0; k < threads; k++) {
        struct batch *b = &fc->b[k];
        b->n = 0;
        b->rlen = b->rpos = b->rep.len = 0;
        b->rep.oom = 0;
        if (b->rcap > 4 * OUT_FLUSH) {          /* a big request's buffers go once used */
            free(b->req);
            b->req = NULL;
            b->rcap = 0;
        }
        if (b->rep.cap > 4 * OUT_FLUSH)
            out_drop(&b->rep);
    }
    if (fc->m.cap > 4 * OUT_FLUSH)
        out_drop(&fc->m);
    fc->m.oom = 0;
    return 0;
}

/* SCAN's cursor is inner * threads + shard; its shard, or -1 for a bad cursor (the command
 * then runs here and says so). */
static int scan_owner(const struct req *r)
{
    unsigned long long cur = 0;
    if (L(1) == 0 || L(1) > 20)
        return -1;
    for (size_t i = 0; i < L(1); i++) {
        unsigned d = (unsigned)(A(1)[i] - '0');
        if (d > 9 || cur > (~0ULL - d) / 10)
            return -1;
        cur = cur * 10 + d;
    }
    return (int)(cur % (unsigned)threads);
}

/* Run r where its keys live (--threads > 1): at once when this thread owns them all, else
 * through *fcp (made on first use). */
static void route(struct req *r, struct fconn **fcp)
{
    const struct cmd *c = lookup(r);
    if (!c)
        return;
    int k = me, step = c->route == R_MSET ? 2 : 1, all = 1;
    int ow0[RESP_INLINE_ARGS], *ow = ow0;
    switch (c->route) {
    case R_NONE:
        break;
    case R_KEY:
        k = owner(A(1), L(1));
        break;
    case R_SCAN:
        k = scan_owner(r);
        k = k < 0 ? me : k;
        break;
    case R_MGET:
    case R_SUM:
    case R_MSET:
        if (c->route == R_MSET && r->argc % 2 == 0)
            break;      /* the wrong arity: c_mset says so */
        if (r->argc > RESP_INLINE_ARGS && !(ow = malloc((size_t)r->argc * sizeof *ow))) {
            r->o->oom = 1;
            return;
        }
        for (int i = 1; i < r->argc; i += step)
            all &= (ow[i] = owner(A(i), L(i))) == me;
        k = all ? me : -1;
        break;
    default:
        k = -1;     /* every shard */
    }
    if (k == me) {
        c->fn(r);
        goto done;
    }
    struct fconn *fc = *fcp ? *fcp : (*fcp = fconn_new());
    if (!fc) {
        r->o->oom = 1;
        goto done;
    }
    struct out *o = r->o;
    if (c->route == R_KEY || c->route == R_SCAN) {
        part(fc, o, c, k, r->argc, r->argv, r->len);
    } else if (c->route == R_MGET) {
        add_arr(o, r->argc - 1);
        for (int i = 1; i < r->argc; i++) {
            /* GET A(i): its arguments are argv[i - 1], argv[i]; c_get reads only A(1) */
            struct req g = { .argc = 2, .argv = r->argv + i - 1, .len = r->len + i - 1, .o = o };
            if (ow[i] == me)
                c_get(&g);
            else
                part(fc, o, &cmds[0], ow[i], 2, g.argv, g.len);
        }
    } else if (c->route == R_SUM || c->route == R_MSET) {
        /* one part per owner holding some of the keys, the keys in their order */
        char *av0[RESP_INLINE_ARGS], **av = av0;
        size_t lv0[RESP_INLINE_ARGS], *lv = lv0, nparts = 0;
        if (r->argc > RESP_INLINE_ARGS &&
            (!(av = malloc((size_t)r->argc * sizeof *av)) || !(lv = malloc((size_t)r->argc * sizeof *lv)))) {
            if (av != av0)
                free(av);
            o->oom = 1;
            goto done;
        }
        for (int s = 0; s < threads; s++)
            for (int i = 1; i < r->argc; i += step)
                if (ow[i] == s) {
                    nparts++;
                    break;
                }
        if (close_local(fc, o) != 0 || slot_add(fc, c->route == R_SUM ? S_SUM : S_OK, 0, nparts) != 0)
            o->oom = 1;
        for (int s = 0; s < threads && !o->oom; s++) {
            int n = 1;
            av[0] = A(0);
            lv[0] = L(0);
            for (int i = 1; i < r->argc; i += step)
                if (ow[i] == s)
                    for (int j = 0; j < step; j++) {
                        av[n] = A(i + j);
                        lv[n++] = L(i + j);
                    }
            if (n > 1)
                part(fc, o, c, s, n, av, lv);
        }
        if (av != av0) {
            free(av);
            free(lv);
        }
    } else {        /* every shard: DBSIZE, FLUSHALL, KEYS */
        int kind = c->route == R_ALLSUM ? S_SUM : c->route == R_ALLOK ? S_OK : S_CAT;
        if (close_local(fc, o) != 0 || slot_add(fc, kind, 0, (size_t)threads) != 0)
            o->oom = 1;
        for (int s = 0; s < threads && !o->oom; s++)
            part(fc, o, c, s, r->argc, r->argv, r->len);
    }
done:
    if (ow != ow0)
        free(ow);
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
    struct fconn *fc = NULL;    /* --threads > 1: for commands on keys of other threads */
    struct conn c;
    conn_enter(&c);
    while (!quit) {
        if (srv.idle_ms > 0)    /* --idle-timeout: the read, and the answer, under it */
            weft_set_task_deadline(conn_idle_deadline(weft_now()));
        conn_busy(&c, 0);       /* waiting for a request: stopping ends this read */
        ssize_t n = weft_read(fd, in + len, cap - len);
        if (n <= 0)
            break;          /* closed, reset, a read error, idle too long, or stopping */
        conn_busy(&c, 1);
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
                if (threads == 1)
                    dispatch(&r);
                else
                    route(&r, &fc);
                quit = r.quit;
                if (av != argv)
                    free(av);
            }
            off += p.used;
            if (o.oom)
                break;
            if ((o.len >= OUT_FLUSH || (fc && fc->bytes >= OUT_FLUSH)) &&
                ((fc && round_end(fc, &o) != 0) || !flush(fd, &o)))
                goto out;
        }
        if (fc && round_end(fc, &o) != 0)
            goto out;
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
    conn_leave(&c);
    weft_close(fd);
    if (fc)
        fconn_unref(fc);
    if (in != small)
        free(in);
    if (o.p != o.small)
        free(o.p);
    resp_free(&p);
    return NULL;
}

/* Each thread's loop, before it accepts: its table, its expiry task and (--threads > 1) its
 * shard task, both daemons: they run while the loop's connections do, and are cancelled once
 * only they are left (shutdown.h's server task ends last, after every thread's connections). */
static pthread_key_t db_key;

/* At the end of thread i > 0 (after its loop): free its table, which nothing else can reach. */
static void db_free(void *unused)
{
    (void)unused;
    db_flush();
    free(db.b);
    free(db.xs);
    db = (struct db){ 0 };
}

static void thread_start(int index)
{
    me = index;
    if (db_init() != 0 || pthread_setspecific(db_key, &db) != 0) {
        fprintf(stderr, "kv: out of memory\n");
        exit(1);
    }
    weft_attr ex = { .stack_size = 64 * 1024, .detached = 1, .daemon = 1, .name = "expire" };
    weft_attr sh = { .stack_size = 64 * 1024, .detached = 1, .daemon = 1, .name = "shard" };
    if (!weft_spawn(&ex, expire_loop, NULL) || (threads > 1 && !weft_spawn(&sh, shard_loop, NULL))) {
        perror("kv: spawn");
        exit(1);
    }
}

static long long size_arg(const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    return *end || v < 1 ? -1 : v;
}

int main(int argc, char **argv)
{
    srv_conf.idle_ms = 0;       /* as redis's timeout 0: a client may idle for ever */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else if (strcmp(argv[i], "--max-bulk") == 0 && i + 1 < argc && (max_bulk = size_arg(argv[++i])) > 0 &&
                   max_bulk <= MAX_REQUEST / 2) {
        } else if (strcmp(argv[i], "--max-args") == 0 && i + 1 < argc && (max_args = size_arg(argv[++i])) > 0 &&
                   max_args <= INT_MAX / 2) {
        } else if (!server_option(argc, argv, &i)) {
            fprintf(stderr, "usage: %s [--host ADDR] [--port PORT] [--threads N] [--max-bulk BYTES] "
                            "[--max-args N] [--grace MS] [--idle-timeout MS]\n", argv[0]);
            return 2;
        }
    }
    if (getrandom(&hash_seed, sizeof hash_seed, 0) != sizeof hash_seed)
        hash_seed = (uint64_t)weft_now() * 0x9e3779b97f4a7c15ULL;
    threads = srv_conf.nthreads;
    crc_init();
    if ((errno = pthread_key_create(&db_key, db_free)) != 0) {
        perror("kv");
        return 1;
    }
    inbox = calloc((size_t)threads, sizeof *inbox);
    for (int i = 0; inbox && i < threads && threads > 1; i++)
        if (!(inbox[i] = weft_chan_make_shared(sizeof(struct batch *), 1024)) ||
            weft_chan_set_name(inbox[i], "inbox") != 0)
            inbox = NULL;
    if (!inbox) {
        perror("kv");
        return 1;
    }
    int lfd = server_listen(host, port, 4096, WEFT_NODELAY);
    if (lfd < 0) {
        fprintf(stderr, "kv: listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    const char *br = strchr(host, ':') ? "[" : "";
    printf("kv listening on %s%s%s:%d\n", br, host, *br ? "]" : "", weft_local_port(lfd));
    fflush(stdout);
    srv_conf.thread_start = thread_start;
    weft_attr conn = { .stack_size = 64 * 1024, .name = "conn" };
    return server_main("kv", lfd, serve, &conn);
}

/* redis-fanout: a thousand hiredis clients on one thread. Each task uses hiredis's plain
 * blocking API (redisConnect, redisCommand) to set, read back and finally delete a key of its
 * own, checking every reply. Nothing in hiredis is changed: the program is linked with the
 * flags of weft-wrap-flags, so hiredis's connect, poll, read and write park the task instead
 * of blocking the thread (docs/wrap.md). To show that they really overlap it counts the most
 * commands in flight at once, and a ticker task records the longest stretch in which the loop
 * could not run it. Exit status 0 when every reply was right, 1 otherwise.
 *
 *   redis-fanout [-h HOST] [-p PORT] [-n TASKS] [-r ROUNDS] [-P]
 *
 * HOST must be a numeric address (default 127.0.0.1): hiredis resolves it with getaddrinfo,
 * which parses a numeric address without any lookup but would block the thread on a name.
 * -P only checks that the server answers PING (the test waits for its server with it). */
#include <hiredis.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <weft.h>

#define VALUE_MAX 8192

static const char *host = "127.0.0.1";
static int port = 6379;
static int ntasks = 1000;
static int rounds = 5;

static struct {
    long commands, replies_ok, errors;
    int in_flight, max_in_flight;       /* tasks inside redisCommand */
    long ticks;
    int64_t max_gap;                    /* longest wait of the ticker beyond its 1 ms */
    int done;
} st;

static void fail(int id, const char *what, const char *detail)
{
    if (st.errors++ < 10)
        fprintf(stderr, "redis-fanout: task %d: %s%s%s\n", id, what, detail ? ": " : "", detail ? detail : "");
}

/* redisCommand, counting the commands in flight. */
static redisReply *command(redisContext *c, const char *fmt, ...)
{
    if (++st.in_flight > st.max_in_flight)
        st.max_in_flight = st.in_flight;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    st.in_flight--;
    st.commands++;
    return r;
}

/* Is r of the expected type and content? Counts it and frees it either way. */
static int check(int id, const char *what, redisReply *r, redisContext *c, int type, const char *str,
                 size_t len, long long integer)
{
    int ok = r && r->type == type &&
             (type == REDIS_REPLY_INTEGER ? r->integer == integer
                                          : r->len == len && memcmp(r->str, str, len) == 0);
    if (ok)
        st.replies_ok++;
    else
        fail(id, what, !r ? c->errstr : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return ok;
}

/* A value that differs for every task and round, 16 to VALUE_MAX bytes long: "id.round."
 * and a letter repeated. */
static size_t make_value(char *buf, int id, int round)
{
    size_t len = 16 + ((size_t)id * 131 + (size_t)round * 977) % (VALUE_MAX - 15);
    memset(buf, 'a' + (id + round) % 26, len);
    int head = snprintf(buf, 16, "%d.%d.", id, round);
    buf[head] = '-';    /* over snprintf's NUL */
    return len;
}

static void *client(void *arg)
{
    int id = (int)(intptr_t)arg;
    redisContext *c = redisConnect(host, port);
    if (!c || c->err) {
        fail(id, "connect", c ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    char key[64], *value = malloc(VALUE_MAX);
    snprintf(key, sizeof key, "weft-fanout:%ld:%d", (long)getpid(), id);
    int ok = value != NULL;
    for (int r = 0; ok && r < rounds; r++) {
        size_t len = make_value(value, id, r);
        ok = check(id, "SET", command(c, "SET %s %b", key, value, len), c, REDIS_REPLY_STATUS, "OK", 2, 0) &&
             check(id, "GET", command(c, "GET %s", key), c, REDIS_REPLY_STRING, value, len, 0);
    }
    if (ok)
        check(id, "DEL", command(c, "DEL %s", key), c, REDIS_REPLY_INTEGER, NULL, 0, 1);
    else if (!value)
        fail(id, "value", "out of memory");
    free(value);
    redisFree(c);
    return NULL;
}

/* Sleeps 1 ms at a time while the clients run; a long gap means the thread was blocked. */
static void *ticker(void *arg)
{
    (void)arg;
    int64_t last = weft_now();
    while (!st.done) {
        if (weft_sleep(1) != 0)
            break;
        int64_t now = weft_now();
        if (now - last - 1 > st.max_gap)
            st.max_gap = now - last - 1;
        last = now;
        st.ticks++;
    }
    return NULL;
}

static void *run(void *arg)
{
    (void)arg;
    weft_task **tasks = calloc((size_t)ntasks, sizeof *tasks);
    weft_task *tick = weft_go(ticker, NULL);
    if (!tasks || !tick) {
        perror("redis-fanout: spawn");
        exit(1);
    }
    for (int i = 0; i < ntasks; i++) {
        if (!(tasks[i] = weft_go(client, (void *)(intptr_t)i))) {
            perror("redis-fanout: spawn");
            exit(1);
        }
    }
    for (int i = 0; i < ntasks; i++)
        weft_join(tasks[i], NULL);
    st.done = 1;
    weft_join(tick, NULL);
    free(tasks);
    return NULL;
}

/* One PING, outside any task: is the server up? */
static int ping(void)
{
    redisContext *c = redisConnect(host, port);
    redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
    int ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : 1;
}

/* Each client needs a socket: raise the soft fd limit as far as the hard one allows. */
static void raise_fd_limit(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
        fprintf(stderr, "redis-fanout: only %ld fds allowed for %d clients\n", (long)rl.rlim_cur, ntasks);
}

int main(int argc, char **argv)
{
    int opt, ping_only = 0;
    while ((opt = getopt(argc, argv, "h:p:n:r:P")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': ntasks = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 'P': ping_only = 1; break;
        default:
            fprintf(stderr, "usage: redis-fanout [-h HOST] [-p PORT] [-n TASKS] [-r ROUNDS] [-P]\n");
            return 2;
        }
    }
    if (ping_only)
        return ping();
    if (ntasks < 1 || rounds < 1 || port < 1 || port > 65535) {
        fprintf(stderr, "redis-fanout: bad -n, -r or -p\n");
        return 2;
    }
    raise_fd_limit((rlim_t)ntasks + 64);
    int64_t start = weft_now();
    if (weft_main(run, NULL) != 0) {
        perror("redis-fanout: weft_main");
        return 1;
    }
    long expected = (long)ntasks * (2L * rounds + 1);
    printf("redis-fanout: tasks=%d rounds=%d commands=%ld replies_ok=%ld errors=%ld max_in_flight=%d "
           "ticks=%ld max_tick_gap_ms=%lld elapsed_ms=%lld\n",
           ntasks, rounds, st.commands, st.replies_ok, st.errors, st.max_in_flight,
           st.ticks, (long long)st.max_gap, (long long)(weft_now() - start));
    return st.errors == 0 && st.replies_ok == expected ? 0 : 1;
}

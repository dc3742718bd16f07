/* Name lookups through the offload pool (src/offload_dns.c) and the net helpers that take
 * host names (src/offload_net.c): local and numeric names, a name that does not exist, bad
 * input, the task's deadline scope and cancel, and a thousand lookups and file reads through
 * the pool while an echo exchange and a ticker show the loop never stops. No test depends on
 * a name server: the names used are numeric or in /etc/hosts ("localhost", in any case). */
#define _GNU_SOURCE
#include "testutil.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADD_TEST(s, fn, secs) tcase_add_test(test_case((s), #fn, (secs)), fn)

/* The first address of res as text. */
static const char *addr_text(const struct addrinfo *res, char *buf, size_t n)
{
    const void *a = res->ai_family == AF_INET ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
                                              : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
    return inet_ntop(res->ai_family, a, buf, (socklen_t)n);
}

/* Does this system's libc resolve localhost (a hosts file that lists it)? The tests of names
 * need it; a minimal root without /etc/hosts has none, and they are skipped there. */
static int libc_resolves_localhost(void)
{
    struct addrinfo *r = NULL;
    int e = getaddrinfo("localhost", NULL, NULL, &r);
    if (e == 0)
        freeaddrinfo(r);
    return e == 0;
}
#define NEEDS_LOCALHOST() \
    SKIP_IF(!libc_resolves_localhost(), "libc here does not resolve localhost (no hosts entry)")

static int port_of(const struct addrinfo *res)
{
    return ntohs(res->ai_family == AF_INET ? ((struct sockaddr_in *)res->ai_addr)->sin_port
                                           : ((struct sockaddr_in6 *)res->ai_addr)->sin6_port);
}

static int is_loopback(const struct addrinfo *res)
{
    char b[INET6_ADDRSTRLEN];
    addr_text(res, b, sizeof b);
    return strcmp(b, "127.0.0.1") == 0 || strcmp(b, "::1") == 0;
}

/* ---- lookups ----------------------------------------------------------------------------- */

static void *lookups_task(void *arg)
{
    (void)arg;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    char b[INET6_ADDRSTRLEN];
    ck_assert_int_eq(weft_getaddrinfo("localhost", "80", &hints, &res), 0);
    ck_assert_ptr_nonnull(res);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        ck_assert(is_loopback(ai));
        ck_assert_int_eq(port_of(ai), 80);
        ck_assert_int_eq(ai->ai_socktype, SOCK_STREAM);
    }
    freeaddrinfo(res);
    ck_assert_int_eq(weft_getaddrinfo("LocalHost", NULL, &hints, &res), 0);
    ck_assert(is_loopback(res));
    freeaddrinfo(res);
    ck_assert_int_eq(weft_getaddrinfo("127.0.0.1", "8080", &hints, &res), 0);
    ck_assert_str_eq(addr_text(res, b, sizeof b), "127.0.0.1");
    ck_assert_int_eq(port_of(res), 8080);
    ck_assert_ptr_null(res->ai_next);
    freeaddrinfo(res);
    hints.ai_flags = AI_NUMERICHOST;
    ck_assert_int_eq(weft_getaddrinfo("::1", "443", &hints, &res), 0);
    ck_assert_int_eq(res->ai_family, AF_INET6);
    ck_assert_str_eq(addr_text(res, b, sizeof b), "::1");
    freeaddrinfo(res);
    ck_assert_int_eq(weft_getaddrinfo("localhost", NULL, &hints, &res), EAI_NONAME);
    hints.ai_flags = AI_PASSIVE;
    ck_assert_int_eq(weft_getaddrinfo(NULL, "7000", &hints, &res), 0);
    ck_assert_int_eq(port_of(res), 7000);
    freeaddrinfo(res);
    hints.ai_flags = 0;
    /* Errors: libc's codes. */
    ck_assert_int_eq(weft_getaddrinfo(NULL, NULL, &hints, &res), EAI_NONAME);
    ck_assert_int_eq(weft_getaddrinfo("127.0.0.1", "no-such-service-x", &hints, &res), EAI_SERVICE);
    struct addrinfo bad = { .ai_family = 12345 };
    ck_assert_int_eq(weft_getaddrinfo("127.0.0.1", NULL, &bad, &res), EAI_FAMILY);
    errno = 0;
    ck_assert_int_eq(weft_getaddrinfo("127.0.0.1", NULL, NULL, NULL), EAI_SYSTEM);
    ck_assert_int_eq(errno, EFAULT);
    /* A name that does not exist: EAI_NONAME, or EAI_AGAIN where no name server answers. */
    int64_t old = weft_set_task_deadline(weft_now() + 8000);
    res = (struct addrinfo *)&bad;
    int r = weft_getaddrinfo("no-such-host.invalid", "80", &hints, &res);
    ck_assert_msg(r == EAI_NONAME || r == EAI_AGAIN || (r == EAI_SYSTEM && errno == ETIMEDOUT),
                  "got %d (%s)", r, gai_strerror(r));
    weft_set_task_deadline(old);
    return NULL;
}

START_TEST(getaddrinfo_resolves_local_and_numeric_names)
{
    NEEDS_LOCALHOST();
    ck_assert_int_eq(weft_main(lookups_task, NULL), 0);
}
END_TEST

static void *names_task(void *arg)
{
    (void)arg;
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(80) };
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    ck_assert_int_eq(weft_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, serv,
                                      sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_str_eq(serv, "80");
    ck_assert_int_eq(weft_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL, 0,
                                      0), 0);
    ck_assert_str_eq(host, "localhost");
    memset(host, 'x', sizeof host);
    ck_assert_int_eq(weft_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, 4, NULL, 0,
                                      NI_NUMERICHOST), EAI_OVERFLOW);
    ck_assert_int_eq(host[0], 'x');                     /* not written on failure */
    ck_assert_int_eq(weft_getnameinfo(NULL, sizeof sin, host, sizeof host, NULL, 0, 0), EAI_FAMILY);
    ck_assert_int_eq(weft_getnameinfo((struct sockaddr *)&sin, 1, host, sizeof host, NULL, 0, 0),
                     EAI_FAMILY);
    ck_assert_int_eq(weft_getnameinfo((struct sockaddr *)&sin, 4096, host, sizeof host, NULL, 0, 0),
                     EAI_FAMILY);
    return NULL;
}

START_TEST(getnameinfo_names_addresses)
{
    NEEDS_LOCALHOST();
    ck_assert_int_eq(weft_main(names_task, NULL), 0);
}
END_TEST

START_TEST(outside_a_task_they_are_libcs)
{
    NEEDS_LOCALHOST();
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res = NULL;
    ck_assert_int_eq(weft_getaddrinfo("localhost", "53", &hints, &res), 0);
    ck_assert(is_loopback(res));
    char host[NI_MAXHOST];
    ck_assert_int_eq(weft_getnameinfo(res->ai_addr, res->ai_addrlen, host, sizeof host, NULL, 0,
                                      NI_NUMERICHOST), 0);
    ck_assert(strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0);
    freeaddrinfo(res);
    ck_assert_int_eq(weft_getaddrinfo(NULL, NULL, &hints, &res), EAI_NONAME);
}
END_TEST

/* ---- deadline scope and cancel ----------------------------------------------------------- */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_is_open;
static _Atomic int gate_entered;

static void gate_fn(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate_mu);
    atomic_fetch_add(&gate_entered, 1);
    while (!gate_is_open)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
}

static void *gate_task(void *arg)
{
    (void)arg;
    return (void *)(intptr_t)weft_offload(gate_fn, NULL, -1);
}

static void nothing(void *arg)
{
    (void)arg;
}

static struct addrinfo sentinel;

/* The code of a lookup of localhost, with errno in *err; res must stay the sentinel on
 * failure. */
static void *lookup_task(void *arg)
{
    int *err = arg;
    struct addrinfo *res = &sentinel;
    int r = weft_getaddrinfo("localhost", "80", NULL, &res);
    *err = errno;
    if (r == 0)
        freeaddrinfo(res);
    else
        ck_assert_ptr_eq(res, &sentinel);
    return (void *)(intptr_t)r;
}

static void *deadline_task(void *arg)
{
    (void)arg;
    ck_assert_int_eq(weft_offload_set_threads(1), 0);
    weft_task *h = weft_spawn(NULL, gate_task, NULL);
    while (atomic_load(&gate_entered) == 0)
        weft_sleep(1);
    /* Queued behind the held job: the scope passes there. */
    int64_t old = weft_set_task_deadline(weft_now() + 50), t0 = weft_now();
    int err = 0;
    ck_assert_int_eq((int)(intptr_t)lookup_task(&err), EAI_SYSTEM);
    ck_assert_int_eq(err, ETIMEDOUT);
    ck_assert_elapsed(t0, 40, 5000);
    char host[16];
    memset(host, 'x', sizeof host);
    struct sockaddr_in sin = { .sin_family = AF_INET };
    weft_set_task_deadline(weft_now() + 20);
    errno = 0;
    ck_assert_int_eq(weft_getnameinfo((struct sockaddr *)&sin, sizeof sin, host, sizeof host, NULL,
                                      0, NI_NUMERICHOST), EAI_SYSTEM);
    ck_assert_int_eq(errno, ETIMEDOUT);
    weft_set_task_deadline(weft_now() - 1);    /* past: at once */
    ck_assert_int_eq((int)(intptr_t)lookup_task(&err), EAI_SYSTEM);
    ck_assert_int_eq(err, ETIMEDOUT);
    weft_set_task_deadline(old);
    /* Cancelled while queued. */
    int cerr = 0;
    weft_task *c = weft_spawn(NULL, lookup_task, &cerr);
    weft_sleep(10);
    ck_assert_int_eq(weft_cancel(c), 0);
    void *r;
    ck_assert_int_eq(weft_join(c, &r), 0);
    ck_assert_int_eq((int)(intptr_t)r, EAI_SYSTEM);
    ck_assert_int_eq(cerr, ECANCELED);
    pthread_mutex_lock(&gate_mu);
    gate_is_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
    ck_assert_int_eq(weft_join(h, NULL), 0);
    ck_assert_int_eq(weft_offload(nothing, NULL, -1), 0);
    for (size_t i = 0; i < sizeof host; i++)
        ck_assert_int_eq(host[i], 'x');
    return NULL;
}

START_TEST(deadline_scope_and_cancel_end_a_lookup)
{
    NEEDS_LOCALHOST();
    ck_assert_int_eq(weft_main(deadline_task, NULL), 0);
    ck_assert_int_eq(weft_offload_set_threads(4), 0);
}
END_TEST

/* Lookups left while they run: the pool frees their results (the sanitizers' and
 * Valgrind's leak checks see one left behind). */
static void *short_lookup(void *arg)
{
    int64_t old = weft_set_task_deadline(weft_now() + (intptr_t)arg % 3);
    struct addrinfo *res = NULL;
    int r = weft_getaddrinfo("localhost", "80", NULL, &res);
    int e = errno;
    weft_set_task_deadline(old);
    if (r == 0)
        freeaddrinfo(res);
    else
        ck_assert_msg(r == EAI_SYSTEM && e == ETIMEDOUT, "got %d errno %d", r, e);
    return NULL;
}

static void *abandon_task(void *arg)
{
    (void)arg;
    int n = RUNNING_ON_VALGRIND ? 30 : 300;
    weft_task **h = calloc((size_t)n, sizeof *h);
    for (int i = 0; i < n; i++)
        h[i] = weft_spawn(NULL, short_lookup, (void *)(intptr_t)i);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(weft_join(h[i], NULL), 0);
    free(h);
    ck_assert_int_eq(weft_offload(nothing, NULL, -1), 0);  /* one thread: all done before */
    return NULL;
}

START_TEST(abandoned_lookups_are_freed_by_the_pool)
{
    NEEDS_LOCALHOST();
    ck_assert_int_eq(weft_offload_set_threads(1), 0);
    ck_assert_int_eq(weft_main(abandon_task, NULL), 0);
    ck_assert_int_eq(weft_offload_set_threads(4), 0);
}
END_TEST

/* ---- the net helpers with names ---------------------------------------------------------- */

static void exchange(int a, int b)
{
    ck_assert_int_eq(weft_write(a, "ping", 4), 4);
    char buf[8];
    ck_assert_int_eq(weft_read(b, buf, sizeof buf), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
}

static void *dial_task(void *arg)
{
    (void)arg;
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int port = weft_local_port(l);
    /* "localhost" is taken as 127.0.0.1; "LocalHost" is looked up (the hosts file). */
    const char *names[] = { "localhost", "LocalHost" };
    for (int i = 0; i < 2; i++) {
        int d = weft_tcp_dial(names[i], port, WEFT_NODELAY, weft_now() + 5000);
        ck_assert_int_ge(d, 0);
        int a = weft_accept(l, NULL, NULL);
        ck_assert_int_ge(a, 0);
        exchange(d, a);
        exchange(a, d);
        weft_close(a);
        weft_close(d);
    }
    weft_close(l);
    /* A listener by name. */
    l = weft_tcp_listen("LocalHost", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int d = weft_tcp_dial("127.0.0.1", weft_local_port(l), 0, -1);
    ck_assert_int_ge(d, 0);
    weft_close(d);
    weft_close(l);
    /* Refused on every address: connect's error. */
    ck_assert_fails(weft_tcp_dial("LocalHost", port, 0, weft_now() + 5000), ECONNREFUSED);
    /* A deadline already past ends the lookup. */
    ck_assert_fails(weft_tcp_dial("LocalHost", port, 0, weft_now() - 1), ETIMEDOUT);
    ck_assert_fails(weft_tcp_dial("LocalHost", 70000, 0, -1), EINVAL);
    ck_assert_fails(weft_tcp_dial("LocalHost", port, 0x100, -1), EINVAL);
    return NULL;
}

START_TEST(tcp_dial_and_listen_take_names)
{
    NEEDS_LOCALHOST();
    ck_assert_int_eq(weft_main(dial_task, NULL), 0);
}
END_TEST

static void *udp_task(void *arg)
{
    (void)arg;
    int s = weft_udp_bind("LocalHost", 0, 0);
    ck_assert_int_ge(s, 0);
    int port = weft_local_port(s);
    const char *names[] = { "localhost", "LocalHost" };
    for (int i = 0; i < 2; i++) {
        int c = weft_udp_connect(names[i], port, 0);
        ck_assert_int_ge(c, 0);
        ck_assert_int_eq(weft_write(c, "dgram", 5), 5);
        char buf[8];
        ck_assert_int_eq(weft_read(s, buf, sizeof buf), 5);
        ck_assert_int_eq(memcmp(buf, "dgram", 5), 0);
        weft_close(c);
    }
    weft_close(s);
    return NULL;
}

START_TEST(udp_takes_names)
{
    NEEDS_LOCALHOST();
    ck_assert_int_eq(weft_main(udp_task, NULL), 0);
}
END_TEST

/* ---- the loop keeps running -------------------------------------------------------------- */

static struct {
    char path[64];
    int fd;
    _Atomic int done;            /* lookups and reads finished */
    int workers;
    int stop;
    long echoes;
    int64_t max_gap;
} busy;

/* A slow disk: what would stop every task for its whole length if it ran on the loop. */
static void slow_disk(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
}

static void *worker(void *arg)
{
    if ((intptr_t)arg % 100 == 0)   /* one in a hundred: 10 of them, 3 s if they blocked */
        ck_assert_int_eq(weft_offload(slow_disk, NULL, -1), 0);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    ck_assert_int_eq(weft_getaddrinfo("localhost", "80", &hints, &res), 0);
    ck_assert(is_loopback(res));
    freeaddrinfo(res);
    char buf[4096];
    ck_assert_int_eq(weft_pread(busy.fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    ck_assert_int_eq(buf[100], (char)100);
    atomic_fetch_add(&busy.done, 1);
    return NULL;
}

static void *ticker(void *arg)
{
    (void)arg;
    int64_t last = weft_now();
    while (!busy.stop) {
        weft_sleep(1);
        int64_t now = weft_now();
        if (now - last > busy.max_gap)
            busy.max_gap = now - last;
        last = now;
    }
    return NULL;
}

static void *echo_server(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[64];
    ssize_t n;
    while ((n = weft_read(fd, buf, sizeof buf)) > 0)
        ck_assert_int_eq(weft_write(fd, buf, (size_t)n), n);
    weft_close(fd);
    return NULL;
}

static void *echo_client(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[8];
    while (!busy.stop) {
        ck_assert_int_eq(weft_write(fd, "echo", 4), 4);
        ck_assert_int_eq(weft_read(fd, buf, sizeof buf), 4);
        busy.echoes++;
    }
    weft_close(fd);
    return NULL;
}

static void *busy_main(void *arg)
{
    (void)arg;
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    weft_task *srv = weft_spawn(NULL, echo_server, (void *)(intptr_t)sv[0]);
    weft_task *cli = weft_spawn(NULL, echo_client, (void *)(intptr_t)sv[1]);
    weft_task *tick = weft_spawn(NULL, ticker, NULL);
    weft_sleep(20);
    long echoes_before = busy.echoes;
    weft_task **h = calloc((size_t)busy.workers, sizeof *h);
    for (int i = 0; i < busy.workers; i++) {
        h[i] = weft_spawn(NULL, worker, (void *)(intptr_t)i);
        ck_assert_ptr_nonnull(h[i]);
        if (i % 20 == 19)
            weft_yield();           /* the spawning loop is a task too: let the ticker run */
    }
    for (int i = 0; i < busy.workers; i++)
        ck_assert_int_eq(weft_join(h[i], NULL), 0);
    free(h);
    long echoes_during = busy.echoes - echoes_before;
    busy.stop = 1;
    ck_assert_int_eq(weft_join(cli, NULL), 0);
    ck_assert_int_eq(weft_join(srv, NULL), 0);
    ck_assert_int_eq(weft_join(tick, NULL), 0);
    ck_assert_int_eq(atomic_load(&busy.done), busy.workers);
    ck_assert_int_gt(echoes_during, 0);
    return NULL;
}

START_TEST(a_thousand_lookups_and_reads_never_block_the_loop)
{
    NEEDS_LOCALHOST();
    strcpy(busy.path, "/tmp/weft-dns-XXXXXX");
    busy.fd = mkstemp(busy.path);
    ck_assert_int_ge(busy.fd, 0);
    char data[4096];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (char)i;
    ck_assert_int_eq(write(busy.fd, data, sizeof data), (ssize_t)sizeof data);
    busy.workers = RUNNING_ON_VALGRIND ? 100 : 1000;
    ck_assert_int_eq(weft_main(busy_main, NULL), 0);
    /* Generous for a loaded machine and the sanitizer builds; a loop the slow calls blocked
     * would have waited 3 s (10 x 300 ms) at least. */
    int64_t bound = RUNNING_ON_VALGRIND ? 2500 : 1500;
    ck_assert_msg(busy.max_gap < bound, "the ticker waited %lld ms", (long long)busy.max_gap);
    close(busy.fd);
    unlink(busy.path);
}
END_TEST

static Suite *dns_suite(void)
{
    Suite *s = suite_create("dns");
    ADD_TEST(s, getaddrinfo_resolves_local_and_numeric_names, 30);
    ADD_TEST(s, getnameinfo_names_addresses, 10);
    ADD_TEST(s, outside_a_task_they_are_libcs, 10);
    ADD_TEST(s, deadline_scope_and_cancel_end_a_lookup, 20);
    ADD_TEST(s, abandoned_lookups_are_freed_by_the_pool, 60);
    ADD_TEST(s, tcp_dial_and_listen_take_names, 20);
    ADD_TEST(s, udp_takes_names, 10);
    ADD_TEST(s, a_thousand_lookups_and_reads_never_block_the_loop, 120);
    return s;
}

int main(void)
{
    return test_run(dns_suite());
}

/* The net helpers (net.c) and whole-connection behaviour through the wrappers: TCP, Unix and
 * UDP listen/dial, addresses, ports and flags, dial deadlines, an echo server under 1,000
 * concurrent connections, peer reset, half-close, and accept when the fd table is full. The
 * single wrappers are check_io's; parking mechanics are check_reactor's. */
#include "iotest.h"

#include <dirent.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

/* ---- helpers --------------------------------------------------------------------------- */

/* Open fds in the process, once the reactor (and its epoll fd) exists. */
static int count_open_fds(void)
{
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(weft_fd_set_deadline(p[0], WEFT_READ, -1), 0);
    weft_close(p[0]);
    weft_close(p[1]);
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1;   /* the directory's own fd */
}

static int highest_open_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int hi = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd > hi)
            hi = fd;
    }
    closedir(d);
    return hi;
}

/* Is there an epoll fd in this process (a reactor already made)? */
static int have_epoll_fd(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char path[300], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 1);
        if (n > 0) {
            link[n] = '\0';
            found = strcmp(link, "anon_inode:[eventpoll]") == 0;
        }
    }
    closedir(d);
    return found;
}

static int have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof v;
    ck_assert_int_eq(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static void assert_weft_socket(int fd)
{
    ck_assert(is_nonblocking(fd));
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* Bytes both ways between a dialled fd and its accepted peer. */
static void exchange(int a, int b)
{
    char buf[8];
    ck_assert_int_eq(weft_write(a, "ping", 4), 4);
    ck_assert_int_eq(weft_read_full(b, buf, 4), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    ck_assert_int_eq(weft_write(b, "pong", 4), 4);
    ck_assert_int_eq(weft_read_full(a, buf, 4), 4);
    ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
}

static void unix_path(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/weft-net-%d-%s.sock", (int)getpid(), tag);
    unlink(buf);
}

/* ---- TCP listen / dial ------------------------------------------------------------------- */

TASK_TEST(tcp_listen_and_dial_on_ipv4_loopback)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    assert_weft_socket(l);
    int port = weft_local_port(l);
    ck_assert_int_gt(port, 0);
    ck_assert_int_eq(port, sock_port(l));
    ck_assert_int_eq(sockopt_int(l, SOL_SOCKET, SO_REUSEADDR), 1);
    int d = weft_tcp_dial("127.0.0.1", port, 0, -1);
    ck_assert_int_ge(d, 0);
    assert_weft_socket(d);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    exchange(d, a);
    weft_close(a);
    weft_close(d);
    weft_close(l);
}

TASK_TEST(tcp_listen_and_dial_on_ipv6_loopback)
{
    if (!have_ipv6_loopback()) {
        SKIP("no IPv6 loopback (::1) on this host");
        return;
    }
    int l = weft_tcp_listen("::1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int port = weft_local_port(l);
    ck_assert_int_gt(port, 0);
    struct sockaddr_in6 a6;
    socklen_t len = sizeof a6;
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a6, &len), 0);
    ck_assert_int_eq(a6.sin6_family, AF_INET6);
    const char *hosts[] = { "::1", "[::1]" };
    for (int i = 0; i < 2; i++) {
        int d = weft_tcp_dial(hosts[i], port, 0, weft_now() + 3000);
        ck_assert_msg(d >= 0, "dial %s: %s", hosts[i], strerror(errno));
        int a = weft_accept(l, NULL, NULL);
        ck_assert_int_ge(a, 0);
        exchange(d, a);
        weft_close(a);
        weft_close(d);
    }
    /* IPv4 does not reach an IPv6-only address */
    ck_assert_fails(weft_tcp_dial("127.0.0.1", port, 0, weft_now() + 3000), ECONNREFUSED);
    weft_close(l);
}

TASK_TEST(tcp_listen_with_null_host_accepts_ipv4_and_ipv6)
{
    int l = weft_tcp_listen(NULL, 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int port = weft_local_port(l);
    ck_assert_int_gt(port, 0);
    int d = weft_tcp_dial("127.0.0.1", port, 0, weft_now() + 3000);
    ck_assert_int_ge(d, 0);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    exchange(d, a);
    weft_close(a);
    weft_close(d);
    if (have_ipv6_loopback()) {
        d = weft_tcp_dial("::1", port, 0, weft_now() + 3000);
        ck_assert_int_ge(d, 0);
        a = weft_accept(l, NULL, NULL);
        ck_assert_int_ge(a, 0);
        exchange(d, a);
        weft_close(a);
        weft_close(d);
    } else {
        SKIP("no IPv6 loopback: only the IPv4 half checked");
    }
    weft_close(l);
}

TASK_TEST(tcp_localhost_is_the_ipv4_loopback)
{
    int l = weft_tcp_listen("localhost", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    struct sockaddr_in a4;
    socklen_t len = sizeof a4;
    ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a4, &len), 0);
    ck_assert_int_eq(a4.sin_family, AF_INET);
    ck_assert_int_eq(a4.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    int d = weft_tcp_dial("localhost", weft_local_port(l), 0, -1);
    ck_assert_int_ge(d, 0);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    exchange(d, a);
    weft_close(a);
    weft_close(d);
    weft_close(l);
}

TASK_TEST(tcp_rejects_malformed_addresses_without_a_lookup)
{
    const char *bad[] = { "127.0.0.1.5", "", "[127.0.0.1]", "::1]", "1.2.3", "1:2:3:4:5:6:7:8:9" };
    int64_t t0 = weft_now();
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_fails(weft_tcp_listen(bad[i], 0, 16, 0), EINVAL);
        ck_assert_fails(weft_tcp_dial(bad[i], 80, 0, -1), EINVAL);
        ck_assert_fails(weft_udp_bind(bad[i], 0, 0), EINVAL);
        ck_assert_fails(weft_udp_connect(bad[i], 80, 0), EINVAL);
    }
    ck_assert_elapsed(t0, 0, 1000);      /* nothing went to a resolver */
}

/* A name is looked up (tests/check_dns.c has the rest): one that does not exist fails with
 * EHOSTUNREACH, or EAGAIN where no name server answers (ETIMEDOUT: the deadline). */
TASK_TEST(tcp_and_udp_look_names_up)
{
    int64_t old = weft_set_task_deadline(weft_now() + 5000);
    int r = weft_tcp_dial("no-such-host.invalid", 80, 0, weft_now() + 5000);
    ck_assert_int_eq(r, -1);
    ck_assert_msg(errno == EHOSTUNREACH || errno == EAGAIN || errno == ETIMEDOUT, "errno %d", errno);
    r = weft_udp_connect("no-such-host.invalid", 80, 0);
    ck_assert_int_eq(r, -1);
    ck_assert_msg(errno == EHOSTUNREACH || errno == EAGAIN || errno == ETIMEDOUT, "errno %d", errno);
    weft_set_task_deadline(old);
}

TASK_TEST(tcp_rejects_ports_out_of_range)
{
    int ports[] = { -1, 65536, 1 << 20, -65535 };
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        ck_assert_fails(weft_tcp_listen("127.0.0.1", ports[i], 16, 0), EINVAL);
        ck_assert_fails(weft_tcp_dial("127.0.0.1", ports[i], 0, -1), EINVAL);
        ck_assert_fails(weft_udp_bind("127.0.0.1", ports[i], 0), EINVAL);
        ck_assert_fails(weft_udp_connect("127.0.0.1", ports[i], 0), EINVAL);
    }
    ck_assert_fails(weft_tcp_dial(NULL, 80, 0, -1), EINVAL);   /* dialling needs a host */
    ck_assert_fails(weft_udp_connect(NULL, 80, 0), EINVAL);
}

TASK_TEST(tcp_reuseport_lets_two_listeners_share_a_port)
{
    int l1 = weft_tcp_listen("127.0.0.1", 0, 64, WEFT_REUSEPORT);
    ck_assert_int_ge(l1, 0);
    int port = weft_local_port(l1);
    ck_assert_int_eq(sockopt_int(l1, SOL_SOCKET, SO_REUSEPORT), 1);
    int l2 = weft_tcp_listen("127.0.0.1", port, 64, WEFT_REUSEPORT);
    ck_assert_msg(l2 >= 0, "second listener: %s", strerror(errno));
    ck_assert_int_eq(weft_local_port(l2), port);
    ck_assert_fails(weft_tcp_listen("127.0.0.1", port, 64, 0), EADDRINUSE);
    enum { N = 32 };
    int d[N];
    for (int i = 0; i < N; i++) {
        d[i] = weft_tcp_dial("127.0.0.1", port, 0, weft_now() + 3000);
        ck_assert_int_ge(d[i], 0);
    }
    int got[2] = { 0, 0 }, ls[2] = { l1, l2 };
    for (int k = 0; k < 2; k++) {
        int a;
        while ((a = accept4(ls[k], NULL, NULL, SOCK_CLOEXEC)) >= 0) {   /* non-blocking */
            got[k]++;
            close(a);
        }
        ck_assert_int_eq(errno, EAGAIN);
    }
    ck_assert_int_eq(got[0] + got[1], N);
    ck_assert_msg(got[0] > 0 && got[1] > 0, "connections split %d / %d", got[0], got[1]);
    for (int i = 0; i < N; i++)
        weft_close(d[i]);
    weft_close(l1);
    weft_close(l2);
}

TASK_TEST(tcp_nodelay_flag_sets_tcp_nodelay)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, WEFT_NODELAY);
    ck_assert_int_ge(l, 0);
    int port = weft_local_port(l);
    int d = weft_tcp_dial("127.0.0.1", port, WEFT_NODELAY, -1);
    ck_assert_int_ge(d, 0);
    ck_assert_int_ne(sockopt_int(d, IPPROTO_TCP, TCP_NODELAY), 0);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    ck_assert_int_ne(sockopt_int(a, IPPROTO_TCP, TCP_NODELAY), 0);   /* accepted ones too */
    int d2 = weft_tcp_dial("127.0.0.1", port, 0, -1);
    ck_assert_int_ge(d2, 0);
    ck_assert_int_eq(sockopt_int(d2, IPPROTO_TCP, TCP_NODELAY), 0);
    int l2 = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l2, 0);
    int d3 = weft_tcp_dial("127.0.0.1", weft_local_port(l2), 0, -1);
    ck_assert_int_ge(d3, 0);
    int a3 = weft_accept(l2, NULL, NULL);
    ck_assert_int_ge(a3, 0);
    ck_assert_int_eq(sockopt_int(a3, IPPROTO_TCP, TCP_NODELAY), 0);
    weft_close(a3);
    weft_close(d3);
    weft_close(l2);
    weft_close(d2);
    weft_close(a);
    weft_close(d);
    weft_close(l);
}

TASK_TEST(tcp_dial_to_a_closed_port_fails_with_econnrefused)
{
    int before = count_open_fds();
    ck_assert_fails(weft_tcp_dial("127.0.0.1", closed_port(), 0, -1), ECONNREFUSED);
    ck_assert_fails(weft_tcp_dial("127.0.0.1", closed_port(), 0, weft_now() + 3000), ECONNREFUSED);
    ck_assert_int_eq(count_open_fds(), before);     /* the failed socket was closed */
}

START_TEST(tcp_dial_outside_a_task)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int port = weft_local_port(l);
    int d = weft_tcp_dial("127.0.0.1", port, 0, weft_now() + 3000);
    ck_assert_int_ge(d, 0);
    int a = accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(write(d, "x", 1), 1);
    char c;
    ck_assert_int_eq(read(a, &c, 1), 1);
    ck_assert_fails(weft_tcp_dial("127.0.0.1", closed_port(), 0, -1), ECONNREFUSED);
    close(a);
    weft_close(d);
    weft_close(l);
}
END_TEST

TASK_TEST(tcp_dial_deadline_expires_on_a_blackholed_listener)
{
    int port, filler;
    int l = hanging_listener(&port, &filler);
    if (l < 0) {
        SKIP("connect to a full accept queue completes on this kernel; see the past-deadline test");
        return;
    }
    int before = count_open_fds();
    int64_t t0 = weft_now();
    ck_assert_fails(weft_tcp_dial("127.0.0.1", port, 0, t0 + 80), ETIMEDOUT);
    ck_assert_elapsed(t0, 80, 3000);
    ck_assert_int_eq(count_open_fds(), before);
    weft_close(filler);
    weft_close(l);
}

START_TEST(tcp_dial_deadline_expires_outside_a_task)
{
    int port, filler;
    int l = hanging_listener(&port, &filler);
    if (l < 0) {
        SKIP("connect to a full accept queue completes on this kernel");
        return;
    }
    int64_t t0 = weft_now();
    ck_assert_fails(weft_tcp_dial("127.0.0.1", port, 0, t0 + 80), ETIMEDOUT);
    ck_assert_elapsed(t0, 80, 3000);
    close(filler);
    close(l);
}
END_TEST

TASK_TEST(dial_with_a_deadline_in_the_past_fails_at_once)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    char path[108];
    unix_path(path, sizeof path, "past");
    int u = weft_unix_listen(path, 16);
    ck_assert_int_ge(u, 0);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_tcp_dial("127.0.0.1", weft_local_port(l), 0, t0 - 1), ETIMEDOUT);
    ck_assert_fails(weft_unix_dial(path, t0 - 1), ETIMEDOUT);
    ck_assert_elapsed(t0, 0, 1000);
    weft_close(u);
    weft_close(l);
    unlink(path);
}

TASK_TEST(tcp_dial_restores_the_task_deadline_scope)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int64_t scope = weft_now() + 5000;
    ck_assert_int_eq(weft_set_task_deadline(scope), -1);
    int d = weft_tcp_dial("127.0.0.1", weft_local_port(l), 0, weft_now() + 1000);
    ck_assert_int_ge(d, 0);
    ck_assert_fails(weft_tcp_dial("127.0.0.1", closed_port(), 0, weft_now() + 1000), ECONNREFUSED);
    ck_assert_int_eq(weft_set_task_deadline(-1), scope);
    weft_close(d);
    weft_close(l);
}

static void *dial_forever(void *arg)
{
    int port = *(int *)arg;
    errno = 0;
    int r = weft_tcp_dial("127.0.0.1", port, 0, -1);
    return (void *)(intptr_t)(r >= 0 ? 0 : errno);
}

TASK_TEST(tcp_dial_is_cancellable)
{
    int port, filler;
    int l = hanging_listener(&port, &filler);
    if (l < 0) {
        SKIP("connect to a full accept queue completes on this kernel; nothing to cancel");
        return;
    }
    int before = count_open_fds();
    weft_task *t = weft_go(dial_forever, &port);
    settle();
    int64_t t0 = weft_now();
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, ECANCELED);
    ck_assert_elapsed(t0, 0, 1000);
    ck_assert_int_eq(count_open_fds(), before);
    weft_close(filler);
    weft_close(l);
}

/* ---- Unix: a full backlog is waited for, as a blocking connect waits ---------------------- */

/* A Unix listener whose backlog is full: connections never accepted until one more fails
 * with EAGAIN. Returns the listener; the fillers' fds in fill[], their count in *n. */
static int full_unix_listener(const char *path, int *fill, int *n)
{
    int l = weft_unix_listen(path, 1);
    ck_assert_int_ge(l, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    strcpy(sun.sun_path, path);
    for (*n = 0; *n < 64; (*n)++) {
        int c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        ck_assert_int_ge(c, 0);
        if (connect(c, (struct sockaddr *)&sun, sizeof sun) != 0) {
            ck_assert_int_eq(errno, EAGAIN);
            close(c);
            return l;
        }
        fill[*n] = c;
    }
    ck_abort_msg("the backlog never filled");
    return -1;
}

struct late_accept {
    int l, ms, fd;
};

static void *accept_later(void *p)
{
    struct late_accept *a = p;
    weft_sleep(a->ms);
    a->fd = weft_accept(a->l, NULL, NULL);
    return NULL;
}

TASK_TEST(unix_dial_waits_for_room_in_a_full_backlog)
{
    char path[108];
    int fill[64], n;
    unix_path(path, sizeof path, "full");
    int l = full_unix_listener(path, fill, &n);
    struct late_accept a = { l, 100, -1 };
    weft_task *t = weft_go(accept_later, &a);
    int64_t t0 = weft_now();
    int c = weft_unix_dial(path, t0 + 5000);
    ck_assert_msg(c >= 0, "dial: %s", strerror(errno));
    ck_assert_elapsed(t0, 90, 4900);
    ck_assert_int_eq(weft_join(t, NULL), 0);
    ck_assert_int_ge(a.fd, 0);
    weft_close(c);
    weft_close(a.fd);
    for (int i = 0; i < n; i++)
        close(fill[i]);
    weft_close(l);
    unlink(path);
}

TASK_TEST(unix_dial_to_a_full_backlog_times_out_at_its_deadline)
{
    char path[108];
    int fill[64], n;
    unix_path(path, sizeof path, "fullto");
    int l = full_unix_listener(path, fill, &n);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_unix_dial(path, t0 + 150), ETIMEDOUT);
    ck_assert_elapsed(t0, 150, 3000);
    /* weft_connect on the user's own socket waits the same way, under a task deadline. */
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    strcpy(sun.sun_path, path);
    t0 = weft_now();            /* before the deadline is set: the clock may tick between */
    int64_t old = weft_set_task_deadline(t0 + 100);
    ck_assert_fails(weft_connect(c, (struct sockaddr *)&sun, sizeof sun), ETIMEDOUT);
    ck_assert_elapsed(t0, 100, 3000);
    weft_set_task_deadline(old);
    weft_close(c);
    for (int i = 0; i < n; i++)
        close(fill[i]);
    weft_close(l);
    unlink(path);
}

static void *dial_path(void *p)
{
    int r = weft_unix_dial(p, -1);
    return (void *)(intptr_t)(r >= 0 ? 0 : errno);
}

TASK_TEST(unix_dial_to_a_full_backlog_is_cancellable)
{
    char path[108];
    int fill[64], n;
    unix_path(path, sizeof path, "fullc");
    int l = full_unix_listener(path, fill, &n);
    weft_task *t = weft_go(dial_path, path);
    weft_sleep(20);
    ck_assert_int_eq(weft_cancel(t), 0);
    void *v;
    ck_assert_int_eq(weft_join(t, &v), 0);
    ck_assert_int_eq((int)(intptr_t)v, ECANCELED);
    for (int i = 0; i < n; i++)
        close(fill[i]);
    weft_close(l);
    unlink(path);
}

START_TEST(unix_dial_outside_a_task_waits_for_its_deadline)
{
    char path[108];
    int fill[64], n;
    unix_path(path, sizeof path, "fullout");
    int l = full_unix_listener(path, fill, &n);
    int64_t t0 = weft_now();
    ck_assert_fails(weft_unix_dial(path, t0 + 100), ETIMEDOUT);
    ck_assert_elapsed(t0, 100, 3000);
    close(fill[0]);     /* room again: an accept frees a slot */
    int a = accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    int c = weft_unix_dial(path, weft_now() + 3000);
    ck_assert_int_ge(c, 0);
    close(c);
    close(a);
    for (int i = 1; i < n; i++)
        close(fill[i]);
    weft_close(l);
    unlink(path);
}
END_TEST

/* ---- WEFT_NONBLOCK: a socket the user keeps non-blocking ---------------------------------- */

TASK_TEST(nonblock_flag_gives_sockets_that_fail_with_eagain)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, WEFT_NONBLOCK);
    ck_assert_int_ge(l, 0);
    ck_assert_fails(weft_accept(l, NULL, NULL), EAGAIN);
    int c = weft_tcp_dial("127.0.0.1", weft_local_port(l), WEFT_NONBLOCK, weft_now() + 5000);
    ck_assert_int_ge(c, 0);         /* connected: the dial itself still parked for it */
    ck_assert(fcntl(c, F_GETFL) & O_NONBLOCK);
    char b;
    ck_assert_fails(weft_read(c, &b, 1), EAGAIN);
    ck_assert_int_eq(weft_fdwait(l, WEFT_READ, weft_now() + 5000), WEFT_READ);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    exchange(c, a);
    /* Without the flag the same calls park. */
    int c2 = weft_tcp_dial("127.0.0.1", weft_local_port(l), 0, weft_now() + 5000);
    ck_assert_int_ge(c2, 0);
    ck_assert_fails(weft_tcp_dial("127.0.0.1", 1, 0x100, -1), EINVAL);
    ck_assert_fails(weft_tcp_listen("127.0.0.1", 0, 16, 0x100), EINVAL);
    weft_close(c2);
    weft_close(a);
    weft_close(c);
    weft_close(l);
}

/* ---- Unix ------------------------------------------------------------------------------ */

TASK_TEST(unix_listen_and_dial_round_trip)
{
    char path[108];
    unix_path(path, sizeof path, "rt");
    int l = weft_unix_listen(path, 16);
    ck_assert_int_ge(l, 0);
    assert_weft_socket(l);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    int d = weft_unix_dial(path, weft_now() + 3000);
    ck_assert_int_ge(d, 0);
    assert_weft_socket(d);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    exchange(d, a);
    ck_assert_fails(weft_local_port(l), EAFNOSUPPORT);
    ck_assert_fails(weft_unix_listen(path, 16), EADDRINUSE);
    weft_close(a);
    weft_close(d);
    weft_close(l);
    unlink(path);
}

TASK_TEST(unix_rejects_bad_paths)
{
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    ck_assert_fails(weft_unix_listen(longp, 16), ENAMETOOLONG);
    ck_assert_fails(weft_unix_dial(longp, -1), ENAMETOOLONG);
    char exact[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
    memset(exact, 'b', sizeof exact - 1);       /* one byte too many for the terminator */
    exact[0] = '/';
    exact[sizeof exact - 1] = '\0';
    ck_assert_fails(weft_unix_listen(exact, 16), ENAMETOOLONG);
    ck_assert_fails(weft_unix_listen("", 16), EINVAL);
    ck_assert_fails(weft_unix_listen(NULL, 16), EINVAL);
    ck_assert_fails(weft_unix_dial("", -1), EINVAL);
    ck_assert_fails(weft_unix_dial(NULL, -1), EINVAL);
    char path[108];
    unix_path(path, sizeof path, "missing");
    ck_assert_fails(weft_unix_dial(path, -1), ENOENT);
    ck_assert_fails(weft_unix_listen("/nonexistent-dir/x.sock", 16), ENOENT);
}

/* ---- UDP ------------------------------------------------------------------------------- */

TASK_TEST(udp_bind_and_connect_round_trip)
{
    int b = weft_udp_bind("127.0.0.1", 0, 0);
    ck_assert_int_ge(b, 0);
    assert_weft_socket(b);
    int port = weft_local_port(b);
    ck_assert_int_gt(port, 0);
    int c = weft_udp_connect("127.0.0.1", port, 0);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(weft_send(c, "ping", 4, 0), 4);
    char buf[16];
    struct sockaddr_storage from;
    socklen_t flen = sizeof from;
    ck_assert_int_eq(weft_recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &flen), 4);
    ck_assert_int_eq(memcmp(buf, "ping", 4), 0);
    ck_assert_int_eq(ntohs(((struct sockaddr_in *)&from)->sin_port), weft_local_port(c));
    ck_assert_int_eq(weft_sendto(b, "pong", 4, 0, (struct sockaddr *)&from, flen), 4);
    ck_assert_int_eq(weft_recv(c, buf, sizeof buf, 0), 4);    /* parks if it must */
    ck_assert_int_eq(memcmp(buf, "pong", 4), 0);
    /* a connected socket hears only its peer */
    int other = weft_udp_bind("127.0.0.1", 0, 0);
    ck_assert_int_ge(other, 0);
    struct sockaddr_in to = loopback4(weft_local_port(c));
    ck_assert_int_eq(weft_sendto(other, "xx", 2, 0, (struct sockaddr *)&to, sizeof to), 2);
    ck_assert_int_eq(weft_sendto(b, "ok", 2, 0, (struct sockaddr *)&from, flen), 2);
    ck_assert_int_eq(weft_recv(c, buf, sizeof buf, 0), 2);
    ck_assert_int_eq(memcmp(buf, "ok", 2), 0);
    weft_close(other);
    weft_close(c);
    weft_close(b);
}

TASK_TEST(udp_bind_with_reuseport_and_null_host)
{
    int b1 = weft_udp_bind("127.0.0.1", 0, WEFT_REUSEPORT);
    ck_assert_int_ge(b1, 0);
    int port = weft_local_port(b1);
    int b2 = weft_udp_bind("127.0.0.1", port, WEFT_REUSEPORT);
    ck_assert_int_ge(b2, 0);
    weft_close(b2);
    weft_close(b1);
    int w = weft_udp_bind(NULL, 0, 0);
    ck_assert_int_ge(w, 0);
    int c = weft_udp_connect("127.0.0.1", weft_local_port(w), 0);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(weft_send(c, "v4", 2, 0), 2);
    char buf[4];
    ck_assert_int_eq(weft_recv(w, buf, sizeof buf, 0), 2);
    weft_close(c);
    weft_close(w);
}

START_TEST(local_port_rejects_bad_fds)
{
    ck_assert_fails(weft_local_port(-1), EBADF);
    int p[2];
    make_pipe(p);
    ck_assert_fails(weft_local_port(p[0]), ENOTSOCK);
    close(p[0]);
    close(p[1]);
}
END_TEST

/* ---- an echo server ---------------------------------------------------------------------- */

enum { ECHO_CONNS = 1000 };

struct echo {
    int listener, port, n;
    int ok;             /* clients whose bytes all came back */
    size_t bytes;
};

static void *echo_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[4096];
    ssize_t r;
    while ((r = weft_read(fd, buf, sizeof buf)) > 0)
        ck_assert_int_eq(weft_write_full(fd, buf, (size_t)r), r);
    ck_assert_msg(r == 0, "server read: %s", strerror(errno));
    weft_close(fd);
    return NULL;
}

static void *echo_server(void *arg)
{
    struct echo *e = arg;
    weft_attr at = { .stack_size = 64 * 1024, .detached = 1, .name = "echo-conn" };
    for (int i = 0; i < e->n; i++) {
        int fd = weft_accept(e->listener, NULL, NULL);
        ck_assert_msg(fd >= 0, "accept %d: %s", i, strerror(errno));
        ck_assert_ptr_nonnull(weft_spawn(&at, echo_conn, (void *)(intptr_t)fd));
    }
    return NULL;
}

struct client {
    struct echo *e;
    int id;
};

static void *echo_client(void *arg)
{
    struct client *c = arg;
    size_t n = 1 + (size_t)(c->id * 797) % 9000;      /* 1 byte .. ~9 KB: some span writes */
    char *out = malloc(n), *in = malloc(n);
    ck_assert(out && in);
    pattern(out, n, (unsigned)c->id);
    int fd = weft_tcp_dial("127.0.0.1", c->e->port, 0, weft_now() + 20000);
    ck_assert_msg(fd >= 0, "dial %d: %s", c->id, strerror(errno));
    /* two halves, with a yield between, so the server sees the stream in pieces */
    size_t half = n / 2;
    ck_assert_int_eq(weft_write_full(fd, out, half), (ssize_t)half);
    weft_yield();
    ck_assert_int_eq(weft_write_full(fd, out + half, n - half), (ssize_t)(n - half));
    ck_assert_int_eq(weft_read_full(fd, in, n), (ssize_t)n);
    ck_assert_msg(memcmp(in, out, n) == 0, "client %d: echoed bytes differ", c->id);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    char extra;
    ck_assert_int_eq(weft_read(fd, &extra, 1), 0);    /* the server closes after EOF */
    weft_close(fd);
    c->e->ok++;
    c->e->bytes += n;
    free(out);
    free(in);
    return NULL;
}

/* Make sure 'need' fds may be open; 0 when the hard limit forbids it. */
static int ensure_nofile(rlim_t need)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= need)
        return 1;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
        return 0;
    rl.rlim_cur = need;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

TASK_TEST(echo_server_serves_1000_concurrent_connections)
{
    if (!ensure_nofile(2 * ECHO_CONNS + 64)) {
        SKIP("RLIMIT_NOFILE cannot be raised to %d", 2 * ECHO_CONNS + 64);
        return;
    }
    struct echo e = { .n = ECHO_CONNS };
    e.listener = weft_tcp_listen("127.0.0.1", 0, ECHO_CONNS, 0);
    ck_assert_int_ge(e.listener, 0);
    e.port = weft_local_port(e.listener);
    weft_task *srv = weft_go(echo_server, &e);
    static struct client cl[ECHO_CONNS];
    static weft_task *ct[ECHO_CONNS];
    weft_attr at = { .stack_size = 64 * 1024, .name = "echo-client" };
    size_t want = 0;
    for (int i = 0; i < ECHO_CONNS; i++) {
        cl[i] = (struct client){ &e, i };
        want += 1 + (size_t)(i * 797) % 9000;
        ct[i] = weft_spawn(&at, echo_client, &cl[i]);
        ck_assert_ptr_nonnull(ct[i]);
    }
    for (int i = 0; i < ECHO_CONNS; i++)
        op_join(ct[i]);
    op_join(srv);
    ck_assert_int_eq(e.ok, ECHO_CONNS);
    ck_assert_int_eq(e.bytes, want);
    weft_close(e.listener);
}

struct resetter {
    int port;
};

static void *client_resets(void *arg)
{
    struct resetter *r = arg;
    int fd = weft_tcp_dial("127.0.0.1", r->port, 0, -1);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(weft_write(fd, "abc", 3), 3);
    weft_sleep(30);
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    ck_assert_int_eq(weft_close(fd), 0);
    return NULL;
}

TASK_TEST(server_sees_econnreset_when_the_client_resets)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    struct resetter r = { weft_local_port(l) };
    weft_task *t = weft_go(client_resets, &r);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    char buf[16];
    ck_assert_int_eq(weft_read_full(a, buf, 3), 3);
    ck_assert_fails(weft_read(a, buf, sizeof buf), ECONNRESET);   /* parked, then reset */
    op_join(t);
    weft_close(a);
    weft_close(l);
}

struct asker {
    int port;
    char reply[16];
    ssize_t got;
};

static void *half_closing_client(void *arg)
{
    struct asker *q = arg;
    int fd = weft_tcp_dial("127.0.0.1", q->port, 0, -1);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(weft_write_full(fd, "question", 8), 8);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    q->got = weft_read_full(fd, q->reply, sizeof q->reply);   /* until the server's EOF */
    weft_close(fd);
    return NULL;
}

TASK_TEST(half_close_server_reads_eof_and_still_replies)
{
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    struct asker q = { .port = weft_local_port(l) };
    weft_task *t = weft_go(half_closing_client, &q);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    char buf[32];
    ck_assert_int_eq(weft_read_full(a, buf, sizeof buf), 8);     /* short count: EOF */
    ck_assert_int_eq(memcmp(buf, "question", 8), 0);
    ck_assert_int_eq(weft_read(a, buf, sizeof buf), 0);
    ck_assert_int_eq(weft_write_full(a, "answer", 6), 6);        /* still allowed to write */
    ck_assert_int_eq(weft_close(a), 0);
    op_join(t);
    ck_assert_int_eq(q.got, 6);
    ck_assert_int_eq(memcmp(q.reply, "answer", 6), 0);
    weft_close(l);
}

/* ---- accept when the fd table is full ------------------------------------------------------ */


static int64_t cpu_ms(void)
{
    struct rusage ru;
    ck_assert_int_eq(getrusage(RUSAGE_SELF, &ru), 0);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

TASK_TEST(accept_under_emfile_fails_without_blocking_or_spinning)
{
    if (UNDER_VALGRIND) {
        SKIP("valgrind keeps RLIMIT_NOFILE to itself: lowering it never makes accept say EMFILE");
        return;
    }
    int l = weft_tcp_listen("127.0.0.1", 0, 16, 0);
    ck_assert_int_ge(l, 0);
    int port = weft_local_port(l);
    int c = plain_connect(port);                    /* pending: never accepted yet */
    ck_assert_int_eq(write(c, "p", 1), 1);
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)highest_open_fd() + 8;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) {
        SKIP("cannot lower RLIMIT_NOFILE: %s", strerror(errno));
        weft_close(c);
        weft_close(l);
        return;
    }
    static int fill[4096];
    int nfill = 0, fd;
    while (nfill < 4096 && (fd = dup(c)) >= 0)
        fill[nfill++] = fd;
    ck_assert_int_eq(errno, EMFILE);
    struct ticker k = { 0, 0 };
    weft_task *tk = weft_go(tick, &k);
    /* the first try fails at once: the thread is not blocked and the task is not parked */
    int64_t t0 = weft_now();
    ck_assert_fails(weft_accept(l, NULL, NULL), EMFILE);
    ck_assert_elapsed(t0, 0, 500);
    /* a server backing off and retrying for 300 ms: the ticker runs, the CPU stays idle */
    int64_t wall0 = weft_now(), cpu0 = cpu_ms();
    long ticks0 = k.ticks;
    int fails = 0;
    while (weft_now() - wall0 < 300) {
        ck_assert_fails(weft_accept(l, NULL, NULL), EMFILE);
        fails++;
        weft_sleep(10);
    }
    int64_t wall = weft_now() - wall0, cpu = cpu_ms() - cpu0;
    ck_assert_int_ge(fails, 5);
    ck_assert_msg(k.ticks - ticks0 >= 5, "ticker ran %ld times in %lld ms", k.ticks - ticks0,
                  (long long)wall);
    if (UNDER_VALGRIND)
        SKIP("CPU bound not checked under valgrind (%lld ms CPU in %lld ms)", (long long)cpu,
             (long long)wall);
    else
        ck_assert_msg(cpu * 2 < wall, "%lld ms CPU in %lld ms wall", (long long)cpu, (long long)wall);
    /* fds come back: the pending connection is accepted, with its byte */
    for (int i = 0; i < nfill; i++)
        ck_assert_int_eq(close(fill[i]), 0);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    int a = weft_accept(l, NULL, NULL);
    ck_assert_int_ge(a, 0);
    char ch;
    ck_assert_int_eq(weft_read(a, &ch, 1), 1);
    ck_assert_int_eq(ch, 'p');
    k.stop = 1;
    op_join(tk);
    weft_close(a);
    weft_close(c);
    weft_close(l);
}

TASK_TEST(first_wrapper_call_with_a_full_fd_table_fails_with_emfile)
{
    /* The reactor (an epoll fd) is made at the first wrapper call; with no fd left, it
     * must say EMFILE, not pretend memory ran out. */
    if (UNDER_VALGRIND) {
        SKIP("valgrind keeps RLIMIT_NOFILE to itself");
        return;
    }
    if (have_epoll_fd()) {
        SKIP("a reactor made by an earlier test lives on in this process (CK_FORK=no)");
        return;
    }
    int p[2];
    make_pipe(p);
    ck_assert_int_eq(write(p[1], "x", 1), 1);     /* never a reason to park */
    struct rlimit old, low;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)highest_open_fd() + 8;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    static int fill[4096];
    int nfill = 0, fd;
    while (nfill < 4096 && (fd = dup(p[0])) >= 0)
        fill[nfill++] = fd;
    char c;
    errno = 0;
    ssize_t r = weft_read(p[0], &c, 1);
    int e = errno;
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    ck_assert_msg(r == -1 && e == EMFILE, "read gave %zd, %s", r, strerror(e));
    ck_assert_int_eq(weft_read(p[0], &c, 1), 1);  /* with fds back, the next call works */
    weft_close(p[0]);
    weft_close(p[1]);
}

static Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    ADD_TEST(s, tcp_listen_and_dial_on_ipv4_loopback, 5);
    ADD_TEST(s, tcp_listen_and_dial_on_ipv6_loopback, 5);
    ADD_TEST(s, tcp_listen_with_null_host_accepts_ipv4_and_ipv6, 5);
    ADD_TEST(s, tcp_localhost_is_the_ipv4_loopback, 5);
    ADD_TEST(s, tcp_rejects_malformed_addresses_without_a_lookup, 5);
    ADD_TEST(s, tcp_and_udp_look_names_up, 20);
    ADD_TEST(s, tcp_rejects_ports_out_of_range, 5);
    ADD_TEST(s, tcp_reuseport_lets_two_listeners_share_a_port, 5);
    ADD_TEST(s, tcp_nodelay_flag_sets_tcp_nodelay, 5);
    ADD_TEST(s, tcp_dial_to_a_closed_port_fails_with_econnrefused, 5);
    ADD_TEST(s, tcp_dial_outside_a_task, 5);
    ADD_TEST(s, tcp_dial_deadline_expires_on_a_blackholed_listener, 5);
    ADD_TEST(s, tcp_dial_deadline_expires_outside_a_task, 5);
    ADD_TEST(s, dial_with_a_deadline_in_the_past_fails_at_once, 5);
    ADD_TEST(s, tcp_dial_restores_the_task_deadline_scope, 5);
    ADD_TEST(s, tcp_dial_is_cancellable, 5);
    ADD_TEST(s, unix_listen_and_dial_round_trip, 5);
    ADD_TEST(s, unix_rejects_bad_paths, 5);
    ADD_TEST(s, udp_bind_and_connect_round_trip, 5);
    ADD_TEST(s, udp_bind_with_reuseport_and_null_host, 5);
    ADD_TEST(s, local_port_rejects_bad_fds, 5);
    ADD_TEST(s, echo_server_serves_1000_concurrent_connections, 60);
    ADD_TEST(s, server_sees_econnreset_when_the_client_resets, 5);
    ADD_TEST(s, half_close_server_reads_eof_and_still_replies, 5);
    ADD_TEST(s, accept_under_emfile_fails_without_blocking_or_spinning, 10);
    ADD_TEST(s, first_wrapper_call_with_a_full_fd_table_fails_with_emfile, 5);
    ADD_TEST(s, unix_dial_waits_for_room_in_a_full_backlog, 10);
    ADD_TEST(s, unix_dial_to_a_full_backlog_times_out_at_its_deadline, 10);
    ADD_TEST(s, unix_dial_to_a_full_backlog_is_cancellable, 10);
    ADD_TEST(s, unix_dial_outside_a_task_waits_for_its_deadline, 10);
    ADD_TEST(s, nonblock_flag_gives_sockets_that_fail_with_eagain, 10);
    return s;
}

int main(void)
{
    return test_run(net_suite());
}

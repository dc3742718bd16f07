/* The control socket: a Unix socket that tools/weft-dump asks for the dump, served by one of
 * weft's background tasks so the other tasks are only paused while the dump is taken. What
 * a dump says is dump.c's; the socket calls are the IO wrappers'.
 *
 * Protocol: the client sends one line, "dump" and optional words "json", "nobt", "system",
 * "group", "folded" (the weft_dump flags);
 * the server answers with weft_dump's output and closes. "top" instead asks for the
 * profiler's last window (weft_dump_top), turning the profiler on at TOP_HZ when it is off. Only a peer with our effective uid
 * (SO_PEERCRED) is answered; the default socket lives in a 0700 directory of that uid. */
#include "config.h"
#include "dump.h"
#include "sys.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define REQUEST_MAX 256
#define CLIENT_MS 5000
#define TOP_HZ 100          /* the profiler's rate when a "top" request turns it on */      /* a client gets this long to ask and to read the answer */

static atomic_int listening;
static char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pid_t sock_pid;
static int sock_fd = -1;                /* the listener, while listening */
static int sock_default;                /* it is at the default path (PID.sock) */
static struct sched *sock_sched;        /* the scheduler its server task runs on */
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

int weft_debug_listening(void)
{
    return atomic_load(&listening);
}

static void unlink_at_exit(void)
{
    if (atomic_load(&listening) && sock_pid == getpid())
        unlink(sock_path);
}

static void after_fork_child(void);

static void register_atexit(void)
{
    atexit(unlink_at_exit);
    pthread_atfork(NULL, NULL, after_fork_child);
}

/* $XDG_RUNTIME_DIR/weft/PID.sock, else /tmp/weft-UID/PID.sock; the directory is made 0700
 * and must belong to us (a directory someone else made in /tmp is refused). */
static int default_path(char *out, size_t n)
{
    char dir[sizeof sock_path];
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int len;
    if (xdg && xdg[0] == '/')
        len = snprintf(dir, sizeof dir, "%s/weft", xdg);
    else
        len = snprintf(dir, sizeof dir, "/tmp/weft-%u", (unsigned)geteuid());
    if (len < 0 || (size_t)len >= sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (lstat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
        errno = EACCES;
        return -1;
    }
    if ((st.st_mode & 077) && chmod(dir, 0700) != 0)
        return -1;
    len = snprintf(out, n, "%s/%ld.sock", dir, (long)getpid());
    if (len < 0 || (size_t)len >= n) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

static void reply(int c, const char *msg)
{
    weft_write_full(c, msg, strlen(msg));
}

/* Read the request line; returns its length, or -1. */
static ssize_t read_request(int c, char *req, size_t cap)
{
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t r = weft_read(c, req + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(req, '\n', n))
            break;
    }
    req[n] = '\0';
    char *nl = strchr(req, '\n');
    if (nl)
        *nl = '\0';
    return nl || n ? (ssize_t)strlen(req) : -1;
}

#define REQ_TOP (-1)        /* parse_request's *flags for "top" */

static int parse_request(char *req, int *flags)
{
    char *save = NULL;
    char *w = strtok_r(req, " \t\r", &save);
    if (w && strcmp(w, "top") == 0 && !strtok_r(NULL, " \t\r", &save)) {
        *flags = REQ_TOP;
        return 0;
    }
    if (!w || strcmp(w, "dump") != 0)
        return -1;
    *flags = 0;
    while ((w = strtok_r(NULL, " \t\r", &save)) != NULL) {
        if (strcmp(w, "group") == 0)
            *flags |= WEFT_DUMP_GROUP;
        else if (strcmp(w, "folded") == 0)
            *flags |= WEFT_DUMP_FOLDED;
        else if (strcmp(w, "json") == 0)
            *flags |= WEFT_DUMP_JSON;
        else if (strcmp(w, "nobt") == 0)
            *flags |= WEFT_DUMP_NO_BACKTRACE;
        else if (strcmp(w, "system") == 0)
            *flags |= WEFT_DUMP_SYSTEM;
        else
            return -1;
    }
    return 0;
}

static void serve(int c)
{
    int64_t old = weft_set_task_deadline(weft_now() + CLIENT_MS);
    char req[REQUEST_MAX];
    int flags;
    /* The request is read first even from a stranger: closing a Unix socket with unread
     * data resets the connection, and the refusal would be lost. */
    if (read_request(c, req, sizeof req) < 0) {
        weft_set_task_deadline(old);
        return;
    }
    struct ucred cr;
    socklen_t len = sizeof cr;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || cr.uid != geteuid()) {
        reply(c, "error: permission denied (not the process's user)\n");
        weft_set_task_deadline(old);
        return;
    }
    if (parse_request(req, &flags) != 0) {
        reply(c, "error: unknown request (expected: dump [json] [nobt] [system] [group] [folded], or top)\n");
        weft_set_task_deadline(old);
        return;
    }
    /* Dump into memory first, so the tasks are paused only for the dump itself and never
     * for a slow reader. */
    int m = memfd_create("weft-dump", MFD_CLOEXEC);
    if (m < 0 || (flags == REQ_TOP ? weft_dump_top(m, TOP_HZ) : weft_dump(m, flags | WEFT_DUMP_ALL_THREADS)) != 0 ||
        lseek(m, 0, SEEK_SET) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "error: dump failed: %s\n", strerror(errno));
        reply(c, msg);
    } else {
        char buf[16384];
        ssize_t r;
        while ((r = weft_sys_read(m, buf, sizeof buf)) > 0) {
            if (weft_write_full(c, buf, (size_t)r) != r)
                break;
        }
    }
    if (m >= 0)
        weft_sys_close(m);
    weft_set_task_deadline(old);
}

/* In a forked child (run by pthread_atfork after the scheduler's own handler, which has
 * given the child its own reactor): the listener and its path are the parent's, so the
 * child's copy is closed at once (the parent's socket must never be answered by the child),
 * which wakes the child's copy of the server task. That task then opens the child's own
 * socket when the parent served the default path (PID.sock names the child now). */
static void after_fork_child(void)
{
    if (!atomic_load(&listening))
        return;
    int fd = sock_fd;
    sock_fd = -1;
    atomic_store(&listening, 0);
    if (weft_sched_tls == sock_sched)
        weft_close(fd);         /* wakes the server task, parked in accept on it */
    else
        weft_sys_close(fd);     /* its scheduler's thread is not in the child */
}

static void *debug_server(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    pid_t owner = getpid();
    for (;;) {
        int c = weft_accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (getpid() != owner) {    /* a forked child: the socket was the parent's */
            if (c >= 0)
                weft_close(c);
            if (sock_default && !atomic_load(&listening))
                weft_debug_listen(NULL);
            return NULL;
        }
        if (c < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
                weft_sleep(100) == 0)
                continue;
            break;      /* ECANCELED: weft_run is ending */
        }
        serve(c);
        weft_close(c);
    }
    weft_close(lfd);
    unlink(sock_path);
    sock_fd = -1;
    atomic_store(&listening, 0);
    return NULL;
}

int weft_debug_listen(const char *path)
{
    struct sched *s = weft_sched_get();
    if (!s)
        return -1;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&listening, &expected, 1)) {
        errno = EEXIST;
        return -1;
    }
    char p[sizeof sock_path];
    if (path) {
        if (strlen(path) >= sizeof p) {
            atomic_store(&listening, 0);
            errno = ENAMETOOLONG;
            return -1;
        }
        strcpy(p, path);
    } else if (default_path(p, sizeof p) != 0) {
        atomic_store(&listening, 0);
        return -1;
    }
    /* A socket left by a process that died (pids are reused): replace it. Anything else
     * at the path is not ours to remove, and bind reports EADDRINUSE. */
    struct stat st;
    if (lstat(p, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(p);
    int fd = weft_unix_listen(p, 16);
    if (fd < 0) {
        int e = errno;
        atomic_store(&listening, 0);
        errno = e;
        return -1;
    }
    strcpy(sock_path, p);
    sock_pid = getpid();
    sock_fd = fd;
    sock_default = path == NULL;
    sock_sched = s;
    pthread_once(&atexit_once, register_atexit);
    if (!weft_spawn_system(debug_server, (void *)(intptr_t)fd, "weft-debug")) {
        int e = errno;
        weft_close(fd);
        unlink(p);
        atomic_store(&listening, 0);
        errno = e;
        return -1;
    }
    return 0;
}

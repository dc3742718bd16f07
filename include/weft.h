/* weft: green threads on an epoll reactor.
 *
 * A task is a C function with its own stack. It runs until it would block; then it parks on
 * the reactor (epoll + timers) and the scheduler runs another task. One scheduler per thread,
 * no locks: run one per core with SO_REUSEPORT to use more.
 *
 * Conventions
 * - Errors: -1 (or NULL) and errno, as POSIX calls do. Each call lists its errnos.
 * - Time: weft_now() is CLOCK_MONOTONIC in milliseconds. A deadline is an absolute weft_now()
 *   value; -1 means no deadline; a deadline already past fails at once with ETIMEDOUT.
 * - Cancellation: after weft_cancel(t), every blocking weft call in t (sleep, join, IO waits,
 *   yield) fails with ECANCELED, including one t is parked in now. It is sticky, so a
 *   cancelled task cannot block again (weft_yield still yields); it cleans up and returns.
 * - Outside any task (e.g. in main before weft_run), a blocking call behaves as the plain
 *   blocking call: weft_sleep sleeps the thread, the IO wrappers make the libc call, and
 *   weft_join drives the scheduler until the task ends. Calls that only make sense inside a
 *   task (weft_yield, weft_exit, weft_fdwait) fail with EPERM there.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <time.h>
#include <sys/select.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

/* The version of this header: MAJOR.MINOR.PATCH. configure.ac takes the package version from
 * this line, so it is the one place to change it; weft_version() gives the library's at run
 * time. The ABI policy (what a version change promises): docs/abi.md. */
#define WEFT_VERSION "0.1.0"
#define WEFT_VERSION_MAJOR 0
#define WEFT_VERSION_MINOR 1
#define WEFT_VERSION_PATCH 0
/* WEFT_VERSION_AT_LEAST(0, 2, 0): is this header that version or a later one? */
#define WEFT_VERSION_AT_LEAST(maj, min, pat)                                                  \
    (WEFT_VERSION_MAJOR > (maj) ||                                                           \
     (WEFT_VERSION_MAJOR == (maj) && (WEFT_VERSION_MINOR > (min) ||                          \
                                      (WEFT_VERSION_MINOR == (min) && WEFT_VERSION_PATCH >= (pat)))))

/* ---- tasks -------------------------------------------------------------------------------- */

/* A task handle: an opaque value, not a pointer to dereference, never NULL. It names its
 * task until the task's resources go (after weft_join, or when a detached task ends); from
 * then on every call given the handle fails with EINVAL (weft_id gives 0), even once a new
 * task has taken the old one's place, and also after weft_run has released the thread's
 * scheduler and a new one has started. The one limit: a handle carries a 32-bit generation
 * of its place, and a freed place is reused only after every other free one, so a stale
 * handle could name a new task only after 2^32 tasks have ended in that one place. Handles
 * are per thread: given to another thread's calls, one may name a task of that thread. */
typedef struct weft_handle weft_task;

/* Stack sizes: the default, and the bounds spawn accepts. Stacks are mmap'd and committed
 * lazily (a task that never goes deep uses a page or two of memory), with a guard below. */
#define WEFT_STACK_DEFAULT ((size_t)128 * 1024)
#define WEFT_STACK_MIN     ((size_t)16 * 1024)
#define WEFT_STACK_MAX     ((size_t)1024 * 1024 * 1024)

/* Spawn attributes; zero-initialise and set what you need:
 *   weft_attr a = { .stack_size = 64 * 1024, .name = "worker" }; */
typedef struct weft_attr {
    size_t stack_size;     /* 0: WEFT_STACK_DEFAULT; else WEFT_STACK_MIN..WEFT_STACK_MAX */
    const char *name;      /* copied (up to 31 bytes); NULL: unnamed */
    int detached;          /* nonzero: nobody joins; resources go when the task ends */
    int daemon;            /* nonzero: does not keep weft_run going (see weft_run); the
                              dump marks it "daemon" */
    int run_now;           /* nonzero, from inside a task: the new task runs at once, and
                              the spawner goes to the FRONT of the run queue (see below) */
    int reserved[3];       /* must be zero */
} weft_attr;

/* Start fn(arg) as a new task; it first runs when the spawner blocks or yields (or, from
 * outside any task, when the scheduler runs). weft_go and weft_spawn record the call site
 * for the task dump. Errors: EINVAL (fn NULL, stack size out of range, reserved not zero),
 * ENOMEM (no memory or no address space for the stack or the task record).
 * With attr->run_now set inside a task, the new task runs before the spawn returns: the
 * spawner is put at the front of the run queue (the dump shows it runnable) and resumes as
 * soon as the new task blocks, yields or ends, before any other runnable task; nothing
 * else is reordered. A run-now task may itself spawn run-now (each level holds one stack).
 * A detached task may have ended, and its handle gone stale, by the time the spawn returns.
 * From outside any task run_now is ignored: the spawn is the ordinary one. */
/* Variadic so that a compound literal with commas works as the attribute:
 *   weft_spawn(&(weft_attr){ .name = "w", .detached = 1 }, fn, arg) */
#define weft_go(...) weft_spawn_at(NULL, __VA_ARGS__, __FILE__, __LINE__)
#define weft_spawn(...) weft_spawn_at(__VA_ARGS__, __FILE__, __LINE__)
/* weft_go with run_now: weft_go_now(fn, arg) runs fn(arg) at once (joinable). C only. */
#define weft_go_now(...) weft_spawn_at(&(weft_attr){ .run_now = 1 }, __VA_ARGS__, __FILE__, __LINE__)
WEFT_API weft_task *weft_spawn_at(const weft_attr *attr, void *(*fn)(void *), void *arg,
                                  const char *file, int line);

/* Let the other runnable tasks run; the caller goes to the back of the run queue. Also polls
 * the reactor now and then, so a busy task never starves IO. Errors: ECANCELED (the task has
 * been cancelled; it yields all the same, so `while (!done) weft_yield();` in a cancelled
 * task still lets the task that sets done run), EPERM (outside any task). */
WEFT_API int weft_yield(void);

/* How many tasks are runnable now, not counting the caller: the run queue's length (tasks
 * spawned and not yet started count, parked ones do not). O(1). 0 outside any scheduler;
 * from outside any task, every runnable task. No errors. */
WEFT_API int weft_runnable(void);

/* The running task, or NULL outside any task. */
WEFT_API weft_task *weft_self(void);

/* A task's id (unique in the thread, never reused; the first task is 1). t NULL: the running
 * task; 0 outside any task. A stale handle gives 0 with errno EINVAL. */
WEFT_API uint64_t weft_id(const weft_task *t);

/* Name a task for the dump (copied, truncated to 31 bytes; NULL clears). t NULL: the running
 * task. Errors: EPERM (t NULL outside any task), EINVAL (stale handle). */
WEFT_API int weft_set_name(weft_task *t, const char *name);
/* The task's name, "" when unnamed. t NULL: the running task (NULL outside any task). A
 * stale handle gives NULL with errno EINVAL. */
WEFT_API const char *weft_name(const weft_task *t);

/* A pointer of the user's, kept with the task (NULL until set; weft never looks at it).
 * t NULL: the running task. weft_data gives NULL for a task with none set, and NULL with
 * errno set on failure. Errors: EPERM (t NULL outside any task), EINVAL (stale handle). */
WEFT_API int weft_set_data(weft_task *t, void *p);
WEFT_API void *weft_data(const weft_task *t);

/* End the running task with value (what weft_join reports). Does not return inside a task.
 * Errors: EPERM (outside any task). */
WEFT_API int weft_exit(void *value);

/* Wait for t to end and collect its value (may be NULL); the handle is stale afterwards.
 * A task that ended is reported at once. Errors: EINVAL (t NULL or stale, detached,
 * already joined, or being joined by another task), EDEADLK (t is the caller), ETIMEDOUT
 * (the deadline passed; t runs on and can be joined again), ECANCELED (the caller was
 * cancelled). Outside any task, runs the scheduler until t ends or the deadline passes;
 * there it also fails with EDEADLK when nothing could ever wake t (every task waits on
 * another task). */
WEFT_API int weft_join(weft_task *t, void **value);
WEFT_API int weft_join_until(weft_task *t, void **value, int64_t deadline);

/* Nobody will join t; its resources go when it ends (at once if it has ended), and the
 * handle goes stale then. Errors: EINVAL (t NULL or stale, already detached or joined, or
 * being joined). */
WEFT_API int weft_detach(weft_task *t);

/* Cancel t: its current or next blocking weft call returns -1 with ECANCELED, and so does
 * every later one (see Conventions). A task parked in sleep, join or IO wakes at once.
 * Cancelling an ended task does nothing. Errors: EINVAL (t NULL or stale: joined, or
 * detached and ended). */
WEFT_API int weft_cancel(weft_task *t);

/* Sleep ms milliseconds (<= 0: just yield) or until an absolute deadline (-1: until
 * cancelled). Returns 0 when the time has come. Errors: ECANCELED; ETIMEDOUT (the task's
 * deadline scope ended first); ENOMEM (no memory for the timer); EINVAL (deadline -1 outside
 * any task, which would sleep the thread forever). */
WEFT_API int weft_sleep(int64_t ms);
WEFT_API int weft_sleep_until(int64_t deadline);

/* Monotonic time in milliseconds. */
WEFT_API int64_t weft_now(void);

/* Run the scheduler on this thread until no task is left. Returns 0; when every remaining
 * task waits for another task (nothing can ever wake them: no timer, no fd, no offload),
 * returns -1 with EDEADLK and leaves them for weft_dump. Daemon tasks (weft_attr.daemon) do
 * not count: once only daemons are left, busy or waiting on anything (other tasks included),
 * weft_run cancels them and runs until they have ended, then returns 0. A joinable daemon
 * can still be joined afterwards. Errors also: EPERM (inside a task). When nothing is
 * left, the thread's scheduler memory (pooled stacks included) is released. */
WEFT_API int weft_run(void);

/* Spawn fn(arg) and run the scheduler until no task is left: a program's main in one line.
 * The task is named "main". Errors: those of weft_spawn and weft_run; EPERM (inside a task:
 * nothing is spawned). */
WEFT_API int weft_main(void *(*fn)(void *), void *arg);
/* weft_main with spawn attributes for fn's task (stack size, name; NULL name: "main"). The
 * task is always detached and never a daemon, whatever attr says; attr NULL: weft_main.
 * Errors: those of weft_spawn (EINVAL: fn NULL, stack size out of range, reserved not
 * zero; ENOMEM) and weft_run (EDEADLK); EPERM (inside a task: nothing is spawned). */
WEFT_API int weft_main_attr(const weft_attr *attr, void *(*fn)(void *), void *arg);

/* ---- generators ---------------------------------------------------------------------------- */

/* A generator: fn(arg) runs as a task of its own that hands values to its caller with
 * weft_gen_yield and gets back the value the caller sends next, as Python's generators do.
 *   weft_gen *g = weft_gen_make(NULL, count, &n);
 *   void *v; while (weft_gen_next(g, &v) == 0) use(v);
 *   weft_gen_close(g);
 * The caller is a task or the main context (outside any task: then other tasks run while
 * the generator blocks, as in weft_join). A round trip (send, then the yield that answers
 * it) is two direct switches, never through the run queue. The generator may block (IO,
 * sleep, join, ...): its caller stays parked in send meanwhile (the dump shows it in
 * "gen-wait send", naming the generator and its task) and the other tasks run.
 * Inside fn, weft_self() is the generator's own task (weft_id, weft_set_name, weft_cancel
 * work on it; it cannot be joined or detached). weft_exit(value) inside fn ends it as
 * returning value would (the caller's send fails with EPIPE; weft_gen_result gives value).
 * Handles are per thread, like task handles; a closed generator's handle is
 * stale, and every call given it fails with EPIPE. */
typedef struct weft_gen weft_gen;

/* Make a generator; fn starts at the first send (whose value is ignored: fn has arg) and
 * never before. attr: stack size and name as for weft_spawn (NULL: defaults); its detached,
 * daemon and run_now fields are ignored: a generator is never joined, and does not keep weft_run
 * going (when only generators and daemons are left, weft_run cancels them: a pending yield
 * fails with ECANCELED and the generator ends). Records the call site for the dump.
 * Errors: EINVAL (fn NULL, bad attr), ENOMEM. */
#define weft_gen_make(...) weft_gen_make_at(__VA_ARGS__, __FILE__, __LINE__)
WEFT_API weft_gen *weft_gen_make_at(const weft_attr *attr, void *(*fn)(void *), void *arg,
                                    const char *file, int line);

/* Resume g with in (delivered as the value of its pending weft_gen_yield) and wait until it
 * yields again: returns 0 with *out (out may be NULL) the value yielded. When fn returns
 * instead, -1 with EPIPE, and weft_gen_result gives fn's value. Errors: EINVAL (g NULL or
 * not a generator), EPIPE (fn has returned, or g is closed: the send does nothing),
 * EDEADLK (called inside g itself), EBUSY (another task or main is in send or close on g),
 * ECANCELED (the caller is cancelled, at once or while g blocks), ETIMEDOUT (the caller's
 * deadline scope passed while g blocks), EDEADLK from the main context (nothing could wake
 * g: as weft_join). When the caller's wait ends early (ECANCELED, ETIMEDOUT) g is left as it
 * was: it runs on, and the value it yields next is kept; the next send is then a retry of
 * that round: it returns the kept value at once and its own in is not delivered (the first
 * send's was). A send to a generator that is still running such a round waits for it. */
WEFT_API int weft_gen_send(weft_gen *g, void *in, void **out);
/* weft_gen_send(g, NULL, out): plain iteration. */
WEFT_API int weft_gen_next(weft_gen *g, void **out);

/* Inside a generator's fn: hand out to the caller, and wait for the next send: returns 0
 * with *in (in may be NULL) the value sent. Errors: EPERM (not inside a generator),
 * ECANCELED (weft_gen_close, or weft_cancel of the generator's task: fn should clean up and
 * return; every later yield fails at once with ECANCELED again, delivering nothing),
 * ETIMEDOUT (the generator's own deadline scope passed while it waited). When a yield
 * fails, its out is not delivered. The generator's task deadline scope and cancellation
 * apply to yield as to any wait. */
WEFT_API int weft_gen_yield(void *out, void **in);

/* fn's return value, once it has returned (NULL if fn never ran: closed or cancelled
 * before its first send). Errors: EINVAL (g NULL or not a generator), EAGAIN (fn has not
 * returned yet), EPIPE (g is closed). */
WEFT_API int weft_gen_result(const weft_gen *g, void **value);

/* End g and free it; the handle is stale afterwards. If fn is suspended in weft_gen_yield,
 * that yield fails with ECANCELED and close waits while fn cleans up and returns (its value
 * is dropped); if fn never started, it never runs; if g is mid-round with no caller (after
 * an interrupted send), its task is cancelled so its blocking call fails, and close waits
 * for its end. When the caller cannot wait (it is cancelled, or its deadline scope has
 * passed, or from main nothing could wake g), g's task is cancelled instead (none of its
 * calls can block then) and g is freed when fn returns; close returns 0 all the same.
 * Errors: EINVAL (g NULL or not a generator), EPIPE (already closed), EDEADLK (called
 * inside g itself), EBUSY (a task or main is in send on g). */
WEFT_API int weft_gen_close(weft_gen *g);

/* ---- reactor and IO ----------------------------------------------------------------------- */

#define WEFT_READ  1
#define WEFT_WRITE 2

/* Park until fd is readable and/or writable (events: WEFT_READ | WEFT_WRITE), the deadline
 * passes, the task is cancelled, or fd is closed with weft_close. For fds the wrappers do not
 * cover (pipes, eventfd, timerfd, inotify, ...). Returns the ready events (a subset of
 * events, at least one). Errors: EINVAL (events empty or unknown), EBADF (fd is not open, or
 * was closed while waiting), EPERM (outside any task; use poll(2)), ETIMEDOUT, ECANCELED,
 * ENOMEM, and epoll_ctl's errors (EPERM for a regular file, which is always ready: don't
 * wait on those). */
WEFT_API int weft_fdwait(int fd, int events, int64_t deadline);

/* Go-style per-fd deadlines, for the direction(s) in dirs (WEFT_READ | WEFT_WRITE): every
 * wrapper call on fd in that direction fails with ETIMEDOUT once the deadline has passed,
 * including one parked now. -1 clears. Errors: EBADF, EINVAL. */
WEFT_API int weft_fd_set_deadline(int fd, int dirs, int64_t deadline);

/* Per-task deadline scope: every blocking call of the running task fails with ETIMEDOUT once
 * deadline has passed. Returns the previous scope deadline, to restore when the scope ends:
 *   int64_t old = weft_set_task_deadline(weft_now() + 500); ...; weft_set_task_deadline(old);
 * Outside any task: returns -1 and does nothing. */
WEFT_API int64_t weft_set_task_deadline(int64_t deadline);

/* Drop-in wrappers with libc's signatures and semantics (partial transfers, 0 at EOF, -1 and
 * errno). Inside a task, an operation that would block parks the task instead. Sockets are
 * used with MSG_DONTWAIT and keep their O_NONBLOCK flag as the user set it; other fds
 * (pipes, terminals, ...) and the calls that have no per-call flag (accept, connect,
 * sendfile) need O_NONBLOCK, which weft sets on the fd before the call (and clears again
 * when weft_run returns with nothing left, at weft_fd_forget, so plain calls block again).
 * If the user had set O_NONBLOCK, the call stays non-blocking (EAGAIN) as libc's would; so
 * does a call given MSG_DONTWAIT. MSG_WAITALL on a stream socket waits for all n bytes (or
 * EOF, or an error: then the bytes before it are returned), as the blocking call does.
 * Extra errnos: ETIMEDOUT (an fd or task deadline passed), ECANCELED, EBADF (fd closed by
 * weft_close while the call was parked, even if the call had already been woken for data:
 * it never reads a reused number's new file). Writes on sockets use MSG_NOSIGNAL, so a
 * closed peer gives EPIPE, not SIGPIPE. Outside any task, each is the plain libc call. */
WEFT_API ssize_t weft_read(int fd, void *buf, size_t n);
WEFT_API ssize_t weft_write(int fd, const void *buf, size_t n);
WEFT_API ssize_t weft_readv(int fd, const struct iovec *iov, int iovcnt);
WEFT_API ssize_t weft_writev(int fd, const struct iovec *iov, int iovcnt);
WEFT_API ssize_t weft_recv(int fd, void *buf, size_t n, int flags);
WEFT_API ssize_t weft_send(int fd, const void *buf, size_t n, int flags);
WEFT_API ssize_t weft_recvfrom(int fd, void *buf, size_t n, int flags,
                               struct sockaddr *addr, socklen_t *addrlen);
WEFT_API ssize_t weft_sendto(int fd, const void *buf, size_t n, int flags,
                             const struct sockaddr *addr, socklen_t addrlen);
WEFT_API ssize_t weft_recvmsg(int fd, struct msghdr *msg, int flags);
WEFT_API ssize_t weft_sendmsg(int fd, const struct msghdr *msg, int flags);
WEFT_API int weft_accept(int fd, struct sockaddr *addr, socklen_t *addrlen);
WEFT_API int weft_accept4(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* Non-blocking connect, completed when the socket turns writable; the result comes from
 * SO_ERROR, so failures give connect(2)'s errnos (ECONNREFUSED, ...). A Unix socket whose
 * listener's backlog is full is retried (after 1 ms, doubling to 32 ms) until a deadline or
 * a cancel, as the blocking call waits. */
WEFT_API int weft_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
WEFT_API ssize_t weft_sendfile(int out_fd, int in_fd, off_t *offset, size_t count);
/* Wake every task parked on fd (they get EBADF), remove fd from the reactor, then close(2).
 * Close fds the wrappers have used with this (or call weft_fd_forget before close(2)): weft
 * keeps what it learnt of an fd (registered with epoll, deadlines, the user's O_NONBLOCK)
 * until then. A plain close(2) and a reuse of the number by a file weft has not seen never
 * blocks the thread (socket calls say MSG_DONTWAIT, other fds are checked for O_NONBLOCK
 * before each call and re-armed in epoll at each park), but a parked wrapper call on a new
 * socket behind such a stale record may wait until its deadline: forget the fd first. */
WEFT_API int weft_close(int fd);

/* Hand fd to code outside weft: wake every task parked on it (they get EBADF), remove it
 * from the reactor, give it back blocking if weft made it non-blocking, and forget it; the
 * fd stays open. weft learns it afresh if a wrapper sees it again. This is also how an fd
 * passes to another thread's loop: what weft knows of an fd is one loop's, and another loop
 * would take the O_NONBLOCK weft set for the program's own. Errors: EBADF (not open). */
WEFT_API int weft_fd_forget(int fd);

/* poll(2) for tasks: parks until an fd is ready or timeout_ms passes (-1: no timeout; never
 * early), then reports like poll; an fd closed with weft_close meanwhile is reported
 * POLLNVAL. Extra errnos: ECANCELED, ETIMEDOUT (the task's deadline scope), EINVAL (more
 * than 65536 fds), ENOMEM. Outside any task, or with timeout 0, plain poll. */
WEFT_API int weft_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);

/* Transfer exactly n bytes unless EOF or an error comes first. Returns n; the short count
 * at EOF (read), with errno 0 (errno is the thread's, and other tasks run while this one
 * waits: 0 tells EOF from an error); or, after an error, the count transferred before it with errno set (-1 when
 * nothing was transferred). So a short return never loses the bytes already moved. */
WEFT_API ssize_t weft_read_full(int fd, void *buf, size_t n);
WEFT_API ssize_t weft_write_full(int fd, const void *buf, size_t n);

/* The rest of what weft/posix.h and --wrap (docs/wrap.md) route, with libc's semantics:
 * fcntl: F_GETFL shows, and F_SETFL sets, O_NONBLOCK as the caller wants it (weft keeps
 * what it needs underneath); other commands pass through. select: poll on the same fds,
 * Linux's update of *tv kept, never early. nanosleep, usleep, sleep_sec (sleep(3)): park the
 * task (whole milliseconds, rounded up; a cancelled sleep fails with ECANCELED, or for
 * sleep_sec returns the seconds left); outside any task, sleep the thread. Errors: those
 * of the libc calls, and ECANCELED, ETIMEDOUT (the task's deadline scope), ENOMEM. */
WEFT_API int weft_fcntl(int fd, int cmd, ...);
WEFT_API int weft_select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv);
WEFT_API int weft_nanosleep(const struct timespec *req, struct timespec *rem);
WEFT_API int weft_usleep(unsigned int usec);
WEFT_API unsigned int weft_sleep_sec(unsigned int seconds);

/* ---- net helpers -------------------------------------------------------------------------- */

/* Flags for the helpers below. */
#define WEFT_REUSEPORT 0x1     /* SO_REUSEPORT: one listener per scheduler thread */
#define WEFT_NODELAY   0x2     /* TCP_NODELAY on the socket (and on accepted ones, for listen) */
#define WEFT_NONBLOCK  0x4     /* the user keeps the socket non-blocking: the wrappers give
                                  EAGAIN instead of parking (as after accept4's SOCK_NONBLOCK);
                                  weft_tcp_dial still parks until connected */

/* Hosts, for the TCP and UDP helpers below: a numeric IPv4 or IPv6 address (IPv6 in
 * brackets or not), "localhost" (127.0.0.1), or a host name, looked up with weft_getaddrinfo
 * on the offload pool (the task parks meanwhile; within the dial's deadline for
 * weft_tcp_dial) and its addresses tried in turn (the first that works is used; the first
 * error is reported when none does). Name errors: EHOSTUNREACH (no such name, no address:
 * EAI_NONAME, EAI_FAIL, EAI_NODATA), EAGAIN (EAI_AGAIN: the name server did not answer),
 * ENOMEM, and the pool's (ETIMEDOUT, ECANCELED from the task's scope or cancel).
 * TCP listener on host:port (host as above, or NULL for all IPv6 and IPv4 addresses);
 * SO_REUSEADDR always. Port 0 picks a free port (see weft_local_port). Returns the fd.
 * Errors: those of socket/bind/listen; EINVAL (port out of range, unknown flags, an empty
 * host); the name errors above. */
WEFT_API int weft_tcp_listen(const char *host, int port, int backlog, int flags);
/* Connect to host:port, parking until connected (each address of a name in turn, all within
 * the deadline). Returns the fd. Errors: those of connect(2), ETIMEDOUT, ECANCELED, EINVAL
 * and the name errors (as above). */
WEFT_API int weft_tcp_dial(const char *host, int port, int flags, int64_t deadline);
WEFT_API int weft_unix_listen(const char *path, int backlog);
/* Connect to a Unix stream socket. A listener whose backlog is full is waited for (retried
 * after 1 ms, doubling to 32 ms) until the deadline, as a blocking connect waits. */
WEFT_API int weft_unix_dial(const char *path, int64_t deadline);
/* UDP socket bound to host:port, or connected to it (hosts and errors as above). */
WEFT_API int weft_udp_bind(const char *host, int port, int flags);
WEFT_API int weft_udp_connect(const char *host, int port, int flags);
/* The local port of a bound socket, or -1 and errno. */
WEFT_API int weft_local_port(int fd);

/* ---- sync: wait queues, mutex, condition variable, wait group, semaphore, task group ----- */

/* Every primitive here is a plain struct to embed or declare static; all zero is a valid,
 * unlocked, empty one (the _INIT macros say the same, and name one for the dump). The
 * fields ending in _ are private. A primitive belongs to one thread's scheduler (tasks never
 * migrate) and must not be copied or moved once used. None allocates, except a task
 * group's spawn (a small record beside the task's stack).
 *
 * Waits: deadline -1 waits for ever; a deadline already past makes the call a try (it
 * succeeds when it can at once, else fails with ETIMEDOUT). A waiter that times out or is
 * cancelled leaves the queue at once: it is never handed what it no longer waits for, and
 * the primitive is as if it had never waited. Waiters are served FIFO. Only a call that
 * would block needs a task: one outside any task fails with EPERM where it would park. And
 * only waiting fails in a cancelled task (ECANCELED): a call that need not wait (a free
 * mutex, a free permit) succeeds, so cleanup can still take a lock.
 * A task parked here shows in the dump as lock-wait, cond-wait, wg-wait or sem-wait, with
 * the primitive's name (or address), how many wait, and for a mutex the holder's task id.
 * Destroy: each *_destroy fails with EBUSY while the primitive is in use (locked, tasks
 * waiting, members alive); after it, every call but *_init fails with EINVAL. */

/* A FIFO of parked tasks: the low-level pair the primitives below are built on, public so
 * that users build their own (a rendezvous, a latch, a single-slot mailbox). */
typedef struct weft_waitq {
    void *q_[2];                /* the parked tasks (all zero: none, set up on first use) */
    long n_;                    /* how many are parked */
    const char *name;           /* for the dump (not copied); NULL: the dump shows the address */
    unsigned dead_;             /* set by a destroy call */
} weft_waitq;
#define WEFT_WAITQ_INIT_NAMED(nm) { { NULL, NULL }, 0, (nm), 0 }
#define WEFT_WAITQ_INIT WEFT_WAITQ_INIT_NAMED(NULL)

/* Make q an empty queue named name (NULL: unnamed); never on a queue tasks wait on.
 * Errors: EINVAL (q NULL). */
WEFT_API int weft_waitq_init(weft_waitq *q, const char *name);
/* Park the running task at the tail of q until weft_unpark_one/all wakes it (returns 0),
 * the deadline passes (ETIMEDOUT), or the task is cancelled (ECANCELED). reason (a string
 * that must outlive the wait, e.g. a literal) is what the dump shows it waiting for:
 * `[waiting <reason> "<q's name>"...]`, JSON "kind":"user", "op":reason. There are no
 * spurious wake-ups, but as with any condition, re-check what you wait for after a wake.
 * Errors: EINVAL (q NULL), EPERM (outside any task), ETIMEDOUT, ECANCELED, ENOMEM (no memory
 * for the timer). */
WEFT_API int weft_park(weft_waitq *q, const char *reason, int64_t deadline);
/* Make the first (or every) task parked on q runnable; its weft_park returns 0. From a task
 * or from the main context; the woken run after the caller blocks or yields. Returns how
 * many were woken (0 when none waited). Errors: EINVAL (q NULL). */
WEFT_API int weft_unpark_one(weft_waitq *q);
WEFT_API int weft_unpark_all(weft_waitq *q);
/* How many tasks are parked on q (or wait on the primitive that embeds it); -1 and EINVAL
 * for q NULL. */
WEFT_API long weft_waitq_waiting(const weft_waitq *q);

/* Mutex, owned by a task; not recursive. Unlock hands it straight to the first waiter (the
 * next owner is decided at unlock, so no task starves and arrival order is acquisition
 * order). A cancelled task still takes a free mutex (cleanup often needs one); only a wait
 * fails with ECANCELED. A task that ends holding a mutex leaves it locked. */
typedef struct weft_mutex {
    weft_waitq q_;
    weft_task *owner_;          /* the holder's handle; NULL when unlocked */
    uint64_t owner_id_;         /* its id, for the dump */
} weft_mutex;
#define WEFT_MUTEX_INIT_NAMED(nm) { WEFT_WAITQ_INIT_NAMED(nm), NULL, 0 }
#define WEFT_MUTEX_INIT WEFT_MUTEX_INIT_NAMED(NULL)

/* Errors: EINVAL (m NULL). */
WEFT_API int weft_mutex_init(weft_mutex *m, const char *name);
/* Errors: EINVAL (NULL or destroyed), EBUSY (locked, or tasks wait on it). */
WEFT_API int weft_mutex_destroy(weft_mutex *m);
/* Lock m, waiting for it until deadline (-1: no deadline; already past: a trylock).
 * Errors: EINVAL (m NULL or destroyed), EPERM (outside any task: a mutex is held by a task),
 * EDEADLK (the caller holds m already), ETIMEDOUT (held by another task and the deadline,
 * or the task's deadline scope, passed), ECANCELED, ENOMEM (no memory for the timer). */
WEFT_API int weft_mutex_lock(weft_mutex *m, int64_t deadline);
/* Unlock m, handing it to the first waiter if there is one. Errors: EINVAL (m NULL or
 * destroyed), EPERM (the caller is not the holder, or is outside any task). */
WEFT_API int weft_mutex_unlock(weft_mutex *m);
/* The id of m's holder (weft_id), 0 when unlocked (or m NULL). */
WEFT_API uint64_t weft_mutex_holder(const weft_mutex *m);

/* Condition variable. */
typedef struct weft_cond {
    weft_waitq q_;
    weft_mutex *mutex_;         /* the mutex its waiters use, while any wait */
} weft_cond;
#define WEFT_COND_INIT_NAMED(nm) { WEFT_WAITQ_INIT_NAMED(nm), NULL }
#define WEFT_COND_INIT WEFT_COND_INIT_NAMED(NULL)

/* Errors: EINVAL (c NULL). */
WEFT_API int weft_cond_init(weft_cond *c, const char *name);
/* Errors: EINVAL (NULL or destroyed), EBUSY (tasks wait on it). */
WEFT_API int weft_cond_destroy(weft_cond *c);
/* Unlock m and park on c, atomically (no signal between the two is missed), until signalled
 * or the deadline passes; then lock m again before returning, in every case: also after a
 * timeout or a cancel, and however long that takes (the re-lock itself is not cut short by
 * a cancel or a deadline). Returns 0 when signalled; re-check the condition all the same.
 * Errors: EINVAL (c or m NULL or destroyed; m is not the mutex c's other waiters use),
 * EPERM (the caller does not hold m; outside any task), ETIMEDOUT, ECANCELED, ENOMEM. A
 * call that fails at once (cancelled already, deadline already past) keeps m throughout. */
WEFT_API int weft_cond_wait(weft_cond *c, weft_mutex *m, int64_t deadline);
/* Wake the first waiter (or every waiter); each re-takes its mutex before its wait returns.
 * The caller need not hold the mutex. From a task or from the main context. Returns how many
 * were woken. Errors: EINVAL (c NULL or destroyed). */
WEFT_API int weft_cond_signal(weft_cond *c);
WEFT_API int weft_cond_broadcast(weft_cond *c);

/* Wait group: a counter of outstanding work; wait parks until it is zero. */
typedef struct weft_wg {
    weft_waitq q_;
    long count_;
} weft_wg;
#define WEFT_WG_INIT_NAMED(nm) { WEFT_WAITQ_INIT_NAMED(nm), 0 }
#define WEFT_WG_INIT WEFT_WG_INIT_NAMED(NULL)

/* Errors: EINVAL (wg NULL). */
WEFT_API int weft_wg_init(weft_wg *wg, const char *name);
/* Errors: EINVAL (NULL or destroyed), EBUSY (tasks wait on it). */
WEFT_API int weft_wg_destroy(weft_wg *wg);
/* Add n (may be negative) to the counter; when it comes to zero, every waiter wakes. From a
 * task or from the main context. Errors: EINVAL (wg NULL or destroyed; the counter would go
 * below zero: nothing is changed), EOVERFLOW (it would pass LONG_MAX). */
WEFT_API int weft_wg_add(weft_wg *wg, long n);
/* weft_wg_add(wg, -1). */
WEFT_API int weft_wg_done(weft_wg *wg);
/* Park until the counter is zero (returns at once when it is). Errors: EINVAL (wg NULL or
 * destroyed), EPERM (outside any task, counter not zero), ETIMEDOUT, ECANCELED, ENOMEM. */
WEFT_API int weft_wg_wait(weft_wg *wg, int64_t deadline);

/* Counting semaphore. Release hands the permit straight to the first waiter. */
typedef struct weft_sem {
    weft_waitq q_;
    long count_;
} weft_sem;
#define WEFT_SEM_INIT_NAMED(count, nm) { WEFT_WAITQ_INIT_NAMED(nm), (count) }
#define WEFT_SEM_INIT(count) WEFT_SEM_INIT_NAMED(count, NULL)

/* Errors: EINVAL (s NULL, count negative). */
WEFT_API int weft_sem_init(weft_sem *s, long count, const char *name);
/* Errors: EINVAL (NULL or destroyed), EBUSY (tasks wait on it). */
WEFT_API int weft_sem_destroy(weft_sem *s);
/* Take a permit, waiting for one until deadline (already past: a try). From the main
 * context too while one is free. Errors: EINVAL (s NULL or destroyed), EPERM (none free,
 * outside any task), ETIMEDOUT, ECANCELED, ENOMEM. */
WEFT_API int weft_sem_acquire(weft_sem *s, int64_t deadline);
/* Give a permit back (or a first one): to the first waiter if any. From a task or from the
 * main context. Errors: EINVAL (s NULL or destroyed), EOVERFLOW (count at LONG_MAX). */
WEFT_API int weft_sem_release(weft_sem *s);
/* The free permits, -1 and EINVAL for s NULL. */
WEFT_API long weft_sem_value(const weft_sem *s);

/* Task group, for structured concurrency: tasks spawned into it are waited for together,
 * and none outlives weft_group_wait. A member fails the group by calling weft_group_fail
 * (its function's return value is not looked at); then, or when the group is cancelled,
 * or when a wait's deadline passes or its caller is cancelled, every member is cancelled,
 * and weft_group_wait still waits until each has ended. Once failed or cancelled, a group
 * stays so until weft_group_init. A member ends by returning from its function or by
 * weft_exit; either way it is counted out. */
typedef struct weft_group {
    weft_waitq q_;              /* the tasks in weft_group_wait */
    void *members_[2];          /* the members not yet ended */
    long n_;                    /* how many */
    int err_;                   /* the first failure's errno; 0 none */
} weft_group;
#define WEFT_GROUP_INIT_NAMED(nm) { WEFT_WAITQ_INIT_NAMED(nm), { NULL, NULL }, 0, 0 }
#define WEFT_GROUP_INIT WEFT_GROUP_INIT_NAMED(NULL)

/* Errors: EINVAL (g NULL). Never on a group with members. */
WEFT_API int weft_group_init(weft_group *g, const char *name);
/* Errors: EINVAL (NULL or destroyed), EBUSY (members alive, or tasks wait on it). */
WEFT_API int weft_group_destroy(weft_group *g);
/* Spawn fn(arg) as a member (as weft_spawn does; always detached: the group waits for it,
 * nobody joins it; the handle is valid until it ends). From a task or the main context.
 * attr->run_now: the member runs at once, as weft_spawn's, once it counts in the group.
 * Errors: those of weft_spawn, EINVAL also for g NULL or destroyed, ECANCELED (the group
 * has failed or been cancelled: nothing is spawned). */
#define weft_group_spawn(g, ...) weft_group_spawn_at((g), __VA_ARGS__, __FILE__, __LINE__)
#define weft_group_go(g, ...) weft_group_spawn_at((g), NULL, __VA_ARGS__, __FILE__, __LINE__)
WEFT_API weft_task *weft_group_spawn_at(weft_group *g, const weft_attr *attr,
                                        void *(*fn)(void *), void *arg,
                                        const char *file, int line);
/* Fail the group with errno err (> 0): the first failure is kept, and every member is
 * cancelled (the caller too, if it is one). From anywhere. Errors: EINVAL (g NULL or
 * destroyed, err <= 0). */
WEFT_API int weft_group_fail(weft_group *g, int err);
/* weft_group_fail(g, ECANCELED). */
WEFT_API int weft_group_cancel(weft_group *g);
/* Wait until every member has ended. When the deadline passes or the caller is cancelled
 * first, the members are cancelled (the group fails with ETIMEDOUT or ECANCELED unless it
 * had failed already) and the wait goes on until they have ended, so when it returns no
 * member runs. Returns 0 when none failed; else -1 with errno the group's first failure
 * (weft_group_fail's err, ECANCELED, ETIMEDOUT). Errors also: EINVAL (g NULL or destroyed),
 * EPERM (members alive, outside any task), EDEADLK (the caller is a member). */
WEFT_API int weft_group_wait(weft_group *g, int64_t deadline);
/* The members alive now; -1 and EINVAL for g NULL. */
WEFT_API long weft_group_size(const weft_group *g);
/* ---- channels and select ------------------------------------------------------------------ */

/* A channel carries elements of one fixed size between the tasks of one thread, copied in on
 * send and out on receive, so any C type fits (send a pointer to pass something large).
 * Capacity 0 makes it unbuffered: a send completes only when a receiver takes the element
 * (a rendezvous). Capacity N buffers up to N elements: a send completes at once while there
 * is room. Tasks parked on a channel are served first come, first served.
 *
 * Deadlines: -1 waits as long as it takes; a deadline already past (0, say) makes the call
 * non-blocking: it completes if it can at once and otherwise fails with ETIMEDOUT at once,
 * as every weft call does for a past deadline. A wait whose deadline passes fails with
 * ETIMEDOUT too, and so does any wait once the task's deadline scope has passed. A cancelled task's call that can complete
 * at once still does (so a cancelled task can drain a channel); one that would block fails
 * with ECANCELED. A call that would block outside any task fails with EPERM. When a call
 * fails, nothing was sent or received.
 *
 * Close: elements already buffered are still received; after them, a receive fails with
 * EPIPE. A send on a closed channel fails with EPIPE. Tasks parked in send or receive on the
 * channel when it is closed wake at once with EPIPE (a parked sender's element is not
 * delivered). The dump shows a task parked here as chan-wait, with the operation, the
 * channel's name (or address) and how many tasks wait on it. When every task waits on
 * channels and nothing else can wake anyone (no timer, no fd), weft_run fails with EDEADLK.
 * A channel belongs to the thread whose tasks use it: it takes no locks. */
typedef struct weft_chan weft_chan;

#define WEFT_CHAN_ELEM_MAX   ((size_t)64 * 1024)  /* the largest element size */
#define WEFT_CHAN_SELECT_MAX 4096                 /* the most clauses in one select */

/* A new channel of elements elem_size bytes long, buffering up to capacity of them (0:
 * unbuffered). Errors: EINVAL (elem_size 0 or above WEFT_CHAN_ELEM_MAX, or a buffer of
 * elem_size * capacity bytes that no address space holds), ENOMEM. */
WEFT_API weft_chan *weft_chan_make(size_t elem_size, size_t capacity);
/* Name the channel for the dump (copied, truncated to 31 bytes; NULL clears). Errors: EINVAL
 * (c NULL). */
WEFT_API int weft_chan_set_name(weft_chan *c, const char *name);
/* Send a copy of the element at elem (elem_size bytes). Returns 0 once a receiver has it or
 * it is in the buffer. Errors: EINVAL (c or elem NULL), EPIPE (closed, before or while
 * waiting), ETIMEDOUT (the deadline passed, or had passed and there was no room and no
 * receiver), ECANCELED, EPERM. */
WEFT_API int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline);
/* Receive the next element into elem (NULL: drop it). Errors: EINVAL (c NULL), EPIPE
 * (closed and nothing left, before or while waiting), ETIMEDOUT (the deadline passed, or had
 * passed and there was nothing to receive), ECANCELED, EPERM. */
WEFT_API int weft_chan_recv(weft_chan *c, void *elem, int64_t deadline);
/* Close the channel: see above. Errors: EINVAL (c NULL), EPIPE (already closed). */
WEFT_API int weft_chan_close(weft_chan *c);
/* Free the channel and any elements still buffered; the pointer is invalid afterwards.
 * Refused while tasks are parked on it (close it first to wake them). Errors: EINVAL (c
 * NULL), EBUSY (tasks wait on it; nothing is freed). */
WEFT_API int weft_chan_free(weft_chan *c);

/* One clause of weft_chan_select. */
#define WEFT_CHAN_SEND 1
#define WEFT_CHAN_RECV 2
typedef struct weft_chan_clause {
    weft_chan *chan;
    int op;             /* WEFT_CHAN_SEND or WEFT_CHAN_RECV */
    void *elem;         /* send: the element to send; receive: where it goes (NULL: dropped) */
    int err;            /* out, on the clause that completed: 0, or EPIPE (channel closed) */
} weft_chan_clause;

/* Wait until one of the n clauses can complete, complete exactly that one, and return its
 * index; the others are left untouched. A clause on a closed channel can always complete:
 * a send with EPIPE, a receive with EPIPE once nothing is buffered; its err says so (the
 * call still returns its index). When several can complete, one is chosen uniformly at
 * random (a xorshift generator per thread), so no clause starves. A channel may appear in
 * several clauses. On a timeout or a cancel no clause has completed: nothing was sent or
 * received. Deadlines as for send and receive.
 *
 * Clauses may be on shared channels (below), in any mix with channels of the calling thread:
 * the same rules hold, and a peer on another thread that completes a clause (a send, a
 * receive, a close) does so for exactly one select, even when the select's deadline passes,
 * it is cancelled or another of its clauses completes at the same moment: then either that
 * peer's transfer happened, and the select returns its clause, or it did not, and the peer's
 * element stays where it was for the next waiter. A task's wait on a shared clause counts as
 * external, as a shared send's does (no EDEADLK). Outside any task, a select whose clauses
 * are all on shared channels blocks the thread, with the same deadlines; one with a clause on
 * a channel of the thread that cannot complete at once fails with EPERM. Errors: EINVAL
 * (clauses NULL, n < 1 or above WEFT_CHAN_SELECT_MAX, a clause with chan NULL, an unknown op,
 * or a send with elem NULL), ETIMEDOUT, ECANCELED, EPERM, ENOMEM (more than 8 clauses, or
 * more than 4 with one on a shared channel, and no memory for their waits); in a task, a
 * select that waits on a shared channel may also fail with an error of eventfd(2), which its
 * thread's first wait on a shared channel makes. */
WEFT_API int weft_chan_select(weft_chan_clause *clauses, int n, int64_t deadline);

/* ---- shared channels: the way between threads ------------------------------------------ *
 *
 * Tasks never move between threads, and each thread's loop shares nothing with another's;
 * what crosses threads goes through a shared channel. weft_chan_make_shared makes a channel
 * that weft_chan_send, weft_chan_recv, weft_chan_close, weft_chan_set_name and
 * weft_chan_free accept from any thread, with the semantics above (waiters served first come
 * first, deadlines, close with EPIPE, EBUSY while any thread waits, a timeout or a cancel
 * losing or duplicating no element). Inside a task a call that waits parks the task (the
 * loop's other tasks run on; the wait counts as external, so a loop where it is the only
 * wait idles rather than failing with EDEADLK); outside any task it blocks the thread, with
 * the same deadlines, instead of failing with EPERM, so a plain thread can feed a loop. A
 * task of another thread is woken through its loop's eventfd. The dump shows a task waiting
 * here as chan-wait, its channel's name followed by [shared] (a select: the channel of its
 * first shared clause). weft_chan_select takes shared channels too, in any mix with the
 * thread's own (see there). A channel made by weft_chan_make stays its thread's: using it
 * from another thread is a bug, and so is a select that mixes channels made by
 * weft_chan_make on several threads. */

/* A new shared channel (see above); freed with weft_chan_free. Errors: EINVAL (elem_size 0
 * or above WEFT_CHAN_ELEM_MAX, or a buffer of elem_size * capacity bytes that no address space
 * holds), ENOMEM. */
WEFT_API weft_chan *weft_chan_make_shared(size_t elem_size, size_t capacity);

/* ---- offload: calls that would block the thread, run on a pool of OS threads ----------- *
 *
 * Some calls cannot wait on the reactor: a name lookup, a read from a slow disk, a library
 * call that blocks, a long computation. weft_offload runs such a call on a pool thread while
 * the calling task parks; every other task keeps running. The pool is process-wide and
 * shared by every scheduler thread; its threads start on first use, one more whenever work
 * is queued and none is idle, up to the pool's size: 4 by default (the calls it serves wait
 * on disks and name servers rather than use the CPU, so a few threads keep a slow lookup
 * from holding up the others without crowding a small machine), set by
 * weft_offload_set_threads or the environment variable WEFT_OFFLOAD_THREADS (read at first
 * use). A completion reaches the task's scheduler through an eventfd on its reactor; a burst
 * of completions costs it one wake-up. Pool threads block every signal.
 *
 * What fn may do: any blocking libc or system call, on memory it owns or that arg points at;
 * it runs on another OS thread, so what it shares with tasks needs the usual locking. What
 * it may not do: call weft functions that need a scheduler (weft_spawn, weft_yield, the
 * wrappers' waits: on a pool thread there is none, so they act as outside any task) or touch
 * a channel, lock or other object of a scheduler thread.
 *
 * Early return: when the wait ends by its deadline or a cancel, the call returns at once
 * with ETIMEDOUT or ECANCELED. If fn had not started, it never will. If it is running, it
 * runs to its end on its thread, with arg: so with weft_offload, arg must stay valid until
 * then even though the call has returned (memory on the task's stack does not); with
 * weft_offload_ex, the pool calls discard(arg) on its thread once it is done with arg (fn
 * returned, or was dropped before it started), and discard frees what arg holds. discard is
 * called only for a call that returned early: otherwise arg is the caller's again when the
 * call returns 0. The dump shows the parked task as offload-wait with fn's name and how long
 * it has waited. In a forked child the pool starts anew: calls of the forking thread whose fn
 * was running at the fork fail with ECANCELED, queued ones run. */
#define WEFT_OFFLOAD_MAX_THREADS 256    /* the largest pool */

/* Run fn(arg) on a pool thread and wait until it returns. Outside any task, fn(arg) is just
 * called. Returns 0 once fn has returned. Errors: EINVAL (fn NULL), ETIMEDOUT, ECANCELED
 * (see above; a deadline already past or a cancelled task fails before fn is queued),
 * EAGAIN (no pool thread could be started), ENOMEM, and eventfd's errors (the first call of
 * a scheduler thread). */
WEFT_API int weft_offload(void (*fn)(void *), void *arg, int64_t deadline);
/* weft_offload, with discard(arg) called on the pool thread when the call returned early
 * (discard NULL: as weft_offload). */
WEFT_API int weft_offload_ex(void (*fn)(void *), void *arg, void (*discard)(void *),
                             int64_t deadline);
/* Set the pool's size: threads above it leave when idle. Errors: EINVAL (n < 1 or above
 * WEFT_OFFLOAD_MAX_THREADS). */
WEFT_API int weft_offload_set_threads(int n);
/* The pool's size. */
WEFT_API int weft_offload_threads(void);

/* ---- child processes ---------------------------------------------------------------------- */

/* A child process started by weft_proc_spawn, waited on through a pidfd (Linux 5.3+), so a
 * task waiting for it parks on the reactor like any fd wait. The rule for zombies: every
 * child is reaped by weft. weft_proc_wait reaps it when it has ended; weft_proc_free of a
 * child not yet reaped kills it (SIGKILL) and reaps it before returning, so no handle ever
 * leaves a zombie behind (wait for the child before the free to let it finish). A process
 * that reaps children itself (waitpid(-1, ...), SIGCHLD set to SIG_IGN) takes them from
 * weft: its waits then fail with ECHILD. */
typedef struct weft_proc weft_proc;

/* What each of the child's stdin, stdout and stderr (weft_proc_attr.mode[0..2]) is. */
#define WEFT_PROC_INHERIT 0     /* the parent's own fd 0, 1 or 2 (the default) */
#define WEFT_PROC_PIPE    1     /* a pipe; the parent's end is weft_proc_stdin/_stdout/_stderr */
#define WEFT_PROC_DEVNULL 2     /* /dev/null */
#define WEFT_PROC_FD      3     /* the fd in weft_proc_attr.fd[i] (the parent keeps its own) */
#define WEFT_PROC_STDOUT  4     /* stderr only: wherever stdout goes (2>&1) */

/* How to start a child; all zero (or NULL) gives the defaults: every stream inherited, the
 * parent's environment and working directory, path used as given. */
typedef struct weft_proc_attr {
    int mode[3];                /* WEFT_PROC_* for stdin, stdout, stderr */
    int fd[3];                  /* for WEFT_PROC_FD: an open fd of the parent */
    char *const *envp;          /* the child's environment; NULL: the parent's (environ) */
    const char *cwd;            /* the child's working directory (a relative path is then
                                   looked up from it); NULL: the parent's */
    int search_path;            /* nonzero: a path without '/' is looked up in $PATH (execvp) */
    int new_group;              /* nonzero: the child leads a process group of its own (its
                                   pid), so kill(-pid, sig) reaches the children it starts */
} weft_proc_attr;

/* Start path with argv (argv[0] by convention the program's name; NULL-terminated), as
 * posix_spawn does: the parent's memory is not copied, and a failure to start comes back
 * here as an errno, never as a child exiting 127. The child starts with no signal blocked
 * and SIGPIPE at its default action; of the parent's fds it gets only 0, 1 and 2 (as attr
 * sets them) and those not marked close-on-exec (weft's own fds all are). The parent's ends
 * of pipes are close-on-exec and, like any pipe, blocking to plain calls: use them with
 * weft_read, weft_write, weft_poll or weft_fdwait, close them with weft_proc_close_pipe (or
 * leave them to weft_proc_free). Errors: EINVAL (path or argv NULL, an unknown mode,
 * WEFT_PROC_STDOUT for stdin or stdout, a negative fd for WEFT_PROC_FD); posix_spawn's
 * errors, the exec's among them: ENOENT (no such program or cwd), EACCES, ENOEXEC, ENOTDIR,
 * E2BIG, ...; EMFILE, ENFILE (no fds for the pipes or the pidfd), ENOMEM, EAGAIN (process
 * limit). Where pidfd_open is missing (Linux before 5.3; Valgrind 3.19 knows no such call)
 * the calls work without it: a waiting task looks at the child every 1 to 64 ms. */
WEFT_API weft_proc *weft_proc_spawn(const char *path, char *const argv[],
                                    const weft_proc_attr *attr);

/* The child's pid (still valid after it is reaped, for messages only), and the parent's ends
 * of its pipes: -1 for a stream that is not WEFT_PROC_PIPE or was closed. p NULL: -1 and
 * EINVAL. */
WEFT_API pid_t weft_proc_pid(const weft_proc *p);
WEFT_API int weft_proc_stdin(const weft_proc *p);
WEFT_API int weft_proc_stdout(const weft_proc *p);
WEFT_API int weft_proc_stderr(const weft_proc *p);

/* Close the parent's end of pipe 'stream' (0 stdin: the child reads EOF; 1 stdout, 2 stderr:
 * the child's writes then fail with EPIPE or SIGPIPE), waking the tasks parked on it with
 * EBADF, as weft_close does. Errors: EINVAL (p NULL, stream not 0..2), EBADF (no such pipe,
 * or closed already). */
WEFT_API int weft_proc_close_pipe(weft_proc *p, int stream);

/* Wait for the child to end and reap it; *status (status may be NULL) is then as waitpid
 * gives it (WIFEXITED, WEXITSTATUS, WIFSIGNALED, WTERMSIG). Once reaped, every later call
 * returns the same status at once. A task parks on the child's pidfd (in the dump:
 * proc-wait, wait "pid N argv0"); outside any task the thread blocks as in waitpid. When the
 * wait ends without the child (deadline, cancel) the child runs on and can be waited for
 * again. Several tasks may wait for one child: each gets its status. Errors: EINVAL (p
 * NULL), ETIMEDOUT (deadline, or the task's deadline scope; a deadline past only checks),
 * ECANCELED, EBADF (the handle was freed by another task meanwhile), ECHILD (someone else
 * reaped the child), EINTR (outside any task: a signal handler ran), ENOMEM. */
WEFT_API int weft_proc_wait(weft_proc *p, int *status, int64_t deadline);

/* Send sig (0: only check that the child is alive) to the child through its pidfd, which
 * always names this child: never another process that got its pid after it was reaped.
 * A child that has ended but is not reaped yet takes sig and ignores it (0). Errors: EINVAL
 * (p NULL, bad signal), ESRCH (the child has been reaped), EPERM. */
WEFT_API int weft_proc_kill(weft_proc *p, int sig);

/* Release p: close its pipes and its pidfd. A child not yet reaped is killed with SIGKILL
 * and reaped first (a task parks for that, and neither a cancel nor a deadline cuts it
 * short; it takes as long as the kernel takes to end the process), so no zombie is left.
 * Tasks parked on its pipes get EBADF; those waiting for the child get its status if they
 * see it reaped, else EBADF (p must not be used again). p NULL: does nothing. Returns 0. */
WEFT_API int weft_proc_free(weft_proc *p);

/* What weft_proc_run collected: out and err (malloc'd, NUL-terminated beyond their lengths;
 * free() them) hold the child's stdout and stderr when they were pipes, else NULL. */
typedef struct weft_proc_result {
    int status;                 /* as waitpid gives it; after a kill on deadline or cancel,
                                   the SIGKILL status */
    char *out;
    size_t out_len;
    char *err;
    size_t err_len;
} weft_proc_result;

/* Run a command to its end, as Python's subprocess.run: start it, write in_len bytes of in
 * to its stdin and then close it, collect its stdout and stderr, reap it. The three streams
 * are served together (poll), so a child that writes much while it is still being fed
 * cannot deadlock with the caller. attr NULL: stdout and stderr captured (pipes), stdin
 * /dev/null unless in is given. With attr, its modes apply as given, except that stdin is a
 * pipe whenever in is not NULL; the streams that are pipes are captured (a stdin pipe is
 * fed in, or closed at once when in is NULL).
 * Returns 0 once the child has been reaped, whatever its status. At the deadline or on a
 * cancel the child is killed (SIGKILL), reaped, and the call fails with ETIMEDOUT or
 * ECANCELED, res keeping what was collected until then. *res is always filled in (out and
 * err NULL when the spawn failed): free res->out and res->err after any return. Errors:
 * those of weft_proc_spawn; EINVAL (res NULL, in NULL with in_len nonzero); ETIMEDOUT;
 * ECANCELED; ENOMEM (output too large to keep); EINTR (outside any task: a signal handler
 * ran; the child was killed). */
WEFT_API int weft_proc_run(const char *path, char *const argv[], const weft_proc_attr *attr,
                           const void *in, size_t in_len, weft_proc_result *res,
                           int64_t deadline);

/* ---- files: open, pread, pwrite, fsync, stat, ... through the offload pool -------------- *
 *
 * A disk never says EAGAIN: epoll refuses a regular file (EPERM), so weft_read and
 * weft_write on one make the plain read(2) and write(2) at once, blocking the thread (and
 * every task on it) for as long as the disk takes; on a page-cache hit that is microseconds.
 * The calls below are the ones that never block the loop: each runs its syscall on the
 * offload pool while the task parks (the dump shows offload-wait with the call's name,
 * "pread", "open", ...). They have libc's signatures, so there is no deadline argument: the
 * task's deadline scope (weft_set_task_deadline) and weft_cancel end the wait, with -1 and
 * ETIMEDOUT or ECANCELED (a task already past its scope or cancelled fails at once, nothing
 * queued). Outside any task each is the plain libc call.
 * What the call is given is copied first (paths, the bytes pwrite writes) and results come
 * back through weft's own memory (pread reads into a buffer of the pool's, stat into a
 * struct of its own), copied to the caller only on success: a call that returned early never
 * touches the caller's memory afterwards. Its syscall may still take effect (an unlink that
 * was already running completes); an fd that a late open returns is closed.
 * Errors: each call's own errno, as libc gives it (ENOENT, EACCES, EEXIST, EBADF, EISDIR,
 * ENOTDIR, ENOSPC, EIO, ESPIPE, ...); NULL for a path or a struct stat is EFAULT; inside a
 * task also ETIMEDOUT, ECANCELED, ENOMEM (no memory for the copies), EAGAIN (no pool thread
 * could be started), and for pread and pwrite EINVAL (a count above SSIZE_MAX or a negative
 * offset) and EFAULT (a NULL buffer with a count). A count above the kernel's limit of one
 * call (0x7ffff000 bytes) moves at most that, as read(2) does; a pread of more than 64 KiB
 * from a regular file sizes its buffer by what the file holds past off. */
WEFT_API int weft_open(const char *path, int flags, ...);
WEFT_API ssize_t weft_pread(int fd, void *buf, size_t n, off_t off);
WEFT_API ssize_t weft_pwrite(int fd, const void *buf, size_t n, off_t off);
WEFT_API int weft_fsync(int fd);
WEFT_API int weft_fdatasync(int fd);
struct stat;
WEFT_API int weft_stat(const char *path, struct stat *st);
WEFT_API int weft_fstat(int fd, struct stat *st);
WEFT_API int weft_unlink(const char *path);
WEFT_API int weft_rename(const char *from, const char *to);
WEFT_API int weft_mkdir(const char *path, mode_t mode);

/* ---- name lookups: getaddrinfo, getnameinfo through the offload pool -------------------- *
 *
 * libc's getaddrinfo and getnameinfo block the thread for as long as a name server takes
 * (seconds, when one does not answer). These have libc's signatures and codes and run the
 * lookup on the offload pool (the dump shows offload-wait "getaddrinfo"), the task parked;
 * outside any task they are libc's calls. The task's deadline scope and weft_cancel end the
 * wait: the call returns EAI_SYSTEM with errno ETIMEDOUT or ECANCELED, and the lookup, if
 * it was running, finishes on the pool, which frees its result (freeaddrinfo): nothing
 * leaks, and the caller's res, host and serv are not written. The names and hints are copied
 * first. A result is freed with plain freeaddrinfo. They are among the names the wrap flags
 * redirect (docs/wrap.md), so a library linked with them resolves without blocking the loop.
 * Codes: libc's (EAI_NONAME, EAI_AGAIN, EAI_FAIL, EAI_FAMILY, EAI_SERVICE, EAI_OVERFLOW,
 * EAI_SYSTEM with errno, ...); inside a task also EAI_MEMORY (no memory for the copies),
 * EAI_SYSTEM with ETIMEDOUT, ECANCELED or EAGAIN (no pool thread could be started), EAI_SYSTEM
 * with EFAULT (res NULL); getnameinfo also EAI_FAMILY (sa NULL, or salen outside
 * [sizeof(sa_family_t), sizeof(struct sockaddr_storage)]). In a program linked fully static,
 * where libc's functions cannot be found at run time, EAI_SYSTEM with ENOSYS. */
struct addrinfo;
WEFT_API int weft_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                              struct addrinfo **res);
WEFT_API int weft_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host,
                              socklen_t hostlen, char *serv, socklen_t servlen, int flags);

/* ---- debugging: the task dump ------------------------------------------------------------ */

/* Flags for weft_dump. */
#define WEFT_DUMP_JSON         0x1  /* JSON (schema in the README) instead of text */
#define WEFT_DUMP_NO_BACKTRACE 0x2  /* skip the backtraces (cheaper) */
#define WEFT_DUMP_SYSTEM       0x4  /* also list weft's own background tasks (debug server) */
#define WEFT_DUMP_ALL_THREADS  0x8  /* also every other thread's scheduler (see weft_dump) */
/* Grouped: tasks with the same state (which names the wait kind) and the same parked
 * backtrace (the same frames) are folded into one block, "N tasks [STATE], waiting
 * NEWEST..OLDEST ms, e.g. tasks A, B, ...", then their frames; blocks by count, largest
 * first. JSON: "groups" (docs/dump.md) instead of "tasks". With WEFT_DUMP_NO_BACKTRACE tasks
 * fold by state alone. The grouping memory is mapped with mmap (signal-safe), one record per
 * task at most; ENOMEM when none can be had. */
#define WEFT_DUMP_GROUP        0x10
/* Folded stacks, for flame-graph tools (flamegraph.pl, inferno, speedscope): one line per
 * distinct stack of function names, outermost first, and the number of tasks parked in it:
 * "weft_ctx_trampoline;task_entry;worker;weft_read;...;switch_next 42". Tasks that never ran
 * have no stack and are left out. Text only: EINVAL with WEFT_DUMP_JSON, WEFT_DUMP_GROUP or
 * WEFT_DUMP_NO_BACKTRACE. With WEFT_DUMP_ALL_THREADS each thread's lines follow (the same
 * stack may then appear once per thread; the tools add them up). */
#define WEFT_DUMP_FOLDED       0x20

/* Write every task of this thread's scheduler to fd: a summary line of counts by state, then
 * one block per task (id, name, state, what it waits on and for how long, spawn site and
 * parent, age, switches, stack size and high-water mark, backtrace of where it is parked),
 * then the main context's backtrace. Frames are named from the modules' symbol tables
 * (static functions included) with module+offset for addr2line; tools/weft-dump adds
 * file:line. The thread is busy for the whole dump (about one mincore call per task for the
 * high-water mark, plus the walks); a non-blocking fd is waited on when full. Outside any
 * scheduler it writes an empty dump. With WEFT_DUMP_ALL_THREADS the dumps of the process's
 * other scheduler threads follow (text: one block each, from "weft dump: pid P, thread T"
 * to "end of weft dump"; JSON: this thread's document gains "threads", an array of theirs):
 * each is written by its own thread, from a handler of SIGRTMAX-4 that weft installs at the
 * first such dump, so it is taken between two instructions of whatever that thread runs; a
 * thread that does not answer within 2 s (the signal blocked) is named in a line of its own.
 * The caller's thread waits for each in turn. Errors: EBADF and write(2)'s errors; EINVAL
 * (unknown flags); ENOMEM (no memfd for another thread's dump). */
WEFT_API int weft_dump(int fd, int flags);

/* Dump to stderr (text) when signo arrives, from the signal handler itself, so it works
 * even when a task spins and never yields: the running task is marked as holding the thread,
 * with how long it has run without yielding. Every scheduler thread dumps, one after the
 * other: a signal sent to the process (kill) is passed on, by the thread that took it, to
 * every other scheduler thread; one sent to a single thread (pthread_kill, tgkill) dumps
 * that thread only. The process keeps running (SIGQUIT's
 * default action, a core dump, is replaced). 0 turns it off (the previous action comes
 * back). Also: env WEFT_DUMP_SIGNAL=QUIT (or USR1, USR2, a number), read whenever a
 * scheduler is created. Errors: EINVAL (bad signal number, or one weft or the kernel needs:
 * SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT). */
WEFT_API int weft_dump_on_signal(int signo);

/* Serve the dump to tools/weft-dump over a Unix socket, from a background task of this
 * thread's scheduler (it does not keep weft_run from returning; while it listens, a program
 * whose tasks all wait on each other stays up instead of failing with EDEADLK, so it can be
 * inspected). path NULL: the default, $XDG_RUNTIME_DIR/weft/PID.sock or
 * /tmp/weft-UID/PID.sock (directory mode 0700, refused if another user owns it); only
 * processes of the same effective uid are answered (SO_PEERCRED). The socket is removed when
 * the server ends or the process exits normally. Also: env WEFT_DEBUG=1 (or WEFT_DEBUG=PATH),
 * read whenever a scheduler is created; the server task then takes the first task id.
 * Errors: those of socket/bind/listen and mkdir; EACCES (the default directory is not
 * ours); ENAMETOOLONG; EEXIST (already listening). */
WEFT_API int weft_debug_listen(const char *path);

/* Report (to stderr, once per stall) a task that runs for more than threshold_ms without
 * yielding: id, name, spawn site and backtrace. A helper thread samples every scheduler's
 * switch count (every threshold/4 ms, at most 100 ms apart) and, when it has not moved for
 * the threshold, signals the scheduler thread (SIGRTMAX-3), whose handler prints where the
 * task is. 0 turns it off. Also: env WEFT_WATCHDOG=MS, read whenever a scheduler is
 * created. A forked child runs without it. Errors: EINVAL (negative), EAGAIN (no thread). */
WEFT_API int weft_watchdog(int64_t threshold_ms);

/* Sample, hz times a second, which task each scheduler runs, on the watchdog's helper thread
 * (the switch path does no extra work, on or off): each sample charges the CPU time the
 * scheduler's thread used since the last one to the running task and its spawn site. The
 * control socket's "top" request (tools/weft-dump PID --top) shows the last one-second
 * window: CPU by task and site, switches, run-queue length, the longest waits. It also
 * turns the profiler on at 100 Hz when it is off. 0 turns it off. Also: env WEFT_PROFILE=HZ,
 * read whenever a scheduler is created. A forked child runs without it. Errors: EINVAL (hz
 * negative or over 10000), EAGAIN (no thread). */
WEFT_API int weft_profile(int hz);

/* ---- signals as events (src/signal.c) ----
 * weft_signal_wait returns the number of the next pending signal of set, parking the task
 * (state signal-wait) until one comes. It reads from one signalfd per scheduler thread,
 * watched by the reactor; several tasks may wait, with sets that overlap: each signal goes
 * to exactly one waiter whose set holds it, the earliest to have called. A signal of the set
 * that comes while no task waits stays pending in the kernel and is returned by the next
 * wait: none is lost between two waits. When tasks of several scheduler threads wait for
 * the same signal, one signal sent to the process goes to one of them.
 * Blocking: a signalfd only sees signals that are blocked, so the call blocks set in the
 * calling thread (pthread_sigmask(SIG_BLOCK)) and leaves it blocked. A signal sent to the
 * process goes to any thread that does not block it, so the program must block the set in
 * every other thread too: simplest, block it in main before creating any thread (threads
 * inherit the mask). A thread that leaves it unblocked takes the signal itself (its handler,
 * or the default action: SIGTERM ends the process). raise() and pthread_kill() aimed at
 * another thread leave the signal pending on that thread, where this call cannot see it.
 * Outside any task it blocks the thread as sigtimedwait does. A forked child's waits use a
 * signalfd of its own. set is copied: it may change once the call has begun.
 * Errors: EINVAL (set NULL or empty, or holding SIGKILL, SIGSTOP, or a signal a fault raises:
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP); ETIMEDOUT (the deadline passed; a deadline
 * already past takes a pending signal only); ECANCELED; EMFILE, ENFILE, ENOMEM (no
 * signalfd). */
WEFT_API int weft_signal_wait(const sigset_t *set, int64_t deadline);
struct signalfd_siginfo;
/* The same, filling *info (when not NULL) with what the kernel said of the signal: sender's
 * pid and uid (ssi_pid, ssi_uid), ssi_code, the sigqueue value (ssi_int, ssi_ptr). */
WEFT_API int weft_signal_waitinfo(const sigset_t *set, struct signalfd_siginfo *info,
                                  int64_t deadline);

/* ---- delayed calls (src/after.c) ----
 * weft_after(ms, fn, arg) arms a timer that, once ms have passed, runs fn(arg) as a new
 * detached task (named "timer"; its spawn site is the weft_after call; fn's result is
 * dropped); weft_at(deadline, fn, arg) is the same for an absolute weft_now() deadline. An
 * armed timer is an entry in the scheduler's timing wheel, not a task: arming, pushing back
 * and stopping cost O(1) and no stack, so one per connection (an idle timeout pushed
 * back at each request) is cheap. Each fires at most once per arming; weft_timer_reset arms
 * it again, fired or not. The timer belongs to the thread that armed it, and fires only
 * while that thread runs its scheduler (weft_run): from outside any task (main before
 * weft_run), weft_after makes the thread's scheduler as weft_go does. Armed timers keep
 * weft_run going until they fire or are stopped.
 * Freeing: the handle stays valid, fired or not, until weft_timer_stop, which gives it back
 * (always, exactly once); firing never frees it, so fn and the owner never race over it.
 * Errors of weft_after / weft_at (NULL): EINVAL (fn NULL, ms or deadline negative), ENOMEM.
 * When the task cannot be spawned as the timer fires (ENOMEM), it tries again 10 ms later. */
typedef struct weft_timer weft_timer;
#define weft_after(ms, fn, arg) weft_timer_after((ms), (fn), (arg), __FILE__, __LINE__)
#define weft_at(deadline, fn, arg) weft_timer_at((deadline), (fn), (arg), __FILE__, __LINE__)
WEFT_API weft_timer *weft_timer_after(int64_t ms, void *(*fn)(void *), void *arg,
                                      const char *file, int line);
WEFT_API weft_timer *weft_timer_at(int64_t deadline, void *(*fn)(void *), void *arg,
                                   const char *file, int line);
/* Arm t for deadline (absolute): pushes back (or forward) a timer that has not fired, in
 * place; arms again one that has. 0, or -1: EINVAL (t NULL, deadline negative), EPERM (t is
 * armed in another thread), ENOMEM (re-arming a fired one). */
WEFT_API int weft_timer_reset(weft_timer *t, int64_t deadline);
/* Disarm t if armed and free it; the handle is gone after. Returns 1 when t had fired (fn's
 * task was started and runs or has run anyway), 0 when it was stopped before firing (fn
 * will not run), -1: EINVAL (t NULL), EPERM (t is armed in another thread; nothing done). */
WEFT_API int weft_timer_stop(weft_timer *t);
/* 1 when t has fired since it was last armed, 0 when it is armed; -1 EINVAL (t NULL). */
WEFT_API int weft_timer_fired(const weft_timer *t);

/* ---- version ------------------------------------------------------------------------------ */

/* The version of the library running ("0.1.0"), which may be newer than the WEFT_VERSION a
 * program was built with (see docs/abi.md). Never NULL; no errors. */
WEFT_API const char *weft_version(void);

#ifdef __cplusplus
}
#endif

#endif

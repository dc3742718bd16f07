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

#define WEFT_VERSION "0.1.0"

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
    int reserved[4];       /* must be zero */
} weft_attr;

/* Start fn(arg) as a new task; it first runs when the spawner blocks or yields (or, from
 * outside any task, when the scheduler runs). weft_go and weft_spawn record the call site
 * for the task dump. Errors: EINVAL (fn NULL, stack size out of range, reserved not zero),
 * ENOMEM (no memory or no address space for the stack or the task record). */
/* Variadic so that a compound literal with commas works as the attribute:
 *   weft_spawn(&(weft_attr){ .name = "w", .detached = 1 }, fn, arg) */
#define weft_go(...) weft_spawn_at(NULL, __VA_ARGS__, __FILE__, __LINE__)
#define weft_spawn(...) weft_spawn_at(__VA_ARGS__, __FILE__, __LINE__)
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
 * work on it; it cannot be joined or detached). fn ends by returning: weft_exit inside it
 * would end its task without telling the caller (a caller parked in send would stay parked),
 * so don't. Handles are per thread, like task handles; a closed generator's handle is
 * stale, and every call given it fails with EPIPE. */
typedef struct weft_gen weft_gen;

/* Make a generator; fn starts at the first send (whose value is ignored: fn has arg) and
 * never before. attr: stack size and name as for weft_spawn (NULL: defaults); its detached
 * and daemon fields are ignored: a generator is never joined, and does not keep weft_run
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
 * fd stays open. weft learns it afresh if a wrapper sees it again. Errors: EBADF (not open). */
WEFT_API int weft_fd_forget(int fd);

/* poll(2) for tasks: parks until an fd is ready or timeout_ms passes (-1: no timeout; never
 * early), then reports like poll; an fd closed with weft_close meanwhile is reported
 * POLLNVAL. Extra errnos: ECANCELED, ETIMEDOUT (the task's deadline scope), EINVAL (more
 * than 65536 fds), ENOMEM. Outside any task, or with timeout 0, plain poll. */
WEFT_API int weft_poll(struct pollfd *fds, nfds_t nfds, int timeout_ms);

/* Transfer exactly n bytes unless EOF or an error comes first. Returns n; the short count
 * at EOF (read) ; or, after an error, the count transferred before it with errno set (-1 when
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

/* TCP listener on host:port (host: numeric IPv4 or IPv6 address, or NULL for all IPv6 and
 * IPv4 addresses); SO_REUSEADDR always. Port 0 picks a free port (see weft_local_port).
 * Returns the fd. Errors: those of socket/bind/listen; EINVAL (port out of range);
 * EINVAL also for unknown flags, and for a host that is not a numeric address (name
 * lookup would block the thread; it arrives with the offload pool). */
WEFT_API int weft_tcp_listen(const char *host, int port, int backlog, int flags);
/* Connect to host:port (numeric address), parking until connected. Returns the fd.
 * Errors: those of connect(2), ETIMEDOUT, ECANCELED, EINVAL (as above). */
WEFT_API int weft_tcp_dial(const char *host, int port, int flags, int64_t deadline);
WEFT_API int weft_unix_listen(const char *path, int backlog);
/* Connect to a Unix stream socket. A listener whose backlog is full is waited for (retried
 * after 1 ms, doubling to 32 ms) until the deadline, as a blocking connect waits. */
WEFT_API int weft_unix_dial(const char *path, int64_t deadline);
/* UDP socket bound to host:port, or connected to it. */
WEFT_API int weft_udp_bind(const char *host, int port, int flags);
WEFT_API int weft_udp_connect(const char *host, int port, int flags);
/* The local port of a bound socket, or -1 and errno. */
WEFT_API int weft_local_port(int fd);

/* ---- debugging: the task dump ------------------------------------------------------------ */

/* Flags for weft_dump. */
#define WEFT_DUMP_JSON         0x1  /* JSON (schema in the README) instead of text */
#define WEFT_DUMP_NO_BACKTRACE 0x2  /* skip the backtraces (cheaper) */
#define WEFT_DUMP_SYSTEM       0x4  /* also list weft's own background tasks (debug server) */

/* Write every task of this thread's scheduler to fd: a summary line of counts by state, then
 * one block per task (id, name, state, what it waits on and for how long, spawn site and
 * parent, age, switches, stack size and high-water mark, backtrace of where it is parked),
 * then the main context's backtrace. Frames are named from the modules' symbol tables
 * (static functions included) with module+offset for addr2line; tools/weft-dump adds
 * file:line. The thread is busy for the whole dump (about one mincore call per task for the
 * high-water mark, plus the walks); a non-blocking fd is waited on when full. Outside any
 * scheduler it writes an empty dump. Errors: EBADF and write(2)'s errors; EINVAL (unknown
 * flags). */
WEFT_API int weft_dump(int fd, int flags);

/* Dump to stderr (text) when signo arrives, from the signal handler itself, so it works
 * even when a task spins and never yields: the running task is marked as holding the thread,
 * with how long it has run without yielding. A signal that lands on a thread without a
 * scheduler is passed on to every scheduler thread. The process keeps running (SIGQUIT's
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

#ifdef __cplusplus
}
#endif

#endif

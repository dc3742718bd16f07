/* File calls through the offload pool (src/offload_fs.c): each call's success and errors,
 * bad input, large reads and writes, outside a task, and the task's deadline scope and
 * cancel ending a call whose job is queued or running, without the late job touching the
 * caller's memory or leaking an fd. */
#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#define ADD_TEST(s, fn, secs) tcase_add_test(test_case((s), #fn, (secs)), fn)

static char dir[64];

static void make_dir(void)
{
    strcpy(dir, "/tmp/weft-fs-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *in_dir(char *buf, const char *name)
{
    snprintf(buf, 128, "%s/%s", dir, name);
    return buf;
}

/* How many of the process's fds are open on path. */
static int fds_on(const char *path)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char l[300], t[256];
        snprintf(l, sizeof l, "/proc/self/fd/%s", e->d_name);
        ssize_t k = readlink(l, t, sizeof t - 1);
        if (k > 0) {
            t[k] = '\0';
            n += strcmp(t, path) == 0;
        }
    }
    closedir(d);
    return n;
}

/* A gate a pool thread blocks on until the test opens it. */
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

static void gate_open(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_is_open = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static void gate_reset(void)
{
    gate_is_open = 0;
    atomic_store(&gate_entered, 0);
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

/* With a pool of one thread: spawn a task whose job holds the thread until gate_open. */
static weft_task *hold_the_pool(void)
{
    gate_reset();
    weft_task *h = weft_spawn(NULL, gate_task, NULL);
    ck_assert_ptr_nonnull(h);
    while (atomic_load(&gate_entered) == 0)
        weft_sleep(1);
    return h;
}

/* ---- each call, success and errors ------------------------------------------------------ */

static void *calls_task(void *arg)
{
    (void)arg;
    char p[128], q[128], d[128];
    in_dir(p, "a");
    in_dir(q, "b");
    in_dir(d, "sub");
    int fd = weft_open(p, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0640);
    ck_assert_int_ge(fd, 0);
    ck_assert_fails(weft_open(p, O_CREAT | O_EXCL | O_RDWR, 0640), EEXIST);
    ck_assert_fails(weft_open(q, O_RDONLY), ENOENT);
    ck_assert_int_eq(weft_pwrite(fd, "hello world", 11, 0), 11);
    ck_assert_int_eq(weft_pwrite(fd, "W", 1, 6), 1);
    char buf[32] = { 0 };
    ck_assert_int_eq(weft_pread(fd, buf, sizeof buf, 0), 11);
    ck_assert_str_eq(buf, "hello World");
    ck_assert_int_eq(weft_pread(fd, buf, sizeof buf, 100), 0);       /* past the end */
    ck_assert_int_eq(weft_pwrite(fd, buf, 0, 0), 0);
    struct stat st;
    ck_assert_int_eq(weft_fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, 11);
    ck_assert(S_ISREG(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0640);
    ck_assert_int_eq(weft_fsync(fd), 0);
    ck_assert_int_eq(weft_fdatasync(fd), 0);
    memset(&st, 0, sizeof st);
    ck_assert_int_eq(weft_stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, 11);
    ck_assert_fails(weft_stat(q, &st), ENOENT);
    ck_assert_int_eq(weft_rename(p, q), 0);
    ck_assert_fails(weft_stat(p, &st), ENOENT);
    ck_assert_fails(weft_rename(p, q), ENOENT);
    ck_assert_int_eq(weft_stat(q, &st), 0);
    ck_assert_int_eq(weft_unlink(q), 0);
    ck_assert_fails(weft_unlink(q), ENOENT);
    ck_assert_int_eq(weft_mkdir(d, 0700), 0);
    ck_assert_fails(weft_mkdir(d, 0700), EEXIST);
    ck_assert_int_eq(weft_stat(d, &st), 0);
    ck_assert(S_ISDIR(st.st_mode));
    ck_assert_fails(weft_unlink(d), EISDIR);
    ck_assert_fails(weft_mkdir(in_dir(buf, "no/such"), 0700), ENOENT);
    /* Bad fds, and fds of the wrong kind. */
    ck_assert_int_eq(close(fd), 0);
    ck_assert_fails(weft_pread(fd, buf, 4, 0), EBADF);
    ck_assert_fails(weft_pwrite(fd, "x", 1, 0), EBADF);
    ck_assert_fails(weft_fsync(-1), EBADF);
    ck_assert_fails(weft_fdatasync(-1), EBADF);
    ck_assert_fails(weft_fstat(-1, &st), EBADF);
    int dfd = weft_open(d, O_RDONLY | O_DIRECTORY);
    ck_assert_int_ge(dfd, 0);
    ck_assert_fails(weft_pread(dfd, buf, 4, 0), EISDIR);
    close(dfd);
    int wfd = weft_open(in_dir(buf, "w"), O_CREAT | O_WRONLY, 0600);
    ck_assert_int_ge(wfd, 0);
    ck_assert_fails(weft_pread(wfd, buf, 4, 0), EBADF);
    close(wfd);
    int pfd[2];
    ck_assert_int_eq(pipe(pfd), 0);
    ck_assert_fails(weft_pread(pfd[0], buf, 4, 0), ESPIPE);
    ck_assert_fails(weft_pwrite(pfd[1], "x", 1, 0), ESPIPE);
    close(pfd[0]);
    close(pfd[1]);
    return NULL;
}

START_TEST(each_call_succeeds_and_fails_as_libc)
{
    make_dir();
    ck_assert_int_eq(weft_main(calls_task, NULL), 0);
    remove_dir();
}
END_TEST

/* ---- bad input --------------------------------------------------------------------------- */

static void *bad_input_task(void *arg)
{
    (void)arg;
    char p[128], buf[16];
    struct stat st;
    ck_assert_fails(weft_open(NULL, O_RDONLY), EFAULT);
    ck_assert_fails(weft_stat(NULL, &st), EFAULT);
    ck_assert_fails(weft_stat(dir, NULL), EFAULT);
    ck_assert_fails(weft_fstat(0, NULL), EFAULT);
    ck_assert_fails(weft_unlink(NULL), EFAULT);
    ck_assert_fails(weft_rename(NULL, dir), EFAULT);
    ck_assert_fails(weft_rename(dir, NULL), EFAULT);
    ck_assert_fails(weft_mkdir(NULL, 0700), EFAULT);
    ck_assert_fails(weft_open("", O_RDONLY), ENOENT);
    int fd = weft_open(in_dir(p, "f"), O_CREAT | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(weft_pwrite(fd, "0123456789", 10, 0), 10);
    ck_assert_fails(weft_pread(fd, NULL, 4, 0), EFAULT);
    ck_assert_fails(weft_pwrite(fd, NULL, 4, 0), EFAULT);
    ck_assert_fails(weft_pread(fd, buf, (size_t)SSIZE_MAX + 1, 0), EINVAL);
    ck_assert_fails(weft_pwrite(fd, buf, SIZE_MAX, 0), EINVAL);
    ck_assert_fails(weft_pread(fd, buf, 4, -1), EINVAL);
    ck_assert_fails(weft_pwrite(fd, buf, 4, -1), EINVAL);
    /* An absurd count on a small file: the buffer is sized by the file, as read(2) would
     * stop at its end. */
    ck_assert_int_eq(weft_pread(fd, buf, (size_t)SSIZE_MAX, 0), 10);
    ck_assert_int_eq(memcmp(buf, "0123456789", 10), 0);
    ck_assert_int_eq(weft_pread(fd, buf, 1 << 30, 4), 6);
    ck_assert_int_eq(weft_pread(fd, buf, 0, 0), 0);
    ck_assert_int_eq(weft_pread(fd, NULL, 0, 0), 0);
    close(fd);
    return NULL;
}

START_TEST(bad_input_gets_a_clear_errno)
{
    make_dir();
    ck_assert_int_eq(weft_main(bad_input_task, NULL), 0);
    remove_dir();
}
END_TEST

/* ---- large reads and writes ------------------------------------------------------------- */

static void *large_task(void *arg)
{
    size_t n = (size_t)(intptr_t)arg;
    char p[128];
    unsigned char *out = malloc(n), *in = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (unsigned char)(i * 131 + (i >> 12));
    int fd = weft_open(in_dir(p, "big"), O_CREAT | O_RDWR | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(weft_pwrite(fd, out, n, 0), (ssize_t)n);
    memset(in, 0, n + 1);
    ck_assert_int_eq(weft_pread(fd, in, n + 1, 0), (ssize_t)n);
    ck_assert_int_eq(memcmp(in, out, n), 0);
    ck_assert_int_eq(weft_pread(fd, in, n, (off_t)n / 2), (ssize_t)(n - n / 2));
    ck_assert_int_eq(memcmp(in, out + n / 2, n - n / 2), 0);
    close(fd);
    free(out);
    free(in);
    return NULL;
}

START_TEST(large_pread_and_pwrite)
{
    make_dir();
    size_t n = RUNNING_ON_VALGRIND ? 1 << 20 : 8 << 20;
    ck_assert_int_eq(weft_main(large_task, (void *)(intptr_t)n), 0);
    remove_dir();
}
END_TEST

/* ---- outside any task: the plain calls --------------------------------------------------- */

START_TEST(outside_a_task_they_are_the_plain_calls)
{
    make_dir();
    char p[128], q[128], buf[8] = { 0 };
    int fd = weft_open(in_dir(p, "x"), O_CREAT | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(weft_pwrite(fd, "abc", 3, 0), 3);
    ck_assert_int_eq(weft_pread(fd, buf, sizeof buf, 0), 3);
    ck_assert_str_eq(buf, "abc");
    struct stat st;
    ck_assert_int_eq(weft_fstat(fd, &st), 0);
    ck_assert_int_eq(st.st_size, 3);
    ck_assert_int_eq(weft_fsync(fd), 0);
    ck_assert_int_eq(weft_fdatasync(fd), 0);
    ck_assert_int_eq(weft_rename(p, in_dir(q, "y")), 0);
    ck_assert_int_eq(weft_stat(q, &st), 0);
    ck_assert_int_eq(weft_unlink(q), 0);
    ck_assert_fails(weft_unlink(q), ENOENT);
    ck_assert_int_eq(weft_mkdir(p, 0700), 0);
    ck_assert_fails(weft_mkdir(p, 0700), EEXIST);
    ck_assert_fails(weft_pread(-1, buf, 1, 0), EBADF);
    close(fd);
    remove_dir();
}
END_TEST

/* ---- deadline scope and cancel ----------------------------------------------------------- */

static void *queued_timeout_task(void *arg)
{
    (void)arg;
    char p[128];
    int fd = weft_open(in_dir(p, "data"), O_CREAT | O_RDWR, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(weft_pwrite(fd, "new data", 8, 0), 8);
    ck_assert_int_eq(weft_offload_set_threads(1), 0);
    weft_task *h = hold_the_pool();
    /* The pread is queued behind the held job: its deadline passes there. */
    char buf[8];
    memset(buf, 'x', sizeof buf);
    int64_t old = weft_set_task_deadline(weft_now() + 50), t0 = weft_now();
    ck_assert_fails(weft_pread(fd, buf, sizeof buf, 0), ETIMEDOUT);
    ck_assert_elapsed(t0, 40, 5000);
    struct stat st;
    memset(&st, 0xab, sizeof st);
    weft_set_task_deadline(weft_now() + 20);
    ck_assert_fails(weft_fstat(fd, &st), ETIMEDOUT);
    ck_assert_fails(weft_pwrite(fd, "late", 4, 0), ETIMEDOUT);
    /* Past already: fails at once, nothing queued. */
    weft_set_task_deadline(weft_now() - 1);
    ck_assert_fails(weft_open(in_dir(p, "never"), O_CREAT | O_RDWR, 0600), ETIMEDOUT);
    weft_set_task_deadline(old);
    gate_open();
    ck_assert_int_eq(weft_join(h, NULL), 0);
    /* One thread, FIFO: once this job ran, the abandoned ones were dropped before it. */
    ck_assert_int_eq(weft_offload(nothing, NULL, -1), 0);
    for (size_t i = 0; i < sizeof buf; i++)
        ck_assert_int_eq(buf[i], 'x');
    unsigned char *b = (unsigned char *)&st;
    for (size_t i = 0; i < sizeof st; i++)
        ck_assert_int_eq(b[i], 0xab);
    char back[8];
    ck_assert_int_eq(weft_pread(fd, back, sizeof back, 0), 8);
    ck_assert_int_eq(memcmp(back, "new data", 8), 0);   /* the queued pwrite never ran */
    ck_assert_fails(weft_stat(in_dir(p, "never"), &st), ENOENT);
    close(fd);
    return NULL;
}

START_TEST(deadline_scope_ends_a_queued_call_which_never_touches_the_buffer)
{
    make_dir();
    ck_assert_int_eq(weft_main(queued_timeout_task, NULL), 0);
    ck_assert_int_eq(weft_offload_set_threads(4), 0);
    remove_dir();
}
END_TEST

/* The errno of a weft_open that creates arg (0: it succeeded). */
static void *open_create_task(void *arg)
{
    int r = weft_open((const char *)arg, O_CREAT | O_RDWR, 0600);
    if (r >= 0)
        close(r);
    return (void *)(intptr_t)(r < 0 ? errno : 0);
}

static void *cancel_task(void *arg)
{
    (void)arg;
    char p[128];
    ck_assert_int_eq(weft_offload_set_threads(1), 0);
    weft_task *h = hold_the_pool();
    weft_task *c = weft_spawn(NULL, open_create_task, in_dir(p, "cancelled"));
    weft_sleep(20);
    ck_assert_int_eq(weft_cancel(c), 0);
    void *r;
    ck_assert_int_eq(weft_join(c, &r), 0);
    ck_assert_int_eq((int)(intptr_t)r, ECANCELED);
    /* A cancelled task fails at once. */
    weft_task *c2 = weft_spawn(NULL, open_create_task, p);
    ck_assert_int_eq(weft_cancel(c2), 0);
    ck_assert_int_eq(weft_join(c2, &r), 0);
    ck_assert_int_eq((int)(intptr_t)r, ECANCELED);
    gate_open();
    ck_assert_int_eq(weft_join(h, NULL), 0);
    ck_assert_int_eq(weft_offload(nothing, NULL, -1), 0);
    struct stat st;
    ck_assert_fails(weft_stat(p, &st), ENOENT);     /* dropped before it ran */
    return NULL;
}

START_TEST(cancel_ends_a_queued_call)
{
    make_dir();
    ck_assert_int_eq(weft_main(cancel_task, NULL), 0);
    ck_assert_int_eq(weft_offload_set_threads(4), 0);
    remove_dir();
}
END_TEST

/* A running open (of a FIFO with no writer) outlives its call: the late fd is closed. */
static void *running_open_task(void *arg)
{
    (void)arg;
    char f[128];
    in_dir(f, "fifo");
    ck_assert_int_eq(mkfifo(f, 0600), 0);
    ck_assert_int_eq(weft_offload_set_threads(1), 0);
    int64_t old = weft_set_task_deadline(weft_now() + 100);
    ck_assert_fails(weft_open(f, O_RDONLY), ETIMEDOUT);
    weft_set_task_deadline(old);
    int rw = open(f, O_RDWR | O_NONBLOCK);     /* a writer: the pool's open returns */
    ck_assert_int_ge(rw, 0);
    ck_assert_int_eq(weft_offload(nothing, NULL, -1), 0);
    for (int i = 0; i < 5000 && fds_on(f) != 1; i++)
        weft_sleep(1);          /* the pool closes the late fd once the open returns */
    ck_assert_int_eq(fds_on(f), 1);
    close(rw);
    return NULL;
}

START_TEST(a_running_open_left_by_its_deadline_closes_its_fd)
{
    make_dir();
    ck_assert_int_eq(weft_main(running_open_task, NULL), 0);
    ck_assert_int_eq(weft_offload_set_threads(4), 0);
    remove_dir();
}
END_TEST

static Suite *fs_suite(void)
{
    Suite *s = suite_create("fs");
    ADD_TEST(s, each_call_succeeds_and_fails_as_libc, 20);
    ADD_TEST(s, bad_input_gets_a_clear_errno, 20);
    ADD_TEST(s, large_pread_and_pwrite, 60);
    ADD_TEST(s, outside_a_task_they_are_the_plain_calls, 10);
    ADD_TEST(s, deadline_scope_ends_a_queued_call_which_never_touches_the_buffer, 20);
    ADD_TEST(s, cancel_ends_a_queued_call, 20);
    ADD_TEST(s, a_running_open_left_by_its_deadline_closes_its_fd, 20);
    return s;
}

int main(void)
{
    return test_run(fs_suite());
}

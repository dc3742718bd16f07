/* File calls through the offload pool: open, pread, pwrite, fsync, stat, ... with libc's
 * signatures. Each call inside a task copies what it is given into a heap record (paths,
 * the bytes to write), the pool thread makes the syscall on that record (reads into a bounce
 * buffer, stats into the record), and the task copies results out only on success; a call
 * that returns early (ETIMEDOUT, ECANCELED) leaves the record to the pool's discard, so a
 * late syscall never touches the caller's memory, and a late open's fd is closed. */
#include "config.h"
#include "offload.h"
#include "sys.h"
#include "weft.h"

#include <errno.h>

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum fsop { FS_OPEN, FS_PREAD, FS_PWRITE, FS_FSYNC, FS_FDATASYNC, FS_STAT, FS_FSTAT, FS_UNLINK,
            FS_RENAME, FS_MKDIR };

/* The kernel moves at most this much in one read or write (MAX_RW_COUNT). */
#define RW_MAX 0x7ffff000L
/* A pread larger than this learns first how much the file holds, to size its bounce buffer. */
#define PREAD_SMALL (64L * 1024)
/* The bounce buffer of a larger pread from something other than a regular file. */
#define PREAD_STREAM (16L * 1024 * 1024)

struct fsjob {
    enum fsop op;
    int fd, flags;
    mode_t mode;
    off_t off;
    size_t n;
    char *path, *path2;         /* copies */
    char *buf;                  /* pread: the bounce buffer; pwrite: a copy of the bytes */
    struct stat st;
    long ret;                   /* the syscall's result */
    int err;                    /* its errno when ret is -1 */
};

static long fs_pread(struct fsjob *j)
{
    size_t n = j->n;
    if (n > (size_t)PREAD_SMALL) {
        struct stat st;
        if (fstat(j->fd, &st) != 0)
            return -1;
        size_t cap = (size_t)PREAD_STREAM;
        if (S_ISREG(st.st_mode))
            cap = st.st_size > j->off ? (size_t)(st.st_size - j->off) : 0;
        if (cap < (size_t)PREAD_SMALL)
            cap = (size_t)PREAD_SMALL;  /* room for a file that grew, and for the errors */
        if (n > cap)
            n = cap;
    }
    j->buf = malloc(n ? n : 1);
    if (!j->buf)
        return -1;
    return pread(j->fd, j->buf, n, j->off);
}

/* On the pool thread (or the caller's, outside any task). */
static void fs_run(void *arg)
{
    struct fsjob *j = arg;
    long r;
    switch (j->op) {
    case FS_OPEN:
        r = open(j->path, j->flags, j->mode);
        break;
    case FS_PREAD:
        r = fs_pread(j);
        break;
    case FS_PWRITE:
        r = pwrite(j->fd, j->buf, j->n, j->off);
        break;
    case FS_FSYNC:
        r = fsync(j->fd);
        break;
    case FS_FDATASYNC:
        r = fdatasync(j->fd);
        break;
    case FS_STAT:
        r = stat(j->path, &j->st);
        break;
    case FS_FSTAT:
        r = fstat(j->fd, &j->st);
        break;
    case FS_UNLINK:
        r = unlink(j->path);
        break;
    case FS_RENAME:
        r = rename(j->path, j->path2);
        break;
    case FS_MKDIR:
        r = mkdir(j->path, j->mode);
        break;
    default:
        r = -1;
        errno = ENOSYS;
    }
    j->ret = r;
    j->err = r < 0 ? errno : 0;
}

static void fs_free(struct fsjob *j)
{
    free(j->path);
    free(j->path2);
    free(j->buf);
    free(j);
}

/* The pool is done with a record its caller left: an fd opened too late is closed. */
static void fs_discard(void *arg)
{
    struct fsjob *j = arg;
    if (j->op == FS_OPEN && j->ret >= 0)
        weft_sys_close((int)j->ret);
    fs_free(j);
}

static struct fsjob *fs_new(enum fsop op, const char *path, const char *path2)
{
    struct fsjob *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    j->op = op;
    j->ret = -1;
    if ((path && !(j->path = strdup(path))) || (path2 && !(j->path2 = strdup(path2)))) {
        fs_free(j);
        errno = ENOMEM;
        return NULL;
    }
    return j;
}

static const char *const op_names[] = {
    [FS_OPEN] = "open", [FS_PREAD] = "pread", [FS_PWRITE] = "pwrite", [FS_FSYNC] = "fsync",
    [FS_FDATASYNC] = "fdatasync", [FS_STAT] = "stat", [FS_FSTAT] = "fstat",
    [FS_UNLINK] = "unlink", [FS_RENAME] = "rename", [FS_MKDIR] = "mkdir",
};

/* Run j through the pool (on the caller's thread outside any task). 0 with j still the
 * caller's and j->ret, j->err set; -1 with errno and j given away. */
static int fs_call(struct fsjob *j)
{
    if (weft_offload_give(op_names[j->op], fs_run, j, fs_discard, -1) != 0)
        return -1;
    return 0;
}

/* The result of a finished j, which is freed. */
static long fs_result(struct fsjob *j)
{
    long r = j->ret;
    int e = j->err;
    fs_free(j);
    if (r < 0)
        errno = e;
    return r;
}

/* Paths: NULL is EFAULT, as the kernel says for a bad pointer. */
static int bad_path(const char *p)
{
    if (p)
        return 0;
    errno = EFAULT;
    return 1;
}

static int in_task(void)
{
    return weft_self() != NULL;
}

int weft_open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if (!in_task())
        return open(path, flags, mode);
    if (bad_path(path))
        return -1;
    struct fsjob *j = fs_new(FS_OPEN, path, NULL);
    if (!j)
        return -1;
    j->flags = flags;
    j->mode = mode;
    return fs_call(j) != 0 ? -1 : (int)fs_result(j);
}

/* pread's and pwrite's arguments: EINVAL (a count above SSIZE_MAX, a negative offset),
 * EFAULT (no buffer for a count); a count above what one call moves is cut to it. */
static int rw_check(const void *buf, size_t *n, off_t off)
{
    if (*n > (size_t)SSIZE_MAX || off < 0) {
        errno = EINVAL;
        return -1;
    }
    if (!buf && *n) {
        errno = EFAULT;
        return -1;
    }
    if (*n > (size_t)RW_MAX)
        *n = (size_t)RW_MAX;
    return 0;
}

ssize_t weft_pread(int fd, void *buf, size_t n, off_t off)
{
    if (!in_task())
        return pread(fd, buf, n, off);
    if (rw_check(buf, &n, off) != 0)
        return -1;
    struct fsjob *j = fs_new(FS_PREAD, NULL, NULL);
    if (!j)
        return -1;
    j->fd = fd;
    j->n = n;
    j->off = off;
    if (fs_call(j) != 0)
        return -1;
    if (j->ret > 0)
        memcpy(buf, j->buf, (size_t)j->ret);
    return fs_result(j);
}

ssize_t weft_pwrite(int fd, const void *buf, size_t n, off_t off)
{
    if (!in_task())
        return pwrite(fd, buf, n, off);
    if (rw_check(buf, &n, off) != 0)
        return -1;
    struct fsjob *j = fs_new(FS_PWRITE, NULL, NULL);
    if (!j)
        return -1;
    if (n && !(j->buf = malloc(n))) {
        fs_free(j);
        errno = ENOMEM;
        return -1;
    }
    if (n)
        memcpy(j->buf, buf, n);
    j->fd = fd;
    j->n = n;
    j->off = off;
    return fs_call(j) != 0 ? -1 : fs_result(j);
}

static int fd_call(enum fsop op, int fd)
{
    struct fsjob *j = fs_new(op, NULL, NULL);
    if (!j)
        return -1;
    j->fd = fd;
    return fs_call(j) != 0 ? -1 : (int)fs_result(j);
}

int weft_fsync(int fd)
{
    if (!in_task())
        return fsync(fd);
    return fd_call(FS_FSYNC, fd);
}

int weft_fdatasync(int fd)
{
    if (!in_task())
        return fdatasync(fd);
    return fd_call(FS_FDATASYNC, fd);
}

/* stat and fstat: the pool fills the record's struct stat, copied out on success. */
static int stat_call(enum fsop op, const char *path, int fd, struct stat *st)
{
    if (!st || (op == FS_STAT && !path)) {
        errno = EFAULT;
        return -1;
    }
    struct fsjob *j = fs_new(op, path, NULL);
    if (!j)
        return -1;
    j->fd = fd;
    if (fs_call(j) != 0)
        return -1;
    if (j->ret == 0)
        *st = j->st;
    return (int)fs_result(j);
}

int weft_stat(const char *path, struct stat *st)
{
    if (!in_task())
        return stat(path, st);
    return stat_call(FS_STAT, path, -1, st);
}

int weft_fstat(int fd, struct stat *st)
{
    if (!in_task())
        return fstat(fd, st);
    return stat_call(FS_FSTAT, NULL, fd, st);
}

static int path_call(enum fsop op, const char *path, const char *path2, mode_t mode)
{
    if (bad_path(path) || (op == FS_RENAME && bad_path(path2)))
        return -1;
    struct fsjob *j = fs_new(op, path, path2);
    if (!j)
        return -1;
    j->mode = mode;
    return fs_call(j) != 0 ? -1 : (int)fs_result(j);
}

int weft_unlink(const char *path)
{
    if (!in_task())
        return unlink(path);
    return path_call(FS_UNLINK, path, NULL, 0);
}

int weft_rename(const char *from, const char *to)
{
    if (!in_task())
        return rename(from, to);
    return path_call(FS_RENAME, from, to, 0);
}

int weft_mkdir(const char *path, mode_t mode)
{
    if (!in_task())
        return mkdir(path, mode);
    return path_call(FS_MKDIR, path, NULL, mode);
}

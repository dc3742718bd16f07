/* The IO layer's record of an fd (io.h): learning once what an fd is, adopting the sockets
 * weft makes, keeping O_NONBLOCK on where a call needs it, and giving fds back as their user
 * had them (weft_fd_forget, and when the reactor is released). Waiting is the reactor's. */
#include "config.h"
#include "io.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* The fds weft made non-blocking go back to the user as they came (or as the user set them
 * since, through weft_fcntl), so plain calls block again and a later run does not mistake
 * weft's O_NONBLOCK for the user's. */
static void give_back(int fd, struct fdent *f)
{
    struct fdio *x = fdio(f);
    if (!x->known || !x->switched || x->user_nonblock)
        return;
    int fl = weft_sys_fcntl(fd, F_GETFL, 0);
    if (fl >= 0 && (fl & O_NONBLOCK))
        weft_sys_fcntl(fd, F_SETFL, (unsigned long)(unsigned)(fl & ~O_NONBLOCK));
}

/* Learn what fd is: a socket (of which type and protocol) or not, and whether the user set
 * O_NONBLOCK. A non-socket is switched to O_NONBLOCK now; a socket keeps its flags. */
static __attribute__((noinline)) int learn(struct fdent *f, int fd)
{
    struct fdio *x = fdio(f);
    int fl = weft_sys_fcntl(fd, F_GETFL, 0);
    if (fl < 0)
        return -1;
    struct stat st;
    int type = 0, proto = 0;
    socklen_t tl = sizeof type, pl = sizeof proto;
    x->is_socket = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    x->stream = x->is_socket && getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
    x->tcp = x->stream && getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) == 0 && proto == IPPROTO_TCP;
    f->rearm = !x->is_socket;       /* a plain close(2) of it may go unseen: see reactor.h */
    x->user_nonblock = (fl & O_NONBLOCK) != 0;
    x->switched = 0;
    x->rd_short = 0;
    if (!x->is_socket && !x->user_nonblock) {
        if (weft_sys_fcntl(fd, F_SETFL, (unsigned long)(unsigned)(fl | O_NONBLOCK)) < 0)
            return -1;
        x->switched = 1;
    }
    weft_reactor_on_release(give_back);
    x->known = 1;
    return 0;
}

struct fdent *weft_io_fd(struct sched *s, int fd)
{
    struct fdent *f = weft_fd_get(s, fd);
    if (slow(!f))
        return NULL;
    if (fast(fdio(f)->known))
        return f;
    return learn(f, fd) == 0 ? f : NULL;
}

struct fdent *weft_io_known(struct sched *s, int fd)
{
    struct fdent *f = weft_fd_lookup(s, fd);
    return f && fdio(f)->known ? f : NULL;
}

void weft_io_adopt(struct sched *s, int fd, int user_nonblock, int nonblock, int tcp, int stream)
{
    struct fdent *f = weft_fd_get(s, fd);
    if (!f)
        return;
    struct fdio *x = fdio(f);
    if (slow(x->known || f->registered)) {
        /* fd is new from the kernel, so this record is of a file closed with close(2)
         * behind weft's back: forget it, or the new file would never be registered (and
         * would inherit the old one's deadlines). */
        weft_reactor_forget(s, fd);
    }
    x->is_socket = 1;
    x->stream = (unsigned char)(stream != 0);
    x->tcp = (unsigned char)(tcp != 0);
    x->user_nonblock = (unsigned char)(user_nonblock != 0);
    x->switched = nonblock && !user_nonblock;   /* the user sees a blocking socket */
    x->rd_short = 0;
    f->rearm = 0;
    weft_reactor_on_release(give_back);
    x->known = 1;
}

int weft_io_nonblock(struct fdent *f, int fd)
{
    int fl = weft_sys_fcntl(fd, F_GETFL, 0);
    if (slow(fl < 0))
        return -1;
    if (fast(fl & O_NONBLOCK))
        return 0;
    /* Blocking underneath: whatever weft remembered, the user (or the new file behind a
     * stale record) wants a blocking fd, so calls park. */
    if (weft_sys_fcntl(fd, F_SETFL, (unsigned long)(unsigned)(fl | O_NONBLOCK)) < 0)
        return -1;
    fdio(f)->user_nonblock = 0;
    fdio(f)->switched = 1;
    return 0;
}

int weft_fd_forget(int fd)
{
    if (weft_sys_fcntl(fd, F_GETFD, 0) < 0)
        return -1;
    struct sched *s = weft_sched_tls;
    struct fdent *f = weft_io_known(s, fd);
    if (f)
        give_back(fd, f);
    weft_reactor_forget(s, fd);
    return 0;
}

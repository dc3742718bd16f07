/* Name lookups through the offload pool: getaddrinfo and getnameinfo with libc's
 * signatures. As for the file calls, the pool works on a heap record (copies of the names
 * and hints, its own output buffers): a lookup left by its caller (ETIMEDOUT, ECANCELED)
 * finishes into the record, and discard frees its result with freeaddrinfo.
 * libc's functions are found with dlsym: getaddrinfo and getnameinfo are names the wrap
 * flags redirect, and a call by name from libweft.a would come back here (see sys.h). */
#include "config.h"
#include "offload.h"
#include "weft.h"

#include <errno.h>

#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int gai_fn(const char *, const char *, const struct addrinfo *, struct addrinfo **);
typedef int gni_fn(const struct sockaddr *, socklen_t, char *, socklen_t, char *, socklen_t, int);

static gai_fn *libc_gai;
static gni_fn *libc_gni;
static pthread_once_t libc_once = PTHREAD_ONCE_INIT;

static void libc_find(void)
{
    libc_gai = (gai_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
    libc_gni = (gni_fn *)dlsym(RTLD_NEXT, "getnameinfo");
    if (!libc_gai)
        libc_gai = (gai_fn *)dlsym(RTLD_DEFAULT, "getaddrinfo");
    if (!libc_gni)
        libc_gni = (gni_fn *)dlsym(RTLD_DEFAULT, "getnameinfo");
}

/* libc's getaddrinfo (EAI_SYSTEM with ENOSYS where dlsym cannot find it: a static program). */
static int real_gai(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
    pthread_once(&libc_once, libc_find);
    if (!libc_gai || (void *)libc_gai == (void *)weft_getaddrinfo) {
        errno = ENOSYS;
        return EAI_SYSTEM;
    }
    return libc_gai(node, service, hints, res);
}

static int real_gni(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
                    char *serv, socklen_t servlen, int flags)
{
    pthread_once(&libc_once, libc_find);
    if (!libc_gni || (void *)libc_gni == (void *)weft_getnameinfo) {
        errno = ENOSYS;
        return EAI_SYSTEM;
    }
    return libc_gni(sa, salen, host, hostlen, serv, servlen, flags);
}

/* ---- getaddrinfo ------------------------------------------------------------------------- */

struct gai_job {
    char *node, *service;       /* copies */
    struct addrinfo hints;
    int has_hints;
    struct addrinfo *res;
    int ret, err;
};

static void gai_run(void *arg)
{
    struct gai_job *j = arg;
    j->ret = real_gai(j->node, j->service, j->has_hints ? &j->hints : NULL, &j->res);
    j->err = j->ret == EAI_SYSTEM ? errno : 0;
}

static void gai_free(struct gai_job *j)
{
    free(j->node);
    free(j->service);
    free(j);
}

static void gai_discard(void *arg)
{
    struct gai_job *j = arg;
    if (j->ret == 0 && j->res)
        freeaddrinfo(j->res);
    gai_free(j);
}

/* The EAI_ code for a failed pool call: EAI_MEMORY, else EAI_SYSTEM with errno kept. */
static int pool_failure(void)
{
    return errno == ENOMEM ? EAI_MEMORY : EAI_SYSTEM;
}

int weft_getaddrinfo_until(const char *node, const char *service, const struct addrinfo *hints,
                           struct addrinfo **res, int64_t deadline)
{
    if (!res) {
        errno = EFAULT;
        return EAI_SYSTEM;
    }
    if (!weft_self())
        return real_gai(node, service, hints, res);
    struct gai_job *j = calloc(1, sizeof *j);
    if (!j || (node && !(j->node = strdup(node))) || (service && !(j->service = strdup(service)))) {
        if (j)
            gai_free(j);
        return EAI_MEMORY;
    }
    if (hints) {
        /* What getaddrinfo reads of hints; the rest must be zero or NULL. */
        j->hints.ai_flags = hints->ai_flags;
        j->hints.ai_family = hints->ai_family;
        j->hints.ai_socktype = hints->ai_socktype;
        j->hints.ai_protocol = hints->ai_protocol;
        j->has_hints = 1;
    }
    j->ret = EAI_SYSTEM;
    if (weft_offload_give("getaddrinfo", gai_run, j, gai_discard, deadline) != 0)
        return pool_failure();
    int r = j->ret, e = j->err;
    *res = r == 0 ? j->res : NULL;
    gai_free(j);
    if (r == EAI_SYSTEM)
        errno = e;
    return r;
}

int weft_getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                     struct addrinfo **res)
{
    return weft_getaddrinfo_until(node, service, hints, res, -1);
}

/* ---- getnameinfo ------------------------------------------------------------------------- */

struct gni_job {
    struct sockaddr_storage sa;
    socklen_t salen, hostlen, servlen;
    int flags;
    int ret, err;
    char host[NI_MAXHOST];
    char serv[NI_MAXSERV];
};

static void gni_run(void *arg)
{
    struct gni_job *j = arg;
    j->ret = real_gni((struct sockaddr *)&j->sa, j->salen, j->hostlen ? j->host : NULL, j->hostlen,
                      j->servlen ? j->serv : NULL, j->servlen, j->flags);
    j->err = j->ret == EAI_SYSTEM ? errno : 0;
}

static void gni_discard(void *arg)
{
    free(arg);
}

int weft_getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen,
                     char *serv, socklen_t servlen, int flags)
{
    if (!weft_self())
        return real_gni(sa, salen, host, hostlen, serv, servlen, flags);
    if (!sa || salen < sizeof(sa_family_t) || salen > sizeof(struct sockaddr_storage))
        return EAI_FAMILY;
    struct gni_job *j = calloc(1, sizeof *j);
    if (!j)
        return EAI_MEMORY;
    memcpy(&j->sa, sa, salen);
    j->salen = salen;
    /* The pool's buffers hold the longest answer; the caller's length still decides
     * EAI_OVERFLOW. */
    j->hostlen = host ? (hostlen < NI_MAXHOST ? hostlen : NI_MAXHOST) : 0;
    j->servlen = serv ? (servlen < NI_MAXSERV ? servlen : NI_MAXSERV) : 0;
    j->flags = flags;
    j->ret = EAI_SYSTEM;
    if (weft_offload_give("getnameinfo", gni_run, j, gni_discard, -1) != 0)
        return pool_failure();
    int r = j->ret, e = j->err;
    if (r == 0) {
        if (j->hostlen)
            memcpy(host, j->host, strnlen(j->host, j->hostlen - 1) + 1);
        if (j->servlen)
            memcpy(serv, j->serv, strnlen(j->serv, j->servlen - 1) + 1);
    }
    free(j);
    if (r == EAI_SYSTEM)
        errno = e;
    return r;
}

/* Task stacks: mmap'd, committed lazily, a guard region below each, a per-thread pool of freed
 * stacks, and the SIGSEGV handler that turns an overflow (a guard hit, or a frame that jumped
 * past the guard) into a report of which task overflowed. Which task that is, and what to
 * print about it, is asked of the overflow hook the scheduler sets (stack.h). */
#include "config.h"
#include "compiler.h"
#include "stack.h"
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_GUARD_REMOVE
#define MADV_GUARD_REMOVE 103
#endif

#define POOL_CLASSES 4      /* distinct stack sizes pooled at once */
#define POOL_WARM 64        /* freed stacks kept as they are, pages still committed */
#define POOL_MAX 65536      /* beyond the warm ones, kept with their pages released: cheaper
                               than munmap, which splits the merged mapping the stacks share;
                               more are unmapped when the thread goes idle (trim) */
#define SLAB_FIRST 8        /* stacks in a class's first slab; each next slab has twice as many */
#define SLAB_STACKS 256     /* at most, */
#define SLAB_BYTES ((size_t)64 * 1024 * 1024)   /* and at most this much address space */
#define SLAB_IOV 64         /* guards per process_madvise call (its iovec is on the stack) */
#ifndef PIDFD_SELF_THREAD
#define PIDFD_SELF_THREAD (-10000)      /* linux/pidfd.h, 6.15: the calling thread (its mm) */
#endif
#define ALTSTACK_SIZE ((size_t)64 * 1024)
#define FRAME_REACH ((uintptr_t)1024 * 1024) /* how far below its stack a frame too big for the
                                                guard may have put the stack pointer */

static const uint64_t canary_magic = 0x7765667453544b21ull;   /* "weftSTK!" */

static TLS struct pool_class pool[POOL_CLASSES];
static TLS void *altstack;

/* Process-wide: what the kernel supports, the mprotect budget, counts by kind. */
static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static size_t page_size;
static int madvise_guard = 1;           /* cleared when the kernel refuses MADV_GUARD_INSTALL */
static int madvise_checked;             /* set once a guard installed by madvise was seen to fault */
static int process_madvise_ok = 1;      /* cleared when process_madvise cannot install guards */
static long mprotect_budget;            /* stacks that may still be guarded by mprotect */
static enum guard_kind forced_guard;    /* WEFT_GUARD=madvise|mprotect|canary, for tests */
static atomic_long live[4];
static struct sigaction old_segv;

static void segv_handler(int sig, siginfo_t *si, void *uc);
static weft_overflow_hook overflow_hook;     /* who overflowed, and the report: the scheduler's */

void weft_stack_set_overflow_hook(weft_overflow_hook fn)
{
    __atomic_store_n(&overflow_hook, fn, __ATOMIC_RELEASE);
}

static void global_init(void)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    long max_maps = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max_maps) != 1)
            max_maps = 65530;
        fclose(f);
    }
    /* Each mprotect-guarded stack costs two mappings; leave room for everything else. */
    mprotect_budget = max_maps / 2 - 4096;
    if (mprotect_budget < 0)
        mprotect_budget = 0;
    const char *g = getenv("WEFT_GUARD");
    if (g && strcmp(g, "mprotect") == 0)
        forced_guard = GUARD_MPROTECT;
    else if (g && strcmp(g, "canary") == 0)
        forced_guard = GUARD_CANARY;
    else if (g && strcmp(g, "madvise") == 0)
        forced_guard = GUARD_MADVISE;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

/* Does touching map fault? An emulator may answer madvise(MADV_GUARD_INSTALL) with success
 * and install nothing (qemu-user does: it ignores advice it does not know), which would leave
 * every stack unguarded. The kernel fails a write(2) from a guard region with EFAULT, so one
 * byte written to a pipe tells. Returns 1 (it faults), 0 (it does not), -1 (could not tell). */
static int guard_faults(const char *map)
{
    int p[2];
    /* The pipe is made and closed by direct syscalls, both: ThreadSanitizer, seeing libc's
     * pipe2 but not the close, took another thread's next fd of the same number for a race. */
    if (weft_sys_pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    ssize_t w = weft_sys_write(p[1], map, 1);
    int e = errno;
    weft_sys_close(p[0]);
    weft_sys_close(p[1]);
    return w < 0 && e == EFAULT ? 1 : w == 1 ? 0 : -1;
}

/* Pick and install the best guard for a fresh mapping. The first madvise guard of the process
 * is checked to really fault; until one has, a guard that could not be checked is replaced by
 * an mprotect one. */
static enum guard_kind install_guard(char *map)
{
    if (forced_guard != GUARD_MPROTECT && forced_guard != GUARD_CANARY &&
        __atomic_load_n(&madvise_guard, __ATOMIC_RELAXED)) {
        if (madvise(map, WEFT_GUARD_SIZE, MADV_GUARD_INSTALL) == 0) {
            if (fast(__atomic_load_n(&madvise_checked, __ATOMIC_RELAXED)))
                return GUARD_MADVISE;
            int faults = guard_faults(map);
            if (faults == 1) {
                __atomic_store_n(&madvise_checked, 1, __ATOMIC_RELAXED);
                return GUARD_MADVISE;
            }
            madvise(map, WEFT_GUARD_SIZE, MADV_GUARD_REMOVE);
            if (faults == 0)
                __atomic_store_n(&madvise_guard, 0, __ATOMIC_RELAXED);
        } else if (errno == EINVAL) {   /* kernel older than 6.13 */
            __atomic_store_n(&madvise_guard, 0, __ATOMIC_RELAXED);
        }
    }
    if (forced_guard != GUARD_CANARY &&
        __atomic_sub_fetch(&mprotect_budget, 1, __ATOMIC_RELAXED) >= 0) {
        if (mprotect(map, WEFT_GUARD_SIZE, PROT_NONE) == 0)
            return GUARD_MPROTECT;
    }
    __atomic_add_fetch(&mprotect_budget, 1, __ATOMIC_RELAXED);
    return GUARD_CANARY;
}

void weft_stack_set_canary(struct stack *st)
{
    if (st->guard == GUARD_CANARY)
        memcpy(stack_lo(st), &canary_magic, sizeof canary_magic);
}

int weft_stack_canary_ok(const struct stack *st)
{
    return st->guard != GUARD_CANARY || memcmp(stack_lo(st), &canary_magic, sizeof canary_magic) == 0;
}

TLS struct pool_class *weft_stack_pool_last;  /* the class used last: almost always the one */
TLS int weft_stack_pool_excess;             /* a stack was freed since the last trim */
#define pool_last weft_stack_pool_last
#define pool_excess weft_stack_pool_excess

static struct pool_class *pool_for(size_t size, int claim)
{
    if (fast(pool_last != NULL && pool_last->size == size))
        return pool_last;
    struct pool_class *empty = NULL;
    for (int i = 0; i < POOL_CLASSES; i++) {
        if (pool[i].size == size)
            return pool_last = &pool[i];
        if (!empty && pool[i].n == 0)
            empty = &pool[i];
    }
    if (!claim || !empty)
        return NULL;
    if (empty->carve != empty->carve_end)    /* what is left of its last size's slab */
        munmap(empty->carve, (size_t)(empty->carve_end - empty->carve));
    empty->carve = empty->carve_end = empty->guarded_end = NULL;
    empty->slab_n = 0;
    empty->size = size;
    return pool_last = empty;
}

/* Put guards under the n stacks of a fresh slab at base (stride bytes apart), with
 * madvise(MADV_GUARD_INSTALL): for the whole slab in one process_madvise(2) call where the
 * kernel allows it (6.13 lets a process give itself any advice; PIDFD_SELF is 6.15's), else
 * one madvise per stack. Returns how many stacks, from the first, got their guard. */
static size_t guard_slab(char *base, size_t stride, size_t n)
{
    size_t done = 0;
    while (done < n && __atomic_load_n(&process_madvise_ok, __ATOMIC_RELAXED)) {
        struct iovec iov[SLAB_IOV];
        size_t k = n - done < SLAB_IOV ? n - done : SLAB_IOV;
        for (size_t i = 0; i < k; i++) {
            iov[i].iov_base = base + (done + i) * stride;
            iov[i].iov_len = WEFT_GUARD_SIZE;
        }
        long r = syscall(SYS_process_madvise, (long)PIDFD_SELF_THREAD, iov, (long)k,
                         (long)MADV_GUARD_INSTALL, 0L);
        if (r < 0) {
            if (errno == EINVAL || errno == ENOSYS || errno == EBADF || errno == EPERM ||
                errno == ESRCH)
                __atomic_store_n(&process_madvise_ok, 0, __ATOMIC_RELAXED);
            break;      /* the per-stack calls below do the rest, or find out why */
        }
        done += (size_t)r / WEFT_GUARD_SIZE;    /* the kernel stops at a range it refuses */
        if ((size_t)r != k * WEFT_GUARD_SIZE)
            break;
    }
    for (; done < n; done++) {
        if (madvise(base + done * stride, WEFT_GUARD_SIZE, MADV_GUARD_INSTALL) != 0) {
            if (errno == EINVAL)    /* kernel older than 6.13 */
                __atomic_store_n(&madvise_guard, 0, __ATOMIC_RELAXED);
            break;
        }
    }
    return done;
}

/* Map a slab of stacks for pc: n of them at first, twice as many each time after (up to
 * SLAB_STACKS and SLAB_BYTES), one when a bigger mapping fails. The guards of the whole slab
 * are installed now when madvise guards are in use; the others are set per stack as it is
 * carved. Returns 0, or -1 when not even one stack could be mapped. */
static int slab_map(struct pool_class *pc)
{
    size_t stride = WEFT_GUARD_SIZE + pc->size;
    size_t n = pc->slab_n ? pc->slab_n : SLAB_FIRST;
    if (n > SLAB_BYTES / stride)
        n = SLAB_BYTES / stride;
    if (n < 1)
        n = 1;
    char *map;
    for (;;) {
        map = mmap(NULL, n * stride, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
        if (map != MAP_FAILED)
            break;
        if (n == 1)
            return -1;
        n = 1;
    }
    if (n * 2 <= SLAB_STACKS)
        pc->slab_n = n * 2;
    pc->carve = map;
    pc->carve_end = map + n * stride;
    pc->guarded_end = map;
    if (forced_guard != GUARD_MPROTECT && forced_guard != GUARD_CANARY &&
        __atomic_load_n(&madvise_guard, __ATOMIC_RELAXED)) {
        size_t g = guard_slab(map, stride, n);
        if (g && !__atomic_load_n(&madvise_checked, __ATOMIC_RELAXED)) {
            int faults = guard_faults(map);
            if (faults == 1) {
                __atomic_store_n(&madvise_checked, 1, __ATOMIC_RELAXED);
            } else {
                for (size_t i = 0; i < g; i++)
                    madvise(map + i * stride, WEFT_GUARD_SIZE, MADV_GUARD_REMOVE);
                if (faults == 0)
                    __atomic_store_n(&madvise_guard, 0, __ATOMIC_RELAXED);
                g = 0;
            }
        }
        pc->guarded_end = map + g * stride;
    }
    return 0;
}

static void unmap_runs(struct stack *items, size_t k);

/* Out of address space: unmap every pooled stack of this thread (and leave its classes
 * be); returns how many there were. */
static size_t pool_unmap_free(void)
{
    size_t k = 0;
    for (int i = 0; i < POOL_CLASSES; i++) {
        struct pool_class *pc = &pool[i];
        unmap_runs(pc->items, pc->n);
        k += pc->n;
        pc->n = pc->ncold = 0;
    }
    return k;
}

/* Register a fresh stack at map (its guard set, or to be set when guard is 0). */
static void stack_init(struct stack *st, char *map, size_t size, enum guard_kind guard)
{
    st->map = map;
    st->size = size;
    st->guard = (unsigned char)(guard ? guard : install_guard(map));
    st->vg_id = VALGRIND_STACK_REGISTER(stack_lo(st), stack_lo(st) + size);
    weft_stack_set_canary(st);
    atomic_fetch_add(&live[st->guard], 1);
}

int weft_stack_alloc_slow(struct stack *st, size_t size)
{
    struct pool_class *pc = pool_for(size, 0);
    if (fast(pc && pc->n)) {
        *st = pc->items[--pc->n];
        if (pc->ncold > pc->n)
            pc->ncold = pc->n;
        weft_stack_set_canary(st);
        return 0;
    }
    pthread_once(&global_once, global_init);
    if (!pc)
        pc = pool_for(size, 1);
    if (pc) {
        if (pc->carve == pc->carve_end && slab_map(pc) != 0 &&
            (pool_unmap_free() == 0 || slab_map(pc) != 0)) {
            errno = ENOMEM;
            return -1;
        }
        char *map = pc->carve;
        pc->carve += WEFT_GUARD_SIZE + size;
        stack_init(st, map, size, map < pc->guarded_end ? GUARD_MADVISE : 0);
        return 0;
    }
    /* Every class is taken by other sizes: a mapping of its own. */
    char *map = mmap(NULL, WEFT_GUARD_SIZE + size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        errno = ENOMEM;
        return -1;
    }
    stack_init(st, map, size, 0);
    return 0;
}

static void stack_unmap(struct stack *st)
{
    VALGRIND_STACK_DEREGISTER(st->vg_id);
    if (st->guard == GUARD_MPROTECT)
        __atomic_add_fetch(&mprotect_budget, 1, __ATOMIC_RELAXED);
    atomic_fetch_sub(&live[st->guard], 1);
    munmap(st->map, WEFT_GUARD_SIZE + st->size);
}

void weft_stack_free_slow(struct stack *st)
{
    struct pool_class *pc = pool_for(st->size, 1);
    if (!pc) {
        stack_unmap(st);
        return;
    }
    if (pc->n == pc->cap) {
        size_t cap = pc->cap ? pc->cap * 2 : 16;
        struct stack *items = realloc(pc->items, cap * sizeof *items);
        if (!items) {
            stack_unmap(st);
            return;
        }
        pc->items = items;
        pc->cap = cap;
    }
    pc->items[pc->n++] = *st;
    pool_excess = 1;    /* maybe more than POOL_WARM warm now: weft_stack_pool_trim's job */
}

static int by_address(const void *a, const void *b)
{
    const struct stack *x = a, *y = b;
    return x->map < y->map ? -1 : x->map > y->map;
}

/* Unmap items[0..k) (sorting them by address): a contiguous run of stacks, the stacks of a
 * slab or of neighbouring slabs, in one call. */
static void unmap_runs(struct stack *items, size_t k)
{
    if (k > 1)
        qsort(items, k, sizeof *items, by_address);
    size_t run = 0;
    for (size_t i = 0; i < k; i++) {
        struct stack *st = &items[i];
        VALGRIND_STACK_DEREGISTER(st->vg_id);
        if (st->guard == GUARD_MPROTECT)
            __atomic_add_fetch(&mprotect_budget, 1, __ATOMIC_RELAXED);
        atomic_fetch_sub(&live[st->guard], 1);
        char *end = st->map + WEFT_GUARD_SIZE + st->size;
        if (i + 1 == k || items[i + 1].map != end) {
            munmap(items[run].map, (size_t)(end - items[run].map));
            run = i + 1;
        }
    }
}

/* Release the pages of items[0..k): process_madvise, SLAB_IOV stacks a call, where it takes
 * MADV_DONTNEED, else one madvise each. Guards stay (guard markers and PROT_NONE both
 * survive MADV_DONTNEED). */
static void release_pages(struct stack *items, size_t k)
{
    static int batch_ok = 1;
    size_t done = 0;
    while (done < k && __atomic_load_n(&batch_ok, __ATOMIC_RELAXED)) {
        struct iovec iov[SLAB_IOV];
        size_t m = k - done < SLAB_IOV ? k - done : SLAB_IOV;
        size_t want = 0;
        for (size_t i = 0; i < m; i++) {
            iov[i].iov_base = stack_lo(&items[done + i]);
            iov[i].iov_len = items[done + i].size;
            want += items[done + i].size;
        }
        long r = syscall(SYS_process_madvise, (long)PIDFD_SELF_THREAD, iov, (long)m,
                         (long)MADV_DONTNEED, 0L);
        if (r < 0 && (errno == EINVAL || errno == ENOSYS || errno == EBADF || errno == EPERM ||
                      errno == ESRCH))
            __atomic_store_n(&batch_ok, 0, __ATOMIC_RELAXED);
        if (r < 0 || (size_t)r != want)
            break;      /* the rest one by one (done again for a part done: harmless) */
        done += m;
    }
    for (; done < k; done++)
        madvise(stack_lo(&items[done]), items[done].size, MADV_DONTNEED);
}

void weft_stack_pool_trim(void)
{
    if (!pool_excess)
        return;
    pool_excess = 0;
    for (int i = 0; i < POOL_CLASSES; i++) {
        struct pool_class *pc = &pool[i];
        if (pc->n > POOL_MAX) {     /* unmap the oldest beyond the bound */
            size_t k = pc->n - POOL_MAX;
            unmap_runs(pc->items, k);
            memmove(pc->items, pc->items + k, (pc->n - k) * sizeof *pc->items);
            pc->n -= k;
            pc->ncold = pc->ncold > k ? pc->ncold - k : 0;
        }
        /* Give back the pages of the oldest warm stacks (the newest are reused first). */
        if (pc->n - pc->ncold > POOL_WARM) {
            size_t k = pc->n - pc->ncold - POOL_WARM;
            release_pages(pc->items + pc->ncold, k);
            pc->ncold += k;
        }
    }
}

/* Unmap the pool and what is left of each class's slab. */
void weft_stack_pool_drain(void)
{
    for (int i = 0; i < POOL_CLASSES; i++) {
        struct pool_class *pc = &pool[i];
        unmap_runs(pc->items, pc->n);
        if (pc->carve != pc->carve_end)
            munmap(pc->carve, (size_t)(pc->carve_end - pc->carve));
        free(pc->items);
        memset(pc, 0, sizeof *pc);
    }
    pool_last = NULL;
}

int weft_stack_holds(const struct stack *st, uintptr_t p)
{
    uintptr_t g = (uintptr_t)st->map;
    return p >= g && p - g <= WEFT_GUARD_SIZE + st->size;
}

int weft_stack_guard_hit(const struct stack *st, const void *addr, uintptr_t sp)
{
    uintptr_t a = (uintptr_t)addr, g = (uintptr_t)st->map;
    if (st->guard == GUARD_CANARY || a < g || a >= g + WEFT_GUARD_SIZE)
        return 0;
    return sp == 0 || weft_stack_holds(st, sp);
}

int weft_stack_frame_past_guard(const struct stack *st, const void *addr, uintptr_t sp)
{
    uintptr_t a = (uintptr_t)addr, lo = (uintptr_t)stack_lo(st);
    /* Code stores at or above the stack pointer, or a little below it (the red zone, a probe),
     * never far below. */
    return sp != 0 && sp < lo && lo - sp <= FRAME_REACH && a < lo && a + WEFT_GUARD_SIZE >= sp;
}

size_t weft_stack_resident(const struct stack *st)
{
    unsigned char vec[256];
    size_t pages = st->size / page_size, resident = 0;
    for (size_t off = 0; off < pages; off += sizeof vec) {
        size_t n = pages - off < sizeof vec ? pages - off : sizeof vec;
        if (mincore(stack_lo(st) + off * page_size, n * page_size, vec) != 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            resident += vec[i] & 1;
    }
    return resident * page_size;
}

void weft_stack_counts(size_t counts[4])
{
    for (int i = 0; i < 4; i++)
        counts[i] = (size_t)atomic_load(&live[i]);
}

/* The stack pointer of the code that faulted, from the signal's context; 0 when it is not
 * known here, or when that code ran on the alternate signal stack (a signal handler, whose
 * frames are no task's). */
static uintptr_t faulting_sp(const void *ucv)
{
    const ucontext_t *uc = ucv;
    if (uc->uc_stack.ss_flags & SS_ONSTACK)
        return 0;
#if defined(__x86_64__)
    return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (uintptr_t)uc->uc_mcontext.sp;
#else
    return 0;
#endif
}

/* A task's stack overflow is reported and aborts; any other fault goes to whatever handled
 * SIGSEGV before us, or to the default action (a core dump as usual). */
static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    weft_overflow_hook hook = __atomic_load_n(&overflow_hook, __ATOMIC_ACQUIRE);
    if (hook && hook(si->si_addr, faulting_sp(uc))) {
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    if (old_segv.sa_flags & SA_SIGINFO) {
        old_segv.sa_sigaction(sig, si, uc);
    } else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
        old_segv.sa_handler(sig);
    } else {
        /* Returning re-runs the faulting instruction, which now gets the default action. */
        signal(SIGSEGV, SIG_DFL);
    }
}

int weft_stack_thread_init(void)
{
    pthread_once(&global_once, global_init);
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return 0;   /* the thread has its own alternate stack; use it */
    void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    stack_t ss = { .ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        int e = errno;
        munmap(mem, ALTSTACK_SIZE);
        errno = e;
        return -1;
    }
    altstack = mem;
    return 0;
}

void weft_stack_thread_fini(void)
{
    weft_stack_pool_drain();
    if (altstack) {
        stack_t ss = { .ss_sp = NULL, .ss_size = 0, .ss_flags = SS_DISABLE };
        sigaltstack(&ss, NULL);
        munmap(altstack, ALTSTACK_SIZE);
        altstack = NULL;
    }
}

/* Backtraces for the dump: walk a frame-pointer chain from saved or interrupted registers, and
 * name each return address (function, module, offset). Everything here is async-signal-safe
 * enough for the SIGQUIT and watchdog handlers: no malloc, no stdio, no locks of our own.
 * Which registers to start from, and what to print, is dump.c's business.
 *
 * Why frame pointers: weft is built with -fno-omit-frame-pointer, and ctx_saved_regs gives
 * pc/sp/fp of a parked task on every backend, so a walk is a loop of two loads per frame,
 * costs nothing at run time, needs no library, and works from a signal handler. Every frame
 * address is checked against the stack's bounds and must grow strictly, so a broken chain
 * (code built without frame pointers, a half-written frame) ends the walk instead of
 * faulting. The cost: a frame of a function compiled without frame pointers (much of libc)
 * is skipped, and its caller shown. libunwind would unwind through those via DWARF CFI, but
 * it is an extra dependency, its remote-context setup is per backend, and its signal safety
 * depends on caching modes; the frames that matter here (weft's park path and user code) all
 * keep frame pointers.
 *
 * Names: dladdr1 gives the module and its load bias; the module's ELF file is mapped and its
 * .symtab searched, so static and hidden functions (most of weft's park path, a program not
 * linked with -rdynamic) are named too; .dynsym via dladdr is the fallback for a stripped
 * file. File and line need DWARF: tools/weft-dump runs addr2line on module+offset, and the
 * gdb helper has them natively. dladdr takes glibc's loader lock (recursive): a dump that
 * interrupts a dlopen in another thread waits for it, one that interrupts a dlopen in its
 * own thread may read a half-updated module list; both are rare and accepted. */
#include "config.h"
#include "backtrace.h"
#include "compiler.h"
#include "sys.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char exe_path[512];

/* A return address as a frame record holds it, without its pointer authentication code: code
 * built with -mbranch-protection=pac-ret or standard signs x30 before saving it, and on a CPU
 * with PAC the high bits then hold the signature. xpaclri (a hint: a no-op on CPUs without
 * PAC) strips it from x30. */
static inline uintptr_t strip_pac(uintptr_t ret)
{
#if defined(__aarch64__)
    register uintptr_t x30 __asm__("x30") = ret;
    __asm__("hint #7" : "+r"(x30));     /* xpaclri */
    return x30;
#else
    return ret;
#endif
}

__attribute__((no_sanitize_address))
int weft_bt_walk(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t lo, uintptr_t hi,
                 uintptr_t *pcs, int max)
{
    int n = 0;
    if (pc && n < max)
        pcs[n++] = pc;
    uintptr_t floor = sp > lo ? sp : lo;
    /* A frame record is [fp] = caller's fp, [fp + 8] = return address (x86-64 and aarch64). */
    while (n < max && fp >= floor && fp <= hi - 2 * sizeof(uintptr_t) &&
           (fp & (sizeof(uintptr_t) - 1)) == 0) {
        const uintptr_t *f = (const uintptr_t *)fp;
        uintptr_t ret = strip_pac(f[1]);
        if (ret < 4096)
            break;
        pcs[n++] = ret;
        floor = fp + 2 * sizeof(uintptr_t);
        fp = f[0];
    }
    return n;
}

__attribute__((no_sanitize_address))
uintptr_t weft_bt_entry_return(uintptr_t pc, uintptr_t start, uintptr_t sp, uintptr_t lo, uintptr_t hi)
{
#if defined(__x86_64__)
    /* Code interrupted in a function's first instructions (endbr64; push %rbp) or at its
     * ret has the caller's frame pointer in rbp, so the walk would skip the caller: its
     * return address is at [sp] (or [sp + 8] once rbp is pushed). */
    const unsigned char *p = (const unsigned char *)start;
    uintptr_t k = 0, slot = 0;
    if (!start || pc < start)
        return 0;
    if (p[0] == 0xf3 && p[1] == 0x0f && p[2] == 0x1e && p[3] == 0xfa)
        k = 4;
    if (pc == start + k)
        slot = sp;
    else if (p[k] == 0x55 && pc == start + k + 1)
        slot = sp + 8;
    else if (*(const unsigned char *)pc == 0xc3)
        slot = sp;
    if (!slot || slot < lo || slot > hi - sizeof(uintptr_t) || (slot & 7))
        return 0;
    uintptr_t ret = *(const uintptr_t *)slot;
    return ret < 4096 ? 0 : ret;
#else
    (void)pc; (void)start; (void)sp; (void)lo; (void)hi;
    return 0;
#endif
}

/* ---- ELF symbol tables ---------------------------------------------------------------------- */

static int str_eq(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

/* Map the module's file and find its best symbol table (.symtab, else .dynsym). */
static void module_open(struct bt_module *m)
{
    m->tried = 1;
    const char *path = m->path;
    if (!path[0]) {
        path = "/proc/self/exe";
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof(ElfW(Ehdr))) {
        weft_sys_close(fd);
        return;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    weft_sys_close(fd);
    if (map == MAP_FAILED)
        return;
    m->map = map;
    m->map_size = size;
    const unsigned char *base = map;
    const ElfW(Ehdr) *eh = map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != (sizeof(void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
        eh->e_shentsize != sizeof(ElfW(Shdr)) || eh->e_shoff == 0 ||
        eh->e_shoff > size || eh->e_shnum > (size - eh->e_shoff) / sizeof(ElfW(Shdr)))
        return;
    const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(base + eh->e_shoff);
    const ElfW(Shdr) *best = NULL;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type == SHT_SYMTAB || (sh[i].sh_type == SHT_DYNSYM && !best))
            best = &sh[i];
    }
    if (!best || best->sh_link >= eh->e_shnum || best->sh_entsize != sizeof(ElfW(Sym)))
        return;
    const ElfW(Shdr) *strs = &sh[best->sh_link];
    if (best->sh_offset > size || best->sh_size > size - best->sh_offset ||
        strs->sh_offset > size || strs->sh_size > size - strs->sh_offset || strs->sh_size == 0)
        return;
    m->syms = base + best->sh_offset;
    m->nsyms = best->sh_size / sizeof(ElfW(Sym));
    m->strs = (const char *)base + strs->sh_offset;
    m->strs_size = strs->sh_size;
}

/* The function containing file address a in m's symbol table, or NULL. */
static const char *module_lookup(const struct bt_module *m, uintptr_t a, uintptr_t *start)
{
    const ElfW(Sym) *syms = m->syms, *hit = NULL, *below = NULL;
    for (size_t i = 0; i < m->nsyms; i++) {
        const ElfW(Sym) *y = &syms[i];
        int type = ELF64_ST_TYPE(y->st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || y->st_shndx == SHN_UNDEF ||
            y->st_name >= m->strs_size || y->st_value > a)
            continue;
        if (a < y->st_value + y->st_size) {
            hit = y;
            break;
        }
        if (y->st_size == 0 && (!below || y->st_value > below->st_value))
            below = y;
    }
    if (!hit)
        hit = below;
    if (!hit)
        return NULL;
    const char *name = m->strs + hit->st_name;
    if (memchr(name, '\0', m->strs_size - hit->st_name) == NULL)
        return NULL;
    *start = hit->st_value;
    return name;
}

void weft_bt_init(void)
{
    if (exe_path[0])
        return;
    ssize_t n = readlink("/proc/self/exe", exe_path, sizeof exe_path - 1);
    exe_path[n > 0 ? n : 0] = '\0';
}

void weft_bt_cache_init(struct bt_cache *c)
{
    c->n = 0;
    for (int i = 0; i < BT_MEMO; i++)
        c->memo[i].pc = 0;
}

void weft_bt_cache_fini(struct bt_cache *c)
{
    for (int i = 0; i < c->n; i++) {
        if (c->mods[i].map)
            munmap(c->mods[i].map, c->mods[i].map_size);
    }
    c->n = 0;
}

static int symbol_lookup(struct bt_cache *c, uintptr_t pc, int is_ret, struct bt_sym *out);

int weft_bt_symbol(struct bt_cache *c, uintptr_t pc, int is_ret, struct bt_sym *out)
{
    unsigned slot = (unsigned)((pc >> 2) ^ (pc >> 11)) % BT_MEMO;
    if (c->memo[slot].pc == pc && c->memo[slot].is_ret == is_ret) {
        *out = c->memo[slot].sym;
        return c->memo[slot].found;
    }
    int found = symbol_lookup(c, pc, is_ret, out);
    c->memo[slot].pc = pc;
    c->memo[slot].is_ret = is_ret;
    c->memo[slot].found = found;
    c->memo[slot].sym = *out;
    return found;
}

static int symbol_lookup(struct bt_cache *c, uintptr_t pc, int is_ret, struct bt_sym *out)
{
    /* A return address may be one past the function's end (a call to a noreturn function):
     * look up the call instruction instead. */
    uintptr_t look = is_ret ? pc - 1 : pc;
    Dl_info info;
    struct link_map *lm = NULL;
    out->func = NULL;
    out->off = 0;
    out->module = "?";
    out->module_off = pc;
    if (!dladdr1((void *)look, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return 0;
    const char *name = lm->l_name ? lm->l_name : "";
    out->module = name[0] ? name : (exe_path[0] ? exe_path : "/proc/self/exe");
    out->module_off = pc - (uintptr_t)lm->l_addr;
    struct bt_module *m = NULL;
    for (int i = 0; i < c->n; i++) {
        if (c->mods[i].bias == (uintptr_t)lm->l_addr && str_eq(c->mods[i].path, name)) {
            m = &c->mods[i];
            break;
        }
    }
    if (!m && c->n < BT_MODULES) {
        m = &c->mods[c->n++];
        memset(m, 0, sizeof *m);
        m->bias = (uintptr_t)lm->l_addr;
        m->path = name;
    }
    uintptr_t start = 0;
    const char *fn = NULL;
    if (m) {
        if (!m->tried)
            module_open(m);
        if (m->syms)
            fn = module_lookup(m, look - m->bias, &start);
        if (fn)
            start += m->bias;
    }
    if (!fn && info.dli_sname) {
        fn = info.dli_sname;
        start = (uintptr_t)info.dli_saddr;
    }
    if (fn) {
        out->func = fn;
        out->off = pc - start;
    }
    return 1;
}

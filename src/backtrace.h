/* Backtraces for the dump: walking a parked or interrupted context's frame-pointer chain and
 * naming each pc from the modules' own symbol tables, without malloc (signal-safe). */
#ifndef WEFT_BACKTRACE_H
#define WEFT_BACKTRACE_H

#include <stddef.h>
#include <stdint.h>

#define BT_MAX 48           /* frames shown per context */
#define BT_MODULES 16       /* modules whose symbol tables one dump maps */

struct bt_module {
    uintptr_t bias;         /* load bias: run-time address = file address + bias */
    const char *path;       /* link-map name; "" for the main program */
    void *map;              /* the file, mapped read-only; NULL if unreadable */
    size_t map_size;
    const void *syms;       /* ElfW(Sym)[nsyms]: .symtab, else .dynsym */
    size_t nsyms;
    const char *strs;
    size_t strs_size;
    int tried;
};

struct bt_sym {
    const char *func;       /* NULL when unknown */
    uintptr_t off;          /* pc - function start */
    const char *module;     /* path of the module ("?" when not in any) */
    uintptr_t module_off;   /* pc - load bias: what addr2line takes */
};

#define BT_MEMO 128         /* names remembered per dump: parked tasks share their frames */

/* Modules mapped during one dump, and the names already found (on the dumper's stack: no
 * malloc, so signal-safe). */
struct bt_cache {
    struct bt_module mods[BT_MODULES];
    int n;
    struct {
        uintptr_t pc;       /* 0: empty */
        int is_ret, found;
        struct bt_sym sym;
    } memo[BT_MEMO];
};

/* Collect pc (when nonzero) and the return addresses of the frame-pointer chain from fp, every
 * frame inside [max(sp, lo), hi) and above the previous one; returns how many (<= max). */
int weft_bt_walk(uintptr_t pc, uintptr_t sp, uintptr_t fp, uintptr_t lo, uintptr_t hi,
                 uintptr_t *pcs, int max);
/* For an interrupted pc at the entry or the ret of the function starting at 'start' (where
 * the frame pointer is still the caller's): the return address into the caller, read from
 * the stack; else 0. x86-64 only (0 elsewhere). */
uintptr_t weft_bt_entry_return(uintptr_t pc, uintptr_t start, uintptr_t sp, uintptr_t lo, uintptr_t hi);
/* Learn the program's path (readlink /proc/self/exe) while not in a signal handler. */
void weft_bt_init(void);
void weft_bt_cache_init(struct bt_cache *c);
/* Unmap what the cache mapped; the names it returned are invalid afterwards. */
void weft_bt_cache_fini(struct bt_cache *c);
/* Name pc (is_ret: a return address, so the call before it is looked up). Returns 0 when
 * pc is in no module (out still holds the raw address as module_off). */
int weft_bt_symbol(struct bt_cache *c, uintptr_t pc, int is_ret, struct bt_sym *out);

#endif

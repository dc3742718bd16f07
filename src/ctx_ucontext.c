/* The portable context backend: makecontext/swapcontext. It is the reference the asm
 * backends are tested against; it also saves and restores the signal mask, which costs one
 * rt_sigprocmask syscall per switch. */
#include "config.h"
#include "ctx.h"

#include <stdlib.h>
#include <ucontext.h>

void weft_ctx_make(struct ctx *c, void *lo, size_t size, void (*entry)(void))
{
    /* getcontext only fails on invalid arguments; a failure here is a weft bug. */
    if (getcontext(&c->uc) != 0)
        abort();
    c->uc.uc_stack.ss_sp = lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, entry, 0);
}

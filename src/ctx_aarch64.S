/* AArch64 context switch for weft (AAPCS64). Saves what a call must preserve: x19-x28, the
 * frame pointer x29, the link register x30, d8-d15 and FPCR; no signal mask, no syscall.
 * Saved frame, from the saved stack pointer up (176 bytes):
 *   +0 x19..x28  +80 x29  +88 x30 (return pc)  +96 d8..d15  +160 fpcr  +168 pad */
    .text

/* void weft_ctx_swap_asm(void **from_sp, void *to_sp) */
    .globl  weft_ctx_swap_asm
    .hidden weft_ctx_swap_asm
    .type   weft_ctx_swap_asm, %function
    .p2align 4
weft_ctx_swap_asm:
    .cfi_startproc
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x10, sp
    str     x10, [x0]
    mov     sp, x1
    ldr     x10, [sp, #160]
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10           /* writing FPCR can be slow: only when it differs */
1:  ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   weft_ctx_swap_asm, .-weft_ctx_swap_asm

/* First code of a new context: entry is in x19. x29/x30 are zeroed so unwinders stop here;
 * entry never returns. */
    .type   weft_ctx_trampoline, %function
    .p2align 4
weft_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x29, #0
    mov     x30, #0
    blr     x19
    brk     #0
    .cfi_endproc
    .size   weft_ctx_trampoline, .-weft_ctx_trampoline

/* void weft_ctx_make(struct ctx *c, void *lo, size_t size, void (*entry)(void)) */
    .globl  weft_ctx_make
    .hidden weft_ctx_make
    .type   weft_ctx_make, %function
    .p2align 4
weft_ctx_make:
    .cfi_startproc
    add     x9, x1, x2
    and     x9, x9, #~15
    sub     x9, x9, #176
    mov     x10, #0
    mov     x11, #0
    stp     x3, x10, [x9, #0]       /* x19 = entry, x20 = 0 */
    stp     x10, x11, [x9, #16]
    stp     x10, x11, [x9, #32]
    stp     x10, x11, [x9, #48]
    stp     x10, x11, [x9, #64]
    adr     x12, weft_ctx_trampoline
    stp     x10, x12, [x9, #80]     /* x29 = 0, x30 = trampoline */
    stp     x10, x11, [x9, #96]
    stp     x10, x11, [x9, #112]
    stp     x10, x11, [x9, #128]
    stp     x10, x11, [x9, #144]
    mrs     x12, fpcr
    stp     x12, x10, [x9, #160]
    str     x9, [x0]
    ret
    .cfi_endproc
    .size   weft_ctx_make, .-weft_ctx_make

    .section .note.GNU-stack,"",@progbits

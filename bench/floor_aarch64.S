/* The floor for bench/switch.c on AArch64: the least a correct switch between two C stacks
 * must do under AAPCS64, saving x19-x28, x29 (fp), x30 (lr), d8-d15 and sp. No FPCR, no
 * scheduler. weft's own switch is src/ctx_aarch64.S; this is only a ruler.
 * Saved frame, from the saved stack pointer up (160 bytes):
 *   +0 x19..x28  +80 x29  +88 x30 (return pc)  +96 d8..d15
 * floor_fp_swap adds what weft's switch also does, saving FPCR and restoring it when it
 * differs (16 more bytes below x19), so the cost of that is measured apart. */
    .text

/* void floor_swap(void **from_sp, void *to_sp) */
    .globl  floor_swap
    .type   floor_swap, %function
    .p2align 4
floor_swap:
    .cfi_startproc
    sub     sp, sp, #160
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
    mov     x9, sp
    str     x9, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #160
    ret
    .cfi_endproc
    .size   floor_swap, .-floor_swap

/* void floor_fp_swap(void **from_sp, void *to_sp) */
    .globl  floor_fp_swap
    .type   floor_fp_swap, %function
    .p2align 4
floor_fp_swap:
    .cfi_startproc
    sub     sp, sp, #176
    stp     x19, x20, [sp, #16]
    stp     x21, x22, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x25, x26, [sp, #64]
    stp     x27, x28, [sp, #80]
    stp     x29, x30, [sp, #96]
    stp     d8, d9, [sp, #112]
    stp     d10, d11, [sp, #128]
    stp     d12, d13, [sp, #144]
    stp     d14, d15, [sp, #160]
    mrs     x9, fpcr
    str     x9, [sp, #0]
    mov     x10, sp
    str     x10, [x0]
    mov     sp, x1
    ldr     x10, [sp, #0]
    cmp     x9, x10
    b.eq    1f
    msr     fpcr, x10
1:  ldp     x19, x20, [sp, #16]
    ldp     x21, x22, [sp, #32]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #64]
    ldp     x27, x28, [sp, #80]
    ldp     x29, x30, [sp, #96]
    ldp     d8, d9, [sp, #112]
    ldp     d10, d11, [sp, #128]
    ldp     d12, d13, [sp, #144]
    ldp     d14, d15, [sp, #160]
    add     sp, sp, #176
    ret
    .cfi_endproc
    .size   floor_fp_swap, .-floor_fp_swap

/* First code of a new floor context: entry is in x19; it must never return. */
    .type   floor_trampoline, %function
    .p2align 4
floor_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x29, #0
    mov     x30, #0
    blr     x19
    brk     #0
    .cfi_endproc
    .size   floor_trampoline, .-floor_trampoline

/* void *floor_make(void *lo, size_t size, void (*entry)(void)): the saved stack pointer of
 * a context that runs entry() on [lo, lo+size) when first switched to. */
    .globl  floor_make
    .type   floor_make, %function
    .p2align 4
floor_make:
    .cfi_startproc
    add     x9, x0, x1
    and     x9, x9, #~15
    sub     x9, x9, #160
    mov     x10, #0
    stp     x2, x10, [x9, #0]       /* x19 = entry, x20 = 0 */
    stp     x10, x10, [x9, #16]
    stp     x10, x10, [x9, #32]
    stp     x10, x10, [x9, #48]
    stp     x10, x10, [x9, #64]
    adr     x11, floor_trampoline
    stp     x10, x11, [x9, #80]     /* x29 = 0, x30 = trampoline */
    stp     x10, x10, [x9, #96]
    stp     x10, x10, [x9, #112]
    stp     x10, x10, [x9, #128]
    stp     x10, x10, [x9, #144]
    mov     x0, x9
    ret
    .cfi_endproc
    .size   floor_make, .-floor_make

/* void *floor_fp_make(void *lo, size_t size, void (*entry)(void)): floor_make's frame with
 * the creator's FPCR below it, for floor_fp_swap. */
    .globl  floor_fp_make
    .type   floor_fp_make, %function
    .p2align 4
floor_fp_make:
    .cfi_startproc
    stp     x29, x30, [sp, #-16]!
    mov     x29, sp
    bl      floor_make
    ldp     x29, x30, [sp], #16
    mrs     x9, fpcr
    stp     x9, xzr, [x0, #-16]!
    ret
    .cfi_endproc
    .size   floor_fp_make, .-floor_fp_make

    .section .note.GNU-stack,"",@progbits

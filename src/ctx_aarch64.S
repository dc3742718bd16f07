/* AArch64 context switch for weft (AAPCS64). Saves what a call must preserve: x19-x28, the
 * frame pointer x29, the link register x30, d8-d15 and FPCR; no signal mask, no syscall.
 * Saved frame, from the saved stack pointer up (176 bytes, so sp stays 16-byte aligned):
 *   +0 x19..x28  +80 x29  +88 x30 (return pc)  +96 d8..d15  +160 fpcr  +168 pad
 * ctx_saved_regs in ctx.h reads x29 and x30 from this layout. */

/* Branch protection: when the compiler builds the C code with BTI (-mbranch-protection=bti or
 * standard), the functions here get landing pads and the object says so in a GNU property note;
 * without the note the linker silently drops BTI for the whole library. The note never claims
 * GCS (the guarded control stack): the swap changes stacks under the return address, which a
 * shadow stack would refuse, so the library must keep GCS off for the programs that link it. */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT == 1
#define BTI_C hint #34          /* bti c */
#define WEFT_FEATURE_BTI 1
#else
#define BTI_C
#define WEFT_FEATURE_BTI 0
#endif
#if defined(__ARM_FEATURE_PAC_DEFAULT) && __ARM_FEATURE_PAC_DEFAULT
#define WEFT_FEATURE_PAC 2
#else
#define WEFT_FEATURE_PAC 0
#endif

    .text

/* void weft_ctx_swap_asm(void **from_sp, void *to_sp)
 * The CFI holds on both sides of the stack switch: before it, it describes the frame just saved;
 * after it, the frame being restored, which has the same layout. */
    .globl  weft_ctx_swap_asm
    .hidden weft_ctx_swap_asm
    .type   weft_ctx_swap_asm, %function
    .p2align 4
weft_ctx_swap_asm:
    .cfi_startproc
    BTI_C
    sub     sp, sp, #176
    .cfi_def_cfa_offset 176
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
    .cfi_rel_offset x19, 0
    .cfi_rel_offset x20, 8
    .cfi_rel_offset x21, 16
    .cfi_rel_offset x22, 24
    .cfi_rel_offset x23, 32
    .cfi_rel_offset x24, 40
    .cfi_rel_offset x25, 48
    .cfi_rel_offset x26, 56
    .cfi_rel_offset x27, 64
    .cfi_rel_offset x28, 72
    .cfi_rel_offset x29, 80
    .cfi_rel_offset x30, 88
    .cfi_rel_offset d8, 96
    .cfi_rel_offset d9, 104
    .cfi_rel_offset d10, 112
    .cfi_rel_offset d11, 120
    .cfi_rel_offset d12, 128
    .cfi_rel_offset d13, 136
    .cfi_rel_offset d14, 144
    .cfi_rel_offset d15, 152
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
    .cfi_def_cfa_offset 0
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    .cfi_restore d8
    .cfi_restore d9
    .cfi_restore d10
    .cfi_restore d11
    .cfi_restore d12
    .cfi_restore d13
    .cfi_restore d14
    .cfi_restore d15
    ret
    .cfi_endproc
    .size   weft_ctx_swap_asm, .-weft_ctx_swap_asm

/* First code of a new context, reached by the swap's ret (which BTI does not check) just past
 * a nop: an unwinder looks a return address up at address - 1, which must fall inside
 * this function, not in the one before it. entry is in x19, and sp is 16-byte aligned. x30 is
 * marked undefined so unwinders stop here, and x29 is 0 so entry's frame record ends a
 * frame-pointer walk. entry never returns. */
    .type   weft_ctx_trampoline, %function
    .p2align 4
weft_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    nop
.Ltrampoline_entered:
    mov     x29, #0
    blr     x19
    brk     #0
    .cfi_endproc
    .size   weft_ctx_trampoline, .-weft_ctx_trampoline

/* void weft_ctx_make(struct ctx *c, void *lo, size_t size, void (*entry)(void))
 * Builds a saved frame at the (16-byte aligned) top of [lo, lo+size) whose return pc is the
 * trampoline, with entry in x19 and the creator's FPCR. c->sp is the first field of struct ctx. */
    .globl  weft_ctx_make
    .hidden weft_ctx_make
    .type   weft_ctx_make, %function
    .p2align 4
weft_ctx_make:
    .cfi_startproc
    BTI_C
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
    adr     x12, .Ltrampoline_entered
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

#if WEFT_FEATURE_BTI || WEFT_FEATURE_PAC
/* GNU_PROPERTY_AARCH64_FEATURE_1_AND: this object is fit for BTI and/or PAC. */
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .word   4                   /* name size */
    .word   16                  /* descriptor size */
    .word   5                   /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .word   0xc0000000          /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .word   4
    .word   WEFT_FEATURE_BTI | WEFT_FEATURE_PAC
    .word   0
    .popsection
#endif

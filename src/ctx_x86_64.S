/* x86-64 context switch for weft (System V ABI). Saves what a call must preserve: rbx, rbp,
 * r12-r15, the MXCSR control bits and the x87 control word; no signal mask, no syscall.
 * Saved frame, from the saved stack pointer up:
 *   +0 mxcsr  +4 x87 cw  +8 r15  +16 r14  +24 r13  +32 r12  +40 rbx  +48 rbp  +56 return pc */
    .text

/* void weft_ctx_swap_asm(void **from_sp, void *to_sp) */
    .globl  weft_ctx_swap_asm
    .hidden weft_ctx_swap_asm
    .type   weft_ctx_swap_asm, @function
    .p2align 4
weft_ctx_swap_asm:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp          /* the CFI holds on: the frame restored has the same layout */
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret
    .cfi_endproc
    .size   weft_ctx_swap_asm, .-weft_ctx_swap_asm

/* First code of a new context, reached by the swap's ret just past a nop: an unwinder looks a
 * return address up at address - 1, which must fall inside this function, not the one before.
 * entry is in r12. The stack is 16-byte aligned here, as a call requires; rip is marked
 * undefined so unwinders stop at this frame. entry never returns. */
    .type   weft_ctx_trampoline, @function
    .p2align 4
weft_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    nop
.Ltrampoline_entered:
    xorl    %ebp, %ebp
    callq   *%r12
    ud2
    .cfi_endproc
    .size   weft_ctx_trampoline, .-weft_ctx_trampoline

/* void weft_ctx_make(struct ctx *c, void *lo, size_t size, void (*entry)(void))
 * Builds a saved frame at the (16-byte aligned) top of [lo, lo+size) whose return pc is the
 * trampoline, with the creator's FP control words. c->sp is the first field of struct ctx. */
    .globl  weft_ctx_make
    .hidden weft_ctx_make
    .type   weft_ctx_make, @function
    .p2align 4
weft_ctx_make:
    .cfi_startproc
    leaq    (%rsi,%rdx), %rax
    andq    $-16, %rax
    leaq    .Ltrampoline_entered(%rip), %r8
    movq    %r8, -8(%rax)
    movq    $0, -16(%rax)
    movq    $0, -24(%rax)
    movq    %rcx, -32(%rax)
    movq    $0, -40(%rax)
    movq    $0, -48(%rax)
    movq    $0, -56(%rax)
    stmxcsr -64(%rax)
    fnstcw  -60(%rax)
    leaq    -64(%rax), %rax
    movq    %rax, (%rdi)
    ret
    .cfi_endproc
    .size   weft_ctx_make, .-weft_ctx_make

    .section .note.GNU-stack,"",@progbits

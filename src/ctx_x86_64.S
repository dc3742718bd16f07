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
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   weft_ctx_swap_asm, .-weft_ctx_swap_asm

/* First code of a new context: entry is in r12. The stack is 16-byte aligned here, as a call
 * requires; rip is marked undefined so unwinders stop at this frame. entry never returns. */
    .type   weft_ctx_trampoline, @function
    .p2align 4
weft_ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
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
    leaq    weft_ctx_trampoline(%rip), %r8
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

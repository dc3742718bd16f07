/* The floor for bench/switch.c on x86-64: the least a correct switch between two C stacks
 * must do under the System V ABI, saving rbx, rbp, r12-r15 and the stack pointer. No FP
 * control words, no scheduler. weft's own switch is src/ctx_x86_64.S; this is only a ruler.
 * Saved frame, from the saved stack pointer up: r15 r14 r13 r12 rbx rbp, return pc.
 * floor_fp_swap adds what weft's switch also does, saving and restoring the MXCSR and the
 * x87 control word (8 more bytes below r15), so the cost of those is measured apart. */
    .text

/* void floor_swap(void **from_sp, void *to_sp) */
    .globl  floor_swap
    .type   floor_swap, @function
    .p2align 4
floor_swap:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   floor_swap, .-floor_swap

/* void floor_fp_swap(void **from_sp, void *to_sp) */
    .globl  floor_fp_swap
    .type   floor_fp_swap, @function
    .p2align 4
floor_fp_swap:
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
    .size   floor_fp_swap, .-floor_fp_swap

/* First code of a new floor context: entry is in r12; it must never return. */
    .type   floor_trampoline, @function
    .p2align 4
floor_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    callq   *%r12
    ud2
    .cfi_endproc
    .size   floor_trampoline, .-floor_trampoline

/* void *floor_make(void *lo, size_t size, void (*entry)(void)): the saved stack pointer of
 * a context that runs entry() on [lo, lo+size) when first switched to. */
    .globl  floor_make
    .type   floor_make, @function
    .p2align 4
floor_make:
    .cfi_startproc
    leaq    (%rdi,%rsi), %rax
    andq    $-16, %rax
    leaq    floor_trampoline(%rip), %r8
    movq    %r8, -8(%rax)           /* return pc */
    movq    $0, -16(%rax)           /* rbp */
    movq    $0, -24(%rax)           /* rbx */
    movq    %rdx, -32(%rax)         /* r12: entry */
    movq    $0, -40(%rax)           /* r13 */
    movq    $0, -48(%rax)           /* r14 */
    movq    $0, -56(%rax)           /* r15 */
    leaq    -56(%rax), %rax
    ret
    .cfi_endproc
    .size   floor_make, .-floor_make

/* void *floor_fp_make(void *lo, size_t size, void (*entry)(void)): floor_make's frame with
 * the creator's MXCSR and x87 control word below it, for floor_fp_swap. */
    .globl  floor_fp_make
    .type   floor_fp_make, @function
    .p2align 4
floor_fp_make:
    .cfi_startproc
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    call    floor_make
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    movq    $0, -8(%rax)
    stmxcsr -8(%rax)
    fnstcw  -4(%rax)
    leaq    -8(%rax), %rax
    ret
    .cfi_endproc
    .size   floor_fp_make, .-floor_fp_make

    .section .note.GNU-stack,"",@progbits

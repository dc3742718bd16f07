/* x86-64 context switch for weft (System V ABI). Saves what a call must preserve: rbx, rbp,
 * r12-r15, the MXCSR control bits and the x87 control word; no signal mask, no syscall.
 * Clobbers rax and rcx, as any call may. Saved frame, from the saved stack pointer up:
 *   +0 mxcsr  +4 x87 cw  +8 r15  +16 r14  +24 r13  +32 r12  +40 rbx  +48 rbp  +56 return pc */

/* Control-flow enforcement (CET). Under IBT an indirect call or jump must land on endbr64, so
 * the two functions whose address can be taken start with one (it is a no-op on CPUs without
 * CET), and the GNU property note at the end says this object is fit for IBT. Without the
 * note, linking it into a library built with -fcf-protection would silently drop IBT for the
 * whole library. The note is emitted always, not only under -fcf-protection: the linker ANDs
 * the property over every object it links, so a library whose C code is built without it is
 * not marked either way, and the assembler's flags need not match the compiler's.
 * The note never claims SHSTK (shadow stacks): the swap changes stacks and returns with a
 * plain ret to the address saved on the incoming task's stack, which the shadow stack, holding
 * the outgoing task's return addresses, would refuse. Supporting it would take a shadow stack
 * per task (map_shadow_stack), a restore token on each, and the swap saving the outgoing
 * shadow stack pointer and switching to the incoming one (saveprevssp/rstorssp). Until then
 * the library must leave SHSTK off for the programs that link it. */
    .text

/* SWAP name, jump: void name(void **from_sp, void *to_sp). Saves the frame above, stores the
 * stack pointer in *from_sp, loads to_sp and restores its frame; then returns into it with a
 * ret (jump 0), or with a jump to the saved pc (jump 1; ctx.h says when each is the better
 * one). The pc is a return address, with no endbr64 there, so the jump is notrack: under IBT
 * it is exempt from the landing check, as compilers' jump tables are; elsewhere it is a plain
 * jump. Both save the same frame, so each resumes what the other saved. */
    .macro SWAP name, jump
    .globl  \name
    .hidden \name
    .type   \name, @function
    .p2align 4
\name:
    .cfi_startproc
    endbr64
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
    movl    (%rsp), %eax        /* the control words now, to skip reloading equal ones */
    movzwl  4(%rsp), %ecx
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp          /* the CFI holds on: the frame restored has the same layout */
.L\name\()_restore:            /* weft_ctx_jump_asm joins here: eax, ecx as above */
    /* Loading MXCSR and the x87 control word stalls the pipeline; nearly every switch finds
     * them as they are (few tasks change rounding or exception masks), and an equal value
     * loaded changes nothing, so load only what differs. */
    cmpl    (%rsp), %eax
    je      1f
    ldmxcsr (%rsp)
1:  cmpw    4(%rsp), %cx
    je      2f
    fldcw   4(%rsp)
2:  addq    $8, %rsp
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
    .if \jump
    popq    %rcx
    .cfi_adjust_cfa_offset -8
    .cfi_register rip, rcx
    notrack jmpq *%rcx
    .else
    ret
    .endif
    .cfi_endproc
    .size   \name, .-\name
    .endm

/* void weft_ctx_swap_asm(void **from_sp, void *to_sp) */
    SWAP weft_ctx_swap_asm, 0
/* void weft_ctx_swap_jmp_asm(void **from_sp, void *to_sp) */
    SWAP weft_ctx_swap_jmp_asm, 1

/* void weft_ctx_jump_asm(void *to_sp): the swap's second half alone, for a context that is
 * never resumed (a task that has ended): nothing is saved, so a task's last switch pays no
 * register stores. The control words are read (below the stack pointer, in the red zone) to
 * compare them as the swap does. */
    .globl  weft_ctx_jump_asm
    .hidden weft_ctx_jump_asm
    .type   weft_ctx_jump_asm, @function
    .p2align 4
weft_ctx_jump_asm:
    .cfi_startproc
    endbr64
    stmxcsr -8(%rsp)
    fnstcw  -4(%rsp)
    movl    -8(%rsp), %eax
    movzwl  -4(%rsp), %ecx
    movq    %rdi, %rsp
    jmp     .Lweft_ctx_swap_asm_restore
    .cfi_endproc
    .size   weft_ctx_jump_asm, .-weft_ctx_jump_asm

/* First code of a new context, reached by the swap's ret just past a nop: an unwinder looks a
 * return address up at address - 1, which must fall inside this function, not the one before.
 * No endbr64: a ret is no indirect branch to IBT (returns are the shadow stack's to check),
 * and nothing calls or jumps here. The indirect call of entry needs one at entry, which the
 * compiler puts there under -fcf-protection.
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
    endbr64
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

/* GNU_PROPERTY_X86_FEATURE_1_AND: this object is fit for IBT (and not for SHSTK: see above). */
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .long   4                   /* name size */
    .long   16                  /* descriptor size */
    .long   5                   /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000002          /* GNU_PROPERTY_X86_FEATURE_1_AND */
    .long   4                   /* data size */
    .long   1                   /* GNU_PROPERTY_X86_FEATURE_1_IBT */
    .long   0                   /* padding to 8 bytes */
    .popsection

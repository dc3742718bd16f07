/* Building blocks every layer of libweft uses: branch hints (the unlikely path marked, as
 * in `if (slow(err))`) and the thread-local storage model of the per-thread state. */
#ifndef WEFT_COMPILER_H
#define WEFT_COMPILER_H

#define slow(x) __builtin_expect(!!(x), 0)
#define fast(x) __builtin_expect(!!(x), 1)
#define TLS __thread __attribute__((tls_model("initial-exec")))

#endif

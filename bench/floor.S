/* The floor switch for this machine's architecture (see floor_x86_64.S, floor_aarch64.S);
 * empty elsewhere, and bench.h then leaves the floor out. */
#if defined(__x86_64__)
#include "floor_x86_64.S"
#elif defined(__aarch64__)
#include "floor_aarch64.S"
#endif

#!/bin/sh
# LOG_COMPILER for tools/dev's Valgrind run: a Check suite, unforked, under memcheck, failing
# on any error or leak. Runs from the build directory, where libtool lives.
# tests/valgrind.supp: what the offload pool's threads, alive at exit, still hold.
supp=$(dirname "$0")/valgrind.supp
CK_FORK=no exec ./libtool --mode=execute valgrind -q --leak-check=full --error-exitcode=1 \
    --suppressions="$supp" \
    --errors-for-leak-kinds=definite,indirect,possible "$@"

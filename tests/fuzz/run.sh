#!/usr/bin/env bash
# tests/fuzz/run.sh: build the libFuzzer harnesses with clang (ASan + UBSan, libweft built
# the same way with coverage, in build/fuzz) and run each for FUZZ_SECONDS (default 60)
# from its committed corpus (tests/fuzz/corpus/NAME; new inputs go to build/fuzz/corpus/NAME,
# crashes to build/fuzz/crash/NAME). Prints one line per harness, "fuzz NAME: PASS" (ran its
# time without a crash) or "fuzz NAME: FAIL", then "fuzz: N passed, N failed"; or
# "fuzz: skipped: ..." (exit 0) when clang or its libFuzzer is missing.
#   FUZZ_SECONDS=600 tests/fuzz/run.sh          longer
#   tests/fuzz/run.sh http                      one harness
# A crash: the input is in build/fuzz/crash/NAME; replay it with
#   build/fuzz/fuzz_NAME build/fuzz/crash/NAME/crash-...
# fix the defect and add the input to tests/fuzz/corpus/NAME as a regression.
set -u
cd "$(dirname "$0")/../.." || exit 2
top=$(pwd)
secs=${FUZZ_SECONDS:-60}
jobs=${JOBS:-2}
cc=${FUZZ_CC:-clang}
out=$top/build/fuzz
harnesses=${*:-http io resp}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz: skipped: no $cc (install clang for the libFuzzer harnesses)"; exit 0
fi
mkdir -p "$out"
echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }' >"$out/probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined -o "$out/probe" "$out/probe.c" >"$out/probe.log" 2>&1; then
    echo "fuzz: skipped: $cc has no libFuzzer (-fsanitize=fuzzer): $(head -1 "$out/probe.log")"; exit 0
fi

[ -x configure ] || autoreconf -fi >/dev/null 2>&1 || { echo "fuzz: FAIL: autoreconf"; exit 1; }
# libweft with ASan/UBSan (so the stack switches are annotated) and fuzzer coverage.
if [ ! -f "$out/Makefile" ] || [ "$out/Makefile" -ot configure ]; then
    (cd "$out" && CC="$cc" CFLAGS="-g -O1 -fsanitize=fuzzer-no-link" \
        "$top/configure" --enable-sanitizers --disable-shared >configure.out 2>&1) ||
        { echo "fuzz: FAIL: configure (build/fuzz/configure.out)"; exit 1; }
fi
make -C "$out" -j"$jobs" -s libweft.la >"$out/make.out" 2>&1 ||
    { echo "fuzz: FAIL: libweft (build/fuzz/make.out)"; tail -20 "$out/make.out"; exit 1; }

pass=0 fail=0
for h in $harnesses; do
    src=tests/fuzz/fuzz_$h.c bin=$out/fuzz_$h
    if ! "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -I"$top/include" -I"$out" -o "$bin" "$src" "$out/.libs/libweft.a" -lpthread >"$out/build_$h.log" 2>&1; then
        echo "fuzz $h: FAIL (build: build/fuzz/build_$h.log)"; tail -5 "$out/build_$h.log"
        fail=$((fail + 1)); continue
    fi
    mkdir -p "$out/corpus/$h" "$out/crash/$h"
    # -max_len: the HTTP parser's limit is 8 KiB; the stream harness's scripts need less.
    maxlen=4096; [ "$h" = http ] && maxlen=10000
    if "$bin" -max_total_time="$secs" -max_len=$maxlen -timeout=20 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/crash/$h/" \
        "$out/corpus/$h" "tests/fuzz/corpus/$h" >"$out/run_$h.log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/run_$h.log" | tail -1)
        echo "fuzz $h: PASS (${runs:-?} runs in ${secs} s)"
        pass=$((pass + 1))
    else
        echo "fuzz $h: FAIL (build/fuzz/run_$h.log; input in build/fuzz/crash/$h)"
        grep -m1 -A12 -E 'ERROR|fuzz_(http|io):|deadly signal' "$out/run_$h.log"
        fail=$((fail + 1))
    fi
done
echo "fuzz: $pass passed, $fail failed"
[ "$fail" -eq 0 ]

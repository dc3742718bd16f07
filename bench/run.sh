#!/bin/sh
# bench/run.sh: build the bench programs against both context backends (an asm and a
# ucontext build of the library, configured out of tree on first use) and run them
# interleaved, asm ucontext asm ucontext ..., quoting the median of the runs' medians.
# `make bench` calls it; the programs themselves are bench/switch.c and bench/spawn.c.
#
#   bench/run.sh              time both programs, both backends
#   bench/run.sh callgrind    instructions per unit (valgrind --tool=callgrind), exact
#
# Environment: BENCH_RUNS (runs per backend, default 5), BENCH_ROUNDS (rounds inside each
# run, default 9), BENCH_PROGRAMS (default "switch spawn"), BENCH_BACKENDS (default
# "asm ucontext"), WEFT_BENCH_BUILDS (where the two builds live), BENCH_CONFIGURE_FLAGS.
set -eu

mode=${1:-time}
case $mode in
time|callgrind) ;;
*) echo "usage: $0 [time|callgrind]" >&2; exit 2 ;;
esac

srcdir=${WEFT_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
builddir=${WEFT_BUILDDIR:-}
if [ -z "${WEFT_BENCH_BUILDS:-}" ]; then
    # Inside an out-of-tree build dir when there is one; a source tree that was configured
    # in place refuses out-of-tree builds, so /tmp then.
    if [ -n "$builddir" ] && [ "$builddir" != "$srcdir" ]; then
        WEFT_BENCH_BUILDS=$builddir/bench/builds
    else
        WEFT_BENCH_BUILDS=${TMPDIR:-/tmp}/weft-bench-$(id -u)
    fi
fi
runs=${BENCH_RUNS:-5}
rounds=${BENCH_ROUNDS:-9}
programs=${BENCH_PROGRAMS:-switch spawn}
backends=${BENCH_BACKENDS:-asm ucontext}
MAKE=${MAKE:-make}

out=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench-out.XXXXXX")
trap 'rm -rf "$out"' EXIT

# ---- the builds ----------------------------------------------------------------------------

built=
for b in $backends; do
    dir=$WEFT_BENCH_BUILDS/$b
    mkdir -p "$dir"
    if [ ! -f "$dir/config.status" ]; then
        echo "bench: configuring $dir (--with-context=$b)"
        if ! (cd "$dir" && "$srcdir/configure" --with-context="$b" \
                ${BENCH_CONFIGURE_FLAGS:-} >"$dir/configure.log" 2>&1); then
            echo "bench: configure failed for $b (see $dir/configure.log); skipping it" >&2
            rm -f "$dir/config.status"
            continue
        fi
    fi
    echo "bench: building $dir"
    if ! $MAKE -C "$dir" -j2 bench-programs >"$dir/make.log" 2>&1; then
        cat "$dir/make.log" >&2
        echo "bench: build failed for $b" >&2
        exit 1
    fi
    built="${built:+$built }$b"
done
[ -n "$built" ] || { echo "bench: nothing built" >&2; exit 1; }

# Run a bench program of a build: the libtool wrapper finds the uninstalled library.
prog() {
    b=$1 p=$2
    shift 2
    "$WEFT_BENCH_BUILDS/$b/bench/$p" "$@"
}

echo "bench: $(uname -m), $(nproc 2>/dev/null || echo '?') cpus, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "bench: source $srcdir ($(git -C "$srcdir" describe --always --dirty 2>/dev/null || echo 'no git'))"

# ---- time: interleaved runs, medians of medians -------------------------------------------

# Lines "switch NAME median X ..." / "spawn NAME median X ..." / "ratio NAME X" from every
# run of one program and backend; prints each key's median over the runs, and its spread.
summarise() {
    awk '
    function med(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    ($1 == "switch" || $1 == "spawn" || $1 == "sync") && $3 == "median" { key = $1 " " $2; val = $4; unit = "ns" }
    $1 == "ratio" { key = $1 " " $2; val = $3; unit = "" }
    key != "" {
        if (!(key in cnt)) { order[++nk] = key; units[key] = unit }
        cnt[key]++; vals[key, cnt[key]] = val
        if (cnt[key] == 1 || val < lo[key]) lo[key] = val
        if (cnt[key] == 1 || val > hi[key]) hi[key] = val
        key = ""
    }
    END {
        for (k = 1; k <= nk; k++) {
            key = order[k]; n = cnt[key]
            for (i = 1; i <= n; i++) a[i] = vals[key, i]
            printf "  %-28s %9.2f %-2s  (runs: %d, range %.2f .. %.2f)\n", key, med(a, n), units[key], n, lo[key], hi[key]
        }
    }' "$@"
}

if [ "$mode" = time ]; then
    for p in $programs; do
        echo
        echo "== $p: $runs runs per backend, interleaved ($built), $rounds rounds each"
        i=1
        while [ "$i" -le "$runs" ]; do
            for b in $built; do
                prog "$b" "$p" -r "$rounds" >"$out/$p.$b.$i"
            done
            i=$((i + 1))
        done
        set -- $built
        sed -n '/^#/p' "$out/$p.$1.1"
        for b in $built; do
            echo "-- backend $b: median over runs of each run's median"
            summarise "$out/$p.$b".*
        done
    done
    exit 0
fi

# ---- callgrind: instructions per unit, from two fixed work sizes ---------------------------

command -v valgrind >/dev/null || { echo "bench: valgrind not found" >&2; exit 1; }

# Total instructions of one run under callgrind.
irs() {
    b=$1; shift
    "$WEFT_BENCH_BUILDS/$b/libtool" --mode=execute valgrind --tool=callgrind \
        --callgrind-out-file="$out/cg.out" "$WEFT_BENCH_BUILDS/$b/bench/$@" \
        >/dev/null 2>"$out/cg.err" || { cat "$out/cg.err" >&2; exit 1; }
    sed -n 's/.*Collected : *\([0-9]*\).*/\1/p' "$out/cg.err"
}

# Instructions per unit: the difference between n2 and n1 units, so start-up cancels out.
per_unit() {
    b=$1 p=$2 v=$3 n1=$4 n2=$5
    i1=$(irs "$b" "$p" -q -r 1 -o "$v" -n "$n1")
    i2=$(irs "$b" "$p" -q -r 1 -o "$v" -n "$n2")
    awk -v a="$i1" -v b="$i2" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }'
}

echo
echo "== callgrind: instructions per unit (difference of two fixed -n runs; deterministic;"
echo "   kernel work such as swapcontext's rt_sigprocmask is not counted)"
for b in $built; do
    echo "-- backend $b"
    for p in $programs; do
        case $p in
        switch) vs="floor floor_fp floor_asym swapcontext weft weft_asym" n1=20000 n2=40000 ;;
        spawn) vs="floor go_join join_64 detached_64 join_1000 detached_1000" n1=8000 n2=16000 ;;
        *) continue ;;
        esac
        for v in $vs; do
            printf '  %-6s %-16s %8s instructions per %s\n' "$p" "$v" \
                "$(per_unit "$b" "$p" "$v" "$n1" "$n2")" "$([ "$p" = switch ] && echo switch || echo task)"
        done
    done
done

#!/bin/sh
# bench/chan.sh: bench/chan (weft) and bench/go/chan (Go, GOMAXPROCS=1) run in turn, weft Go
# weft Go ..., BENCH_RUNS times each (default 5), both pinned to one CPU when taskset is
# there; prints the median over the runs of each figure, and the ratios Go/weft of the
# medians (above 1: weft is faster). `make bench-chan` runs it from a build dir.
#
# Environment: BENCH_RUNS, BENCH_ROUNDS (rounds inside one run, default 5), WHISPERS
# (the chain's length, default 100000), WEFT_BUILDDIR (default: the current directory).
set -eu
srcdir=${WEFT_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
B=${WEFT_BUILDDIR:-$(pwd)}
runs=${BENCH_RUNS:-5}
rounds=${BENCH_ROUNDS:-5}
chain=${WHISPERS:-100000}
[ -x "$B/bench/chan" ] || { echo "bench-chan: build bench/chan first (make bench-chan)" >&2; exit 1; }
command -v go >/dev/null || { echo "bench-chan: go not installed (apt-get install golang-go)" >&2; exit 1; }
out=$(mktemp -d "${TMPDIR:-/tmp}/weft-bench-chan.XXXXXX")
trap 'rm -rf "$out"' EXIT
# Stdlib only: no module, no network; the caches live in the scratch directory.
env GOCACHE="$out/cache" GOPATH="$out/path" GO111MODULE=off GOFLAGS= GOPROXY=off \
    sh -c "cd '$srcdir/bench/go' && go build -o '$out/gochan' ./chan" >"$out/go-build.log" 2>&1 ||
    { cat "$out/go-build.log" >&2; exit 1; }
pin=
command -v taskset >/dev/null && pin="taskset -c $(($(nproc) - 1))"

echo "bench-chan: $(uname -m), $(nproc) cpus, $(date -u '+%Y-%m-%d %H:%M UTC'), $(go version | cut -d' ' -f3)"
echo "bench-chan: $runs runs each, interleaved weft Go; $rounds rounds per run; whispers of $chain"
i=1
while [ "$i" -le "$runs" ]; do
    $pin "$B/bench/chan" -q -r "$rounds" -w "$chain" >>"$out/weft"
    GOMAXPROCS=1 $pin "$out/gochan" -q -r "$rounds" -w "$chain" >>"$out/go"
    i=$((i + 1))
done
cat "$out/weft" "$out/go" | awk '
function med(a, n,   i, j, t) {
    for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
$1 == "chan" && $3 == "median" { key = $2; val = $4; unit[key] = $5 }
$1 == "ratio" { key = $2; val = $3; unit[key] = "" }
key != "" { if (!(key in cnt)) order[++nk] = key; cnt[key]++; v[key, cnt[key]] = val; key = "" }
END {
    for (k = 1; k <= nk; k++) {
        key = order[k]; n = cnt[key]
        for (i = 1; i <= n; i++) a[i] = v[key, i]
        m[key] = med(a, n)
        printf "  %-26s %9.2f %-2s (median of %d runs)\n", key, m[key], unit[key], n
    }
    if (("pingpong" in m) && ("go_pingpong" in m))
        printf "  ratio go_pingpong/pingpong   %6.2f\n", m["go_pingpong"] / m["pingpong"]
    if (("whispers" in m) && ("go_whispers" in m))
        printf "  ratio go_whispers/whispers   %6.2f\n", m["go_whispers"] / m["whispers"]
    if (("whispers_warm" in m) && ("go_whispers_warm" in m))
        printf "  ratio go_whispers_warm/whispers_warm %6.2f\n", m["go_whispers_warm"] / m["whispers_warm"]
}'

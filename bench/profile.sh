#!/bin/sh
# The switch cost with the sampling profiler off, on (1000 Hz), and in a library built
# without it: bench/switch of this build, run alternately against this build's libweft and
# against the baseline build's (BASE: its top build directory, e.g. a build of the commit
# before the profiler), ROUNDS times each, A B A B. Prints each run's medians and the
# medians of the per-pair ratios.
# usage: bench/profile.sh BUILDDIR BASEDIR [ROUNDS]
set -eu
build=$1 base=$2 rounds=${3:-7}
prog="$build/bench/.libs/switch"
[ -x "$prog" ] || prog="$build/bench/switch"
[ -x "$prog" ] || { echo "build bench/switch first (make bench-programs)"; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$rounds"); do
    LD_LIBRARY_PATH="$base/.libs" "$prog" -q -r 3 -t 200 -o weft | sed -n 's/^switch weft  *median *\([0-9.]*\).*/base \1/p' >>"$out"
    LD_LIBRARY_PATH="$build/.libs" "$prog" -q -r 3 -t 200 -o weft,weft_prof |
        sed -n 's/^switch \(weft\|weft_prof\)  *median *\([0-9.]*\).*/\1 \2/p' >>"$out"
done
python3 - "$out" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
base = [float(v) for k, v in rows if k == "base"]
off = [float(v) for k, v in rows if k == "weft"]
on = [float(v) for k, v in rows if k == "weft_prof"]
n = min(len(base), len(off), len(on))
med = statistics.median
print("switch ns, median of %d runs: without the profiler %.2f, off %.2f, on %.2f"
      % (n, med(base[:n]), med(off[:n]), med(on[:n])))
print("ratio off/without %.3f  on/off %.3f  on/without %.3f  (medians of per-run ratios)"
      % (med([off[i] / base[i] for i in range(n)]), med([on[i] / off[i] for i in range(n)]),
         med([on[i] / base[i] for i in range(n)])))
PY

#!/bin/sh
# bench/threads.sh: examples/httpd with --threads 1 against --threads 2 (one weft loop per
# thread on SO_REUSEPORT listeners), driven by wrk as bench/http.sh does (fresh server on
# port 0, warm-up, measured run, CPU time from /proc/PID/stat), runs interleaved (1 2, then
# 2 1, ...). Every run has the same placement: the server may use CPUs $BENCH_CPUS and so
# may wrk (-t$BENCH_WRK_THREADS), so the two-thread server can have a core per loop at all;
# on a machine with only those cores the load generator competes with the server for them,
# which bench/http.sh's one-core-each pinning avoids. Settings (environment or make
# variables): BENCH_DURATION (s, 10), BENCH_WARMUP (s, 2), BENCH_PAIRS (3), BENCH_CONNS
# ("100"), BENCH_CPUS (0-1), BENCH_WRK_THREADS (2), BENCH_OUT (results directory).
set -u
B=${WEFT_BUILDDIR:-$(pwd)}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
PAIRS=${BENCH_PAIRS:-3}
CONNS=${BENCH_CONNS:-100}
CPUS=${BENCH_CPUS:-0-1}
WT=${BENCH_WRK_THREADS:-2}
OUT=${BENCH_OUT:-$B/bench-threads}
HZ=$(getconf CLK_TCK)

die() { echo "bench-threads: $*" >&2; exit 1; }
command -v wrk >/dev/null 2>&1 || die "wrk is needed (apt-get install wrk)"
command -v taskset >/dev/null 2>&1 || die "taskset is needed (util-linux)"
[ -x "$B/examples/httpd" ] || die "build first: make"
mkdir -p "$OUT/raw" || exit 1

PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP

. "${WEFT_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}/bench/serverlib.sh"

# run THREADS CONNS PAIR: one measured run; appends a line to results.tsv.
run() {
    n=$1 c=$2 pair=$3
    raw="$OUT/raw/t$n-c$c-$pair.txt" log="$OUT/raw/t$n-c$c-$pair.server"
    taskset -c "$CPUS" "$B/examples/httpd" --port 0 --threads "$n" >"$log" 2>&1 &
    PID=$!
    port=$(server_port "httpd" $PID "$log") || exit 1
    url="http://127.0.0.1:$port/"
    timeout $((WARMUP + 60)) taskset -c "$CPUS" wrk -t"$WT" -c"$c" -d"${WARMUP}s" "$url" >/dev/null 2>&1
    t0=$(ticks $PID)
    timeout $((DURATION + 60)) taskset -c "$CPUS" wrk -t"$WT" -c"$c" -d"${DURATION}s" "$url" >"$raw" 2>&1
    t1=$(ticks $PID)
    kill $PID
    wait $PID 2>/dev/null
    PID=
    awk -v n="$n" -v c="$c" -v pair="$pair" -v dt=$((t1 - t0)) -v hz="$HZ" '
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx/ { err += $NF }
        END {
            if (!req) { print "bench-threads: no result from wrk" > "/dev/stderr"; exit 1 }
            printf "%s\t%d\t%d\t%.0f\t%.3f\t%d\n", n, c, pair, rps, dt * 1e6 / hz / req, err
        }' "$raw" >>"$OUT/results.tsv" || exit 1
    tail -n 1 "$OUT/results.tsv" | awk -F '\t' '{ printf "  --threads %s c=%-5s pair %s: %9.0f req/s  CPU %6.2f us/req  errors %d\n", $1, $2, $3, $4, $5, $6 }'
}

COMMAND="BENCH_DURATION=$DURATION BENCH_PAIRS=$PAIRS BENCH_CONNS=\"$CONNS\" BENCH_CPUS=$CPUS BENCH_WRK_THREADS=$WT make bench-threads"
echo "bench-threads: $COMMAND"
echo "bench-threads: httpd --threads 1 and 2 on CPUs $CPUS, wrk -t$WT on CPUs $CPUS; load average $(cut -d' ' -f1-3 /proc/loadavg); results in $OUT"
: >"$OUT/results.tsv"
for c in $CONNS; do
    p=1
    while [ $p -le "$PAIRS" ]; do
        if [ $((p % 2)) -eq 1 ]; then run 1 "$c" $p; run 2 "$c" $p; else run 2 "$c" $p; run 1 "$c" $p; fi
        p=$((p + 1))
    done
done

awk -F '\t' -v cmd="$COMMAND" '
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n == 0 ? "" : n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        k = $1 SUBSEP $2; rps[k] = rps[k] " " $4; cpu[k] = cpu[k] " " $5; err[k] += $6
        R[$1, $2, $3] = $4; C[$1, $2, $3] = $5
        if (!($2 in seen)) { seen[$2] = 1; conns[++nc] = $2 }
        if ($3 > np) np = $3
    }
    END {
        print "| connections | threads | req/s | CPU per request | errors |"
        print "| ---: | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= nc; i++) for (t = 1; t <= 2; t++) {
            k = t SUBSEP conns[i]
            if (k in rps) printf "| %s | %d | %.0f | %.2f us | %d |\n", conns[i], t, median(rps[k]), median(cpu[k]), err[k]
        }
        print ""
        print "| connections | 2 threads / 1: req/s | 2 threads / 1: CPU per request |"
        print "| ---: | ---: | ---: |"
        for (i = 1; i <= nc; i++) {
            c = conns[i]; rr = cr = ""
            for (p = 1; p <= np; p++)
                if (((1, c, p) in R) && ((2, c, p) in R) && R[1, c, p] > 0 && C[1, c, p] > 0) {
                    rr = rr " " R[2, c, p] / R[1, c, p]; cr = cr " " C[2, c, p] / C[1, c, p]
                }
            printf "| %s | %.3f | %.3f |\n", c, median(rr), median(cr)
        }
        print ""
        print "Ratios are medians over the pairs of interleaved runs. Command: " cmd
    }' "$OUT/results.tsv" | tee "$OUT/table.md"

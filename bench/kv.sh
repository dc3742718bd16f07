#!/bin/sh
# bench/kv.sh: examples/kv against Debian's redis-server (make bench-kv), driven by
# redis-benchmark (-t set and -t get, each pipelining depth and client count of the run). Each
# server runs alone on CPU $BENCH_SERVER_CPU (redis-server with --io-threads 1, no
# persistence), redis-benchmark on CPU $BENCH_CLIENT_CPU; runs are interleaved (A B, then
# B A, ...), each on a freshly started server. Reports req/s and the server's CPU time per
# request (utime + stime from /proc/PID/stat around each redis-benchmark run), and the
# medians of the per-pair ratios kv/redis.
# Settings (environment or make variables): BENCH_REQUESTS (per run at -P 1, default
# 200000; deeper pipelines get BENCH_REQUESTS * depth / 4, at least as many), BENCH_PAIRS (3),
# BENCH_PIPELINE ("1 16"), BENCH_CLIENTS ("50 1000"), BENCH_TESTS ("set get"), BENCH_KV
# (another kv binary), BENCH_OUT (results directory), BENCH_KEYSPACE (redis-benchmark -r N:
# random keys out of N; default none, redis-benchmark's one key), BENCH_KV_THREADS (N > 1:
# also run "kvN", kv --threads N on CPUs $BENCH_KV_THREADS_CPUS, default
# "$BENCH_SERVER_CPU,$BENCH_CLIENT_CPU", in the interleaving, and report it against kv and
# redis-server; on a 2-core machine it then shares a CPU with redis-benchmark).
set -u
B=${WEFT_BUILDDIR:-$(pwd)}
REQUESTS=${BENCH_REQUESTS:-200000}
PAIRS=${BENCH_PAIRS:-3}
PIPELINE=${BENCH_PIPELINE:-"1 16"}
CLIENTS=${BENCH_CLIENTS:-"50 1000"}
TESTS=${BENCH_TESTS:-"set get"}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
OUT=${BENCH_OUT:-$B/bench-kv}
KV=${BENCH_KV:-$B/examples/kv}
KEYSPACE=${BENCH_KEYSPACE:-}
KVT=${BENCH_KV_THREADS:-}
KVTCPU=${BENCH_KV_THREADS_CPUS:-$SCPU,$CCPU}
[ -z "$KVT" ] || [ "$KVT" -gt 1 ] 2>/dev/null || die "BENCH_KV_THREADS=$KVT: give a number above 1"
HZ=$(getconf CLK_TCK)

have() { command -v "$1" >/dev/null 2>&1; }
die() { echo "bench-kv: $*" >&2; exit 1; }

have redis-benchmark || die "redis-benchmark is needed (apt-get install redis-tools)"
have redis-server || die "redis-server is needed (apt-get install redis-server)"
have taskset || die "taskset is needed (util-linux)"
[ -x "$KV" ] || die "build first: make bench-kv"
mkdir -p "$OUT/raw" || exit 1

max=0
for c in $CLIENTS; do [ "$c" -gt "$max" ] && max=$c; done
[ "$(ulimit -n)" -ge $((max + 100)) ] || ulimit -n $((max + 100)) 2>/dev/null ||
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((max + 100)) ] || die "ulimit -n is $(ulimit -n); $((max + 100)) needed"

PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP

ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# start NAME LOG: the server NAME on CPU $SCPU; sets PID and port.
start() {
    case $1 in
    kv | kv[0-9]*)
        if [ "$1" = kv ]; then taskset -c "$SCPU" "$KV" --port 0 >"$2" 2>&1 &
        else taskset -c "$KVTCPU" "$KV" --port 0 --threads "${1#kv}" >"$2" 2>&1 &
        fi
        PID=$!
        i=0
        while ! grep -q " listening on " "$2" 2>/dev/null; do
            i=$((i + 1))
            [ $i -le 100 ] && kill -0 $PID 2>/dev/null || die "kv did not start: $(cat "$2")"
            sleep 0.1
        done
        port=$(sed -n 's/^.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$2")
        ;;
    redis)
        try=0
        while :; do
            port=$((20000 + ($$ * 131 + try * 7919 + $(date +%N | sed 's/^0*//;s/^$/0/') % 1000) % 40000))
            : >"$2"
            taskset -c "$SCPU" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
                --io-threads 1 --daemonize no --dir "$OUT" --logfile "$2" --maxclients $((max + 100)) &
            PID=$!
            i=0
            while kill -0 $PID 2>/dev/null && ! grep -q 'Ready to accept connections' "$2" && [ $i -lt 100 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            grep -q 'Ready to accept connections' "$2" && kill -0 $PID 2>/dev/null && break
            kill $PID 2>/dev/null
            wait $PID 2>/dev/null
            try=$((try + 1))
            [ $try -lt 10 ] || die "redis-server did not start: $(cat "$2")"
        done
        ;;
    esac
}

# run NAME PIPELINE CLIENTS PAIR: one fresh server, each test in $TESTS; appends to results.tsv.
run() {
    name=$1 p=$2 c=$3 pair=$4
    n=$((REQUESTS * p / 4))
    [ $n -ge "$REQUESTS" ] || n=$REQUESTS
    start "$name" "$OUT/raw/$name-P$p-c$c-$pair.server"
    for t in $TESTS; do
        raw="$OUT/raw/$name-$t-P$p-c$c-$pair.csv"
        t0=$(ticks $PID)
        timeout 600 taskset -c "$CCPU" redis-benchmark -h 127.0.0.1 -p "$port" -t "$t" -n "$n" -c "$c" \
            -P "$p" ${KEYSPACE:+-r "$KEYSPACE"} --csv >"$raw" 2>&1
        t1=$(ticks $PID)
        awk -F '","' -v name="$name" -v t="$t" -v p="$p" -v c="$c" -v pair="$pair" -v n="$n" \
            -v dt=$((t1 - t0)) -v hz="$HZ" '
            NR > 1 && NF >= 2 { rps = $2 + 0 }
            END {
                if (!rps) { print "bench-kv: no result from redis-benchmark for " name " " t > "/dev/stderr"; exit 1 }
                printf "%s\t%s\t%d\t%d\t%d\t%.0f\t%.3f\n", name, t, p, c, pair, rps, dt * 1e6 / hz / n
            }' "$raw" >>"$OUT/results.tsv" || die "see $raw"
        tail -n 1 "$OUT/results.tsv" | awk -F '\t' '{ printf "  %-5s %-3s -P %-2s c=%-5s pair %s: %9.0f req/s  CPU %6.3f us/req\n", $1, $2, $3, $4, $5, $6, $7 }'
    done
    kill $PID
    wait $PID 2>/dev/null
    PID=
}

COMMAND="BENCH_REQUESTS=$REQUESTS BENCH_PAIRS=$PAIRS BENCH_PIPELINE=\"$PIPELINE\" BENCH_CLIENTS=\"$CLIENTS\""
[ -n "${BENCH_TESTS:-}" ] && COMMAND="$COMMAND BENCH_TESTS=\"$TESTS\""
[ -n "$KEYSPACE" ] && COMMAND="$COMMAND BENCH_KEYSPACE=$KEYSPACE"
[ -n "$KVT" ] && COMMAND="$COMMAND BENCH_KV_THREADS=$KVT"
[ -n "${BENCH_KV_THREADS_CPUS:-}" ] && COMMAND="$COMMAND BENCH_KV_THREADS_CPUS=$KVTCPU"
COMMAND="$COMMAND make bench-kv"
echo "bench-kv: $COMMAND"
echo "bench-kv: $(redis-server --version | sed 's/ sha=.*//'); servers on CPU $SCPU, redis-benchmark on CPU $CCPU; results in $OUT"
: >"$OUT/results.tsv"
for p in $PIPELINE; do
    for c in $CLIENTS; do
        pair=1
        while [ $pair -le "$PAIRS" ]; do
            if [ -z "$KVT" ]; then
                if [ $((pair % 2)) -eq 1 ]; then run kv "$p" "$c" $pair; run redis "$p" "$c" $pair
                else run redis "$p" "$c" $pair; run kv "$p" "$c" $pair; fi
            else    # three servers: each order in turn (kv kvN redis, kvN redis kv, redis kv kvN)
                case $((pair % 3)) in
                1) order="kv kv$KVT redis" ;;
                2) order="kv$KVT redis kv" ;;
                0) order="redis kv kv$KVT" ;;
                esac
                for name in $order; do run "$name" "$p" "$c" $pair; done
            fi
            pair=$((pair + 1))
        done
    done
done

awk -F '\t' -v cmd="$COMMAND" -v kvt="$KVT" -v kvtcpu="$KVTCPU" -v scpu="$SCPU" -v ccpu="$CCPU" '
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n == 0 ? "" : n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        k = $2 SUBSEP $3 SUBSEP $4
        if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
        rps[$1, k] = rps[$1, k] " " $6; cpu[$1, k] = cpu[$1, k] " " $7
        R[$1, k, $5] = $6; C[$1, k, $5] = $7
        if ($5 > np) np = $5
    }
    END {
        print "| test | -P | clients | kv req/s | redis req/s | kv/redis req/s | kv CPU/req | redis CPU/req | kv/redis CPU/req |"
        print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= nk; i++) {
            k = keys[i]; split(k, f, SUBSEP); rr = cr = ""
            for (p = 1; p <= np; p++)
                if ((("kv", k, p) in R) && (("redis", k, p) in R) && R["redis", k, p] > 0 && C["redis", k, p] > 0) {
                    rr = rr " " R["kv", k, p] / R["redis", k, p]; cr = cr " " C["kv", k, p] / C["redis", k, p]
                }
            r = median(rr); q = median(cr)
            tr = f[2] == 1 && f[3] == 50 ? (r >= 0.95 ? " (met)" : " (MISSED)") : ""
            tq = f[2] == 1 && f[3] == 50 ? (q <= 1.05 ? " (met)" : " (MISSED)") : ""
            printf "| %s | %s | %s | %.0f | %.0f | %.3f%s | %.2f us | %.2f us | %.3f%s |\n", toupper(f[1]), f[2], f[3],
                median(rps["kv", k]), median(rps["redis", k]), r, tr, median(cpu["kv", k]), median(cpu["redis", k]), q, tq
        }
        print ""
        print "Ratios are medians over the pairs of interleaved runs (targets at -P 1, 50 clients: req/s >= 0.95, CPU/req <= 1.05). Command: " cmd
        if (kvt == "") exit
        t = "kv" kvt
        print ""
        print "| test | -P | clients | " t " req/s | " t "/kv req/s | " t "/redis req/s | " t " CPU/req | " t "/kv CPU/req |"
        print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= nk; i++) {
            k = keys[i]; split(k, f, SUBSEP); ra = rb = ca = ""
            for (p = 1; p <= np; p++)
                if (((t, k, p) in R) && (("kv", k, p) in R) && (("redis", k, p) in R) && R["kv", k, p] > 0 &&
                    R["redis", k, p] > 0 && C["kv", k, p] > 0) {
                    ra = ra " " R[t, k, p] / R["kv", k, p]; rb = rb " " R[t, k, p] / R["redis", k, p]
                    ca = ca " " C[t, k, p] / C["kv", k, p]
                }
            printf "| %s | %s | %s | %.0f | %.3f | %.3f | %.2f us | %.3f |\n", toupper(f[1]), f[2], f[3],
                median(rps[t, k]), median(ra), median(rb), median(cpu[t, k]), median(ca)
        }
        print ""
        print t " is kv --threads " kvt " on CPUs " kvtcpu " (kv and redis-server on CPU " scpu ", redis-benchmark on CPU " ccpu "); CPU/req counts every thread of the server."
    }' "$OUT/results.tsv" | tee "$OUT/table.md"

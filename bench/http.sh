#!/bin/sh
# bench/http.sh: the HTTP keep-alive benchmark (make bench-http; bench/README-http.md).
# examples/httpd against bench/epoll_httpd (and Go's net/http and a raw Go responder when go
# is installed), each server alone on CPU $BENCH_SERVER_CPU, wrk on CPU $BENCH_CLIENT_CPU,
# runs interleaved (A B, then B A, ...). Reports req/s, p99 latency and server CPU time per request.
# Settings (environment or make variables): BENCH_DURATION (s, default 10), BENCH_WARMUP
# (s, 2), BENCH_PAIRS (3), BENCH_CONNS ("100 10000"), BENCH_SERVERS (default: all found;
# also baseline-et, the baseline edge-triggered), BENCH_HTTPD (another httpd binary to try),
# BENCH_OUT (results directory), BENCH_NO_INSTALL=1 (never apt-get wrk or golang-go).
set -u
B=${WEFT_BUILDDIR:-$(pwd)}
SRC=${WEFT_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-2}
PAIRS=${BENCH_PAIRS:-3}
CONNS=${BENCH_CONNS:-"100 10000"}
SCPU=${BENCH_SERVER_CPU:-0}
CCPU=${BENCH_CLIENT_CPU:-1}
OUT=${BENCH_OUT:-$B/bench-http}
HZ=$(getconf CLK_TCK)

have() { command -v "$1" >/dev/null 2>&1; }
die() { echo "bench-http: $*" >&2; exit 1; }

# Install a Debian package when missing, if we may (root, apt-get, not BENCH_NO_INSTALL).
install() {
    [ -z "${BENCH_NO_INSTALL:-}" ] && [ "$(id -u)" = 0 ] && have apt-get || return 1
    echo "bench-http: installing $1 with apt-get"
    timeout 600 apt-get install -y -q "$1" >/dev/null 2>&1 ||
        { timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 600 apt-get install -y -q "$1" >/dev/null 2>&1; }
}
have wrk || install wrk || true
have wrk || die "wrk is needed (apt-get install wrk)"
have taskset || die "taskset is needed (util-linux)"
[ -x "$B/examples/httpd" ] && [ -x "$B/bench/epoll_httpd" ] || die "build first: make bench-http"
mkdir -p "$OUT/raw" || exit 1

SERVERS="httpd baseline"
have go || install golang-go || true
if have go; then
    # Stdlib only: no module, no network; the caches live in the results directory.
    if env GOCACHE="$OUT/go/cache" GOPATH="$OUT/go/path" GO111MODULE=off GOFLAGS= GOPROXY=off \
        sh -c "cd '$SRC/bench/go' && go build -o '$OUT/go/nethttp' ./nethttp && go build -o '$OUT/go/raw' ./raw" \
        >"$OUT/go-build.log" 2>&1; then
        SERVERS="$SERVERS go-nethttp go-raw"
    else
        echo "bench-http: the Go servers did not build (see $OUT/go-build.log); skipping them"
    fi
else
    echo "bench-http: go not installed (apt-get install golang-go): Go servers skipped"
fi
SERVERS=${BENCH_SERVERS:-$SERVERS}

# Enough fds for the largest run: wrk and the server each hold one per connection.
max=0
for c in $CONNS; do [ "$c" -gt "$max" ] && max=$c; done
[ "$(ulimit -n)" -ge $((max + 100)) ] || ulimit -n $((max + 100)) 2>/dev/null ||
    ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" -ge $((max + 100)) ] || die "ulimit -n is $(ulimit -n); $((max + 100)) needed (raise the hard limit)"

PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null' EXIT
trap 'exit 1' INT TERM HUP

cmd() {
    case $1 in
    httpd) echo "${BENCH_HTTPD:-$B/examples/httpd}" ;;
    baseline) echo "$B/bench/epoll_httpd" ;;
    baseline-et) echo "$B/bench/epoll_httpd --edge" ;;
    go-nethttp) echo "$OUT/go/nethttp" ;;
    go-raw) echo "$OUT/go/raw" ;;
    *) die "unknown server $1" ;;
    esac
}

# utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat, counted
# after the ")" that ends the command name).
. "$SRC/bench/serverlib.sh"

# run NAME CONNS PAIR: one measured run; appends a line to results.tsv.
run() {
    name=$1 c=$2 pair=$3
    raw="$OUT/raw/$name-c$c-$pair.txt" log="$OUT/raw/$name-c$c-$pair.server"
    rm -f "$log"
    GOMAXPROCS=1 taskset -c "$SCPU" $(cmd "$name") --port 0 >"$log" 2>&1 &
    PID=$!
    port=$(server_port "$name" $PID "$log") || exit 1
    url="http://127.0.0.1:$port/"
    timeout $((WARMUP + 60)) taskset -c "$CCPU" wrk -t1 -c"$c" -d"${WARMUP}s" "$url" >/dev/null 2>&1
    t0=$(ticks $PID)
    timeout $((DURATION + 60)) taskset -c "$CCPU" wrk -t1 -c"$c" -d"${DURATION}s" --latency "$url" >"$raw" 2>&1
    t1=$(ticks $PID)
    kill $PID
    wait $PID 2>/dev/null
    PID=
    awk -v name="$name" -v c="$c" -v pair="$pair" -v dt=$((t1 - t0)) -v hz="$HZ" '
        function ms(v) { return v ~ /us$/ ? v / 1000 : v ~ /ms$/ ? v + 0 : v ~ /m$/ ? v * 60000 : v * 1000 }
        / requests in / { req = $1 }
        /^Requests\/sec:/ { rps = $2 }
        $1 == "99%" { p99 = ms($2) }
        /Socket errors:/ { gsub(/,/, ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx/ { err += $NF }
        END {
            if (!req) { print "bench-http: no result from wrk for " name > "/dev/stderr"; exit 1 }
            printf "%s\t%d\t%d\t%.0f\t%.2f\t%.3f\t%d\n", name, c, pair, rps, p99, dt * 1e6 / hz / req, err
        }' "$raw" >>"$OUT/results.tsv" || exit 1
    tail -n 1 "$OUT/results.tsv" | awk -F '\t' '{ printf "  %-11s c=%-6s pair %s: %9.0f req/s  p99 %8.2f ms  CPU %6.2f us/req  errors %d\n", $1, $2, $3, $4, $5, $6, $7 }'
}

COMMAND="BENCH_DURATION=$DURATION BENCH_WARMUP=$WARMUP BENCH_PAIRS=$PAIRS BENCH_CONNS=\"$CONNS\""
[ -n "${BENCH_SERVERS:-}" ] && COMMAND="$COMMAND BENCH_SERVERS=\"$SERVERS\""
COMMAND="$COMMAND make bench-http"
echo "bench-http: $COMMAND"
echo "bench-http: servers: $SERVERS; server on CPU $SCPU, wrk -t1 on CPU $CCPU; results in $OUT"
: >"$OUT/results.tsv"
for c in $CONNS; do
    p=1
    while [ $p -le "$PAIRS" ]; do
        # Odd pairs run the servers in order, even pairs in reverse (A B, B A, A B, ...), so
        # that neither of two compared servers always runs first.
        order=$SERVERS
        [ $((p % 2)) -eq 0 ] && order=$(echo $SERVERS | tr ' ' '\n' | sed -n '1!G;h;$p' | tr '\n' ' ')
        for s in $order; do run "$s" "$c" "$p"; done
        p=$((p + 1))
    done
done

# The table: medians per server, and the per-pair ratios' medians against the baseline.
awk -F '\t' -v cmd="$COMMAND" -v servers="$SERVERS" '
    function median(list,   a, n, i, j, t) {
        n = split(list, a, " ")
        for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
        return n == 0 ? "" : n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    {
        k = $1 SUBSEP $2; rps[k] = rps[k] " " $4; p99[k] = p99[k] " " $5; cpu[k] = cpu[k] " " $6; err[k] += $7
        R[$1, $2, $3] = $4; C[$1, $2, $3] = $6
        if (!($2 in seen)) { seen[$2] = 1; conns[++nc] = $2 }
        if ($3 > np) np = $3
    }
    END {
        ns = split(servers, sv, " ")
        print "| connections | server | req/s | p99 latency | CPU per request | errors |"
        print "| ---: | --- | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= nc; i++) for (s = 1; s <= ns; s++) {
            k = sv[s] SUBSEP conns[i]
            if (k in rps) printf "| %s | %s | %.0f | %.2f ms | %.2f us | %d |\n", conns[i], sv[s], median(rps[k]), median(p99[k]), median(cpu[k]), err[k]
        }
        print ""
        print "| connections | httpd/baseline req/s (>= 0.95) | httpd/baseline CPU/req (<= 1.10) | httpd/go-nethttp CPU/req (<= 0.50) |"
        print "| ---: | ---: | ---: | ---: |"
        for (i = 1; i <= nc; i++) {
            c = conns[i]; rr = cr = gr = ""
            for (p = 1; p <= np; p++) {
                if ((("httpd", c, p) in R) && (("baseline", c, p) in R) && R["baseline", c, p] > 0 && C["baseline", c, p] > 0) {
                    rr = rr " " R["httpd", c, p] / R["baseline", c, p]; cr = cr " " C["httpd", c, p] / C["baseline", c, p]
                }
                if ((("httpd", c, p) in C) && (("go-nethttp", c, p) in C) && C["go-nethttp", c, p] > 0)
                    gr = gr " " C["httpd", c, p] / C["go-nethttp", c, p]
            }
            r = median(rr); q = median(cr); g = median(gr)
            rs = r == "" ? "-" : sprintf("%.3f %s", r, (r >= 0.95) ? "(met)" : "(MISSED)")
            qs = q == "" ? "-" : sprintf("%.3f %s", q, (q <= 1.10) ? "(met)" : "(MISSED)")
            gs = g == "" ? "-" : sprintf("%.3f %s", g, (g <= 0.50) ? "(met)" : "(MISSED)")
            printf "| %s | %s | %s | %s |\n", c, rs, qs, gs
        }
        print ""
        print "Ratios are medians over the pairs of interleaved runs. Command: " cmd
    }' "$OUT/results.tsv" | tee "$OUT/table.md"

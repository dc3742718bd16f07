#!/bin/sh
# bench/soak.sh: the long soak (make bench-soak). Each of examples/httpd, echo and proxy (in
# front of an httpd) runs under tests/soakload (well-behaved clients checked byte for byte,
# clients cut off mid-request and mid-response, slowloris, half-closed, pipelined) for
# SOAK_SECONDS; a line every SOAK_INTERVAL seconds gives the load's req/s and errors and the
# server's open fds and RSS. Then a burst: SOAK_BURST connections to a fresh httpd at once,
# each answered and held open, then all closed: the RSS before, with them open, and after
# they closed (twice, to show whether a second burst grows it again).
# Settings: SOAK_SECONDS (per server, default 300), SOAK_INTERVAL (10), SOAK_CONNS (64),
# SOAK_SLOW (slowloris clients, 8), SOAK_SERVERS ("httpd echo proxy"; empty: the burst only), SOAK_BURST (9000;
# 0: none), SOAK_HEADER_MS (2000), SOAK_IDLE_MS (5000). Exit status 1 when a check failed.
set -u
B=${WEFT_BUILDDIR:-$(pwd)}
SECS=${SOAK_SECONDS:-300}
EVERY=${SOAK_INTERVAL:-10}
CONNS=${SOAK_CONNS:-64}
SLOW=${SOAK_SLOW:-8}
SERVERS=${SOAK_SERVERS-"httpd echo proxy"}
BURST=${SOAK_BURST:-9000}
HMS=${SOAK_HEADER_MS:-2000}
IMS=${SOAK_IDLE_MS:-5000}
LOAD="$B/tests/soakload"
for f in "$LOAD" "$B/examples/httpd" "$B/examples/echo" "$B/examples/proxy"; do
    [ -x "$f" ] || { echo "soak: missing $f (make check-programs examples builds it)"; exit 1; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/weft-soak.XXXXXX") || exit 1
PIDS=
FAIL=0
SEQ=0
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    for p in $PIDS; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
# The burst needs an fd per connection on both sides.
ulimit -n "$(ulimit -H -n)" 2>/dev/null

fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
rss() { sed -n 's/^VmRSS:[^0-9]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }

# start NAME ARGS: examples/NAME on a free port; sets PID and PORT.
start() {
    n=$1
    shift
    SEQ=$((SEQ + 1))
    out="$T/$n.$SEQ.out"
    "$B/examples/$n" --port 0 "$@" >"$out" 2>"$T/$n.$SEQ.err" &
    PID=$!
    PIDS="$PIDS $PID"
    i=0
    while ! grep -q " listening on " "$out" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && { echo "soak: $n did not start"; exit 1; }
        sleep 0.1
    done
    PORT=$(sed -n 's/^.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$out")
}

# settle PID BASE: wait (up to 10 s) for PID's fd count to come back to BASE.
settle() {
    i=0
    while [ "$(fds $1)" -gt "$2" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
}

# soak NAME PID MODE: the timed run against $PORT, sampled every $EVERY s.
soak() {
    n=$1 pid=$2 mode=$3
    base=$(fds $pid)
    echo "== $n: $SECS s, $CONNS clients, $( [ "$mode" = http ] && echo "$SLOW" || echo 0) slowloris"
    echo "  time   req/s  wrong errors   fds  rss(kB)"
    printf "  %4ds %7s %6s %6s %5d %8d\n" 0 - - - "$(fds $pid)" "$(rss $pid)"
    sl=0
    [ "$mode" = http ] && sl=$SLOW
    "$LOAD" --port "$PORT" --mode "$mode" --conns "$CONNS" --slow "$sl" --seconds "$SECS" \
        --report "$EVERY" --slow-cut $((HMS * 3)) >"$T/$n.load" 2>"$T/$n.loaderr" &
    lp=$!
    seen=0
    while kill -0 $lp 2>/dev/null; do
        sleep 1
        k=$(grep -c '^soakload: at ' "$T/$n.load")
        if [ "$k" -gt "$seen" ]; then
            seen=$k
            grep '^soakload: at ' "$T/$n.load" | tail -1 |
                sed 's/^soakload: at \([0-9]*\)s [^:]*: [0-9]* requests (\([0-9]*\)\/s), [0-9]* ok, \([0-9]*\) wrong, \([0-9]*\) errors.*/\1 \2 \3 \4/' >"$T/line"
            read -r t r w e <"$T/line"
            printf "  %4ds %7s %6s %6s %5d %8d\n" "$t" "$r" "$w" "$e" "$(fds $pid)" "$(rss $pid)"
        fi
    done
    wait $lp
    rc=$?
    settle $pid $base
    grep '^soakload: total' "$T/$n.load" | sed 's/^/  /'
    printf "  after: %d fds (baseline %d), RSS %d kB\n" "$(fds $pid)" "$base" "$(rss $pid)"
    if [ $rc -ne 0 ] || [ "$(fds $pid)" -ne "$base" ]; then
        echo "  FAIL: $n (load exit $rc)"
        head -5 "$T/$n.loaderr" | sed 's/^/  /'
        FAIL=1
    fi
}

for s in $SERVERS; do
    case $s in
    httpd) start httpd --header-timeout "$HMS" --idle-timeout "$IMS"; soak httpd $PID http ;;
    echo) start echo --idle-timeout "$IMS"; soak echo $PID echo ;;
    proxy)
        start httpd --header-timeout "$HMS" --idle-timeout "$IMS"
        start proxy --idle-timeout "$IMS" --to "127.0.0.1:$PORT"
        soak proxy $PID http ;;
    esac
done

# burst PID N: N connections at once, held until measured, then closed.
burst() {
    pid=$1 base=$(fds $1)
    rm -f "$T/hold"
    mkfifo "$T/hold"
    "$LOAD" --port "$PORT" --burst "$2" <"$T/hold" >"$T/burst.load" 2>"$T/burst.err" &
    lp=$!
    exec 3>"$T/hold"
    i=0
    while ! grep -q 'open and answered' "$T/burst.load" && kill -0 $lp 2>/dev/null && [ $i -lt 1200 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    open_fds=$(fds $pid) open_rss=$(rss $pid)
    exec 3>&-
    wait $lp
    rc=$?
    settle $pid $base
    printf "  %d connections open: %d fds, RSS %d kB; all closed: %d fds, RSS %d kB\n" \
        "$2" "$open_fds" "$open_rss" "$(fds $pid)" "$(rss $pid)"
    [ $rc -eq 0 ] || { echo "  FAIL: burst load exit $rc"; head -5 "$T/burst.err" | sed 's/^/  /'; FAIL=1; }
}

if [ "$BURST" -gt 0 ]; then
    start httpd
    echo "== burst: $BURST connections to a fresh httpd (fd limit $(ulimit -n))"
    printf "  before: %d fds, RSS %d kB\n" "$(fds $PID)" "$(rss $PID)"
    burst $PID "$BURST"
    burst $PID "$BURST"
fi
exit $FAIL

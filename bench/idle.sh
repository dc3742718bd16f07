#!/bin/sh
# bench/idle.sh: idle keep-alive connections held by examples/httpd (make bench-idle).
# Starts httpd (one thread, --idle-timeout IDLE_TIMEOUT_MS: armed on every connection but
# longer than the idle window, so the timers are set and never fire), opens each count of
# IDLE_CONNS connections with bench/idleload (another process, over IDLE_ADDRS source
# addresses 127.0.0.2..), lets them idle IDLE_SECONDS, then has a request sent on
# IDLE_SAMPLE of them at random and checked byte for byte. Per count it prints:
#   - the server's user-space memory per idle connection: the growth of smaps_rollup's Rss
#     and Anonymous from before the first connection to all of them live, over the count;
#   - the kernel's memory per connection, not in the server's RSS, machine-wide (so noisy)
#     and both ends of each connection counted: TCP buffer memory (/proc/net/sockstat
#     "mem", pages) and the growth of the slab caches (/proc/meminfo Slab: socket, file,
#     inode, epoll records);
#   - the server's CPU time during the idle window (utime+stime ticks, and the scheduler's
#     runtime from /proc/PID/schedstat in us) and its voluntary context switches then
#     (each one is a wake-up of the loop);
#   - requests afterwards: sent, answered, answered correctly.
# Each run raises RLIMIT_NOFILE (soft and hard) of both processes to the count + 256: past
# the hard limit that needs CAP_SYS_RESOURCE (root, outside a container that drops it) and
# fs.nr_open at least that; a count that cannot get it is reported as skipped.
set -u
B=${WEFT_BUILDDIR:-$(pwd)}
CONNS=${IDLE_CONNS:-"10000 100000"}
SECS=${IDLE_SECONDS:-30}
ADDRS=${IDLE_ADDRS:-8}
SAMPLE=${IDLE_SAMPLE:-1000}
TIMEOUT=${IDLE_TIMEOUT_MS:-600000}
HZ=$(getconf CLK_TCK)
die() { echo "bench-idle: $*" >&2; exit 1; }
[ -x "$B/examples/httpd" ] && [ -x "$B/bench/idleload" ] || die "build first: make bench-idle"

nr_open=$(cat /proc/sys/fs/nr_open)
T=$(mktemp -d "${TMPDIR:-/tmp}/weft-idle.XXXXXX") || exit 1
SPID=
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

rollup() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/smaps_rollup"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
runtime_us() { [ -r "/proc/$1/schedstat" ] && awk '{ print int($1 / 1000) }' "/proc/$1/schedstat" || echo 0; }
vcsw() { awk '$1 == "voluntary_ctxt_switches:" { print $2 }' "/proc/$1/status"; }
slab_kib() { awk '$1 == "Slab:" { print $2 }' /proc/meminfo; }
sock_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }

echo "# fs.nr_open $nr_open, fs.file-max $(cat /proc/sys/fs/file-max), RLIMIT_NOFILE here $(ulimit -S -n) soft, $(ulimit -H -n) hard;"
echo "# each run raises both processes' limit to conns + 256"
echo "# idle window ${SECS} s, httpd --idle-timeout $TIMEOUT, $ADDRS source addresses, sample $SAMPLE"
printf '%-8s %9s %9s %9s %9s %7s %9s %6s %s\n' conns rss_KiB anon_KiB sock_KiB slab_KiB cpu_ms run_us wakes sample
for n in $CONNS; do
    NOFILE=$((n + 256))
    if ! (ulimit -n "$NOFILE") 2>/dev/null; then
        echo "$n: skipped: cannot raise RLIMIT_NOFILE to $NOFILE (hard limit $(ulimit -H -n)," \
            "fs.nr_open $nr_open; raising the hard limit needs CAP_SYS_RESOURCE)"
        continue
    fi
    (ulimit -n "$NOFILE" && exec "$B/examples/httpd" --port 0 --idle-timeout "$TIMEOUT") \
        >"$T/httpd.out" 2>"$T/httpd.err" &
    SPID=$!
    i=0
    until grep -q " listening on " "$T/httpd.out" 2>/dev/null; do
        i=$((i + 1))
        [ $i -lt 100 ] && kill -0 "$SPID" 2>/dev/null || die "httpd did not start: $(cat "$T/httpd.err")"
        sleep 0.1
    done
    port=$(sed -n 's/^.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$T/httpd.out")
    rss0=$(rollup "$SPID" Rss) anon0=$(rollup "$SPID" Anonymous) sock0=$(sock_pages) slab0=$(slab_kib)
    (ulimit -n "$NOFILE" && exec "$B/bench/idleload" --port "$port" --conns "$n" \
        --addrs "$ADDRS" --idle $((SECS + 2)) --sample "$SAMPLE") >"$T/load.out" 2>&1 &
    LPID=$!
    until grep -q '^live ' "$T/load.out" 2>/dev/null; do
        kill -0 "$LPID" 2>/dev/null || break
        sleep 0.05
    done
    sleep 1     # the last first responses written, the loop parked
    rss1=$(rollup "$SPID" Rss) anon1=$(rollup "$SPID" Anonymous) sock1=$(sock_pages) slab1=$(slab_kib)
    c0=$(cpu_ticks "$SPID") r0=$(runtime_us "$SPID") w0=$(vcsw "$SPID")
    sleep "$SECS"
    c1=$(cpu_ticks "$SPID") r1=$(runtime_us "$SPID") w1=$(vcsw "$SPID")
    wait "$LPID"
    lrc=$?
    sample=$(sed -n 's/^sample \([0-9]*\) served \([0-9]*\) correct \([0-9]*\)$/\1\/\2\/\3/p' "$T/load.out")
    sed 's/^/# idleload: /' "$T/load.out"
    [ $lrc -eq 0 ] || echo "# idleload exited $lrc"
    awk -v n="$n" -v r0="$rss0" -v r1="$rss1" -v a0="$anon0" -v a1="$anon1" \
        -v s0="$sock0" -v s1="$sock1" -v l0="$slab0" -v l1="$slab1" -v c="$((c1 - c0))" -v hz="$HZ" -v ru="$((r1 - r0))" \
        -v w="$((w1 - w0))" -v smp="${sample:-none}" 'BEGIN {
        printf "%-8d %9.2f %9.2f %9.2f %9.2f %7d %9d %6d %s\n", n, (r1 - r0) / n, (a1 - a0) / n,
            (s1 - s0) * 4 / n, (l1 - l0) / n, c * 1000 / hz, ru, w, smp }'
    kill "$SPID"
    wait "$SPID" 2>/dev/null
    SPID=
done
echo "# rss/anon_KiB: growth of the server's Rss / Anonymous per connection; sock_KiB, slab_KiB: kernel"
echo "# TCP buffers and slab growth per connection, both ends, machine-wide; cpu_ms, run_us, wakes: the server during ${SECS} s of idle;"
echo "# sample: requests sent/answered/correct after the idle window"

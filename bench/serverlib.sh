# bench/serverlib.sh: what the wrk-driven benchmarks (bench/http.sh, bench/threads.sh) share.
# Sourced; the caller defines die.

# ticks PID: the process's CPU time so far (utime + stime), in clock ticks.
ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# server_port NAME PID LOG: wait (up to 10 s) for the server PID to say " listening on " in
# LOG, then print the port it named; die if it exits or never says so.
server_port() {
    i=0
    while ! grep -q " listening on " "$3" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 100 ] && kill -0 "$2" 2>/dev/null || die "$1 did not start: $(cat "$3")"
        sleep 0.1
    done
    sed -n 's/^.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$3"
}

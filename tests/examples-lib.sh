# Shared by the example servers' end-to-end tests (tests/*.test): start a server on a free
# port, wait (bounded) for its ready line, check results, and kill every server on exit.
# Run by automake's test driver from the build tree, which sets WEFT_BUILDDIR; by hand:
#   cd BUILDDIR && sh SRCDIR/tests/httpd.test
# EXAMPLES_WRAPPER runs each server under a tool, e.g. "valgrind -q": anything the tool
# prints on stderr fails the "printed ... no errors" check.
B=${WEFT_BUILDDIR:-$(pwd)}
CLIENT="$B/tests/tcpclient"
T=$(mktemp -d "${TMPDIR:-/tmp}/weft-examples.XXXXXX") || exit 99
PIDS=
SEQ=0
FAILS=0
CHECKS=0

cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null; done
    i=0     # give them 5 s to go, then SIGKILL: never hang here
    for p in $PIDS; do
        while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

for f in "$CLIENT" "$B/examples/echo" "$B/examples/httpd" "$B/examples/proxy"; do
    [ -x "$f" ] || { echo "missing $f (build first: make check builds it)"; exit 99; }
done

# start NAME ARGS...: run examples/NAME --port 0 ARGS in the background; sets PORT and PID.
start() {
    name=$1
    shift
    SEQ=$((SEQ + 1))
    ${EXAMPLES_WRAPPER:-} "$B/examples/$name" --port 0 "$@" >"$T/srv$SEQ.out" 2>"$T/srv$SEQ.err" &
    PID=$!
    PIDS="$PIDS $PID"
    ln -s "srv$SEQ.out" "$T/$PID.out" && ln -s "srv$SEQ.err" "$T/$PID.err" || exit 99
    i=0
    while ! grep -q " listening on " "$T/$PID.out" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -gt 200 ] || ! kill -0 "$PID" 2>/dev/null; then
            echo "FAIL: $name did not print its ready line within 20 s"
            cat "$T/$PID.err"
            exit 1
        fi
        sleep 0.1
    done
    PORT=$(sed -n 's/^.* listening on .*:\([0-9][0-9]*\)$/\1/p' "$T/$PID.out")
    case $PORT in
    '' | 0) echo "FAIL: $name printed no port: $(cat "$T/$PID.out")"; exit 1 ;;
    esac
    echo "# $name (pid $PID) listening on port $PORT"
}

# check DESCRIPTION COMMAND...: run a check (a shell command string), report ok / FAIL.
check() {
    desc=$1
    shift
    CHECKS=$((CHECKS + 1))
    if (eval "$*") >"$T/check.log" 2>&1; then
        echo "ok $CHECKS - $desc"
    else
        FAILS=$((FAILS + 1))
        echo "FAIL $CHECKS - $desc"
        sed 's/^/#   /' "$T/check.log"
    fi
}

# quiet NAME PID: the server is still running and has printed nothing but its ready line.
quiet() {
    check "$1 still runs" "kill -0 $2"
    check "$1 printed exactly one line and no errors" \
        "[ \$(wc -l <'$T/$2.out') -eq 1 ] && [ ! -s '$T/$2.err' ]"
}

# finish: the script's result for the test driver, with a summary in Check's words (tools/dev
# counts each check).
finish() {
    echo "$(( (CHECKS - FAILS) * 100 / CHECKS ))%: Checks: $CHECKS, Failures: $FAILS, Errors: 0"
    [ "$FAILS" -eq 0 ]
    exit $?
}

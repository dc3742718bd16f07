#!/bin/sh
# tools/weft-dump against a live process (tests/dump_target): text, filters, --json, the
# summary, and the messages for a process that has not opted in or does not exist.
# Exit 77 (skipped) without python3.
set -u
top_srcdir=${top_srcdir:-${srcdir:-.}}
command -v python3 >/dev/null 2>&1 || { echo "dump_cli: skipped, no python3"; exit 77; }
CLI="python3 $top_srcdir/tools/weft-dump"
tmp=$(mktemp -d /tmp/weft-dump-cli.XXXXXX)
pid=
fail=0
passed=0
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
expect() {  # expect FILE REGEX WHAT
    if grep -Eq -- "$2" "$1"; then ok; else bad "$3: no /$2/ in:"; cat "$1"; fi
}
expect_not() {
    if grep -Eq -- "$2" "$1"; then bad "$3: unexpected /$2/ in:"; cat "$1"; else ok; fi
}

mkfifo "$tmp/ctl"
./tests/dump_target "$tmp/ctl" >"$tmp/target.out" 2>&1 &
pid=$!
i=0
until grep -q '^ready' "$tmp/target.out" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 300 ]; then echo "dump_target did not start:"; cat "$tmp/target.out"; exit 1; fi
    sleep 0.1
done

# The full text dump, with file:line when addr2line is there.
$CLI "$pid" >"$tmp/text" 2>&1 || bad "weft-dump PID failed"
expect "$tmp/text" '^weft dump: pid [0-9]+, thread [0-9]+: 6 tasks: 4 io-wait, 1 sleeping, 1 join-wait;' "summary line"
expect "$tmp/text" '^task [0-9]+ "sleeper" \[sleeping, [0-9]+ ms, wakes in [0-9]+ ms\]:$' "sleeper header"
expect "$tmp/text" '^task [0-9]+ "reader-0" \[io-wait read fd [0-9]+, [0-9]+ ms\]:$' "reader header"
expect "$tmp/text" '^task [0-9]+ "joiner" \[join-wait task [0-9]+, [0-9]+ ms\]:$' "joiner header"
expect "$tmp/text" '#[0-9]+ +0x[0-9a-f]+ dumptarget_reader\+0x[0-9a-f]+ \(' "reader frame"
expect "$tmp/text" 'dumptarget_sleeper\+0x[0-9a-f]+ .*' "sleeper frame"
if command -v addr2line >/dev/null 2>&1; then
    expect "$tmp/text" 'dumptarget_reader\+0x[0-9a-f]+ \(.*\) at .*dump_target\.c:[0-9]+' "file:line"
fi
expect_not "$tmp/text" '"weft-debug"' "the server is hidden"

# Filters.
$CLI "$pid" --state io-wait --name 'reader-*' >"$tmp/filtered" 2>&1 || bad "filters failed"
expect "$tmp/filtered" '\(showing 3 of 6 tasks\)' "filter count"
expect_not "$tmp/filtered" '"sleeper"|"control"' "filtered out"
$CLI "$pid" --state sleeping,join-wait --no-backtrace >"$tmp/filtered2" 2>&1 || bad "state list failed"
expect "$tmp/filtered2" '\(showing 2 of 6 tasks\)' "state list"
expect_not "$tmp/filtered2" '#0' "no backtrace"

# JSON: parsed, and says the same.
$CLI "$pid" --json >"$tmp/json" 2>&1 || bad "--json failed"
python3 - "$tmp/json" >"$tmp/json.check" 2>&1 <<'PY' || bad "json check"
import json, sys
d = json.load(open(sys.argv[1]))
by = {t["name"]: t for t in d["tasks"]}
assert d["ntasks"] == 6 and d["counts"]["io-wait"] == 4, d["counts"]
assert by["sleeper"]["state"] == "sleeping" and by["sleeper"]["wait"]["left_ms"] > 0
assert by["reader-1"]["wait"]["kind"] == "io" and by["reader-1"]["wait"]["dir"] == "read"
assert by["joiner"]["wait"] == {"kind": "join", "task": by["sleeper"]["id"],
                                "deadline_ms": None, "left_ms": None}, by["joiner"]["wait"]
funcs = [f["func"] for f in by["control"]["frames"]]
assert "dumptarget_control" in funcs, funcs
assert all("source" in f for f in by["control"]["frames"])
print("json ok")
PY
expect "$tmp/json.check" '^json ok$' "json content"

# The summary view, and --watch (one round, then stopped).
$CLI "$pid" --summary >"$tmp/summary" 2>&1 || bad "--summary failed"
expect "$tmp/summary" '^by state: +4 io-wait, 1 sleeping, 1 join-wait$' "summary counts"
expect "$tmp/summary" '^  fd [0-9]+ +read +3 tasks$' "most-waited fd"
expect "$tmp/summary" '^oldest waits:$' "oldest waits"
timeout 3 $CLI "$pid" --watch 1 >"$tmp/watch" 2>&1
expect "$tmp/watch" '^--- [0-9:]+ ---$' "watch header"
expect "$tmp/watch" '^by state:' "watch shows the summary"

# Not opted in, gone, bad input.
sleep 30 &
other=$!
$CLI "$other" >"$tmp/noopt" 2>&1 && bad "not opted in should fail"
expect "$tmp/noopt" 'has not opted in' "not-opted-in message"
kill "$other"
wait "$other" 2>/dev/null
$CLI "$other" >"$tmp/gone" 2>&1 && bad "a gone pid should fail"
expect "$tmp/gone" "no process $other" "no-process message"
$CLI "$pid" --state nonsense >"$tmp/badstate" 2>&1 && bad "bad state should fail"
expect "$tmp/badstate" 'unknown state' "bad state message"
$CLI --help >"$tmp/help" 2>&1 || bad "--help failed"
expect "$tmp/help" 'examples:' "help shows examples"

# Quit: the target ends its tasks, weft_run returns, the socket goes away.
sock=$(ls /tmp/weft-"$(id -u)"/"$pid".sock "${XDG_RUNTIME_DIR:-/nonexistent}"/weft/"$pid".sock 2>/dev/null | head -1)
echo quit >"$tmp/ctl"
wait "$pid"
status=$?
pid=
[ "$status" -eq 0 ] || bad "dump_target exited with $status"
expect "$tmp/target.out" '^done$' "target finished"
if [ -n "$sock" ] && [ -e "$sock" ]; then bad "socket $sock left behind"; else ok; fi

echo "$passed passed, $fail failed"
[ "$fail" -eq 0 ]

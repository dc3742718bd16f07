#!/bin/sh
# tools/weft-gdb.py on a live process and on a core file of it: `weft tasks` lists the tasks
# with state and wait, `weft bt ID` unwinds a parked task to the function it is parked in.
# Exit 77 (skipped) without gdb, or where this user may not attach (ptrace restricted).
set -u
top_srcdir=${top_srcdir:-${srcdir:-.}}
command -v gdb >/dev/null 2>&1 || { echo "dump_gdb: skipped, no gdb"; exit 77; }
tmp=$(mktemp -d /tmp/weft-dump-gdb.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail=0
passed=0
expect() {
    if grep -Eq -- "$2" "$1"; then passed=$((passed + 1)); else echo "FAIL: $3: no /$2/ in:"; cat "$1"; fail=$((fail + 1)); fi
}

mkfifo "$tmp/ctl"
# mprotect guards: gdb's gcore cannot read a mapping that holds MADV_GUARD_INSTALL markers,
# and would leave the task stacks out of the core.
WEFT_GUARD=mprotect ./tests/dump_target "$tmp/ctl" >"$tmp/target.out" 2>&1 &
pid=$!
i=0
until grep -q '^ready' "$tmp/target.out" 2>/dev/null; do
    i=$((i + 1))
    [ $i -gt 300 ] && { echo "dump_target did not start"; exit 1; }
    sleep 0.1
done
exe=$(readlink "/proc/$pid/exe")
gdb_run() { timeout 120 gdb -q -batch -nx -x "$top_srcdir/tools/weft-gdb.py" "$@"; }
# gcore of an AddressSanitizer process would write its terabytes of shadow: live only then.
kinds="live core"
gcore="gcore $tmp/core"
if grep -q libasan "/proc/$pid/maps"; then
    echo "dump_gdb: core part skipped under AddressSanitizer"
    kinds=live
    gcore="echo"
fi
gdb_run -p "$pid" -ex 'weft tasks' -ex 'weft bt 3' -ex 'weft bt 6' -ex "$gcore" >"$tmp/live" 2>&1
if ! grep -q 'tasks,' "$tmp/live"; then
    if grep -qi 'ptrace\|not permitted\|could not attach' "$tmp/live"; then
        echo "dump_gdb: skipped, cannot attach:"; cat "$tmp/live"; exit 77
    fi
fi
for f in $kinds; do
    if [ $f = core ]; then
        [ -s "$tmp/core" ] || { echo "FAIL: no core written"; fail=$((fail + 1)); continue; }
        gdb_run "$exe" "$tmp/core" -ex 'weft tasks' -ex 'weft bt 3' -ex 'weft bt 6' >"$tmp/core.out" 2>&1
        f=core.out
    fi
    expect "$tmp/$f" '^7 tasks, [0-9]+ switches; main context running$' "$f: summary"
    expect "$tmp/$f" '^ +2 sleeping +"sleeper"' "$f: sleeper"
    expect "$tmp/$f" '^ +3 io-wait +"reader-0" +read fd [0-9]+ ' "$f: reader"
    expect "$tmp/$f" '^ +6 join-wait +"joiner" +task 2 ' "$f: joiner"
    expect "$tmp/$f" '^ +1 io-wait +"weft-debug" .*\(system\)$' "$f: server"
    expect "$tmp/$f" '^#[0-9]+ +0x[0-9a-f]+ in dumptarget_reader at .*dump_target\.c:[0-9]+$' "$f: bt reader"
    expect "$tmp/$f" '^#[0-9]+ +0x[0-9a-f]+ in dumptarget_joiner at .*dump_target\.c:[0-9]+$' "$f: bt joiner"
    expect "$tmp/$f" 'in weft_join_until at ' "$f: bt joiner parks in join"
done
echo quit >"$tmp/ctl"
wait "$pid"
pid=
echo "$passed passed, $fail failed"
[ "$fail" -eq 0 ]

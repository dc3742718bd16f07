#!/bin/bash
# CI for the aarch64 port: cross-build weft for aarch64 with both context backends (asm and
# ucontext) and run tests/ctx_smoke and examples/demo under qemu-user; the asm one again with
# branch protection (PAC) on; also check how configure picks and refuses backends, and (asm)
# the install test cross-built. Installs what it needs with apt-get (Debian 12, as root); does
# nothing to the source tree but autoreconf.
#
# Usage: bash .ci/aarch64.sh          from anywhere; exit status 0 when every check passed
#   env WEFT_AARCH64_CHECK=1   also run the Check suites (tests/check_*) under qemu; this adds
#                              the arm64 architecture to dpkg to install check:arm64
#       WEFT_AARCH64_BUILD     scratch directory (default /tmp/weft-aarch64-ci; emptied first)
# Last line: "aarch64: N passed, N failed".
set -u
export LC_ALL=C DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes

src=$(cd "$(dirname "$0")/.." && pwd)
root=${WEFT_AARCH64_BUILD:-/tmp/weft-aarch64-ci}
host=aarch64-linux-gnu
start=$(date +%s)
passed=0 failed=0

ok() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1${2:+: $2}"; }
# Show the end of a log after a failure, indented.
tail_log() { tail -n "${2:-15}" "$1" | sed 's/^/     | /'; }

# ---- tools ------------------------------------------------------------------------------------
need_pkgs=()
for t in autoreconf:autoconf automake:automake libtoolize:libtool make:make pkg-config:pkg-config \
         $host-gcc:gcc-$host qemu-aarch64:qemu-user readelf:binutils; do
    command -v "${t%%:*}" >/dev/null 2>&1 || need_pkgs+=("${t#*:}")
done
[ -e /usr/$host/lib/libc.so.6 ] && [ -e /usr/$host/lib/libc.a ] || need_pkgs+=(libc6-dev-arm64-cross)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    echo "aarch64: installing ${need_pkgs[*]}"
    if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null; }; then
        echo "aarch64: apt-get install failed"; echo "aarch64: 0 passed, 1 failed"; exit 1
    fi
fi
if [ "${WEFT_AARCH64_CHECK:-0}" = 1 ] && [ ! -e /usr/lib/$host/pkgconfig/check.pc ]; then
    echo "aarch64: installing check:arm64"
    dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
    if ! { apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends check:arm64 >/dev/null; }; then
        echo "aarch64: could not install check:arm64; the Check suites will be skipped"
    fi
fi

# qemu-user needs the target's dynamic loader. With arm64 multiarch (libc6:arm64, which
# check:arm64 brings) it is at its usual place, with its own libc; otherwise take both from
# the cross libc. Never mix them: with QEMU_LD_PREFIX set, the cross ld.so still finds the
# multiarch libc first (/lib/aarch64-linux-gnu), and a child of fork() then hangs in libc
# when the two are different builds (Debian 12: 2.36-8cross1 and 2.36-9+deb12uN).
if [ -e /lib/ld-linux-aarch64.so.1 ] && [ -e /lib/$host/libc.so.6 ]; then
    unset QEMU_LD_PREFIX
else
    export QEMU_LD_PREFIX=/usr/$host
fi
# Only the target's .pc files: the build machine's would make configure find an amd64 Check.
export PKG_CONFIG=pkg-config PKG_CONFIG_LIBDIR=/usr/lib/$host/pkgconfig:/usr/share/pkgconfig
unset PKG_CONFIG_PATH
qemu="qemu-aarch64"

rm -rf "$root" && mkdir -p "$root" || exit 1
if ! (cd "$src" && autoreconf -fi) >"$root/autoreconf.log" 2>&1; then
    fail autoreconf; tail_log "$root/autoreconf.log"
    echo "aarch64: $passed passed, $failed failed"; exit 1
fi

# ---- per build ----------------------------------------------------------------------------
# build NAME CONTEXT [configure args...]: configure, build, check, run tests/ctx_smoke and
# (unless NO_DEMO=1) examples/demo under qemu, and the Check suites when asked. Built programs
# are libtool wrappers: ./libtool --mode=execute runs the real binary under qemu with the
# build's .libs on the library path.
build() {
    local b=$1 ctx=$2 dir=$root/$1
    shift 2
    mkdir -p "$dir" && cd "$dir" || return
    if ! "$src/configure" --host=$host --with-context="$ctx" --enable-werror "$@" >configure.log 2>&1; then
        fail "$b: configure"; tail_log configure.log; return
    fi
    if grep -q "context backend: $ctx (cpu: aarch64)" configure.log; then
        ok "$b: configure reports the backend"
    else
        fail "$b: configure reports the backend" "$(grep 'context backend' configure.log)"
    fi
    if ! make -j2 >make.log 2>&1 || ! make tests/ctx_smoke >>make.log 2>&1; then
        fail "$b: build"; tail_log make.log; return
    fi
    # The library is aarch64 code, and holds the asm switch exactly when asked for.
    local machine has_asm=no
    machine=$(readelf -h .libs/libweft.so | sed -n 's/^ *Machine: *//p')
    readelf -s .libs/libweft.so | grep -q weft_ctx_swap_asm && has_asm=yes
    local want_asm=no
    [ "$ctx" = asm ] && want_asm=yes
    if [ "$machine" = AArch64 ] && [ $has_asm = $want_asm ]; then
        ok "$b: build (AArch64, asm switch linked: $has_asm)"
    else
        fail "$b: build" "machine '$machine', asm switch linked: $has_asm"
    fi

    timeout 300 ./libtool --mode=execute "$qemu" tests/ctx_smoke >smoke.log 2>&1
    local rc=$? sp sf
    sed 's/^/     /' smoke.log
    read -r sp sf < <(sed -n 's/^ctx_smoke: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' smoke.log)
    if [ -n "${sp:-}" ]; then
        passed=$((passed + sp)) failed=$((failed + sf))
        [ $rc -eq 0 ] || [ "$sf" -ne 0 ] || fail "$b: ctx_smoke exit status $rc"
    else
        fail "$b: ctx_smoke did not finish (exit status $rc)"
    fi

    if [ "${NO_DEMO:-0}" != 1 ]; then
        local out
        out=$(timeout 120 ./libtool --mode=execute "$qemu" examples/demo 2>&1)
        rc=$?
        if [ $rc -eq 0 ] && [[ $out == *"sum correct"* ]] && [[ $out != *WRONG* ]] && [[ $out != *ERRORS* ]]; then
            ok "$b: demo"
        else
            fail "$b: demo (exit status $rc)"
        fi
        # shellcheck disable=SC2001  # a prefix on every line
        sed 's/^/     /' <<<"$out"
    fi

    if [ "${WEFT_AARCH64_CHECK:-0}" = 1 ]; then
        check_suites "$b"
    fi
}

# The Check suites, run one by one under qemu (make check would exec the target binaries
# directly). Each suite counts its own tests.
check_suites() {
    local b=$1 s out n f e
    if ! grep -q '^ *check (tests): *yes' configure.log; then
        echo "skip $b: Check suites (no check for $host)"; return
    fi
    if ! make -j2 check TESTS= >check-build.log 2>&1; then
        fail "$b: build the Check suites"; tail_log check-build.log; return
    fi
    for s in tests/check_*; do
        if [ ! -x "$s" ] || [ "${s%.*}" != "$s" ]; then continue; fi    # programs, not .c/.log
        out=$(CK_TIMEOUT_MULTIPLIER=10 timeout 600 ./libtool --mode=execute "$qemu" "$s" 2>&1)
        read -r n f e < <(sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p' <<<"$out" | tail -n 1)
        if [ -z "${n:-}" ]; then
            fail "$b: ${s#tests/}" "no Check summary"; tail_log <(echo "$out")
            continue
        fi
        passed=$((passed + n - f - e)) failed=$((failed + f + e))
        if [ $((f + e)) -eq 0 ]; then
            echo "ok   $b: ${s#tests/}: $n tests"
        else
            echo "FAIL $b: ${s#tests/}: $((f + e)) of $n tests"
            grep -E ':[EF]:' <<<"$out" | sed 's/^/     | /'
        fi
    done
}

build asm asm
build ucontext ucontext
# Branch protection (BTI, and PAC on return addresses) as distributions that enable it by
# default build; qemu's "max" CPU implements PAC, so signed return addresses are real here.
# (Debian 12's crt files carry no BTI note, so BTI itself stays off in the linked programs.)
QEMU_CPU=max NO_DEMO=1 build asm-pac asm CFLAGS="-O2 -g -mbranch-protection=standard"

# ---- configure's choice of backend -----------------------------------------------------------
# Configure only: with no cross compiler for riscv64 the build machine's gcc stands in, which
# is enough to reach the backend checks.
cd "$root" || exit 1
mkdir -p conf && cd conf || exit 1
if "$src/configure" --host=$host --with-context=bogus >bogus.log 2>&1; then
    fail "configure rejects --with-context=bogus"
elif grep -q "error: --with-context must be asm or ucontext, not 'bogus'" bogus.log; then
    ok "configure rejects --with-context=bogus"
else
    fail "configure rejects --with-context=bogus" "$(tail -n 1 bogus.log)"
fi
if "$src/configure" --host=riscv64-linux-gnu --with-context=asm >riscv-asm.log 2>&1; then
    fail "configure refuses --with-context=asm for riscv64"
elif grep -q "error: --with-context=asm: no hand-written switch for riscv64" riscv-asm.log; then
    ok "configure refuses --with-context=asm for riscv64"
else
    fail "configure refuses --with-context=asm for riscv64" "$(tail -n 1 riscv-asm.log)"
fi
if "$src/configure" --host=riscv64-linux-gnu >riscv.log 2>&1 &&
   grep -q "context backend: ucontext (cpu: riscv64)" riscv.log; then
    ok "configure picks ucontext for riscv64"
else
    fail "configure picks ucontext for riscv64" "$(tail -n 1 riscv.log)"
fi

# ---- install, cross -----------------------------------------------------------------------
cd "$root" || exit 1
if TMPDIR=$root WEFT_RUN=$qemu bash "$src/tests/install.sh" --host=$host >install.log 2>&1; then
    ok "asm: $(tail -n 1 install.log)"
else
    fail "asm: $(tail -n 1 install.log)"; grep '^FAIL' install.log | sed 's/^/     | /'
fi

echo "aarch64: took $(($(date +%s) - start)) s"
echo "aarch64: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

#!/bin/bash
# The install test: build this source tree in a scratch directory, install it with DESTDIR and
# into a prefix, check the installed files, and build and run a program against the prefix
# through pkg-config, linked shared and static, from CMake (pkg-config and weftConfig.cmake)
# and Meson projects, and as C++ with g++ and clang++. Not part of make check, since it installs; CI
# calls it. It owns nothing in the tree; the build itself is the Makefile's business.
#
# Usage: tests/install.sh [configure args...]     e.g. --with-context=ucontext
#   env WEFT_RUN   a command that runs built programs (qemu-aarch64 for --host=aarch64-linux-gnu)
#       KEEP=1     keep the scratch directory (its path is printed)
# Output: a line per check, then one summary line, "install: PASS (N checks)" or
# "install: FAIL (k of N checks failed: names)". Exit status 0 on PASS.
set -u

srcdir=$(cd "$(dirname "$0")/.." && pwd)
run=${WEFT_RUN:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/weft-install.XXXXXX")
build=$work/build prefix=$work/prefix dest=$work/dest
# shellcheck disable=SC2317  # run by the trap
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "install: kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

total=0 failures=()
ok() { total=$((total + 1)); echo "ok   $1"; }
fail() { total=$((total + 1)); failures+=("$1"); echo "FAIL $1${2:+: $2}"; }
check() { local name=$1; shift; if "$@" >>"$work/log" 2>&1; then ok "$name"; else fail "$name" "see $work/log"; KEEP=1; fi; }
summary() {
    if [ ${#failures[@]} -eq 0 ]; then
        echo "install: PASS ($total checks)"
        exit 0
    fi
    echo "install: FAIL (${#failures[@]} of $total checks failed: ${failures[*]})"
    exit 1
}

# ---- build and install ------------------------------------------------------------------
if [ ! -x "$srcdir/configure" ]; then
    (cd "$srcdir" && autoreconf -fi) >>"$work/log" 2>&1 || { fail autoreconf; summary; }
fi
mkdir -p "$build"
cd "$build" || exit 1
if ! "$srcdir/configure" --prefix="$prefix" "$@" >>"$work/log" 2>&1; then
    fail configure "see $work/log"; KEEP=1; summary
fi
ok configure
if ! make -j2 >>"$work/log" 2>&1; then fail build "see $work/log"; KEEP=1; summary; fi
ok build
cc=$(sed -n 's/^CC = //p' Makefile)
version=$(sed -n 's/^PACKAGE_VERSION = //p' Makefile)

check make_install_destdir make install DESTDIR="$dest"
d=$dest$prefix
missing=
for f in lib/libweft.so lib/libweft.a include/weft.h include/weft/posix.h lib/pkgconfig/weft.pc \
    lib/cmake/weft/weftConfig.cmake; do
    [ -e "$d/$f" ] || missing="$missing $f"
done
ls "$d"/lib/libweft.so.[0-9]* >/dev/null 2>&1 || missing="$missing lib/libweft.so.N"
if [ -z "$missing" ]; then ok destdir_has_lib_headers_and_pc; else fail destdir_has_lib_headers_and_pc "missing:$missing"; fi
if grep -qx "prefix=$prefix" "$d/lib/pkgconfig/weft.pc" && ! grep -q "$dest" "$d/lib/pkgconfig/weft.pc"; then
    ok destdir_pc_names_the_prefix
else
    fail destdir_pc_names_the_prefix "$(grep '^prefix=' "$d/lib/pkgconfig/weft.pc" 2>&1)"
fi

# The manual pages, under the usual mandir: a page, an alias page that man resolves to it,
# the overview and the CLI's page.
man_missing=
for f in share/man/man3/weft_spawn.3 share/man/man3/weft_go.3 share/man/man7/weft.7 share/man/man1/weft-dump.1; do
    [ -s "$d/$f" ] || man_missing="$man_missing $f"
done
if [ -n "$man_missing" ]; then
    fail destdir_has_man_pages "missing:$man_missing"
elif command -v man >/dev/null 2>&1; then
    if out=$(MANPATH=$d/share/man MANWIDTH=80 man -P cat weft_go 2>&1) && echo "$out" | grep -q '^NAME' \
        && echo "$out" | grep -q 'weft_spawn, weft_go'; then
        ok destdir_has_man_pages
    else
        fail destdir_has_man_pages "man weft_go: $(echo "$out" | head -3)"
    fi
else
    ok destdir_has_man_pages
fi

check make_install_prefix make install
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig PKG_CONFIG_LIBDIR=$prefix/lib/pkgconfig
pcver=$(pkg-config --modversion weft 2>&1)
ctx=$(pkg-config --variable=context weft 2>&1)
if [ "$pcver" = "$version" ] && { [ "$ctx" = asm ] || [ "$ctx" = ucontext ]; }; then
    ok pkg_config_knows_weft
else
    fail pkg_config_knows_weft "version '$pcver' (want $version), context '$ctx'"
fi

# ---- a program built against the prefix --------------------------------------------------
# Two tasks pass a token over a pipe through weft/posix.h's read and write, one sleeps, and
# main joins both: the installed headers, the library and the scheduler all take part.
cat >"$work/probe.c" <<'EOF'
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <weft.h>
#include <weft/posix.h>

static int fds[2];

static void *pinger(void *arg)
{
    char c = 0;
    for (int i = 0; i < 100; i++) {
        c++;
        if (write(fds[1], &c, 1) != 1)
            return (void *)1;
        weft_yield();
    }
    weft_sleep(5);
    return arg;
}

static void *ponger(void *arg)
{
    char c, last = 0;
    for (int i = 0; i < 100; i++) {
        if (read(fds[0], &c, 1) != 1 || c != (char)(last + 1))
            return (void *)1;
        last = c;
    }
    return arg;
}

static void *run(void *arg)
{
    weft_task *a = weft_go(pinger, NULL), *b = weft_go(ponger, NULL);
    void *ra = (void *)1, *rb = (void *)1;
    if (!a || !b || weft_join(a, &ra) != 0 || weft_join(b, &rb) != 0 || ra || rb)
        *(int *)arg = 1;
    return NULL;
}

int main(void)
{
    int bad = 0;
    if (pipe(fds) != 0 || weft_main(run, &bad) != 0 || bad) {
        printf("probe: FAILED (%s)\n", bad ? "tasks" : strerror(errno));
        return 1;
    }
    printf("probe: ok, weft %s\n", WEFT_VERSION);
    return 0;
}
EOF
# shellcheck disable=SC2046  # pkg-config output is a list of words
if $cc -o "$work/probe-shared" "$work/probe.c" $(pkg-config --cflags --libs weft) >>"$work/log" 2>&1; then
    ok probe_links_shared
    if out=$(LD_LIBRARY_PATH=$prefix/lib $run "$work/probe-shared" 2>&1) && [ "$out" = "probe: ok, weft $version" ]; then
        ok probe_runs_shared
    else
        fail probe_runs_shared "$out"
    fi
    if readelf -d "$work/probe-shared" 2>/dev/null | grep -q 'NEEDED.*libweft\.so'; then
        ok probe_shared_needs_libweft_so
    else
        fail probe_shared_needs_libweft_so
    fi
else
    fail probe_links_shared "see $work/log"; KEEP=1
fi
# shellcheck disable=SC2046
if $cc -static -o "$work/probe-static" "$work/probe.c" $(pkg-config --static --cflags --libs weft) >>"$work/log" 2>&1; then
    ok probe_links_static
    if out=$($run "$work/probe-static" 2>&1) && [ "$out" = "probe: ok, weft $version" ]; then
        ok probe_runs_static
    else
        fail probe_runs_static "$out"
    fi
    if ! readelf -d "$work/probe-static" 2>/dev/null | grep -q NEEDED; then
        ok probe_static_needs_no_shared_library
    else
        fail probe_static_needs_no_shared_library "$(readelf -d "$work/probe-static" | grep NEEDED | tr -s ' ')"
    fi
else
    fail probe_links_static "see $work/log"; KEEP=1
fi

# ---- other build systems: CMake (pkg-config and weftConfig.cmake), Meson --------------------
# Each builds probe.c against the prefix the way a user's project would, and runs it.
if [ -f "$prefix/lib/cmake/weft/weftConfig.cmake" ] && [ -f "$prefix/lib/cmake/weft/weftConfigVersion.cmake" ]; then
    ok cmake_config_installed
else
    fail cmake_config_installed "no $prefix/lib/cmake/weft/weftConfig*.cmake"
fi
runs_probe() {  # runs_probe NAME BINARY WANT
    local out
    if out=$(LD_LIBRARY_PATH=$prefix/lib $run "$2" 2>&1) && [ "$out" = "$3" ]; then
        ok "$1"
    else
        fail "$1" "$out"
    fi
}
if command -v cmake >/dev/null 2>&1 && [ -z "$run" ]; then
    for how in pkgconfig config; do
        d=$work/cmake-$how
        mkdir -p "$d/src"
        cp "$work/probe.c" "$d/src/"
        if [ $how = pkgconfig ]; then
            find='find_package(PkgConfig REQUIRED)
pkg_check_modules(WEFT REQUIRED IMPORTED_TARGET weft)'
            target=PkgConfig::WEFT
        else
            find="find_package(weft $version REQUIRED)"
            target=weft::weft
        fi
        printf 'cmake_minimum_required(VERSION 3.13)\nproject(weft_probe C)\n%s\nadd_executable(probe probe.c)\ntarget_link_libraries(probe PRIVATE %s)\n' \
            "$find" "$target" >"$d/src/CMakeLists.txt"
        check "cmake_${how}_configures" cmake -S "$d/src" -B "$d/build" -DCMAKE_C_COMPILER="${cc%% *}" \
            -DCMAKE_PREFIX_PATH="$prefix"
        check "cmake_${how}_builds" cmake --build "$d/build"
        runs_probe "cmake_${how}_probe_runs" "$d/build/probe" "probe: ok, weft $version"
    done
    # a version this weft does not satisfy is refused
    d=$work/cmake-toonew
    mkdir -p "$d/src"
    printf 'cmake_minimum_required(VERSION 3.13)\nproject(p C)\nfind_package(weft 99.0 REQUIRED)\n' >"$d/src/CMakeLists.txt"
    if cmake -S "$d/src" -B "$d/build" -DCMAKE_PREFIX_PATH="$prefix" >>"$work/log" 2>&1; then
        fail cmake_config_refuses_a_newer_version
    else
        ok cmake_config_refuses_a_newer_version
    fi
else
    echo "skip cmake (no cmake, or a cross run)"
fi
if command -v meson >/dev/null 2>&1 && command -v ninja >/dev/null 2>&1 && [ -z "$run" ]; then
    d=$work/meson
    mkdir -p "$d/src"
    cp "$work/probe.c" "$d/src/"
    printf "project('weft_probe', 'c')\nexecutable('probe', 'probe.c', dependencies: dependency('weft'))\n" \
        >"$d/src/meson.build"
    check meson_configures env CC="$cc" meson setup "$d/build" "$d/src"
    check meson_builds ninja -C "$d/build"
    runs_probe meson_probe_runs "$d/build/probe" "probe: ok, weft $version"
else
    echo "skip meson (no meson or ninja, or a cross run)"
fi

# ---- C++ ---------------------------------------------------------------------------------
# A C++17 program built with -Wall -Wextra -Wpedantic -Werror by g++ and clang++ (when
# present) against the prefix, and run: captureless lambdas as task functions, a channel, a
# mutex, weft_version().
cat >"$work/probe.cc" <<'CXX'
#include <weft.h>
#include <cstdio>
#include <string>
#include <vector>

namespace {
struct state {
    weft_chan *ch = nullptr;
    weft_mutex mu = WEFT_MUTEX_INIT_NAMED("sum");
    long sum = 0;
};
}

int main()
{
    state st;
    st.ch = weft_chan_make(sizeof(int), 4);
    if (!st.ch)
        return 1;
    int rc = weft_main([](void *arg) -> void * {
        auto *s = static_cast<state *>(arg);
        std::vector<weft_task *> consumers;
        for (int i = 0; i < 3; i++)
            consumers.push_back(weft_go([](void *a) -> void * {
                auto *t = static_cast<state *>(a);
                int v;
                while (weft_chan_recv(t->ch, &v, -1) == 0) {
                    weft_mutex_lock(&t->mu, -1);
                    t->sum += v;
                    weft_mutex_unlock(&t->mu);
                }
                return nullptr;
            }, s));
        for (int v = 1; v <= 100; v++)
            weft_chan_send(s->ch, &v, -1);
        weft_chan_close(s->ch);
        for (weft_task *t : consumers)
            weft_join(t, nullptr);
        return nullptr;
    }, &st);
    weft_chan_free(st.ch);
    std::string v = weft_version();
    if (rc != 0 || st.sum != 5050 || v != WEFT_VERSION) {
        std::printf("cxx probe: FAILED (rc %d, sum %ld, version %s)\n", rc, st.sum, v.c_str());
        return 1;
    }
    std::printf("cxx probe: ok, weft %s\n", v.c_str());
    return 0;
}
CXX
cxxs=
cxx=${cc%gcc}g++
[ "$cxx" = "$cc" ] && cxx=c++
command -v "$cxx" >/dev/null 2>&1 && cxxs=$cxx
[ -z "$run" ] && command -v clang++ >/dev/null 2>&1 && cxxs="$cxxs clang++"
for x in $cxxs; do
    n=$(basename "$x" | sed 's/+/x/g')
    # shellcheck disable=SC2046
    if "$x" -std=c++17 -Wall -Wextra -Wpedantic -Werror -o "$work/probe-cxx-$n" "$work/probe.cc" \
        $(pkg-config --cflags --libs weft) >>"$work/log" 2>&1; then
        ok "cxx17_${n}_builds"
        runs_probe "cxx17_${n}_probe_runs" "$work/probe-cxx-$n" "cxx probe: ok, weft $version"
    else
        fail "cxx17_${n}_builds" "see $work/log"; KEEP=1
    fi
done
[ -n "$cxxs" ] || echo "skip cxx (no C++ compiler)"

# ---- the installed headers alone ---------------------------------------------------------
# They must compile in a strict C11 unit (no GNU extensions asked for) and as C++.
printf '#include <weft.h>\n#include <weft/posix.h>\nint weft_probe_unit;\n' >"$work/hdr.c"
# shellcheck disable=SC2046,SC2086  # $cc may hold options (CC="gcc -m32")
check headers_compile_as_strict_c11 $cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic \
    -Werror -fsyntax-only $(pkg-config --cflags weft) "$work/hdr.c"
cxx=${cc%gcc}g++
[ "$cxx" = "$cc" ] && cxx=c++
if command -v "$cxx" >/dev/null 2>&1; then
    # shellcheck disable=SC2046
    check headers_compile_as_cxx "$cxx" -x c++ -Wall -Wextra -Werror -fsyntax-only $(pkg-config --cflags weft) "$work/hdr.c"
    for std in c++11 c++17 c++20; do
        # shellcheck disable=SC2046
        check "headers_compile_as_$std" "$cxx" -x c++ -std=$std -Wall -Wextra -Wpedantic -Werror \
            -fsyntax-only $(pkg-config --cflags weft) "$work/hdr.c"
    done
else
    echo "skip headers_compile_as_cxx (no $cxx)"
fi

summary

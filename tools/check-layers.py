#!/usr/bin/env python3
"""Check that libweft's sources keep to their layers (../shared/DESIGN.md's table, kept in
docs/internals.md): a file may include the headers of its own layer, of the layers above it,
and the shared building blocks; never a header of a layer below it. Also that no file of
src/ passes the size bound. Prints one line per broken rule, naming the file and the rule;
exits 1 when any rule is broken, 0 otherwise.

usage: tools/check-layers.py [SRCDIR] [--max-lines N]
"""
import os
import re
import sys

# The layers, top first. A layer may use the ones before it in this list.
LAYERS = [
    ("context", ["ctx.h", "ctx_ucontext.c", "ctx_x86_64.S", "ctx_aarch64.S"]),
    ("stacks", ["stack.h", "stack.c"]),
    ("timers", ["timer.h", "timer.c"]),
    ("scheduler", ["sched.h", "sched.c", "task.c", "after.c"]),
    ("reactor", ["reactor.h", "reactor_epoll.c"]),
    ("IO wrappers", ["io.h", "io_fd.c", "io.c", "poll.c", "net.c", "wrap.c"]),
    ("sync", ["sync.h", "chan.h", "gen.h", "park.c", "chan.c", "sync.c", "group.c", "gen.c"]),
    ("offload", ["offload.h", "offload_impl.h", "offload*.c"]),
    ("processes and signals", ["proc.h", "proc.c", "proc_run.c", "signal.c"]),
    ("introspection", ["dump.h", "dump_impl.h", "backtrace.h", "backtrace.c", "dump*.c"]),
]

# Building blocks any layer may include: no layer of their own, and they include nothing of
# any layer.
SHARED = {"config.h", "weft.h", "compiler.h", "list.h", "sys.h", "sigfmt.h", "sigfmt.c"}

# Includes that break the order on purpose, each with the reason given where it is made.
EXCEPTIONS = {
    # A scheduler's creation and end reach the introspection layer (see the top of task.c).
    ("task.c", "dump.h"),
}


def layer_of(name):
    for i, (layer, files) in enumerate(LAYERS):
        for pat in files:
            if pat == name or (pat.endswith("*.c") and name.startswith(pat[:-3]) and name.endswith(".c")):
                return i, layer
    return None


INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def check(srcdir, max_lines):
    problems = []
    names = sorted(n for n in os.listdir(srcdir) if n.endswith((".c", ".h", ".S")))
    for name in names:
        path = os.path.join(srcdir, name)
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
        if len(lines) > max_lines:
            problems.append(f"src/{name}: {len(lines)} lines, over the bound of {max_lines} "
                            "(split it by concern)")
        mine = layer_of(name)
        if mine is None and name not in SHARED:
            problems.append(f"src/{name}: in no layer: add it to the table in tools/check-layers.py "
                            "and docs/internals.md")
            continue
        for n, line in enumerate(lines, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            inc = os.path.basename(m.group(1))
            if inc in SHARED:
                continue
            theirs = layer_of(inc)
            if theirs is None:
                if os.path.exists(os.path.join(srcdir, inc)):
                    problems.append(f"src/{name}:{n}: includes {inc}, which is in no layer")
                continue
            if name in SHARED:
                problems.append(f"src/{name}:{n}: a shared building block includes {inc} "
                                f"({theirs[1]}): building blocks include no layer")
                continue
            if theirs[0] > mine[0] and (name, inc) not in EXCEPTIONS:
                problems.append(f"src/{name}:{n}: {mine[1]} includes {inc} ({theirs[1]}): a layer "
                                "must not include a header of a layer below it (DESIGN.md's table)")
    return problems


def main(argv):
    srcdir = "src"
    max_lines = 600
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--max-lines":
            max_lines = int(args.pop(0))
        else:
            srcdir = a
    problems = check(srcdir, max_lines)
    for p in problems:
        print(p)
    if problems:
        print(f"check-layers: {len(problems)} rule(s) broken")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Draw folded stacks (weft-dump --folded) as a flame graph, an SVG file.

usage: tools/flamegraph.py [--title TEXT] [--width PX] [FILE] > graph.svg

Each input line is "outer;...;inner COUNT". Every frame is a box as wide as the count of the
stacks that pass through it, the outermost at the bottom; boxes of the same frame under the
same parent are merged and sorted by name, so the picture is the same for the same stacks.
A box's tooltip (<title>) gives its frame, count and share. Standard library only, no
network: for a renderer with search and zoom, use flamegraph.pl, inferno or speedscope,
which read the same input.
"""
import argparse
import html
import sys
import zlib

ROW = 17            # px per stack level
FONT = 11
CHAR = FONT * 0.59  # px per character, roughly, in a sans-serif font


def parse(lines):
    root = {"name": "all", "count": 0, "kids": {}}
    for ln in lines:
        ln = ln.strip()
        if not ln or " " not in ln:
            continue
        stack, _, n = ln.rpartition(" ")
        try:
            count = int(n)
        except ValueError:
            continue
        root["count"] += count
        node = root
        for frame in stack.split(";"):
            node = node["kids"].setdefault(frame, {"name": frame, "count": 0, "kids": {}})
            node["count"] += count
    return root


def depth(node):
    return 1 + max((depth(k) for k in node["kids"].values()), default=0)


def colour(name):
    """A warm colour fixed by the name (the same frame has the same colour everywhere)."""
    h = zlib.crc32(name.encode())
    return "rgb(%d,%d,%d)" % (205 + h % 50, 80 + (h >> 8) % 130, 40 + (h >> 16) % 50)


def boxes(node, x, level, scale, total, out):
    w = node["count"] * scale
    out.append((x, level, w, node["name"], node["count"], 100.0 * node["count"] / total))
    for kid in sorted(node["kids"].values(), key=lambda k: k["name"]):
        boxes(kid, x, level + 1, scale, total, out)
        x += kid["count"] * scale


def svg(root, title, width):
    levels = depth(root)
    pad, top = 10, 40
    height = top + levels * ROW + pad
    total = root["count"] or 1
    scale = (width - 2 * pad) / total
    out = []
    boxes(root, pad, 0, scale, total, out)
    parts = ['<?xml version="1.0" standalone="no"?>',
             '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
             'viewBox="0 0 %d %d" font-family="Verdana, sans-serif" font-size="%d">'
             % (width, height, width, height, FONT),
             '<rect width="100%%" height="100%%" fill="#f8f8f0"/>',
             '<text x="%d" y="24" text-anchor="middle" font-size="%d">%s</text>'
             % (width // 2, FONT + 5, html.escape(title))]
    for x, level, w, name, count, share in out:
        y = height - pad - (level + 1) * ROW
        label = "%s (%d, %.1f%%)" % (name, count, share)
        parts.append('<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" '
                     'fill="%s" rx="2"/>' % (html.escape(label), x, y, max(w - 0.5, 0.1),
                                             ROW - 1, "#e0e0d8" if level == 0 else colour(name)))
        fit = int((w - 6) / CHAR)
        if fit >= 3:
            text = name if len(name) <= fit else name[:fit - 2] + ".."
            parts.append('<text x="%.1f" y="%d">%s</text>' % (x + 3, y + ROW - 5,
                                                               html.escape(text)))
        parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("file", nargs="?", help="the folded stacks (default: standard input)")
    p.add_argument("--title", default="weft: parked stacks", help="the title line")
    p.add_argument("--width", type=int, default=1200, help="the width in px (default 1200)")
    a = p.parse_args(argv)
    src = open(a.file) if a.file else sys.stdin
    root = parse(src)
    if not root["count"]:
        sys.stderr.write("flamegraph.py: no stacks in the input\n")
        return 1
    sys.stdout.write(svg(root, a.title, a.width))
    return 0


if __name__ == "__main__":
    sys.exit(main())

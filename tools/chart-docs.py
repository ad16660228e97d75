#!/usr/bin/env python3
"""Writes the values table of charts/portcullis/README.md from the comments of values.yaml.

Usage: chart-docs.py [--check]
The comment block right above a key is its description. Every leaf value needs one, on itself or
on the map holding it. The table goes between the README's `<!-- values:begin -->` and
`<!-- values:end -->` markers; --check writes nothing and exits 1 when the README differs.
"""
import json
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHART = os.path.join(ROOT, "charts", "portcullis")
BEGIN, END = "<!-- values:begin -->", "<!-- values:end -->"
KEY = re.compile(r"^( *)([A-Za-z0-9_.-]+):(.*)$")


def descriptions(text):
    """Dotted path -> description, from the comment lines right above each key."""
    out, stack, comment = {}, [], []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        m = KEY.match(line)
        if not m:
            if not stripped:
                comment = []
            continue
        indent = len(m.group(1))
        stack = [(i, k) for i, k in stack if i < indent]
        stack.append((indent, m.group(2)))
        if comment:
            out[".".join(k for _, k in stack)] = " ".join(comment)
        comment = []
    return out


def type_of(v):
    return {bool: "bool", int: "int", float: "number", str: "string", list: "list", dict: "map"}.get(type(v), "any")


def rows(values, docs, prefix=""):
    for k, v in values.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v and path not in docs:
            yield from rows(v, docs, path + ".")
            continue
        if path not in docs:
            raise SystemExit(f"chart-docs: {path} has no comment in values.yaml")
        default = json.dumps(v, separators=(",", ":"))
        yield f"| `{path}` | {type_of(v)} | `{default}` | {docs[path]} |"


def table():
    with open(os.path.join(CHART, "values.yaml")) as fh:
        text = fh.read()
    lines = ["| value | type | default | description |", "| --- | --- | --- | --- |"]
    lines += list(rows(yaml.safe_load(text), descriptions(text)))
    return "\n".join(lines)


def main(argv):
    path = os.path.join(CHART, "README.md")
    with open(path) as fh:
        readme = fh.read()
    a, b = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    new = readme[:a] + "\n" + table() + "\n" + readme[b:]
    if "--check" in argv:
        if new != readme:
            print("charts/portcullis/README.md: the values table is out of date; run `make chart-docs`", file=sys.stderr)
            return 1
        return 0
    with open(path, "w") as fh:
        fh.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

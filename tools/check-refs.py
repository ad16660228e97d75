#!/usr/bin/env python3
"""Checks that every specification reference in the repository resolves inside docs/.

Comments and documents cite Portcullis's decisions as `A15` (ranges `A11–A14`, lists `A4/A8`)
and Keptn's behaviour as `B §3.9`, `§3.9.1`, `§3`, ranges `§2.1–2.4` / `§5.2-§5.4` and
`§8 item 11`. A decision `A<n>` must have the anchor `<a id="A<n>"></a>` in docs/decisions.md,
a section `§x.y` the anchor `<a id="B-x.y"></a>` in docs/behaviour.md. Every anchor id in docs/
must be unique, and links from one doc to an anchor of another (`decisions.md#A15`) must land.

Scans the files git knows (tracked, plus untracked ones that are not ignored, so new files are
checked before their first commit), skipping Cargo.lock files and binary files. Run from
anywhere inside the repository: `python3 tools/check-refs.py`. Exit status 1 lists every
unresolved reference as `file:line: reference`. Standard library only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

DOCS = "docs"
DECISIONS = "docs/decisions.md"
BEHAVIOUR = "docs/behaviour.md"

# Explicit HTML anchors; heading slugs are not used as link targets. Anchors shown as examples
# inside inline code or fenced code blocks do not count.
ANCHOR = re.compile(r"""<a\s+(?:id|name)\s*=\s*["']([^"']+)["']\s*>\s*</a>""")
INLINE_CODE = re.compile(r"(`+).*?\1")
FENCE = re.compile(r"^\s*(```|~~~)")

# A decision: `A` and one or two digits (no leading zero), optionally followed by more decisions
# joined by a range dash (`A7–A9`, `A11-A14`) or a slash (`A4/A8/A22`). Not part of a word,
# identifier, path, version or base64 run: the character before may not be a word character or
# one of `. + / = # $ @ % & \ -`; the one after may not be a word character, `+` or `=`, nor
# a `.` followed by a digit (`A1.5`). Three-digit numbers (`A100`) never match.
NUM = r"A[1-9]\d?(?!\d)"
DECISION = re.compile(
    r"(?<![\w.+/=#$@%&\\-])"
    rf"({NUM}(?:[ ]?[–/-][ ]?{NUM})*)"
    r"(?![\w+=]|\.\d)"
)
DECISION_PART = re.compile(r"A(\d+)|([–/-])")

# A Part B section: optional `B `, then `§`, a dotted number, then optionally a range end
# (`–2.4`, `-§5.4`, with or without its own `§`) or an item of a list section (`§8 item 11`).
SECTION_NUM = r"\d+(?:\.\d+)*"
SECTION = re.compile(
    rf"(?:\bB[  ]?)?§[  ]?({SECTION_NUM})"
    rf"(?:(?:[ ]?[–-][ ]?§?[ ]?({SECTION_NUM}))|(?:[  ]+item[  ]+(\d+)))?"
)

# A run of base64/hex-like characters this long is data (certificates, checksums), not prose.
DATA_RUN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")

# Markdown links into docs: `(decisions.md#A15)`, `(docs/behaviour.md#B-3.9)`, `(#B-1.2)`.
LINK = re.compile(r"\]\(([^)\s#]*\.md)?#([^)\s]+)\)")

SKIP_NAMES = {"Cargo.lock"}


def repo_root() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"],
        cwd=here,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def listed_files(root: str) -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    names = {n.decode("utf-8", "surrogateescape") for n in out.stdout.split(b"\0") if n}
    return sorted(names)


def read_text(path: str) -> str | None:
    """The file as text, or None for binary or unreadable files."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def in_data_run(line: str, start: int, end: int) -> bool:
    for run in DATA_RUN.finditer(line):
        if run.start() <= start and end <= run.end():
            return True
    return False


def decision_refs(text: str) -> list[str]:
    """`A4/A8` -> A4, A8; `A11–A14` -> A11 … A14."""
    ids: list[int] = []
    pending_range = False
    for m in DECISION_PART.finditer(text):
        if m.group(1):
            n = int(m.group(1))
            if pending_range and ids and ids[-1] < n and n - ids[-1] <= 50:
                ids.extend(range(ids[-1] + 1, n + 1))
            else:
                ids.append(n)
            pending_range = False
        else:
            pending_range = m.group(2) != "/"
    return [f"A{n}" for n in ids]


def section_refs(start: str, end: str | None, item: str | None) -> list[str]:
    """`§2.1–2.4` -> 2.1 … 2.4; `§3–§4` -> 3, 4; `§8 item 11` -> 8.11."""
    if item is not None:
        return [f"{start}.{item}"]
    if end is None:
        return [start]
    a, b = start.split("."), end.split(".")
    if len(a) == len(b) and a[:-1] == b[:-1]:
        lo, hi = int(a[-1]), int(b[-1])
        if lo <= hi and hi - lo <= 50:
            return [".".join(a[:-1] + [str(n)]) for n in range(lo, hi + 1)]
    return [start, end]


def scan_line(line: str) -> list[tuple[str, str]]:
    """(reference as written, anchor id) for every reference on a line."""
    found: list[tuple[str, str]] = []
    for m in SECTION.finditer(line):
        for number in section_refs(m.group(1), m.group(2), m.group(3)):
            found.append((m.group(0).strip(), f"B-{number}"))
    for m in DECISION.finditer(line):
        if in_data_run(line, m.start(), m.end()):
            continue
        for ref in decision_refs(m.group(1)):
            found.append((m.group(1), ref))
    return found


def anchor_file(anchor: str) -> str:
    return DECISIONS if anchor.startswith("A") else BEHAVIOUR


def main() -> int:
    root = repo_root()
    os.chdir(root)
    files = listed_files(root)
    problems: list[str] = []

    # Anchors, per docs file, and their uniqueness across docs/.
    anchors: dict[str, set[str]] = {}
    seen: dict[str, str] = {}
    for name in files:
        if not (name.startswith(DOCS + "/") and name.endswith(".md")):
            continue
        text = read_text(name)
        if text is None:
            continue
        anchors[name] = set()
        fenced = False
        for lineno, line in enumerate(text.splitlines(), 1):
            if FENCE.match(line):
                fenced = not fenced
                continue
            if fenced:
                continue
            for m in ANCHOR.finditer(INLINE_CODE.sub("", line)):
                anchor = m.group(1)
                where = f"{name}:{lineno}"
                if anchor in seen:
                    problems.append(f"{where}: anchor id {anchor!r} already defined at {seen[anchor]}")
                else:
                    seen[anchor] = where
                anchors[name].add(anchor)
    for required in (DECISIONS, BEHAVIOUR):
        if required not in anchors:
            problems.append(f"{required}: missing")

    references = 0
    scanned = 0
    for name in files:
        if os.path.basename(name) in SKIP_NAMES or not os.path.isfile(name):
            continue
        text = read_text(name)
        if text is None:
            continue
        scanned += 1
        for lineno, line in enumerate(text.splitlines(), 1):
            for written, anchor in scan_line(line):
                references += 1
                target = anchor_file(anchor)
                if anchor not in anchors.get(target, set()):
                    problems.append(
                        f"{name}:{lineno}: {written} -> no anchor '{anchor}' in {target}"
                    )
            if name.endswith(".md"):
                for m in LINK.finditer(line):
                    path, fragment = m.group(1), m.group(2)
                    target = (
                        os.path.normpath(os.path.join(os.path.dirname(name), path))
                        if path
                        else name
                    )
                    if not target.startswith(DOCS + "/"):
                        continue
                    references += 1
                    if fragment not in anchors.get(target, set()):
                        problems.append(
                            f"{name}:{lineno}: link #{fragment} -> no such anchor in {target}"
                        )

    total_anchors = sum(len(a) for a in anchors.values())
    if problems:
        for p in problems:
            print(p)
        print(
            f"check-refs: {len(problems)} problem(s) in {references} references "
            f"({scanned} files), {total_anchors} anchors",
            file=sys.stderr,
        )
        return 1
    print(
        f"check-refs: {references} references in {scanned} files resolve to "
        f"{total_anchors} anchors in {DOCS}/"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

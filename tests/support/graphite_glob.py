"""Graphite's path patterns, matched as graphite-web's standard finder matches
them, for the tests that check the Graphite dashboards against what carbon
stored (no graphite-web here).

graphite-web 1.1 expands ``{a,b}`` first (each alternative a pattern of its
own, braces may nest), then matches the pattern node by node against the
tree's names with ``fnmatch``: ``*`` and ``?`` never cross a dot, ``[...]``
is a character class. A pattern matches only paths of its own depth.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from fnmatch import fnmatchcase


def expand_braces(pattern: str) -> list[str]:
    """Every pattern that ``{a,b}`` alternatives make of ``pattern``, in order."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth, commas, end = 0, [], -1
    for i in range(start, len(pattern)):
        c = pattern[i]
        depth += {"{": 1, "}": -1}.get(c, 0)
        if c == "," and depth == 1:
            commas.append(i)
        if depth == 0:
            end = i
            break
    if end < 0:  # an unclosed brace is a literal, as graphite-web leaves it
        return [pattern]
    cuts = [start, *commas, end]
    head, tail = pattern[:start], pattern[end + 1 :]
    out: list[str] = []
    for a, b in itertools.pairwise(cuts):
        for inner in expand_braces(pattern[a + 1 : b]):
            out += expand_braces(head + inner + tail)
    return out


def matches(pattern: str, path: str) -> bool:
    """Whether the Graphite pattern ``pattern`` names the metric ``path``."""
    nodes = path.split(".")
    for alternative in expand_braces(pattern):
        parts = alternative.split(".")
        if len(parts) == len(nodes) and all(map(fnmatchcase, nodes, parts)):
            return True
    return False


def matching(pattern: str, paths: Iterable[str]) -> set[str]:
    return {p for p in paths if matches(pattern, p)}

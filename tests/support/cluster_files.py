"""Broken cluster files and the one line dshd must say about each (FILE:LINE: what),
shared by the in-process test of main() and the test of the real dshd script."""

BAD_CLUSTER_FILES = [
    ("127.0.0.11 1.0 1.0 extra\n", "cluster:1: unexpected 'extra' (expected NAME"),
    ("127.0.0.11\n127.0.0.12 fast\n", "cluster:2: loadscale 'fast' is not a number"),
    ("127.0.0.11\n# c\n127.0.0.12 1 -1\n", "cluster:3: memscale '-1' must be a positive"),
    ("127.0.0.11\n127.0.0.11\n", "cluster:2: duplicate node '127.0.0.11' (first on line 1)"),
    ("# nothing\n", "cluster: no nodes defined"),
]

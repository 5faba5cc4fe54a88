#!/usr/bin/env python3
"""`dsh true` of this checkout against another checkout's, interleaved on one bed.

For a change that should cost nothing (a refactoring): both checkouts' dsh run
against the same dshd and sshd, alternating, so that a machine that gets
busier or quieter during the run weighs on both alike. Each checkout's dsh
starts its own mux (a mux serves only a dsh of its own protocol version and
release: the socket's name says which), so what is compared is the whole
path: dsh's start, the mux, the executor. The other checkout's Python files
are compiled first, like this one's, so that neither pays for compiling.

    python3 bench/versus.py /path/to/other/checkout [--rounds 60]

Prints a Markdown table; traffic goes to 127.0.0.36-38 only.
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import sys
import tempfile
from pathlib import Path

from testbed import DSH, PY, REPO, LoopbackBed, run, timed

ADDRESSES = ("127.0.0.36", "127.0.0.37", "127.0.0.38")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("other", type=Path, help="a checkout of dsh to compare with")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)
    other = args.other.resolve() / "dsh"
    if not other.is_file():
        parser.error(f"{other}: no dsh there")
    for tree in (REPO, args.other.resolve()):
        compileall.compile_dir(str(tree / "src"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="dsh-versus-") as tmp:
        bed = LoopbackBed(Path(tmp), ADDRESSES)
        try:
            bed.start()
            commands = {
                "this": [str(Path(DSH)), *bed.dsh_args(), "true"],
                "other": [str(other), *bed.dsh_args(), "true"],
                "this, python3 -S": [PY, "-S", DSH, *bed.dsh_args(), "true"],
                "other, python3 -S": [PY, "-S", str(other), *bed.dsh_args(), "true"],
            }
            for argv in commands.values():  # each starts its mux and executor
                for _ in range(3):
                    run(argv, env=bed.env)
            times: dict[str, list[float]] = {name: [] for name in commands}
            for i in range(args.rounds):
                names = list(commands)
                names = names[i % len(names) :] + names[: i % len(names)]  # rotate the order
                for name in names:
                    times[name].append(timed(commands[name], env=bed.env))
            # The other checkout's mux: stopped by its own dsh (ours stops ours).
            run([PY, str(other), "--mux-stop"], env=bed.env)
        finally:
            bed.stack.close()
    print(
        f"`dsh true` per call, {args.rounds} interleaved rounds; ms (this: {REPO}, "
        f"other: {args.other.resolve()})\n"
    )
    print("| dsh | median | p90 | vs other |\n|---|---:|---:|---:|")
    for name, values in times.items():
        base = times[name.replace("this", "other")]
        median = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        ratio = median / statistics.median(base)
        print(f"| {name} | {median * 1000:.1f} | {p90 * 1000:.1f} | {ratio:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

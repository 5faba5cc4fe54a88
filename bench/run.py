#!/usr/bin/env python3
"""Benchmark dsh against ssh, an ssh ControlMaster and local runs, side by side.

The cluster (testbed.py) is on loopback: dshd on 127.0.0.30 (drained, so dsh
always goes remote), dshd + a real sshd on .31 and .32. Repetitions are
interleaved (order rotated each round) so background load hits every measure
alike. Prints a Markdown section (--out: also to a file). Every process
started here is stopped on exit, Ctrl-C and SIGTERM included. Traffic goes to
127.0.0.x only.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# testbed comes first: it puts src/ and tests/ on sys.path
from testbed import DSH, LOCAL, PY, R1, R2, REPO, Bed, BenchError, run, timed

from dsh.client.daemon_client import ask_best, ask_status
from dsh.request import Request
from dsh.ssh import connect as ssh
from dsh.ssh.session import command_line

SRC_ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
FILES = 60  # generated C files besides main.c
JOBS = 4
# A pyenv shim runs python3 with its version's bin/ first on PATH, so our
# children would skip the shim that `dsh` typed in a user's shell goes through.
_PATH = [d for d in os.environ["PATH"].split(os.pathsep) if d != str(Path(PY).parent)]
SHELL_ENV = {**os.environ, "PATH": os.pathsep.join(_PATH)}
SHIM = shutil.which("python3", path=SHELL_ENV["PATH"])


def import_s(module: str) -> float:
    """Cumulative -X importtime of ``module`` and its parent packages, in seconds."""
    text = run([PY, "-X", "importtime", "-c", f"import {module}"], env=SRC_ENV).stderr
    total = 0
    for m in re.finditer(r"^import time:\s+\d+ \|\s+(\d+) \| (\S+)$", text, re.M):
        if m.group(2) == module or module.startswith(m.group(2) + "."):
            total += int(m.group(1))
    if not total:
        raise BenchError(f"no importtime line for {module}:\n{text}")
    return total / 1e6  # importtime reports microseconds


def part_measures(bed: Bed) -> dict[str, Callable[[], float]]:
    """Parts of a dsh run, in-process: daemon queries, connect + auth, one session."""
    target, port = ssh.target_for(R1, bed.config, 10.0), bed.dshd.port
    helper = command_line(Request(argv=[b"true"], cwd=os.fsencode(bed.dir), umask=0o22), PY)

    def clock(function: Callable[[], object]) -> float:
        start = time.perf_counter()
        function()
        return time.perf_counter() - start

    def session(command: str) -> None:
        transport = bed.client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=10)
        channel.exec_command(command)
        if channel.recv_exit_status() != 0:
            raise BenchError(f"paramiko session {command[:40]!r} failed")
        channel.close()

    return {
        "daemon": lambda: clock(lambda: (ask_best(LOCAL, port + 1, 2), ask_status(LOCAL, port, 2))),
        "connect": lambda: clock(lambda: ssh.connect(target).close()),
        "session_true": lambda: clock(lambda: session("true")),
        "session_helper": lambda: clock(lambda: session(helper)),
    }


Measure = Callable[[], float | dict[str, float]]


def per_call_measures(bed: Bed) -> dict[str, Measure]:
    dsh = [PY, DSH, "-v", *bed.dsh_args(), "true"]
    direct = [PY, DSH, "-v", "--direct", *bed.dsh_args(), "true"]
    no_executor = {**bed.env, "DSH_EXECUTOR": "0"}
    went_remote = re.compile(r"running on 127\.0\.0\.3[12]\b")
    ssh_cmd = ["ssh", "-F", bed.config]
    bashrc_env = {k: v for k, v in os.environ.items() if k != "SHLVL"}
    bashrc_env["SSH_CLIENT"] = f"{LOCAL} 50000 22"  # how bash knows sshd started it
    measures: dict[str, Measure] = {
        # dsh puts its sync file in the working directory: not in the checkout
        "dsh": lambda: timed(dsh, went_remote.search, cwd=bed.dir, env=bed.env),
        "dsh_channel": lambda: timed(dsh, went_remote.search, cwd=bed.dir, env=no_executor),
        "dsh_direct": lambda: timed(direct, went_remote.search, cwd=bed.dir, env=bed.env),
        "ssh": lambda: timed([*ssh_cmd, R1, "true"]),
        "cm": lambda: timed([*ssh_cmd, "-S", bed.sock, R1, "true"]),
        "local": lambda: timed(["true"]),
        "cpu_dsh": lambda: bed.cpu("cpu_dsh", dsh, 10, cwd=bed.dir, env=bed.env),
        "cpu_direct": lambda: bed.cpu("cpu_direct", direct, 1, cwd=bed.dir, env=bed.env),
        "cpu_cm": lambda: bed.cpu("cpu_cm", [*ssh_cmd, "-S", bed.sock, R1, "true"], 1),
        "version": lambda: timed([PY, DSH, "--version"], env=bed.env),
        "shebang": lambda: timed([DSH, "--version"], env=SHELL_ENV),
        "python": lambda: timed([PY, "-c", "pass"]),
        "python_S": lambda: timed([PY, "-S", "-c", "pass"]),
        "bashrc": lambda: timed(["bash", "-c", "true"], env=bashrc_env),
        "imp_cli": lambda: import_s("dsh.client.cli"),
        "imp_paramiko": lambda: import_s("paramiko"),
    }
    measures.update(part_measures(bed))
    return measures


def interleave(measures: dict[str, Measure], rounds: int) -> dict[str, list[float]]:
    names = list(measures)
    samples: dict[str, list[float]] = {}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            result = measures[name]()
            for key, value in (result if isinstance(result, dict) else {name: result}).items():
                samples.setdefault(key, []).append(value)
    return samples


def write_project(directory: Path) -> None:
    directory.mkdir()
    names = [f"f{i:02d}" for i in range(FILES)]
    (directory / "funcs.h").write_text("".join(f"unsigned {n}(unsigned);\n" for n in names))
    for i, n in enumerate(names):
        body = f"unsigned s = {i}; for (unsigned k = 0; k < x; k++) s = s * 31u + k % {i + 3}u;"
        (directory / f"{n}.c").write_text(f'#include "funcs.h"\nunsigned {n}(unsigned x) '
                                          f"{{ {body} return s; }}\n")  # fmt: skip
    calls = "".join(f"    t += {n}({100 + i});\n" for i, n in enumerate(names))
    (directory / "main.c").write_text(
        '#include <stdio.h>\n#include "funcs.h"\nint main(void)\n{\n    unsigned long t = 0;\n'
        f'{calls}    printf("%lu\\n", t);\n    return 0;\n}}\n'
    )
    (directory / "Makefile").write_text(
        "CC ?= gcc\nCFLAGS ?= -O2\nOBJS = $(patsubst %.c,%.o,$(sort $(wildcard *.c)))\n"
        "prog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%.o: %.c funcs.h\n\t$(CC) $(CFLAGS) -c $< -o $@\n"
        "clean:\n\trm -f prog *.o\n"
    )


def builds(bed: Bed, directory: Path, rounds: int) -> dict[str, list[float]]:
    write_project(directory)
    dsh = [PY, DSH, *bed.dsh_args()]
    compilers = {"local": "gcc", "dsh": " ".join([*dsh, "gcc"]),
                 "direct": " ".join([*dsh, "--direct", "gcc"])}  # fmt: skip
    samples: dict[str, list[float]] = {name: [] for name in compilers}
    outputs: set[str] = set()
    names = list(compilers)
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            run(["make", "clean"], cwd=directory)
            make = ["make", f"-j{JOBS}", f"CC={compilers[name]}"]
            samples[name].append(timed(make, cwd=directory, env=bed.env, timeout=900))
            outputs.add(run([str(directory / "prog")]).stdout)
    if len(outputs) != 1:
        raise BenchError(f"dsh-built and local programs print different things: {outputs}")
    return samples


CALLS = [
    ("dsh", f"`dsh true` (remote: {R1} or {R2}; mux + resident executor)"),
    ("dsh_channel", "`DSH_EXECUTOR=0 dsh true` (mux, a new SSH channel per command)"),
    ("dsh_direct", "`dsh --direct true` (own SSH connection, as dsh 0.1)"),
    ("ssh", f"`ssh -F CONFIG {R1} true` (new connection)"),
    ("cm", f"`ssh -S SOCKET {R1} true` (ControlMaster)"),
    ("local", "`true` (local spawn)"),
]
PARTS = [
    ("version", "`python3 dsh --version` (the interpreter dsh runs on, no shim)"),
    ("shebang", f"`./dsh --version`: `env python3` finds {SHIM}"),
    ("python", "`python3 -c pass`"),
    ("python_S", "`python3 -S -c pass` (no site, no .pth files)"),
    ("imp_cli", "`-X importtime`, `import dsh.client.cli`, cumulative"),
    ("imp_paramiko", "`-X importtime`, `import paramiko`, cumulative (--direct imports it)"),
    ("daemon", "ask dshd: best node + status (dsh.client.daemon_client, in-process)"),
    (
        "connect",
        "paramiko connect + auth (dsh.ssh.connect.connect, in-process; what --direct does)",
    ),
    ("session_true", "`true` in a new session on an open paramiko connection"),
    ("session_helper", "dsh's helper (rexec) running `true`, same way"),
    ("bashrc", "local `bash -c true` with SSH_CLIENT set (reads ~/.bashrc)"),
    ("cpu_dsh_client", "CPU per `dsh true`: dsh + the mux (mean of 10 in a row)"),
    ("cpu_dsh_server", "CPU per `dsh true`: sshd side (sshd, executor, `true`), same"),
    ("cpu_direct_client", "CPU per `dsh --direct true`: the dsh process"),
    ("cpu_direct_server", "CPU per `dsh --direct true`: sshd side (sshd, bash, helper)"),
    ("cpu_cm_client", "CPU per `ssh -S SOCKET ... true`: ssh + the ControlMaster"),
    ("cpu_cm_server", "CPU per `ssh -S SOCKET ... true`: sshd side (sshd, bash, `true`)"),
]


def report(calls: dict[str, list[float]], build: dict[str, list[float]], info: str) -> str:
    med = {k: statistics.median(v) * 1000 for k, v in calls.items()}

    def row(key: str, label: str, ratios: bool) -> str:
        values = sorted(calls[key])
        p90 = values[max(0, -(-9 * len(values) // 10) - 1)] * 1000  # nearest rank
        cells = [label, f"{med[key]:.1f}", f"{p90:.1f}"]
        if ratios:
            cells += [f"{med[key] / med[r]:.2f}x" for r in ("ssh", "cm", "local")]
        return "| " + " | ".join(cells) + " |"

    bmed = {k: statistics.median(v) for k, v in build.items()}
    compiles, rounds = FILES + 1, len(calls["dsh"])
    ssh_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    git = ["git", "-C", str(REPO), "describe", "--always", "--dirty"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "unknown"
    return "\n".join([
        f"### Measured {time.strftime('%Y-%m-%d %H:%M')}: nproc {os.cpu_count()}; "
        f"Python {sys.version.split()[0]}; {ssh_v}; dsh at commit {commit}",
        "", info, "",
        f"Per call: {rounds} runs each, interleaved; wall time in ms.", "",
        "| command | median | p90 | vs ssh | vs ControlMaster | vs local |",
        "|---|---:|---:|---:|---:|---:|",
        *(row(key, label, True) for key, label in CALLS), "",
        f"Startup, the parts of a `dsh --direct` call, CPU time: {rounds} runs each, "
        "in the same rounds; ms.", "",
        "| what | median | p90 |", "|---|---:|---:|",
        *(row(key, label, False) for key, label in PARTS), "",
        f"Build: `make -j{JOBS}`, {FILES} generated C files + main.c ({compiles} compiles, "
        f"1 link), `make clean` between, {len(build['dsh'])} build(s) each, rotating; s.", "",
        "| build | median | runs | vs local | overhead per command, ms |",
        "|---|---:|---|---:|---:|",
        *(f"| {label} | {bmed[k]:.2f} | {', '.join(f'{t:.2f}' for t in build[k])} | "
          f"{bmed[k] / bmed['local']:.2f}x | "
          f"{(bmed[k] - bmed['local']) * JOBS / compiles * 1000:.0f} |"
          for k, label in (("local", "`CC=gcc`"), ("dsh", '`CC="dsh gcc"`'),
                           ("direct", '`CC="dsh --direct gcc"`'))), "",
        f"Overhead per command = (t_dsh - t_local) * {JOBS} jobs / {compiles} compiles. "
        "The dsh-built programs printed the same as the local one.",
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs per call, 1 build each")
    parser.add_argument("--out", type=Path, help="also write the Markdown section here")
    parser.add_argument("--dsh-opts", default="", help="more options for every dsh run, e.g. -n")
    args = parser.parse_args(argv)
    rounds, build_rounds = (5, 1) if args.quick else (20, 3)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="dsh-bench-") as tmp:
        bed = Bed(Path(tmp))
        bed.dsh_options = shlex.split(args.dsh_opts)
        load = f"1-minute load average at the start: {os.getloadavg()[0]:.2f}."
        if bed.dsh_options:
            load += f" Every dsh run had the options `{args.dsh_opts}`."
        try:
            bed.start()
            measures = per_call_measures(bed)
            for measure in measures.values():
                measure()  # warm-up: page cache, first connection
            calls = interleave(measures, rounds)
            build = builds(bed, Path(tmp) / "build", build_rounds)
        except BenchError as exc:
            print(f"bench: aborted: {exc}", file=sys.stderr)
            if log := bed.mux_log():
                print(f"bench: the end of dsh's mux log:\n{log}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench: interrupted", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # cleanup must not be cut short
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            bed.stack.close()
    section = report(calls, build, load)
    sys.stdout.write(section)
    if args.out:
        args.out.write_text(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Benchmark dsh against ssh, an ssh ControlMaster and local runs, side by side.

One run builds a throw-away cluster on loopback: dshd on 127.0.0.30 (drained,
so dsh always goes remote) and dshd + a real sshd on 127.0.0.31 and .32, built
from tests/support as tests/conftest.py does. Every measure is repeated and the
repetitions are interleaved (round-robin, order rotated each round) so that
background load hits all of them alike. Prints a Markdown section; --out also
writes it to a file. Every process started here is stopped on exit, Ctrl-C and
SIGTERM included. Traffic goes to 127.0.0.x only.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from support.dshd import Cluster  # noqa: E402
from support.sshd import Sshd, common_free_port, make_client_keys, write_ssh_config  # noqa: E402
from support.waiting import wait_for  # noqa: E402

from dsh import ssh  # noqa: E402
from dsh.picker import ask_best, ask_status  # noqa: E402
from dsh.remote import Request, command_line  # noqa: E402

LOCAL, R1, R2 = "127.0.0.30", "127.0.0.31", "127.0.0.32"
PY = sys.executable
DSH = str(REPO / "dsh")
SRC_ENV = {**os.environ, "PYTHONPATH": str(REPO / "src")}
FILES = 60  # generated C files besides main.c
JOBS = 4
# A pyenv shim runs python3 with its version's bin/ first on PATH, so our
# children would skip the shim that `dsh` typed in a user's shell goes through.
_PATH = [d for d in os.environ["PATH"].split(os.pathsep) if d != str(Path(PY).parent)]
SHELL_ENV = {**os.environ, "PATH": os.pathsep.join(_PATH)}
SHIM = shutil.which("python3", path=SHELL_ENV["PATH"])


class BenchError(Exception):
    """A measured command failed or gave a wrong answer: the figures would lie."""


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=600, **kwargs)  # type: ignore[call-overload]  # fmt: skip
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc  # type: ignore[no-any-return]


def timed(argv: list[str], check: Callable[[str], object] | None = None, **kw: object) -> float:
    start = time.perf_counter()
    proc = run(argv, **kw)
    elapsed = time.perf_counter() - start
    if check is not None and not check(proc.stderr):
        raise BenchError(f"{' '.join(argv)}: unexpected stderr {proc.stderr!r}")
    return elapsed


def cpu_s(argv: list[str], cwd: Path | None = None) -> float:
    """CPU time all processes on the machine used while ``argv`` ran (both ends here)."""
    before = psutil.cpu_times()
    timed(argv, cwd=cwd)
    after = psutil.cpu_times()
    return float(sum(getattr(after, f) - getattr(before, f) for f in ("user", "nice", "system")))


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


class Bed:
    """The cluster, the ControlMaster and a paramiko connection; stack.close() stops all."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.stack = contextlib.ExitStack()
        keys = make_client_keys(directory / "keys")
        port = common_free_port([R1, R2])
        self.sshd = [Sshd(a, port, directory / f"sshd-{a}", keys) for a in (R1, R2)]
        self.config = str(write_ssh_config(directory / "ssh_config", self.sshd, keys))
        (directory / "dshd").mkdir()
        self.dshd = Cluster(directory / "dshd", [f"{LOCAL} 1.0 1.0 drain", R1, R2], interval=0.2)
        self.sock = str(directory / "cm.sock")
        self.master_pid: int | None = None

    def start(self) -> None:
        for server in self.sshd:
            self.stack.callback(server.stop)
            server.start()
        self.stack.callback(self.dshd.stop)
        self.dshd.start()
        wait_for(self.dshd.all_up, 10, "bench cluster up")
        self.stack.callback(self._stop_master)
        with open(self.dir / "master.log", "wb") as log:  # ssh -f keeps its stdio: no pipes
            subprocess.run(["ssh", "-F", self.config, "-M", "-S", self.sock, "-fN", R1],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True,
                           timeout=30)  # fmt: skip
        found = re.search(r"pid=(\d+)", run(["ssh", "-S", self.sock, "-O", "check", R1]).stderr)
        self.master_pid = int(found.group(1)) if found else None

    def _stop_master(self) -> None:
        subprocess.run(["ssh", "-S", self.sock, "-O", "exit", R1], capture_output=True, timeout=10)
        if self.master_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.master_pid, signal.SIGTERM)  # only if -O exit did not work

    def dsh_args(self) -> list[str]:
        port = self.dshd.port
        return ["-H", f"{LOCAL}:{port + 1}", "--status-port", str(port),
                "--ssh-config", self.config]  # fmt: skip


def in_process(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def part_measures(bed: Bed) -> dict[str, Callable[[], float]]:
    """Parts of a dsh run, in-process: daemon queries, connect + auth, one session."""
    target = ssh.target_for(R1, bed.config, 10.0)
    client = ssh.connect(target)
    bed.stack.callback(client.close)
    helper = command_line(Request(argv=[b"true"], cwd=os.fsencode(bed.dir), umask=0o22), PY)
    port = bed.dshd.port

    def ask_daemon() -> None:
        ask_best(LOCAL, port + 1, 2.0)
        ask_status(LOCAL, port, 2.0)

    def session(command: str) -> None:
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_session(timeout=10)
        channel.exec_command(command)
        status = channel.recv_exit_status()
        channel.close()
        if status != 0:
            raise BenchError(f"paramiko session {command[:40]!r} exited {status}")

    return {
        "daemon": lambda: in_process(ask_daemon),
        "connect": lambda: in_process(lambda: ssh.connect(target).close()),
        "session_true": lambda: in_process(lambda: session("true")),
        "session_helper": lambda: in_process(lambda: session(helper)),
    }


def per_call_measures(bed: Bed) -> dict[str, Callable[[], float]]:
    dsh = [PY, DSH, "-v", *bed.dsh_args(), "true"]
    went_remote = re.compile(r"running on 127\.0\.0\.3[12]\b")
    ssh_cmd = ["ssh", "-F", bed.config]
    bashrc_env = {k: v for k, v in os.environ.items() if k != "SHLVL"}
    bashrc_env["SSH_CLIENT"] = f"{LOCAL} 50000 22"  # how bash knows sshd started it
    measures: dict[str, Callable[[], float]] = {
        # dsh puts its sync file in the working directory: not in the checkout
        "dsh": lambda: timed(dsh, went_remote.search, cwd=bed.dir),
        "ssh": lambda: timed([*ssh_cmd, R1, "true"]),
        "cm": lambda: timed([*ssh_cmd, "-S", bed.sock, R1, "true"]),
        "local": lambda: timed(["true"]),
        "cpu_dsh": lambda: cpu_s(dsh, cwd=bed.dir),
        "cpu_cm": lambda: cpu_s([*ssh_cmd, "-S", bed.sock, R1, "true"]),
        "version": lambda: timed([PY, DSH, "--version"]),
        "shebang": lambda: timed([DSH, "--version"], env=SHELL_ENV),
        "python": lambda: timed([PY, "-c", "pass"]),
        "python_S": lambda: timed([PY, "-S", "-c", "pass"]),
        "bashrc": lambda: timed(["bash", "-c", "true"], env=bashrc_env),
        "imp_cli": lambda: import_s("dsh.dsh_cli"),
        "imp_paramiko": lambda: import_s("paramiko"),
    }
    measures.update(part_measures(bed))
    return measures


def interleave(measures: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    names = list(measures)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            samples[name].append(measures[name]())
    return samples


def write_project(directory: Path) -> None:
    directory.mkdir()
    names = [f"f{i:02d}" for i in range(FILES)]
    (directory / "funcs.h").write_text("".join(f"unsigned {n}(unsigned);\n" for n in names))
    for i, name in enumerate(names):
        (directory / f"{name}.c").write_text(
            f'#include "funcs.h"\nunsigned {name}(unsigned x)\n{{\n    unsigned s = {i};\n'
            f"    for (unsigned k = 0; k < x; k++)\n        s = s * 31u + k % {i + 3}u;\n"
            "    return s;\n}\n"
        )
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
    compilers = {"local": "gcc", "dsh": " ".join([PY, DSH, *bed.dsh_args(), "gcc"])}
    samples: dict[str, list[float]] = {name: [] for name in compilers}
    outputs: dict[str, set[str]] = {name: set() for name in compilers}
    for i in range(rounds):
        for name in list(compilers)[:: 1 if i % 2 == 0 else -1]:
            run(["make", "clean"], cwd=directory)
            make = ["make", f"-j{JOBS}", f"CC={compilers[name]}"]
            samples[name].append(timed(make, cwd=directory))
            outputs[name].add(run([str(directory / "prog")]).stdout)
    if len(outputs["local"] | outputs["dsh"]) != 1:
        raise BenchError(f"dsh-built and local binaries differ: {outputs}")
    return samples


def facts() -> str:
    ssh_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    return f"nproc {os.cpu_count()}; Python {sys.version.split()[0]}; {ssh_v}"


CALLS = [
    ("dsh", f"`dsh true` (remote: {R1} or {R2})"),
    ("ssh", f"`ssh -F CONFIG {R1} true` (new connection)"),
    ("cm", f"`ssh -S SOCKET {R1} true` (ControlMaster)"),
    ("local", "`true` (local spawn)"),
]
PARTS = [
    ("version", "`python3 dsh --version` (the interpreter dsh runs on, no shim)"),
    ("shebang", f"`./dsh --version`: `env python3` finds {SHIM}"),
    ("python", "`python3 -c pass`"),
    ("python_S", "`python3 -S -c pass` (no site, no .pth files)"),
    ("imp_cli", "`-X importtime`, `import dsh.dsh_cli`, cumulative"),
    ("imp_paramiko", "`-X importtime`, `import paramiko`, cumulative"),
    ("daemon", "ask dshd: best node + status (dsh.picker, in-process)"),
    ("connect", "paramiko connect + auth (dsh.ssh.connect, in-process)"),
    ("session_true", "`true` in a new session on an open paramiko connection"),
    ("session_helper", "dsh's helper (rexec) running `true`, same way"),
    ("bashrc", "local `bash -c true` with SSH_CLIENT set (reads ~/.bashrc)"),
    ("cpu_dsh", "CPU time (user+sys, all processes) during one `dsh true`"),
    ("cpu_cm", "CPU time (same) during one `ssh -S SOCKET ... true`"),
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

    bl, bd = (statistics.median(build[k]) for k in ("local", "dsh"))
    compiles, rounds = FILES + 1, len(calls["dsh"])
    return "\n".join([
        f"### Measured {time.strftime('%Y-%m-%d %H:%M')}: {facts()}",
        "", info, "",
        f"Per call: {rounds} runs each, interleaved; wall time in ms.", "",
        "| command | median | p90 | vs ssh | vs ControlMaster | vs local |",
        "|---|---:|---:|---:|---:|---:|",
        *(row(key, label, True) for key, label in CALLS), "",
        f"Startup and the parts of a dsh call: {rounds} runs each, in the same rounds; ms.", "",
        "| what | median | p90 |", "|---|---:|---:|",
        *(row(key, label, False) for key, label in PARTS), "",
        f"Build: `make -j{JOBS}`, {FILES} generated C files + main.c ({compiles} compiles, "
        f"1 link), `make clean` between, {len(build['dsh'])} build(s) each, alternating; s.", "",
        "| build | median | runs |", "|---|---:|---|",
        *(f"| {label} | {statistics.median(build[k]):.2f} | "
          f"{', '.join(f'{t:.2f}' for t in build[k])} |"
          for k, label in (("local", "`CC=gcc`"), ("dsh", '`CC="dsh gcc"`'))), "",
        f"dsh/local = {bd / bl:.2f}x; per-command overhead (t_dsh - t_local) * {JOBS} / "
        f"{compiles} = {(bd - bl) * JOBS / compiles * 1000:.0f} ms. "
        "The dsh-built program printed the same as the local one.",
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs per call, 1 build each")
    parser.add_argument("--out", type=Path, help="also write the Markdown section here")
    args = parser.parse_args(argv)
    rounds, build_rounds = (5, 1) if args.quick else (20, 3)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="dsh-bench-") as tmp:
        bed = Bed(Path(tmp))
        before = os.getloadavg()
        try:
            bed.start()
            measures = per_call_measures(bed)
            for measure in measures.values():
                measure()  # warm-up: page cache, first connection
            calls = interleave(measures, rounds)
            build = builds(bed, Path(tmp) / "build", build_rounds)
            load = f"Load average at start {before[0]:.2f}, at end {os.getloadavg()[0]:.2f}."
        except BenchError as exc:
            print(f"bench: aborted: {exc}", file=sys.stderr)
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

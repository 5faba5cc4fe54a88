#!/usr/bin/env python3
"""How much the mux and the executor save: issue 5's measures, side by side, in one run.

A throw-away cluster on loopback, built from tests/support as tests/support/ssh_cluster.py
builds its SshCluster, on addresses of its own (127.0.0.33-35, so that it can
run beside bench/run.py): dshd on .33 (drained: dsh always goes remote), dshd +
a real sshd on .34 and .35, and, when distcc is installed, distccd on .34 and .35.
Against the same sshd: dsh through the mux and the executor, through the mux with
an exec channel per command, and --direct; `ssh -S` to a ControlMaster; the same
with the remote shell's start-up files skipped (the bare protocol); a fresh ssh.
Then 500 short commands from 8 concurrent loops, a make -j build of a few
hundred small C files, and the start of the dsh process itself. Repetitions are
interleaved (order rotated each round). Prints a Markdown section (--out: also
to a file). Everything started here is stopped on exit, Ctrl-C and SIGTERM
included; traffic goes to 127.0.0.x only.

The remote shell skips ~/.bashrc for the bare-protocol figure because bash reads
it for sshd only at SHLVL < 2: the sshd here accepts SHLVL (AcceptEnv) and that
ControlMaster sends SHLVL=1 (SendEnv); the other ControlMaster sends nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
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

# testbed puts src/ and tests/ on sys.path; tests/support's helpers come through it
from testbed import DSH, PY, REPO, BenchError, LoopbackBed, common_free_port, run, timed, wait_for

LOCAL, R1, R2 = "127.0.0.33", "127.0.0.34", "127.0.0.35"
JOBS = (4, 16)  # make -j: 2 per CPU, as bench/run.py; and enough to hide each job's start
LOOPS, COMMANDS = 8, 500  # the throughput measure


def say(text: str) -> None:
    print(f"bench: {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


class Bed(LoopbackBed):
    """The loopback cluster, two ControlMasters (with and without the remote
    shell's start-up files), and distccd on the nodes when distcc is installed."""

    def __init__(self, directory: Path, jobs: tuple[int, ...]) -> None:
        super().__init__(directory, (LOCAL, R1, R2))
        for server in self.sshd:  # for the bare-protocol ControlMaster (module docstring)
            server.config.write_text(server.config.read_text() + "AcceptEnv SHLVL\n")
        self.cm = str(directory / "cm.sock")
        self.bare = str(directory / "bare.sock")
        # `dsh` as a user runs it: its sh line starts the interpreter with -S; the
        # interpreter is this one, as for a dsh pip installed beside it (python3
        # on PATH here is a pyenv shim, a bash script).
        self.dsh_env = {**self.env, "DSH_PYTHON": PY}
        self.bare_env = {**os.environ, "SHLVL": "1"}
        self.distcc_hosts = ""
        # distcc holds a job back while all its slots for the hosts are taken; dsh
        # has no such limit. Enough slots that make's -j alone bounds both.
        self.slots = max(1, max(jobs) // 2)
        self.distccd: list[int] = []

    def start(self) -> None:
        super().start()
        for sock, extra, env in ((self.cm, [], None), (self.bare, ["-o", "SendEnv=SHLVL"],
                                                       self.bare_env)):  # fmt: skip
            self.stack.callback(self._stop_master, sock)
            with open(self.dir / "master.log", "ab") as log:  # ssh -f keeps its stdio
                subprocess.run(["ssh", "-F", self.config, *extra, "-M", "-S", sock, "-fN", R1],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True,
                               timeout=30, env=env)  # fmt: skip
        probe = "type pyenv >/dev/null 2>&1 && echo rc || echo bare"
        shlvl = run(["ssh", "-F", self.config, "-o", "SendEnv=SHLVL", "-S", self.bare, R1, probe],
                    env=self.bare_env)  # fmt: skip
        if shlvl.stdout.strip() != "bare":
            raise BenchError("the bare-protocol ControlMaster still reads ~/.bashrc")
        if shutil.which("distccd") and shutil.which("distcc"):
            self._start_distccd()

    def _start_distccd(self) -> None:
        port = common_free_port([R1, R2])
        for address in (R1, R2):
            log = self.dir / f"distccd-{address}.log"
            proc = subprocess.Popen(
                ["distccd", "--no-detach", "--daemon", "--listen", address, "--port", str(port),
                 "--allow", "127.0.0.0/8", "--jobs", str(self.slots), "--log-file", str(log),
                 "--user", "nobody"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
            self.stack.callback(self._stop_process, proc)
            self.distccd.append(proc.pid)
        wait_for(lambda: all(_listening(a, port) for a in (R1, R2)), 10, "distccd up")
        self.distcc_hosts = f"{R1}:{port}/{self.slots} {R2}:{port}/{self.slots}"

    @staticmethod
    def _stop_process(proc: subprocess.Popen[bytes]) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def _stop_master(self, sock: str) -> None:
        subprocess.run(["ssh", "-S", sock, "-O", "exit", R1], capture_output=True, timeout=10)


def _listening(address: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex((address, port)) == 0


# -- per call ---------------------------------------------------------------------


def per_call(bed: Bed) -> dict[str, tuple[list[str], dict[str, str]]]:
    dsh = [*bed.dsh_args(), "true"]
    ssh = ["ssh", "-F", bed.config]
    return {
        "dsh": ([DSH, *dsh], bed.dsh_env),
        "dsh_site": ([PY, DSH, *dsh], bed.env),
        "dsh_channel": ([DSH, *dsh], {**bed.dsh_env, "DSH_EXECUTOR": "0"}),
        "dsh_direct": ([PY, DSH, "--direct", *dsh], bed.env),
        "cm": ([*ssh, "-S", bed.cm, R1, "true"], bed.env),
        "bare": ([*ssh, "-o", "SendEnv=SHLVL", "-S", bed.bare, R1, "true"], bed.bare_env),
        "ssh": ([*ssh, R1, "true"], bed.env),
        "version": ([DSH, "--version"], bed.dsh_env),
        "version_site": ([PY, DSH, "--version"], bed.env),
        "python": ([PY, "-S", "-c", "pass"], bed.env),
        "python_site": ([PY, "-c", "pass"], bed.env),
    }


def interleave(bed: Bed, measures: dict[str, tuple[list[str], dict[str, str]]], rounds: int,
               sparse: set[str]) -> dict[str, list[float]]:  # fmt: skip
    """``rounds`` runs of each (every 4th round only for those in ``sparse``)."""
    names = list(measures)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            if name in sparse and i % 4:
                continue
            argv, env = measures[name]
            samples[name].append(timed(argv, env=env, cwd=bed.dir))
    return samples


# -- throughput --------------------------------------------------------------------


def throughput(bed: Bed, argv: list[str], env: dict[str, str]) -> float:
    """Commands per second: COMMANDS runs of argv from LOOPS concurrent shell loops."""
    per_loop = COMMANDS // LOOPS
    quoted = " ".join(f"'{a}'" for a in argv)
    loop = f"i=0; while [ $i -lt {per_loop} ]; do {quoted} || exit 1; i=$((i+1)); done"
    say(f"throughput of {argv[:4]}")
    start = time.perf_counter()
    procs = [subprocess.Popen(["sh", "-c", loop], env=env, cwd=bed.dir, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL) for _ in range(LOOPS)]  # fmt: skip
    if any(p.wait(900) for p in procs):
        raise BenchError(f"a throughput loop of {argv[:3]} failed")
    return per_loop * LOOPS / (time.perf_counter() - start)


# -- a build ----------------------------------------------------------------------


def write_project(directory: Path, files: int) -> None:
    directory.mkdir()
    names = [f"f{i:03d}" for i in range(files)]
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


def cpu_of(match: Callable[[psutil.Process], bool]) -> float:
    total = 0.0
    for proc in psutil.process_iter(["cmdline", "name"]):
        with contextlib.suppress(psutil.Error):
            if match(proc):
                times = proc.cpu_times()
                total += times.user + times.system
    return total


Samples = dict[str, list[float]]


def builds(bed: Bed, files: int, rounds: int, jobs: int, make_prefix: tuple[str, ...] = (),
           only: tuple[str, ...] = ()) -> tuple[Samples, dict[str, float]]:  # fmt: skip
    """``rounds`` builds at ``make -j{jobs}`` with each compiler (``only`` those,
    if given), order alternating; make runs under ``make_prefix`` (taskset, for
    split_builds)."""
    directory = bed.dir / "build"
    if not directory.exists():
        write_project(directory, files)
    dsh = " ".join([DSH, *bed.dsh_args(), "gcc"])
    compilers = {"local": ("gcc", bed.env), "dsh": (dsh, bed.dsh_env)}
    compilers["dsh_site"] = (" ".join([PY, DSH, *bed.dsh_args(), "gcc"]), bed.env)
    if bed.distcc_hosts:
        (bed.dir / "distcc").mkdir(exist_ok=True)  # distcc makes its lock dirs, not this one
        distcc_env = {**bed.env, "DISTCC_HOSTS": bed.distcc_hosts,
                      "DISTCC_DIR": str(bed.dir / "distcc"), "DISTCC_FALLBACK": "0"}  # fmt: skip
        compilers["distcc"] = ("distcc gcc", distcc_env)
    if only:
        compilers = {k: v for k, v in compilers.items() if k in only}
    samples: dict[str, list[float]] = {name: [] for name in compilers}
    outputs: set[str] = set()
    parts = {
        "mux": lambda p: "dsh.mux.server import main" in " ".join(p.info["cmdline"] or ()),
        "executor": lambda p: (p.info["cmdline"] or [""])[-1] == "dsh-executor",
        "sshd": lambda p: p.info["name"] == "sshd",
        "dshd": lambda p: str(bed.dir) in " ".join(p.info["cmdline"] or ()) and any(
            a.endswith("/dshd") for a in p.info["cmdline"] or ()),
    }  # fmt: skip
    cpu: dict[str, float] = {}
    for i in range(rounds):
        for name in list(compilers)[:: 1 if i % 2 == 0 else -1]:
            run(["make", "clean"], cwd=directory)
            cc, env = compilers[name]
            before = {k: cpu_of(f) for k, f in parts.items()}
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            say(f"build {name}")
            make = [*make_prefix, "make", f"-j{jobs}", f"CC={cc}"]
            samples[name].append(
                timed(make, cwd=directory, env={**env, "PWD": str(directory)}, timeout=900)
            )
            if name == "dsh" and i == 0:
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = {k: cpu_of(f) - before[k] for k, f in parts.items()}
                cpu["make, dsh, link"] = (after.ru_utime + after.ru_stime
                                          - children.ru_utime - children.ru_stime)  # fmt: skip
            outputs.add(run([str(directory / "prog")]).stdout)
    if len(outputs) != 1:
        raise BenchError(f"the builds' programs differ: {outputs}")
    return samples, cpu


def split_builds(bed: Bed, files: int, rounds: int, jobs: tuple[int, ...]) -> dict[int, Samples]:
    """The same builds with the machine cut in two: CPU 0 is the make host (make,
    dsh, the mux, gcc for the local build, the local dshd), CPU 1 the nodes
    (sshd and all it starts, the executors and their gcc, the nodes' dshd,
    distccd). So what dsh costs on the make host and what it costs on a node no
    longer take CPU from each other, as on a real cluster; the baseline is
    make on the make host's one CPU."""
    host, node = [0], [1]
    everything = list(range(os.cpu_count() or 1))

    def tree(pid: int) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            return [proc, *proc.children(recursive=True)]
        return []

    def pin(cpus: list[int]) -> None:
        nodes = [p for s in bed.sshd for p in tree(s.pid)]
        nodes += [p for pid in bed.distccd for p in tree(pid)]
        nodes += [p for a in (R1, R2) for p in tree(bed.dshd.nodes[a].pid)]
        for proc, where in [(p, cpus or node) for p in nodes] + [
                (p, cpus or host) for p in tree(bed.dshd.nodes[LOCAL].pid)]:  # fmt: skip
            with contextlib.suppress(psutil.Error):
                proc.cpu_affinity(where)

    # A new mux and new executors, started under the pins (they inherit them).
    run([DSH, "--mux-stop"], env=bed.dsh_env)

    wait_for(lambda: not bed.muxes(), 30, "mux gone")
    pin([])
    try:
        taskset = ("taskset", "-c", "0")
        run([*taskset, DSH, *bed.dsh_args(), "true"], env=bed.dsh_env)  # the mux, executors
        samples = {j: builds(bed, files, rounds, j, make_prefix=taskset,
                             only=("local", "dsh", "distcc"))[0] for j in jobs}  # fmt: skip
    finally:
        pin(everything)
        for mux in bed.muxes():  # started under taskset
            with contextlib.suppress(psutil.Error):
                mux.cpu_affinity(everything)
    return samples


# -- startup ------------------------------------------------------------------------


def imported(argv: list[str], env: dict[str, str]) -> tuple[float, list[str]]:
    """Cumulative -X importtime of dsh's own modules (ms) and every module imported."""
    text = run([PY, "-X", "importtime", *argv], env=env).stderr
    rows = re.findall(r"^import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)$", text, re.M)
    top = sum(int(us) for us, indent, name in rows if name.startswith("dsh") and len(indent) == 1)
    return top / 1000, [name.strip() for _, _, name in rows]


# -- the report ----------------------------------------------------------------------


def med(values: list[float]) -> float:
    return statistics.median(values) * 1000


def build_table(build: dict[int, Samples], files: int, heading: str,
                overhead: bool) -> list[str]:  # fmt: skip
    """One row per compiler, a median and a ratio to local make per -j."""
    jobs = sorted(build)
    compiles = files + 1
    extra = " per command |" if overhead else ""
    head = f"| {heading} |" + "".join(f" -j{j} | vs local |{extra}" for j in jobs)
    lines = [head, "|---|" + "---:|" * ((3 if overhead else 2) * len(jobs))]
    labels = [("local", "`CC=gcc` (local)"), ("dsh", '`CC="dsh gcc"`'),
              ("dsh_site", '`CC="python3 dsh gcc"`'),
              ("distcc", "`CC=\"distcc gcc\"`, distccd on .34 and .35 (TCP)")]  # fmt: skip
    for key, label in labels:
        if key not in build[jobs[0]]:
            continue
        row = f"| {label} |"
        for j in jobs:
            local, t = statistics.median(build[j]["local"]), statistics.median(build[j][key])
            row += f" {t:.2f} | {t / local:.2f}x |"
            if overhead:
                row += f" {(t - local) * j / compiles * 1000:.1f} ms |"
        lines.append(row)
    return lines


def report(
    calls: dict[str, list[float]],
    rates: dict[str, float],
    build: dict[int, Samples],
    split: dict[int, Samples],
    cpu: dict[str, float],
    files: int,
    startup: dict[str, object],
    info: str,
) -> str:
    m = {k: med(v) for k, v in calls.items()}
    compiles = files + 1
    jobs = sorted(build)
    lines = [
        f"### Issue 5 measured {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        info,
        "",
        f"Per call, wall time in ms, interleaved ({len(calls['dsh'])} runs each; "
        f"{len(calls['dsh_direct'])} for `--direct`):",
        "",
        "| command | median | vs ControlMaster | vs bare protocol | vs fresh ssh |",
        "|---|---:|---:|---:|---:|",
    ]
    labels = [
        ("dsh", "`dsh true` (mux + executor)"),
        ("dsh_site", "`python3 dsh true` (mux + executor; site and its .pth files)"),
        ("dsh_channel", "`dsh true`, `DSH_EXECUTOR=0` (mux, exec channel)"),
        ("dsh_direct", "`python3 dsh --direct true` (dsh's own connection)"),
        ("cm", "`ssh -S CM 127.0.0.34 true` (ControlMaster)"),
        ("bare", "the same, remote shell skipping ~/.bashrc (bare protocol)"),
        ("ssh", "`ssh 127.0.0.34 true` (fresh connection)"),
    ]
    for key, label in labels:
        lines.append(f"| {label} | {m[key]:.1f} | {m[key] / m['cm']:.2f}x | "
                     f"{m[key] / m['bare']:.2f}x | {m['ssh'] / m[key]:.1f}x faster |")  # fmt: skip
    lines += [
        "", "Targets: dsh at most 0.25x the ControlMaster, at most 2.5x the bare protocol, "
        "at least 10x faster than fresh ssh.", "",
        f"Throughput: {COMMANDS} `true` commands from {LOOPS} concurrent shell loops; "
        "commands per second.", "",
        "| how | commands/s |", "|---|---:|",
        *(f"| {label} | {rates[key]:.1f} |" for key, label in (
            ("dsh", "`dsh true`"), ("dsh_site", "`python3 dsh true`"),
            ("cm", "`ssh -S CM true` (ControlMaster)"), ("bare", "the same, bare protocol"))),
        "",
        f"Build: `make -jN` of {files} generated C files + main.c ({compiles} compiles, "
        "1 link) over 127.0.0.34 and .35, `make clean` between; medians in s. "
        + ("distcc has enough slots that make's -j alone bounds it, as dsh."
           if any("distcc" in samples for samples in build.values()) else
           "distcc is not installed here (`apt-get install distcc`): no distcc rows."),
        "",
        *build_table(build, files, "build", overhead=True),
        "",
        "The same builds with the machine cut in two (`bench/speed.py`'s split_builds): "
        "CPU 0 is the make host (make, dsh, the mux, the local dshd; all of the local build), "
        "CPU 1 runs both nodes (sshd and what it starts, executors, gcc, their dshd, distccd). "
        "One CPU of work leaves the make host for one CPU of node, as on a cluster; "
        "`taskset -c 0 make -jN`, against local make on CPU 0; s.",
        "",
        *build_table(split, files, "build, make on CPU 0", overhead=False),
    ]  # fmt: skip
    lines += [
        "", "Overhead per command = (t - t_local) x jobs / compiles, the time a job slot spends "
        "on something other than compiling.", "",
        f"CPU seconds spent during one `dsh gcc` build at -j{jobs[0]}, by process:", "",
        "| who | CPU s | per compile, ms |", "|---|---:|---:|",
        *(f"| {k} | {v:.2f} | {v / compiles * 1000:.1f} |" for k, v in cpu.items()),
        "",
        "Start of the dsh process itself:", "",
        "| what | value |", "|---|---:|",
        f"| `dsh --version`, median | {m['version']:.1f} ms |",
        f"| `python3 dsh --version`, median | {m['version_site']:.1f} ms |",
        f"| `python3 -S -c pass` / `python3 -c pass`, median | {m['python']:.1f} / "
        f"{m['python_site']:.1f} ms |",
        f"| `-X importtime` of `python3 -S dsh true`: dsh's modules, cumulative | "
        f"{startup['dsh_ms']:.1f} ms |",
        f"| modules imported by `python3 -S dsh true` | {startup['count']} |",
        f"| of them paramiko, psutil, cryptography, argparse, dataclasses, typing, socket, "
        f"enum, re | {startup['heavy'] or 'none'} |",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _jobs(text: str) -> tuple[int, ...]:
    try:
        jobs = tuple(int(n) for n in text.split(","))
    except ValueError:
        jobs = ()
    if not jobs or min(jobs) < 1:
        raise argparse.ArgumentTypeError(f"not a list of positive numbers: {text!r}")
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, a smaller build")
    parser.add_argument("--out", type=Path, help="also write the Markdown section here")
    parser.add_argument(
        "--jobs",
        type=_jobs,
        default=JOBS,
        metavar="N[,N...]",
        help=f"make -j for the builds (default {','.join(map(str, JOBS))})",
    )
    args = parser.parse_args(argv)
    rounds, files, build_rounds = (8, 100, 1) if args.quick else (24, 300, 2)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # An installed dsh has its bytecode; this checkout may not (PYTHONDONTWRITEBYTECODE).
    run([PY, "-m", "compileall", "-q", str(REPO / "src")])
    with tempfile.TemporaryDirectory(prefix="dsh-speed-") as tmp:
        bed = Bed(Path(tmp), args.jobs)
        before = os.getloadavg()[0]
        try:
            say("starting the cluster")
            bed.start()
            measures = per_call(bed)
            for argv, env in measures.values():
                run(argv, env=env, cwd=tmp)  # warm-up: the mux, executors, page cache
            say("per call")
            calls = interleave(bed, measures, rounds, sparse={"dsh_direct", "ssh"})
            say("throughput")
            rates = {key: throughput(bed, *measures[key]) for key in ("dsh", "dsh_site", "cm",
                                                                       "bare")}  # fmt: skip
            say("builds")
            build: dict[int, Samples] = {}
            cpu: dict[str, float] = {}
            for j in args.jobs:
                build[j], measured = builds(bed, files, build_rounds, j)
                cpu = cpu or measured  # at the first -j
            say("builds, make host on CPU 0 and nodes on CPU 1")
            split = split_builds(bed, files, build_rounds, args.jobs)
            dsh_ms, names = imported(["-S", DSH, *bed.dsh_args(), "true"], bed.env)
            heavy = sorted({n for n in names if n.split(".")[0] in (
                "paramiko", "psutil", "cryptography", "argparse", "dataclasses", "typing",
                "socket", "enum", "re")})  # fmt: skip
            startup = {"dsh_ms": dsh_ms, "count": len(names), "heavy": ", ".join(heavy)}
            info = (f"nproc {os.cpu_count()}; Python {sys.version.split()[0]}; "
                    f"{run(['ssh', '-V']).stderr.strip()}; 1-minute load average "
                    f"{before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.")  # fmt: skip
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
    section = report(calls, rates, build, split, cpu, files, startup, info)
    sys.stdout.write(section)
    if args.out:
        args.out.write_text(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())

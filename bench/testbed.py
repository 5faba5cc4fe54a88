"""The benchmarks' test beds: a loopback cluster with real sshd and dshd.

Built from tests/support as tests/support/ssh_cluster.py builds SshCluster, on other
addresses so that it never collides with a test run: LoopbackBed is what every
bench needs (bench/speed.py builds on it at 127.0.0.33-35); Bed adds a
ControlMaster and a paramiko connection for bench/run.py, at 127.0.0.30-32.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from support.dshd import Cluster  # noqa: E402
from support.sshd import Sshd, common_free_port, make_client_keys, write_ssh_config  # noqa: E402
from support.waiting import wait_for  # noqa: E402

from dsh.ssh import connect as ssh  # noqa: E402

LOCAL, R1, R2 = "127.0.0.30", "127.0.0.31", "127.0.0.32"
PY = sys.executable
DSH = str(REPO / "dsh")


class BenchError(Exception):
    """A measured command failed or gave a wrong answer: the figures would lie."""


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    timeout = kwargs.pop("timeout", 60)  # seconds; a hung command aborts the run
    assert isinstance(timeout, int | float)
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, **kwargs)  # type: ignore[call-overload]  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{' '.join(argv)} did not finish in {timeout:g}s") from exc
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


class LoopbackBed:
    """dshd on three addresses, the first drained (dsh always goes remote from
    it), and a real sshd on the other two, with keys and an ssh_config of its
    own; dsh's per-user state in a runtime directory of its own. ``start()``,
    then ``stack.close()`` stops all, also after a failed start."""

    def __init__(self, directory: Path, addresses: tuple[str, str, str]) -> None:
        self.dir = directory
        self.local, self.r1, self.r2 = addresses
        self.stack = contextlib.ExitStack()
        keys = make_client_keys(directory / "keys")
        port = common_free_port([self.r1, self.r2])
        self.sshd = [Sshd(a, port, directory / f"sshd-{a}", keys) for a in (self.r1, self.r2)]
        self.config = str(write_ssh_config(directory / "ssh_config", self.sshd, keys))
        (directory / "dshd").mkdir()
        self.dshd = Cluster(directory / "dshd", [f"{self.local} 1.0 1.0 drain", self.r1, self.r2],
                            interval=0.2)  # fmt: skip
        self.dsh_options: list[str] = []  # more options for every dsh run (bench --dsh-opts)
        (directory / "run").mkdir(mode=0o700)
        # dsh's per-user state (backoff, the mux): ours, not the user's or the tests'
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
        self.env["XDG_RUNTIME_DIR"] = str(directory / "run")

    def start(self) -> None:
        self.stack.callback(self._stop_strays)  # runs last
        self.stack.callback(self._stop_mux)
        for server in self.sshd:
            self.stack.callback(server.stop)
            server.start()
        self.stack.callback(self.dshd.stop)
        self.dshd.start()
        wait_for(self.dshd.all_up, 10, "bench cluster up")

    def _stop_mux(self) -> None:
        subprocess.run([PY, DSH, "--mux-stop"], env=self.env, capture_output=True, timeout=30)

    def _stop_strays(self) -> None:
        """Whatever still names our directory (the mux while it finishes, a helper)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            strays = [p for p in psutil.process_iter(["cmdline"])
                      if any(str(self.dir) in a for a in p.info["cmdline"] or ())]  # fmt: skip
            if not strays:
                return
            for proc in strays:
                with contextlib.suppress(psutil.Error):
                    proc.terminate()
            time.sleep(0.2)

    def muxes(self) -> list[psutil.Process]:
        """The per-user mux(es) dsh started: detached, not our children."""
        return [proc for proc in psutil.process_iter(["cmdline"])
                if "dsh.mux.server" in " ".join(cmd := proc.info["cmdline"] or ())
                and str(self.dir) in " ".join(cmd)]  # fmt: skip

    def mux_log(self, lines: int = 20) -> str:
        """The end of dsh's mux log, for a failed run's message."""
        try:
            text = (self.dir / "run" / "dsh" / "mux.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def dsh_args(self) -> list[str]:
        port = self.dshd.port
        return ["-H", f"{self.local}:{port + 1}", "--status-port", str(port),
                "--ssh-config", self.config, *self.dsh_options]  # fmt: skip


class Bed(LoopbackBed):
    """bench/run.py's: the cluster, a ControlMaster and a paramiko connection."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, (LOCAL, R1, R2))
        self.sock = str(directory / "cm.sock")
        self.master_pid = 0

    def start(self) -> None:
        super().start()
        self.stack.callback(self._stop_master)
        with open(self.dir / "master.log", "wb") as log:  # ssh -f keeps its stdio: no pipes
            subprocess.run(["ssh", "-F", self.config, "-M", "-S", self.sock, "-fN", R1],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True,
                           timeout=30)  # fmt: skip
        found = re.search(r"pid=(\d+)", run(["ssh", "-S", self.sock, "-O", "check", R1]).stderr)
        if not found:
            raise BenchError("ssh -O check did not give the ControlMaster's pid")
        self.master_pid = int(found.group(1))
        self.client = ssh.connect(ssh.target_for(R1, self.config, 10.0))
        self.stack.callback(self.client.close)

    def settle(self) -> None:
        """Wait until the processes on both sides stop coming and going.

        Sessions end; what stays (a ControlMaster's or the mux's connection, a
        resident executor) is long-lived and its CPU time is counted as it grows.
        """
        seen: list[set[int]] = []

        def same_twice() -> bool:
            seen.append(self.tree()[1] | {p.pid for p in self.muxes()})
            return len(seen) > 1 and seen[-1] == seen[-2]

        wait_for(same_twice, 10, "sessions to settle", poll=0.05)

    def _stop_master(self) -> None:
        subprocess.run(["ssh", "-S", self.sock, "-O", "exit", R1], capture_output=True, timeout=10)
        if self.master_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.master_pid, signal.SIGTERM)  # only if -O exit did not work

    def tree(self) -> tuple[float, set[int]]:
        """CPU seconds of the sshds with all their children (reaped ones included)."""
        total, pids = 0.0, set()
        for root in (psutil.Process(int(s.pid_file.read_text())) for s in self.sshd):
            for proc in {root, *root.children(recursive=True)}:
                with contextlib.suppress(psutil.NoSuchProcess):
                    t = proc.cpu_times()
                    total += t.user + t.system + t.children_user + t.children_system
                    pids.add(proc.pid)
        return total, pids

    def client_cpu(self) -> float:
        """CPU seconds of our reaped children, the ControlMaster and dsh's mux."""
        ours = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = ours.ru_utime + ours.ru_stime
        for proc in [psutil.Process(self.master_pid), *self.muxes()]:
            with contextlib.suppress(psutil.NoSuchProcess):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def cpu(self, key: str, argv: list[str], repeat: int, **kw: object) -> dict[str, float]:
        """CPU seconds one run of ``argv`` costs here (client) and on the sshd side.

        The mean of ``repeat`` runs in a row: /proc counts in 10 ms ticks.
        """
        self.settle()
        server, client = self.tree()[0], self.client_cpu()
        for _ in range(repeat):
            timed(argv, None, **kw)
        client = self.client_cpu() - client
        self.settle()
        server = self.tree()[0] - server
        return {f"{key}_client": client / repeat, f"{key}_server": server / repeat}


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process so far (fields 14 and 15 of stat(5))."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()  # after "pid (comm)"
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(xs: list[float], p: float) -> float:
    """The value below which a share ``p`` of ``xs`` lie (nearest rank)."""
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p))]


def proc_status(pid: int) -> dict[str, str]:
    """/proc/PID/status as key -> value (``VmRSS`` -> ``"38400 kB"``)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def kib_to_mib(text: str) -> float:
    """A /proc ``"38400 kB"`` in MiB."""
    return int(text.split()[0]) / 1024

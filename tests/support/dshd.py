"""Real dshd processes on loopback addresses, for integration tests.

Each node is a real ``dshd`` subprocess bound to its own 127.0.0.x address;
all use the same port numbers, as a real cluster does.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from dsh.core.status import ClusterView, parse_status
from dsh.daemon.keys import generate_key_file

from .paths import DSHD, PY
from .waiting import wait_for


def free_udp_tcp_port(addresses: list[str]) -> int:
    """A port free for TCP and UDP on every address (the kernel picks, we check)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = int(s.getsockname()[1])
        try:
            for address in addresses:
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind((address, port))
            # status uses `port`, best-node `port + 1`, HTTP `port + 2`: check those too
            for address in addresses:
                for other in (port + 1, port + 2):
                    with socket.socket() as s:
                        s.bind((address, other))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def ask(address: str, port: int, timeout: float = 5.0) -> str:
    """Connect, read the whole answer, close: what telnet or dsh does."""
    with socket.create_connection((address, port), timeout=timeout) as s:
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


@dataclass
class Node:
    name: str  # also its address
    cluster: Cluster
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None
    key_file: Path | None = None  # None: unauthenticated (--no-key, whatever /etc/dsh has)
    verbose: bool = True  # -v: the log shows every decision (benchmarks turn it off)
    program: str = str(DSHD)  # another release's dshd, for a rolling upgrade
    http: bool = True  # --http (releases before the HTTP port do not know it)

    @property
    def control(self) -> str:
        return str(self.cluster.directory / f"{self.name}.ctl")

    @property
    def log(self) -> Path:
        return self.cluster.directory / f"{self.name}.log"

    def argv(self) -> list[str]:
        c = self.cluster
        return [
            PY, self.program,
            "-f", str(c.cluster_file),
            "--name", self.name,
            "--listen", self.name,
            "-u", str(c.port), "-t", str(c.port), "-r", str(c.port + 1),
            *(["--http", str(c.http_port)] if self.http else []),
            "--interval", str(c.interval),
            "--maxloops", str(c.maxloops),
            "--control", self.control,
            *(["--key-file", str(self.key_file)] if self.key_file else ["--no-key"]),
            *(["-v"] if self.verbose else []),
            *self.extra_args,
        ]  # fmt: skip

    def start(self, wait: bool = True) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if wait:
            wait_for(self._answering, 10, f"dshd {self.name} to answer")

    def _answering(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(
                f"dshd {self.name} exited {self.process.returncode}:\n{self.tail()}"
            )
        return bool(self.status_text())

    def tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return ""

    def status_text(self) -> str:
        return ask(self.name, self.cluster.port)

    def status(self) -> ClusterView:
        return parse_status(self.status_text())

    def state_of(self, name: str) -> str | None:
        for node in self.status().nodes:
            if node.name == name:
                return node.state
        return None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def counters(self) -> dict[str, dict[str, int]]:
        """The '# group k=v ...' lines at the end of the status table."""
        found = {}
        for line in self.status_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[0] == "#" and "=" in fields[2]:
                found[fields[1]] = {k: int(v) for k, v in (f.split("=") for f in fields[2:])}
        return found

    def best(self) -> str:
        return ask(self.name, self.cluster.port + 1).strip()

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        code = self.process.returncode
        self.process = None
        return code


class Cluster:
    """A cluster file plus one dshd per member, all on loopback addresses."""

    def __init__(
        self,
        directory: Path,
        lines: list[str],
        interval: float = 0.2,
        maxloops: int = 3,
        port: int | None = None,
    ) -> None:
        self.directory = directory
        self.interval = interval
        self.maxloops = maxloops
        self.cluster_file = directory / "cluster"
        self.write(lines)
        names = [line.split()[0] for line in lines]
        self.port = port or free_udp_tcp_port(names)
        self.http_port = self.port + 2
        self.nodes = {name: Node(name, self) for name in names}

    def keyed_above_threshold(self, key: Path, fanout_above: int = 2) -> None:
        """Every daemon sealed with a new key at ``key`` and above the full-mesh
        threshold (as in a cluster of hundreds), before ``start``."""
        generate_key_file(str(key))
        for node in self.nodes.values():
            node.key_file = key
            node.extra_args = [*node.extra_args, "--fanout-above", str(fanout_above)]

    def write(self, lines: list[str]) -> None:
        self.cluster_file.write_text("".join(line + "\n" for line in lines))

    def start(self, names: list[str] | None = None) -> None:
        for name in names or list(self.nodes):
            self.nodes[name].start(wait=False)
        for name in names or list(self.nodes):
            wait_for(self.nodes[name]._answering, 10, f"dshd {name} to answer")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()

    def all_up(self, among: list[str] | None = None) -> bool:
        names = among or list(self.nodes)
        for name in names:
            status = self.nodes[name].status()
            states = {n.name: n.state for n in status.nodes}
            if any(states.get(other) not in ("up", "drained") for other in names):
                return False
        return True

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ClusterFactory(Protocol):
    """The ``make_cluster`` fixture: a Cluster that is stopped when the test ends."""

    def __call__(
        self,
        lines: list[str],
        *,
        interval: float = ...,
        maxloops: int = ...,
        port: int | None = ...,
    ) -> Cluster: ...


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True

"""Real separate hosts for tests: network namespaces on a bridge, dshd in each.

``Hosts(directory, count, net="10.252.0")`` makes ``count`` namespaces, each
with a veth whose other end is on a bridge of its own, the namespace at
``NET.i`` (i = 1..count) and the host side of the bridge at ``NET.254`` (the
test polls the status ports from there). The subnet exists only on that
bridge. Every link and namespace name carries a tag of this run: a deleted
namespace frees its veth in the background, sometimes 10-15 s later, and a
new link of the old name meanwhile fails with "File exists"
(/work/shared/TESTBED.md). ``close()`` stops every process, removes the
nftables tables, the veths, the namespaces and the bridge; use it from a
fixture's ``finally``. ``sweep()`` removes what an interrupted run (SIGKILL,
a crash) left of ours, by the name prefix; the tag starts with the pid of the
test process that made the names, so a sweep leaves alone the beds of
another pytest worker that is still running.

Loss and partitions are nftables rules inside a namespace, on the input hook
(what the host receives), so "30 % loss on every host" means every datagram
and segment has a 30 % chance to be dropped at its receiver:
``loss(i, 30)`` (all traffic), ``loss(i, 30, udp_only=True)``,
``partition(i)``, ``clear(i)``.

``run_dshd(i, ...)`` starts the real dshd inside namespace i through
``ip netns exec`` (which execs: the Popen's pid is dshd's, so a signal sent
to it reaches the daemon itself).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .paths import DSHD, PY
from .waiting import wait_for

PREFIX = "dshn"  # every namespace, bridge and veth of ours starts with it
TABLE = "dshtest"  # our nftables table in each namespace
PORT = 18181  # gossip (UDP) and status (TCP); best node PORT + 1; namespaced: no clashes
_serial = itertools.count()


def new_tag() -> str:
    """This process's pid in 6 hex digits, then a serial: 7 characters, so that
    the longest name (PREFIX, tag, "v", two digits) stays within 15."""
    return f"{os.getpid():06x}{next(_serial) % 16:x}"


def owner_alive(name: str) -> bool:
    """Whether the test process whose tag ``name`` carries still runs."""
    try:
        pid = int(name[len(PREFIX) : len(PREFIX) + 6], 16)
    except ValueError:
        return False  # an older run's random tag
    if pid == os.getpid():
        return True
    if pid <= 1:
        return False  # no test process (and kill(0, 0) would ask our own group)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists
    return True


def root_reason() -> str | None:
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (contrib/install-deps installs it)"
    return None


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def sweep() -> None:
    """Remove the namespaces and links of ours that no live run holds any more:
    those whose tag names a test process that is gone. (This process's own
    are closed by their fixtures; another live worker's are its own.)"""
    for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX) and not owner_alive(name):
            for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", name, check=False)
    for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            link = parts[1].strip().split("@")[0]
            if link.startswith(PREFIX) and not owner_alive(link):
                sh("ip", "link", "del", link, check=False)


@dataclass
class Dshd:
    """One real dshd in a namespace."""

    host: int
    address: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process.poll() is None

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class Hosts:
    directory: Path
    count: int
    net: str = "10.252.0"  # a /24 that exists only on our bridge
    port: int = PORT
    tag: str = field(default_factory=new_tag)
    daemons: list[Dshd] = field(default_factory=list)
    _made: list[tuple[str, str]] = field(default_factory=list)  # ("ns"|"link", name)
    _starts: dict[int, int] = field(default_factory=dict)  # host -> dshd started there

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.tag}b"  # at most 15 characters, as every link name

    def namespace(self, i: int) -> str:
        return f"{PREFIX}{self.tag}n{i}"

    def address(self, i: int) -> str:
        return f"{self.net}.{i}"

    @property
    def broadcast(self) -> str:
        return f"{self.net}.255"

    @property
    def subnet(self) -> str:
        return f"{self.net}.0/24"

    @property
    def numbers(self) -> list[int]:
        return list(range(1, self.count + 1))

    # -- the network ----------------------------------------------------------------

    def open(self) -> Hosts:
        sweep()
        self.directory.mkdir(parents=True, exist_ok=True)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        self._made.append(("link", self.bridge))
        sh("ip", "addr", "add", f"{self.net}.254/24", "brd", self.broadcast, "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        for i in self.numbers:
            ns, veth = self.namespace(i), f"{PREFIX}{self.tag}v{i}"
            sh("ip", "netns", "add", ns)
            self._made.append(("ns", ns))
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self._made.append(("link", veth))
            sh("ip", "link", "set", veth, "master", self.bridge, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(i)}/24", "brd", self.broadcast,
               "dev", "eth0")  # fmt: skip
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # The bridge forwards once its ports leave the listening state; until
        # then (a second or so, or at once with STP off) nothing crosses.
        wait_for(self._bridge_forwards, 15, "the bridge to forward")
        return self

    def _bridge_forwards(self) -> bool:
        out = sh("ip", "-o", "link", "show", "master", self.bridge).stdout
        return out.count("state UP") == self.count

    def close(self) -> None:
        """Every process, table, link and namespace of this run, whatever failed."""
        for daemon in self.daemons:
            with contextlib.suppress(Exception):
                daemon.stop(timeout=5)
        self.daemons.clear()
        for kind, name in reversed(self._made):
            if kind == "ns":
                for pid in sh("ip", "netns", "pids", name, check=False).stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
        # The host ends of the veths first: that deletes both ends at once,
        # instead of the kernel's lingering clean-up of a deleted namespace.
        for kind, name in self._made:
            if kind == "link" and name != self.bridge:
                sh("ip", "link", "del", name, check=False)
        for kind, name in self._made:
            if kind == "ns":
                sh("ip", "netns", "del", name, check=False)
        sh("ip", "link", "del", self.bridge, check=False)
        self._made.clear()

    def __enter__(self) -> Hosts:
        try:
            return self.open()
        except BaseException:
            self.close()  # what open() made before it failed
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def exec(self, i: int, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.namespace(i), *argv, check=check)

    # -- nftables ---------------------------------------------------------------------

    def _table(self, i: int) -> None:
        self.exec(i, "nft", "add", "table", "inet", TABLE)
        for hook in ("input", "output"):
            self.exec(i, "nft", "add", "chain", "inet", TABLE, hook,
                      f"{{ type filter hook {hook} priority 0; }}")  # fmt: skip

    def rule(self, i: int, hook: str, rule: str) -> None:
        """``nft add rule inet dshtest HOOK RULE`` in namespace i (the table made first)."""
        self._table(i)
        self.exec(i, "sh", "-c", f"nft add rule inet {TABLE} {hook} {rule}")

    def loss(self, i: int, percent: int, udp_only: bool = False) -> None:
        """Drop ``percent`` % of what host i receives (of its UDP only, or of everything)."""
        what = "meta l4proto udp " if udp_only else ""
        self.rule(i, "input", f"{what}numgen random mod 100 '<' {percent} drop")

    def partition(self, i: int) -> None:
        """Host i neither hears the gossip nor is heard (its status port still answers)."""
        self.rule(i, "input", f"udp dport {self.port} drop")
        self.rule(i, "output", f"udp dport {self.port} drop")

    def clear(self, i: int) -> None:
        self.exec(i, "nft", "delete", "table", "inet", TABLE, check=False)

    # -- dshd -------------------------------------------------------------------------

    def run_dshd(self, i: int, *args: str, program: str = str(DSHD)) -> Dshd:
        """Start dshd in namespace i with the ports of this bed, a control socket
        and a log of its own (namespaces share the file system; the k-th start
        in host i gets dshd-I-K.*) and the status port open to the bridge's
        subnet; ``args`` are the rest (-f, --interval, keys...)."""
        self._starts[i] = k = self._starts.get(i, 0) + 1
        tag = f"-{k}"
        log = self.directory / f"dshd-{i}{tag}.log"
        argv = [
            "ip", "netns", "exec", self.namespace(i),
            PY, program,
            "-u", str(self.port), "-t", str(self.port), "-r", str(self.port + 1),
            "--control", str(self.directory / f"dshd-{i}{tag}.ctl"),
            "--allow", self.subnet,
            *args,
        ]  # fmt: skip
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        daemon = Dshd(i, self.address(i), process, log)
        self.daemons.append(daemon)
        return daemon

    def listed_cluster(self) -> Path:
        """A cluster file that lists every host."""
        path = self.directory / "cluster"
        path.write_text("".join(f"{self.address(i)}\n" for i in self.numbers))
        return path

    def start_listed(self) -> list[Dshd]:
        """A dshd at the default interval in every host, every one in the cluster
        file; returns once every host shows every other up."""
        cluster = self.listed_cluster()
        daemons = [self.run_dshd(i, "-f", str(cluster), "--no-key", "-v") for i in self.numbers]
        for daemon in daemons:
            self.wait_answering(daemon)
        wait_for(lambda: self.all_see(self.numbers), 30, "every host up everywhere", poll=0.2)
        return daemons

    def reset(self) -> None:
        """The bed as opened: every dshd stopped (with the tail of its log if it
        still ran: a test that failed) and no nftables rules."""
        for daemon in self.daemons:
            if daemon.running():
                print(f"--- host {daemon.host}'s log:\n{daemon.tail(15)}")
            daemon.stop()
        self.daemons.clear()
        for i in self.numbers:
            self.clear(i)

    def wait_answering(self, daemon: Dshd, timeout: float = 15) -> None:
        def answering() -> bool:
            if not daemon.running():
                raise AssertionError(
                    f"dshd in host {daemon.host} exited {daemon.process.returncode}:\n"
                    + daemon.tail()
                )
            return bool(self.status_text(daemon.host, timeout=2))

        wait_for(answering, timeout, f"dshd of host {daemon.host} to answer", poll=0.1)

    def status_text(self, i: int, timeout: float = 2.0) -> str:
        """The status port's whole answer (OSError when it does not come)."""
        with socket.create_connection((self.address(i), self.port), timeout=timeout) as s:
            s.settimeout(timeout)
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def best(self, i: int, timeout: float = 2.0) -> str:
        """The best-node port's answer of host i."""
        with socket.create_connection((self.address(i), self.port + 1), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.makefile().read().strip()

    def table(self, i: int, timeout: float = 2.0) -> dict[str, dict[str, str]]:
        return parse_table(self.status_text(i, timeout))

    def states(self, i: int, timeout: float = 2.0) -> dict[str, str]:
        return {name: row["state"] for name, row in self.table(i, timeout).items()}

    def all_see(self, among: list[int], state: str = "up") -> bool:
        """Every host of ``among`` shows every other in ``state``."""
        names = {self.address(j) for j in among}
        for i in among:
            seen = self.states(i)
            if any(seen.get(name) != state for name in names - {self.address(i)}):
                return False
        return True


def parse_table(text: str) -> dict[str, dict[str, str]]:
    """name -> {column: cell} of a status table, by its header (so columns a
    later version adds, such as ``via``, are read by name)."""
    header: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "#":
            if not header and len(fields) > 2 and fields[1] == "name":
                header = fields[1:]
            continue
        if header and len(fields) == len(header):
            rows[fields[0]] = dict(zip(header, fields, strict=True))
    return rows


def retrying(read: Callable[[], dict[str, str]], tries: int = 5) -> dict[str, str] | None:
    """A status poll that may itself hit the test's loss: a few tries, else None."""
    for _ in range(tries):
        with contextlib.suppress(OSError, ValueError):
            return read()
        time.sleep(0.05)
    return None


def parse_counters(text: str) -> dict[str, dict[str, int]]:
    """The '# group k=v ...' lines at the end of a status table."""
    found = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[0] == "#" and all("=" in f for f in fields[2:]):
            with contextlib.suppress(ValueError):
                found[fields[1]] = {k: int(v) for k, v in (f.split("=", 1) for f in fields[2:])}
    return found

"""client/runner.py: dsh's choice of node, retries, backoff and fallback,
with a fake daemon answer and a fake backend (no processes, no sockets)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from dsh.client.backoff import Backoff
from dsh.client.config import ClientConfig
from dsh.client.runner import Runner
from dsh.core.status import ClusterView, Member
from dsh.errors import EXIT_FAILED, DaemonUnreachable, NodeFailure

LOCAL = "local"


def view(*names: str, down: tuple[str, ...] = ()) -> ClusterView:
    """Members best first (scores 0.1, 0.2, ...), this node being LOCAL."""
    nodes = [
        Member(n, "down" if n in down else "up", 2, 0.1 * (i + 1)) for i, n in enumerate(names)
    ]
    return ClusterView(LOCAL, nodes)


class FakeDaemon:
    def __init__(self, best: str | None, status: ClusterView, up: bool = True) -> None:
        self._best, self._status, self.up = best, status, up
        self.asked = 0

    def best(self) -> str | None:
        if not self.up:
            raise DaemonUnreachable("cannot reach dshd at localhost:8282: connection refused")
        return self._best

    def status(self) -> ClusterView:
        self.asked += 1
        if not self.up:
            raise DaemonUnreachable("cannot reach dshd at localhost:8181: connection refused")
        return self._status


class FakeBackend:
    """Fails on the nodes in ``fails`` (transport or not), runs elsewhere."""

    def __init__(self, fails: dict[str, bool] | None = None, status: int = 0) -> None:
        self.fails = fails or {}
        self.status = status
        self.tried: list[str] = []
        self.local_runs = 0

    def run_remote(self, node: str, started: Callable[[], None]) -> int:
        self.tried.append(node)
        if node in self.fails:
            raise NodeFailure(node, "connection refused", transport=self.fails[node])
        started()
        return self.status

    def run_local(self) -> int:
        self.local_runs += 1
        return 42  # (dsh execs; the fake says it ran here)


class Harness:
    def __init__(self, tmp_path: Path, **config: object) -> None:
        self.said: list[str] = []
        self.printed: list[str] = []
        self.config = ClientConfig(**config)  # type: ignore[arg-type]
        self.backoff = Backoff(self.config.backoff, str(tmp_path))

    def run(self, daemon: FakeDaemon, backend: FakeBackend, dry_run: bool = False) -> int:
        runner = Runner(self.config, daemon, backend, self.backoff,
                        say=self.said.append, out=self.printed.append)  # fmt: skip
        return runner.run(dry_run=dry_run)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_the_best_node_runs_it(h: Harness) -> None:
    backend = FakeBackend(status=3)
    assert h.run(FakeDaemon("a", view("a", "b")), backend) == 3
    assert backend.tried == ["a"] and h.said == []


def test_the_local_node_runs_it_here_without_ssh(h: Harness) -> None:
    backend = FakeBackend()
    assert h.run(FakeDaemon(LOCAL, view(LOCAL, "a")), backend) == 42
    assert backend.tried == [] and backend.local_runs == 1


def test_a_failed_node_gives_way_to_the_next_and_is_backed_off(h: Harness) -> None:
    backend = FakeBackend(fails={"a": True})
    assert h.run(FakeDaemon("a", view("a", "b", "c")), backend) == 0
    assert backend.tried == ["a", "b"]
    assert h.said == ["node a: connection refused; trying another node"]
    assert h.backoff.active("a") and not h.backoff.active("b")


def test_a_setup_failure_is_not_held_against_the_node(h: Harness) -> None:
    backend = FakeBackend(fails={"a": False})
    assert h.run(FakeDaemon("a", view("a", "b")), backend) == 0
    assert backend.tried == ["a", "b"] and not h.backoff.active("a")


def test_a_node_that_ran_a_command_loses_its_old_mark(h: Harness, tmp_path: Path) -> None:
    h.backoff.mark("a")
    mark = tmp_path / "a"
    old = mark.stat().st_mtime - 2 * h.config.backoff  # expired, but still there
    os.utime(mark, (old, old))
    backend = FakeBackend()
    assert h.run(FakeDaemon("a", view("a", "b")), backend) == 0
    assert backend.tried == ["a"] and not mark.exists()


def test_a_node_whose_command_did_not_start_keeps_no_clear(h: Harness, tmp_path: Path) -> None:
    backend = FakeBackend(fails={"a": True})
    h.run(FakeDaemon("a", view("a", "b")), backend)
    assert (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_backed_off_best_node_is_passed_over(h: Harness) -> None:
    h.backoff.mark("a")
    backend = FakeBackend()
    assert h.run(FakeDaemon("a", view("a", "b")), backend) == 0
    assert backend.tried == ["b"]


def test_the_local_node_is_never_backed_off(h: Harness) -> None:
    h.backoff.mark(LOCAL)
    backend = FakeBackend()
    assert h.run(FakeDaemon(LOCAL, view(LOCAL, "a")), backend) == 42
    assert backend.local_runs == 1


def test_attempts_bound_the_nodes_tried_then_it_runs_here(tmp_path: Path) -> None:
    h = Harness(tmp_path, attempts=2)
    backend = FakeBackend(fails={"a": True, "b": True, "c": True})
    assert h.run(FakeDaemon("a", view("a", "b", "c")), backend) == 42
    assert backend.tried == ["a", "b"] and backend.local_runs == 1
    assert h.said[-1] == "no node could run it (tried a, b); running locally"


def test_no_fallback_fails_with_255(tmp_path: Path) -> None:
    h = Harness(tmp_path, fallback=False)
    backend = FakeBackend(fails={"a": True})
    assert h.run(FakeDaemon("a", view("a")), backend) == EXIT_FAILED
    assert backend.local_runs == 0
    assert h.said[-1] == "no node could run it (tried a); not running locally (--no-fallback)"


def test_no_node_at_all(h: Harness) -> None:
    backend = FakeBackend()
    assert h.run(FakeDaemon(None, view("a", down=("a",))), backend) == 42
    assert h.said == ["no node available; running locally"]


def test_quiet_says_nothing_when_it_falls_back(tmp_path: Path) -> None:
    h = Harness(tmp_path, quiet=True)
    assert h.run(FakeDaemon(None, view()), FakeBackend()) == 42 and h.said == []


def test_an_unreachable_daemon_means_here(h: Harness) -> None:
    backend = FakeBackend()
    assert h.run(FakeDaemon("a", view("a"), up=False), backend) == 42
    assert backend.tried == [] and "cannot reach dshd" in h.said[0]


def test_the_daemon_gone_between_attempts_ends_the_tries(h: Harness) -> None:
    daemon = FakeDaemon("a", view("a", "b"))
    backend = FakeBackend(fails={"a": True})
    original = backend.run_remote

    def fail_and_stop_daemon(node: str, started: Callable[[], None]) -> int:
        daemon.up = False
        return original(node, started)

    backend.run_remote = fail_and_stop_daemon  # type: ignore[method-assign]
    assert h.run(daemon, backend) == 42
    assert backend.tried == ["a"]


def test_dry_run_names_the_node_and_runs_nothing(h: Harness) -> None:
    backend = FakeBackend()
    assert h.run(FakeDaemon("a", view("a")), backend, dry_run=True) == 0
    assert h.printed == ["a"] and backend.tried == [] and backend.local_runs == 0


def test_dry_run_without_daemon_says_local(h: Harness) -> None:
    backend = FakeBackend()
    assert h.run(FakeDaemon("a", view(), up=False), backend, dry_run=True) == 0
    assert h.printed == ["local"] and backend.local_runs == 0


def test_dry_run_without_node_says_none(h: Harness) -> None:
    assert h.run(FakeDaemon(None, view()), FakeBackend(), dry_run=True) == EXIT_FAILED
    assert h.printed == ["NONE"]


def test_verbose_says_where(tmp_path: Path) -> None:
    h = Harness(tmp_path, verbose=True)
    h.run(FakeDaemon("a", view("a")), FakeBackend())
    h.run(FakeDaemon(LOCAL, view(LOCAL)), FakeBackend())
    assert h.said == ["running on a", "running on local (local)"]

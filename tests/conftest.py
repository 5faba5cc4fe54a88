"""Shared fixtures: real dshd clusters on loopback addresses (and, in test_dsh, real sshd)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from support.dshd import Cluster

ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build clusters whose daemons are all stopped at teardown, also on failure."""
    made: list[Cluster] = []

    def make(lines: list[str], **kwargs: object) -> Cluster:
        directory = tmp_path / f"cluster{len(made)}"
        directory.mkdir()
        cluster = Cluster(directory, lines, **kwargs)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


# -- a cluster with real sshd for dsh --------------------------------------------

LOCAL, R1, R2 = "127.0.0.20", "127.0.0.21", "127.0.0.22"


class SshCluster:
    """dshd on LOCAL (drained: never chosen, so every run goes remote unless a
    test says otherwise) and on R1, R2, each of which also runs a real sshd."""

    def __init__(self, directory: Path) -> None:
        from support.sshd import Sshd, common_free_port, make_client_keys, write_ssh_config

        self.directory = directory
        self.keys = make_client_keys(directory / "keys")
        self.ssh_port = common_free_port([R1, R2])
        self.sshd = {}
        for address in (R1, R2):
            node_dir = directory / f"sshd-{address}"
            node_dir.mkdir()
            self.sshd[address] = Sshd(address, self.ssh_port, node_dir, self.keys)
        self.ssh_config = write_ssh_config(
            directory / "ssh_config", list(self.sshd.values()), self.keys
        )
        dshd_dir = directory / "dshd"
        dshd_dir.mkdir()
        self.dshd = Cluster(dshd_dir, [f"{LOCAL} 1.0 1.0 drain", R1, R2], interval=0.2)

    def start(self) -> None:
        for server in self.sshd.values():
            server.start()
        self.dshd.start()
        from support.waiting import wait_for

        wait_for(self.dshd.all_up, 10, "dsh test cluster up")

    def stop(self) -> None:
        self.dshd.stop()
        for server in self.sshd.values():
            server.stop()

    def dsh_args(self) -> list[str]:
        port = self.dshd.port
        return ["-H", f"{LOCAL}:{port + 1}", "--status-port", str(port),
                "--ssh-config", str(self.ssh_config)]  # fmt: skip


@pytest.fixture(scope="session")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    cluster = SshCluster(tmp_path_factory.mktemp("sshcluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


# -- the ways dsh reaches a node ---------------------------------------------------

# Every dsh test runs on each path: dsh's own connection (--direct), the mux
# with one exec channel per command, and the mux with the node's executor.
PATHS = ("direct", "channel", "executor")
PATH_ENV = {"direct": {"DSH_DIRECT": "1"}, "channel": {"DSH_EXECUTOR": "0"}, "executor": {}}


@pytest.fixture(params=PATHS)
def dsh_path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dsh_env(tmp_path: Path, dsh_path: str) -> Iterator[dict[str, str]]:
    """The environment of a dsh run on ``dsh_path``, with a runtime directory of
    its own (backoff files, the mux); the test's mux is stopped at teardown."""
    from support.mux import log_tail, stop_mux

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    env.update({"XDG_RUNTIME_DIR": str(run), "PWD": str(tmp_path), **PATH_ENV[dsh_path]})
    try:
        yield env
    finally:
        print(f"mux.log:\n{log_tail(run / 'dsh')}")  # shown when the test failed
        stop_mux(run / "dsh")


def default_sigint() -> None:
    """preexec_fn for a process a test will send SIGINT: pytest may run with
    SIGINT ignored (started with & by a script, as CI can be), and dsh, like
    any command, leaves a signal ignored at its start ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

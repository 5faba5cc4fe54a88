"""Fixtures that start real processes: dshd clusters on loopback addresses, and
the session's cluster of dshd plus real sshd that dsh runs commands on.

They share fixed loopback addresses and ports, so they run one after
another on one pytest-xdist worker (tests/conftest.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.dshd import Cluster, ClusterFactory
from support.mux import log_tail, stop_mux
from support.prometheus import Prometheus
from support.ssh_cluster import PATH_ENV, PATHS, SshCluster


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build clusters whose daemons are all stopped at teardown, also on failure."""
    made: list[Cluster] = []

    def make(
        lines: list[str], *, interval: float = 0.2, maxloops: int = 3, port: int | None = None
    ) -> Cluster:
        directory = tmp_path / f"cluster{len(made)}"
        directory.mkdir()
        cluster = Cluster(directory, lines, interval=interval, maxloops=maxloops, port=port)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


@pytest.fixture
def make_prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], Prometheus]]:
    """Start real Prometheus servers scraping ``targets`` ("host:port"), each stopped at
    teardown, also on failure; ``.query(expr)`` asks one."""
    made: list[Prometheus] = []

    def make(targets: list[str]) -> Prometheus:
        prometheus = Prometheus(tmp_path / f"prometheus{len(made)}", targets)
        made.append(prometheus)
        prometheus.start()
        return prometheus

    try:
        yield make
    finally:
        for prometheus in made:
            prometheus.stop()


@pytest.fixture(scope="session")
def ssh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshCluster]:
    cluster = SshCluster(tmp_path_factory.mktemp("sshcluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=PATHS)
def dsh_path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def dsh_env(tmp_path: Path, dsh_path: str) -> Iterator[dict[str, str]]:
    """The environment of a dsh run on ``dsh_path``, with a runtime directory of
    its own (backoff files, the mux); the test's mux is stopped at teardown."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    env.update({"XDG_RUNTIME_DIR": str(run), "PWD": str(tmp_path), **PATH_ENV[dsh_path]})
    try:
        yield env
    finally:
        print(f"mux.log:\n{log_tail(run / 'dsh')}")  # shown when the test failed
        stop_mux(run / "dsh")

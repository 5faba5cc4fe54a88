"""Fixtures that start real processes: dshd clusters on loopback addresses, and
the session's cluster of dshd plus real sshd that dsh runs commands on.

The suite runs on two pytest-xdist workers (setup.cfg: ``-n 2 --dist
loadgroup``). The system tests share fixed loopback addresses and ports, so
they are one group, run one after another on one worker; the unit tests go
to the other, and after them the two minutes at 30 % loss
(test_membership_loss.py: its own namespaces and subnet, mostly waiting),
which would otherwise add their time to everything else's.
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


SYSTEM = Path(__file__).parent
ALONGSIDE = {"test_membership_loss.py"}  # shares nothing with the other system tests


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(item.path)
        if SYSTEM in path.parents:
            group = path.stem if path.name in ALONGSIDE else "system"
            item.add_marker(pytest.mark.xdist_group(group))


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

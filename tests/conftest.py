"""Shared fixtures: real dshd clusters on loopback addresses (and, in test_dsh, real sshd)."""

from __future__ import annotations

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

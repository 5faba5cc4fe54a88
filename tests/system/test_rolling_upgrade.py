"""A rolling upgrade: daemons of a previous release and of this one in one cluster.

The previous releases are the commits main stood at before datagram version 2
(version 1 only) and before version 3 (membership news, issue 15), each taken
out of this repository's history with ``git archive`` and run as it is,
beside this checkout's dshd."""

from __future__ import annotations

import subprocess
import tarfile
from io import BytesIO
from pathlib import Path

import pytest
from support.dshd import Cluster, ClusterFactory, Node
from support.paths import REPO
from support.waiting import wait_for

from dsh.core.status import COLUMNS
from dsh.daemon.keys import generate_key_file

# The last release that sends only datagram version 1 (stop 16's main).
PREVIOUS_RELEASE = "e3c0c24"
# The last release that sends version 2 at most, with no membership news
# (issue 14's main, before issue 15's version 3).
VERSION_2_RELEASE = "bad1ae6"
OLD, NEW, NEWER = "127.0.0.51", "127.0.0.52", "127.0.0.53"


def released_dshd(commit: str, root: Path) -> str:
    """The dshd script of ``commit``, unpacked under ``root`` with its src/."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, "dshd", "src"],
        capture_output=True, timeout=60,
    )  # fmt: skip
    if archive.returncode != 0:
        raise AssertionError(
            f"the previous release {commit} is not in this clone's history"
            f" (a shallow clone?): {archive.stderr.decode(errors='replace').strip()}"
        )
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(root, filter="data")
    return str(root / "dshd")


@pytest.fixture(scope="module")
def previous_dshd(tmp_path_factory: pytest.TempPathFactory) -> str:
    return released_dshd(PREVIOUS_RELEASE, tmp_path_factory.mktemp("previous-release"))


@pytest.fixture(scope="module")
def version_2_dshd(tmp_path_factory: pytest.TempPathFactory) -> str:
    return released_dshd(VERSION_2_RELEASE, tmp_path_factory.mktemp("version-2-release"))


def usage_cells(text: str, name: str) -> list[str]:
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return fields[COLUMNS.index("user") : COLUMNS.index("swap") + 1]
    raise AssertionError(f"{name} not in the status:\n{text}")


def mixed(make_cluster: ClusterFactory, old_dshd: str, tmp_path: Path, sealed: bool,
          http: bool = True) -> Cluster:  # fmt: skip
    """OLD running ``old_dshd``, NEW and NEWER this checkout's, started; keyed as the
    README's install sets a cluster up when ``sealed``."""
    cluster = make_cluster([OLD, NEW, NEWER])
    if sealed:
        key = tmp_path / "key"
        generate_key_file(str(key))
        for node in cluster.nodes.values():
            node.key_file = key
    old = cluster.nodes[OLD]
    old.program = old_dshd
    if not http:
        old.http = False
    cluster.start()
    return cluster


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_old_and_new_daemons_see_each_other(
    make_cluster: ClusterFactory, previous_dshd: str, tmp_path: Path, sealed: bool
) -> None:
    # Sealed as the README's install sets a cluster up: the envelope must stay
    # one the old release opens, whatever the datagram inside.
    cluster = mixed(make_cluster, previous_dshd, tmp_path, sealed, http=False)
    old = cluster.nodes[OLD]
    wait_for(cluster.all_up, 15, "the old and the new daemons all up everywhere")
    old_status = old.status_text()
    # The old release's table: its own columns only, every node up.
    assert old_status.splitlines()[0].split()[1:] == list(COLUMNS[: COLUMNS.index("user")])
    assert cluster.nodes[OLD].counters()["datagrams"]["accepted"] > 0

    # A new node shows the old one without usage ('-') and the other new one
    # with it, once a full report of it has come (probes and their answers are
    # brief: they leave it out).
    def with_newer_usage() -> str:
        text = cluster.nodes[NEW].status_text()
        return text if "-" not in usage_cells(text, NEWER) else ""

    new_status = wait_for(with_newer_usage, 5, "the other new node's usage at the new node")
    assert usage_cells(new_status, OLD) == ["-"] * 9
    cells = usage_cells(new_status, NEWER)
    assert len(cells) == 9 and all(c != "-" for c in cells)
    assert 0.0 <= sum(float(c) for c in cells[:4]) <= 100.5  # CPU percentages
    assert old.counters()["datagrams"]["bad_auth"] == 0
    # What the old node drops: the version-2 reports each new node sends
    # before it has heard the old one, and then no more.
    malformed = old.counters()["datagrams"]["malformed"]
    accepted = old.counters()["datagrams"]["accepted"]
    wait_for(lambda: old.counters()["datagrams"]["accepted"] >= accepted + 10, 15,
             "ten more reports at the old node")  # fmt: skip
    assert old.counters()["datagrams"]["malformed"] == malformed, old_status

    # The old node is upgraded in place: a restart with this release's dshd.
    old.stop()
    old.program, old.http = cluster.nodes[NEW].program, True
    old.start()

    # Both ways: the others switch to version 2 for it once they hear it (a
    # tick later), so the upgraded node sees their usage an interval after
    # they see its own.
    def upgraded() -> bool:
        return (cluster.all_up()
                and "-" not in usage_cells(cluster.nodes[NEW].status_text(), OLD)
                and "-" not in usage_cells(old.status_text(), NEWER))  # fmt: skip

    wait_for(upgraded, 15, "the upgraded node's usage in the others' tables and theirs in its")


def test_the_previous_release_is_really_version_1(previous_dshd: str) -> None:
    # Guards the test above: were the archive this release, it would prove nothing.
    wire = Path(previous_dshd).parent / "src" / "dsh" / "core" / "wire.py"
    assert "\nVERSION = 1\n" in wire.read_text()


@pytest.mark.parametrize("sealed", [False, True], ids=["plain", "sealed"])
def test_version_2_and_this_release_see_each_other_up(
    make_cluster: ClusterFactory, version_2_dshd: str, tmp_path: Path, sealed: bool
) -> None:
    # The release before membership news (datagram version 3) beside this one:
    # each must see the other up and stay so, the new ones never suspecting
    # the old one for want of news it cannot send.
    cluster = mixed(make_cluster, version_2_dshd, tmp_path, sealed)
    old, new = cluster.nodes[OLD], cluster.nodes[NEW]
    wait_for(cluster.all_up, 15, "the version-2 and the new daemons all up everywhere")
    # The old release's table is its own: the columns up to swap, no later ones.
    assert old.status_text().splitlines()[0].split()[1:] == list(
        COLUMNS[: COLUMNS.index("swap") + 1]
    )
    # Version 2 carries usage: the new node shows the old one's.
    assert all(c != "-" for c in usage_cells(new.status_text(), OLD))
    assert old.counters()["datagrams"]["bad_auth"] == 0
    # Once each side has heard the other, nothing either sends is dropped, and
    # the old node stays up (not suspect) at the new ones.
    malformed = old.counters()["datagrams"]["malformed"]
    accepted = old.counters()["datagrams"]["accepted"]
    states: set[str | None] = set()

    def ten_more() -> bool:
        states.update(cluster.nodes[n].state_of(OLD) for n in (NEW, NEWER))
        return old.counters()["datagrams"]["accepted"] >= accepted + 10

    wait_for(ten_more, 15, "ten more reports at the old node")
    assert old.counters()["datagrams"]["malformed"] == malformed, old.status_text()
    assert states == {"up"}, states
    assert cluster.all_up()

    # The old node is upgraded in place: a restart with this release's dshd.
    old.stop()
    old.program = new.program
    old.start()
    wait_for(cluster.all_up, 15, "the upgraded node up everywhere")


def test_the_version_2_release_is_really_version_2(version_2_dshd: str) -> None:
    wire = Path(version_2_dshd).parent / "src" / "dsh" / "core" / "wire.py"
    assert "\nVERSION = 2 " in wire.read_text()


# The last release that sends version 3 at most and asks no one before a
# best-node answer (issue 15's main before core/bids.py).
VERSION_3_RELEASE = "e5e2109"
SPARSE = [f"127.0.0.{i}" for i in range(54, 59)]  # above --fanout-above 2


def sparse_with_one_old(make_cluster: ClusterFactory, addresses: list[str], old_dshd: str,
                        tmp_path: Path) -> tuple[Cluster, Node, list[Node]]:  # fmt: skip
    """The first of ``addresses`` running ``old_dshd``, the others this checkout's,
    keyed, above the full-mesh threshold, started and all up everywhere."""
    cluster = make_cluster(addresses)
    cluster.keyed_above_threshold(tmp_path / "key")
    old = cluster.nodes[addresses[0]]
    old.program = old_dshd
    cluster.start()
    wait_for(cluster.all_up, 20, "the old and the new daemons all up everywhere")
    return cluster, old, [cluster.nodes[n] for n in addresses[1:]]


@pytest.fixture(scope="module")
def version_3_dshd(tmp_path_factory: pytest.TempPathFactory) -> str:
    return released_dshd(VERSION_3_RELEASE, tmp_path_factory.mktemp("version-3-release"))


def test_version_3_and_this_release_answer_best_node_questions_above_the_threshold(
    make_cluster: ClusterFactory, version_3_dshd: str, tmp_path: Path
) -> None:
    # One daemon of the release before best-node questions among four of
    # this one, keyed, above the full-mesh threshold: everyone stays up, the
    # new ones keep answering, and the old one is asked at most a few times
    # before the others know it by its own reports.
    cluster, old, new = sparse_with_one_old(make_cluster, SPARSE, version_3_dshd, tmp_path)
    for node in new:
        for _ in range(4):
            assert node.best() in SPARSE
    assert old.best() in SPARSE  # the old release answers from its reports
    asked = sum(sum(n.counters()["questions"].values()) for n in new)
    assert asked == 16
    # The new daemons bid for each other; the old one drops what it cannot
    # read (states of version 4 before a daemon heard it, ASKs), and then no more.
    assert sum(n.counters()["bids"]["answered"] for n in new) > 0
    assert "questions" not in old.counters()
    malformed = old.counters()["datagrams"]["malformed"]
    accepted = old.counters()["datagrams"]["accepted"]
    for node in new:
        for _ in range(4):
            node.best()
    wait_for(lambda: old.counters()["datagrams"]["accepted"] >= accepted + 10, 15,
             "ten more reports at the old node")  # fmt: skip
    assert old.counters()["datagrams"]["malformed"] - malformed <= 3 * len(new), old.status_text()
    assert old.counters()["datagrams"]["bad_auth"] == 0
    assert cluster.all_up()


def test_the_version_3_release_is_really_version_3(version_3_dshd: str) -> None:
    wire = Path(version_3_dshd).parent / "src" / "dsh" / "core" / "wire.py"
    assert "\nVERSION = 3 " in wire.read_text()


# The last release that sends version 4 at most: every datagram with its usage,
# in the layout of version 3 (issue 15's main before version 5's compact layout).
VERSION_4_RELEASE = "1dc982f"
SPARSE_4 = [f"127.0.0.{i}" for i in range(101, 106)]


@pytest.fixture(scope="module")
def version_4_dshd(tmp_path_factory: pytest.TempPathFactory) -> str:
    return released_dshd(VERSION_4_RELEASE, tmp_path_factory.mktemp("version-4-release"))


def test_version_4_and_this_release_keep_usage_and_bids_above_the_threshold(
    make_cluster: ClusterFactory, version_4_dshd: str, tmp_path: Path
) -> None:
    # One daemon of the release before the compact layout among four of this
    # one, keyed, above the threshold: all stay up, each side shows the other's
    # usage (this release's brief datagrams go to its own kind only), the old
    # one bids for the new ones' questions, and once each side has heard the
    # other it drops nothing (before, the version-5 reports of a new daemon
    # that has not heard it yet).
    _, old, new = sparse_with_one_old(make_cluster, SPARSE_4, version_4_dshd, tmp_path)

    def usage_everywhere() -> bool:
        for viewer in [old, *new]:
            text = viewer.status_text()
            for name in SPARSE_4:
                if name != viewer.name and "-" in usage_cells(text, name):
                    return False
        return True

    wait_for(usage_everywhere, 20, "every daemon showing every other's usage")
    answered = old.counters()["bids"]["answered"]
    for node in new:
        for _ in range(4):
            assert node.best() in SPARSE_4
    assert old.counters()["bids"]["answered"] > answered  # asked, and it answered
    malformed = old.counters()["datagrams"]["malformed"]
    accepted = old.counters()["datagrams"]["accepted"]
    states: set[str | None] = set()

    def ten_more() -> bool:
        states.update(n.state_of(old.name) for n in new)
        return old.counters()["datagrams"]["accepted"] >= accepted + 10

    wait_for(ten_more, 15, "ten more reports at the old node")
    assert old.counters()["datagrams"]["malformed"] == malformed, old.status_text()
    assert states == {"up"}, states
    assert old.counters()["datagrams"]["bad_auth"] == 0
    assert usage_everywhere()  # brief datagrams among the new ones keep the last usage


def test_the_version_4_release_is_really_version_4(version_4_dshd: str) -> None:
    wire = Path(version_4_dshd).parent / "src" / "dsh" / "core" / "wire.py"
    assert "\nVERSION = 4 " in wire.read_text()

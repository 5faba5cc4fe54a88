"""Node choice: the backoff of nodes whose SSH failed, and the next node to try.

Backoff keeps one file per node in a directory, its mtime the last failure;
each test passes a directory of its own and the time as ``now``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dsh.client.backoff import Backoff, next_node

# Two lines: these two are moving to dsh.core.status, the two above to dsh.client.backoff.
# isort: split
from dsh.core.status import ClusterView, Member

FAILED_AT = 1_700_000_000.0  # the mtime a failure is given; `now` is counted from it


def failed(backoff: Backoff, node: str, at: float = FAILED_AT) -> None:
    """Mark ``node`` as having failed at ``at``."""
    backoff.mark(node)
    os.utime(os.path.join(backoff.directory, node), (at, at))


def view(*members: Member, self_name: str | None = "here") -> ClusterView:
    return ClusterView(self_name, list(members))


# -- backoff ----------------------------------------------------------------------


def test_a_marked_node_is_avoided_until_the_backoff_has_passed(tmp_path: Path) -> None:
    backoff = Backoff(60.0, str(tmp_path))
    assert not backoff.active("galileo", now=FAILED_AT)
    failed(backoff, "galileo")
    assert backoff.active("galileo", now=FAILED_AT)
    assert backoff.active("galileo", now=FAILED_AT + 59.9)
    assert not backoff.active("galileo", now=FAILED_AT + 60.0)  # over: tried again
    assert not backoff.active("galileo", now=FAILED_AT + 3600)
    assert not backoff.active("kepler", now=FAILED_AT)  # only the node that failed


def test_mark_is_now_and_a_new_failure_starts_the_backoff_again(tmp_path: Path) -> None:
    backoff = Backoff(60.0, str(tmp_path))
    backoff.mark("galileo")
    assert backoff.active("galileo")  # now, by the clock
    failed(backoff, "galileo", at=FAILED_AT - 3600)
    assert not backoff.active("galileo")  # an hour ago: long over
    backoff.mark("galileo")  # it fails again
    assert backoff.active("galileo")


def test_clear_ends_the_backoff(tmp_path: Path) -> None:
    backoff = Backoff(60.0, str(tmp_path))
    failed(backoff, "galileo")
    backoff.clear("galileo")
    assert not backoff.active("galileo", now=FAILED_AT)
    assert os.listdir(tmp_path) == []
    backoff.clear("galileo")  # clearing what is not marked is fine
    backoff.clear("never-marked")


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_no_backoff_seconds_disables_it(tmp_path: Path, seconds: float) -> None:
    backoff = Backoff(seconds, str(tmp_path))
    backoff.mark("galileo")
    assert os.listdir(tmp_path) == []  # marks nothing
    failed(Backoff(60.0, str(tmp_path)), "galileo")  # marked by a dsh with a backoff
    assert not backoff.active("galileo", now=FAILED_AT)  # and ignores what others marked


def test_every_dsh_of_the_user_sees_the_same_backoff(tmp_path: Path) -> None:
    failed(Backoff(60.0, str(tmp_path)), "galileo")
    later = Backoff(60.0, str(tmp_path))  # another dsh, its own object
    assert later.active("galileo", now=FAILED_AT + 1)
    # How long to avoid a node is the reader's setting, not the marker's.
    assert not Backoff(10.0, str(tmp_path)).active("galileo", now=FAILED_AT + 30)


def test_a_node_name_with_a_slash_stays_in_the_directory(tmp_path: Path) -> None:
    backoff = Backoff(60.0, str(tmp_path / "backoff"))
    (tmp_path / "backoff").mkdir()
    backoff.mark("../escape")
    assert os.listdir(tmp_path / "backoff") == [".._escape"]
    assert backoff.active("../escape")
    assert not (tmp_path / "escape").exists()


def test_an_unusable_directory_means_no_backoff_not_an_error(tmp_path: Path) -> None:
    backoff = Backoff(60.0, str(tmp_path / "missing"))
    backoff.mark("galileo")  # cannot write the mark: dsh goes on
    assert not backoff.active("galileo")
    backoff.clear("galileo")


def test_the_default_directory_is_private_in_the_runtime_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    backoff = Backoff(60.0)
    backoff.mark("galileo")
    assert backoff.directory == str(tmp_path / "dsh" / "backoff")
    assert (tmp_path / "dsh" / "backoff" / "galileo").is_file()
    for directory in (tmp_path / "dsh", tmp_path / "dsh" / "backoff"):
        assert directory.stat().st_mode & 0o777 == 0o700


# -- the next node ----------------------------------------------------------------

NODES = (
    Member("here", "up", 4, 0.7),
    Member("galileo", "up", 8, 0.1),
    Member("kepler", "up", 8, 0.3),
    Member("tycho", "down", None, None),
    Member("brahe", "drained", 16, 0.0),
)


def test_next_node_is_the_best_not_tried(tmp_path: Path) -> None:
    status, backoff = view(*NODES), Backoff(60.0, str(tmp_path))
    assert next_node(status, set(), backoff) == "galileo"
    assert next_node(status, {"galileo"}, backoff) == "kepler"
    assert next_node(status, {"galileo", "kepler"}, backoff) == "here"
    assert next_node(status, {"galileo", "kepler", "here"}, backoff) is None  # not down/drained


def test_next_node_skips_backed_off_nodes(tmp_path: Path) -> None:
    status, backoff = view(*NODES), Backoff(60.0, str(tmp_path))
    backoff.mark("galileo")
    assert next_node(status, set(), backoff) == "kepler"
    backoff.mark("kepler")
    assert next_node(status, set(), backoff) == "here"
    backoff.clear("galileo")
    assert next_node(status, set(), backoff) == "galileo"


def test_the_local_node_is_never_backed_off(tmp_path: Path) -> None:
    status, backoff = view(*NODES), Backoff(60.0, str(tmp_path))
    for member in NODES:
        backoff.mark(member.name)
    assert next_node(status, set(), backoff) == "here"  # running here needs no SSH
    assert next_node(status, {"here"}, backoff) is None  # but once tried, it was tried
    # A table without a self line: no node is exempt.
    assert next_node(view(*NODES, self_name=None), set(), backoff) is None


def test_next_node_with_backoff_off_or_expired(tmp_path: Path) -> None:
    status = view(*NODES)
    failed(Backoff(60.0, str(tmp_path)), "galileo")
    assert next_node(status, set(), Backoff(0.0, str(tmp_path))) == "galileo"
    assert next_node(status, set(), Backoff(60.0, str(tmp_path))) == "galileo"  # (expired by now)


def test_next_node_of_an_empty_table(tmp_path: Path) -> None:
    assert next_node(view(), set(), Backoff(60.0, str(tmp_path))) is None


# -- candidates and slots ---------------------------------------------------------


def test_candidates_best_first_and_equal_scores_in_table_order() -> None:
    status = view(
        Member("a", "up", 4, 0.5),
        Member("b", "up", 4, 0.2),
        Member("c", "up", 4, 0.5),
        Member("d", "up", 4, 0.2),
        Member("e", "drained", 4, 0.0),
    )
    assert [m.name for m in status.candidates()] == ["b", "d", "a", "c"]


def test_candidates_include_the_local_node_by_its_score() -> None:
    status = view(Member("x", "up", 2, 0.4), Member("here", "up", 2, 0.1))
    assert [m.name for m in status.candidates()] == ["here", "x"]


def test_slots_count_the_cpus_of_nodes_up_even_without_a_score() -> None:
    status = view(*NODES, Member("quiet", "up", 2, None), Member("new", "up", None, None))
    assert status.slots() == 4 + 8 + 8 + 2  # not tycho (down) nor brahe (drained)
    assert [m.name for m in status.candidates()] == ["galileo", "kepler", "here"]

"""The peer table: lazy records, found members, the ring walk, extra load, reloads.

Which reports and news it takes is the membership protocol's (test_gossip.py,
test_membership.py); this file tests the table's own bookkeeping."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dsh.core.cluster import NodeSpec, parse_cluster
from dsh.core.roster import Roster, member_id
from dsh.core.table import ALIVE, DOWN, LEFT, SUSPECT, PeerTable

CLUSTER = """\
newton.foo.bar 1.0 1.0
galileo.foo.bar 2.0 2.0
kepler.foo.bar 2.0
"""


def make_table(text: str = CLUSTER, **kwargs: float) -> PeerTable:
    return PeerTable(Roster(parse_cluster(text)), "newton.foo.bar", **kwargs)  # type: ignore[arg-type]


def test_self_must_be_a_member_unless_discovery_allows_it() -> None:
    with pytest.raises(ValueError):
        PeerTable(Roster(parse_cluster(CLUSTER)), "tycho.foo.bar")
    table = PeerTable(Roster(parse_cluster(CLUSTER)), "tycho.foo.bar", unlisted_self=True)
    assert table.me.spec.name == "tycho.foo.bar" and "tycho.foo.bar" in table.found
    assert len(table) == 4


def test_self_name_matches_case_insensitively() -> None:
    table = PeerTable(Roster(parse_cluster(CLUSTER)), "NEWTON.foo.bar.")
    assert table.me.spec.name == "newton.foo.bar"
    assert table.me.status == ALIVE


def test_records_are_made_only_when_asked_for() -> None:
    table = make_table()
    assert list(table.peers) == ["newton.foo.bar"]
    assert table.get("galileo.foo.bar") is None
    galileo = table.peer("galileo.foo.bar")
    assert (
        galileo is not None and galileo.state is None and galileo.id == member_id("galileo.foo.bar")
    )
    assert table.get("GALILEO.foo.bar") is galileo
    assert table.peer("tycho.foo.bar") is None  # not a member: no record
    assert table.members() == ["newton.foo.bar", "galileo.foo.bar", "kepler.foo.bar"]


def test_members_by_id_include_found_ones_until_forgotten() -> None:
    table = make_table()
    assert table.key_of(member_id("kepler.foo.bar")) == "kepler.foo.bar"
    assert table.key_of(member_id("tycho.foo.bar")) is None
    tycho = table.add_found(NodeSpec("tycho.foo.bar"))
    assert table.key_of(member_id("tycho.foo.bar")) == "tycho.foo.bar"
    assert tycho.spec.loadscale == 1.0 and len(table) == 4
    table.set_status(tycho, DOWN, 5.0)
    assert table.live_count() == 3
    table.forget("tycho.foo.bar")
    assert table.key_of(member_id("tycho.foo.bar")) is None
    assert table.get("tycho.foo.bar") is None and table.live_count() == 3
    table.forget("kepler.foo.bar")  # listed: never forgotten
    assert table.spec("kepler.foo.bar") is not None


def test_status_changes_keep_the_gone_set() -> None:
    table = make_table()
    galileo = table.peer("galileo.foo.bar")
    assert galileo is not None
    for status, gone in ((ALIVE, set()), (SUSPECT, set()), (DOWN, {"galileo.foo.bar"}),
                         (LEFT, {"galileo.foo.bar"}), (ALIVE, set())):  # fmt: skip
        table.set_status(galileo, status, 1.0)
        assert table.gone == gone, status


def test_ring_walk_skips_members_not_alive_or_suspect() -> None:
    text = "".join(f"n{i}.foo.bar\n" for i in range(10))
    table = PeerTable(Roster(parse_cluster(text)), "n0.foo.bar")
    ring = table.ring.keys
    assert sorted(ring) == sorted(table.members())
    assert [member_id(k) for k in ring] == sorted(member_id(k) for k in ring)
    i = ring.index("n0.foo.bar")
    # Young, the node keeps the places of members it has not heard yet ...
    assert table.walk("n0.foo.bar", 2, 1) == [ring[(i + k) % 10] for k in (1, 2)]
    table.unheard_hold_places = False
    assert table.walk("n0.foo.bar", 2, 1) == []  # ... later they are not running
    for key in ring:
        peer = table.peer(key)
        assert peer is not None
        table.set_status(peer, ALIVE, 0.0)
    after = [ring[(i + k) % 10] for k in (1, 2, 3)]
    before = [ring[(i - k) % 10] for k in (1, 2)]
    assert table.walk("n0.foo.bar", 2, 1) == after[:2]
    assert table.walk("n0.foo.bar", 2, -1) == before
    first = table.get(after[0])
    assert first is not None
    table.set_status(first, DOWN, 1.0)
    assert table.walk("n0.foo.bar", 2, 1) == after[1:]  # the next one takes its place
    table.set_status(first, SUSPECT, 1.0)
    assert table.walk("n0.foo.bar", 2, 1) == after[:2]  # suspect members are still watched


def test_extra_load_lasts_exactly_extra_reports_further_reports() -> None:
    table = make_table(extra_reports=2, extra_ttl=1000.0)
    peer = table.peer("galileo.foo.bar")
    assert peer is not None
    table.add_extra(peer, 1.0, now=0.0)
    table.count_report(peer, 1.0)
    assert peer.extra == 1.0
    table.count_report(peer, 2.0)
    assert peer.extra == 0.0


def test_zero_or_negative_extra_is_not_recorded() -> None:
    table = make_table()
    table.add_extra(table.me, 0.0, now=0.0)
    table.add_extra(table.me, -1.0, now=0.0)
    assert table.me.extras == [] and not table.with_extras


def test_expire_drops_extra_after_extra_ttl() -> None:
    table = make_table(extra_reports=100, extra_ttl=6.0)
    peer = table.peer("kepler.foo.bar")
    assert peer is not None
    table.add_extra(peer, 1.0, now=10.0)
    table.add_extra(peer, 2.0, now=12.0)
    table.expire(15.9)
    assert peer.extra == 3.0
    table.expire(16.0)  # the first one's time is up
    assert peer.extra == 2.0
    table.expire(18.0)
    assert peer.extra == 0.0 and not table.with_extras


def test_replace_roster_reports_changes_and_keeps_state() -> None:
    table = make_table()
    galileo = table.peer("galileo.foo.bar")
    kepler = table.peer("kepler.foo.bar")
    assert galileo is not None and kepler is not None
    galileo.heard_at = 1.0
    table.add_extra(galileo, 1.0, now=1.0)
    table.set_status(kepler, DOWN, 1.0)
    new = parse_cluster(
        "# reordered, one added, one removed, one changed\n"
        "galileo.foo.bar 2.0 2.0\n"  # same values, different line
        "tycho.foo.bar\n"
        "newton.foo.bar 1.5\n"
    )
    changes = table.replace_roster(Roster(new))
    assert changes.added == ("tycho.foo.bar",)
    assert changes.removed == ("kepler.foo.bar",)
    assert changes.changed == ("newton.foo.bar",)
    assert table.get("kepler.foo.bar") is None and not table.gone
    assert table.get("galileo.foo.bar") is galileo and galileo.extra == 1.0
    assert table.me.spec.loadscale == 1.5
    assert table.members() == ["galileo.foo.bar", "tycho.foo.bar", "newton.foo.bar"]


@pytest.mark.parametrize(
    ("line", "changed"),
    [
        ("galileo.foo.bar 2.0 2.0", ()),
        ("galileo.foo.bar 2.0 2.0 drain", ("galileo.foo.bar",)),
        ("galileo.foo.bar 3.0 2.0", ("galileo.foo.bar",)),
        ("galileo.foo.bar 2.0 1.0", ("galileo.foo.bar",)),
        ("Galileo.foo.bar 2.0 2.0", ("Galileo.foo.bar",)),  # same node, spelled differently
    ],
)
def test_replace_roster_changed(line: str, changed: tuple[str, ...]) -> None:
    table = make_table()
    new = Roster(parse_cluster(f"newton.foo.bar\n{line}\nkepler.foo.bar 2.0\n"))
    changes = table.replace_roster(new)
    assert changes.changed == changed
    assert not changes.added and not changes.removed
    assert bool(changes) is bool(changed)


def test_replace_roster_without_self_raises_and_keeps_table() -> None:
    table = make_table()
    before = dict(table.peers)
    with pytest.raises(ValueError):
        table.replace_roster(Roster(parse_cluster("galileo.foo.bar\nkepler.foo.bar\n")))
    assert table.peers == before


def test_a_found_member_listed_at_reload_takes_the_files_scales() -> None:
    table = make_table()
    table.add_found(NodeSpec("tycho.foo.bar"))
    table.replace_roster(Roster(parse_cluster(CLUSTER + "tycho.foo.bar 3.0\n")))
    assert not table.found
    tycho = table.get("tycho.foo.bar")
    assert tycho is not None and tycho.spec.loadscale == 3.0


def test_drained_reads_spec_and_state() -> None:
    table = make_table()
    peer = table.peer("galileo.foo.bar")
    assert peer is not None
    assert not peer.drained
    peer.spec = replace(peer.spec, drained=True)
    assert peer.drained

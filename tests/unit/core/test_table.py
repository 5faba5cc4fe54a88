"""The peer table: which reports it takes, when a peer is live, and the extra load it keeps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from dsh.core.cluster import NodeSpec, parse_cluster
from dsh.core.table import PeerTable
from dsh.core.wire import State

CLUSTER = """\
newton.foo.bar 1.0 1.0
galileo.foo.bar 2.0 2.0
kepler.foo.bar 2.0
"""
DEAD_AFTER = 4.5


def make_table(text: str = CLUSTER, **kwargs: float) -> PeerTable:
    return PeerTable(parse_cluster(text), "newton.foo.bar", DEAD_AFTER, **kwargs)  # type: ignore[arg-type]


def report(
    name: str = "galileo.foo.bar", incarnation: int = 100, seq: int = 1, **kw: object
) -> State:
    fields: dict[str, object] = dict(
        name=name,
        incarnation=incarnation,
        seq=seq,
        sent_ms=0,
        ncpu=4,
        load=0.0,
        load1=0.0,
        mem_avail=2**30,
        mem_total=2**32,
    )
    fields.update(kw)
    return State(**fields)  # type: ignore[arg-type]


def test_self_must_be_a_member() -> None:
    with pytest.raises(ValueError):
        PeerTable(parse_cluster(CLUSTER), "tycho.foo.bar", DEAD_AFTER)


def test_self_name_matches_case_insensitively() -> None:
    table = PeerTable(parse_cluster(CLUSTER), "NEWTON.foo.bar.", DEAD_AFTER)
    assert table.me.spec.name == "newton.foo.bar"


def test_merge_takes_newer_and_refuses_equal_or_older() -> None:
    table = make_table()
    peer = table.get("galileo.foo.bar")
    assert peer is not None
    assert table.merge(report(seq=5, load=1.0), now=10.0)
    assert table.merge(report(seq=6, load=2.0), now=11.0)
    # equal (a duplicate) and older (reordered) are stale and change nothing
    assert not table.merge(report(seq=6, load=9.0), now=12.0)
    assert not table.merge(report(seq=5, load=9.0), now=12.5)
    assert peer.state is not None
    assert (peer.state.seq, peer.state.load, peer.heard_at) == (6, 2.0, 11.0)


def test_merge_takes_a_restart_with_higher_incarnation_and_lower_seq() -> None:
    table = make_table()
    assert table.merge(report(incarnation=100, seq=500), now=10.0)
    assert table.merge(report(incarnation=200, seq=1), now=11.0)
    peer = table.get("galileo.foo.bar")
    assert peer is not None and peer.state is not None
    assert peer.state.order == (200, 1)
    # ... after which the old incarnation's late datagrams are stale
    assert not table.merge(report(incarnation=100, seq=501), now=11.5)


def test_merge_ignores_non_members() -> None:
    table = make_table()
    assert not table.merge(report(name="tycho.foo.bar"), now=1.0)
    assert all(p.state is None for p in table.peers.values())


def test_merge_finds_peer_by_any_spelling_of_its_name() -> None:
    table = make_table()
    assert table.merge(report(name="GALILEO.foo.bar."), now=1.0)
    peer = table.get("galileo.foo.bar")
    assert peer is not None and peer.heard_at == 1.0


def test_down_peer_rejoins_with_lower_incarnation_live_one_does_not() -> None:
    # A node whose clock stepped back before it restarted has a lower incarnation.
    table = make_table()
    assert table.merge(report(incarnation=500, seq=10), now=10.0)
    assert not table.merge(report(incarnation=400, seq=1), now=10.0 + DEAD_AFTER)  # still live
    assert table.merge(report(incarnation=400, seq=1), now=10.0 + DEAD_AFTER + 0.1)  # down
    peer = table.get("galileo.foo.bar")
    assert peer is not None and peer.state is not None
    assert peer.state.order == (400, 1)
    assert table.is_live(peer, now=10.0 + DEAD_AFTER + 0.1)


def test_down_peer_still_refuses_old_reports_of_the_same_incarnation() -> None:
    table = make_table()
    assert table.merge(report(seq=10), now=10.0)
    assert not table.merge(report(seq=9), now=100.0)
    assert not table.merge(report(seq=10), now=100.0)
    assert table.merge(report(seq=11), now=100.0)


def test_is_live_uses_dead_after() -> None:
    table = make_table()
    peer = table.get("galileo.foo.bar")
    assert peer is not None
    assert not table.is_live(peer, now=0.0)  # never heard
    table.merge(report(), now=10.0)
    assert table.is_live(peer, now=10.0)
    assert table.is_live(peer, now=10.0 + DEAD_AFTER)
    assert not table.is_live(peer, now=10.0 + DEAD_AFTER + 0.001)


def test_self_is_always_live() -> None:
    table = make_table()
    assert table.is_live(table.me, now=0.0)
    assert table.is_live(table.me, now=1e9)
    table.merge(report(name="newton.foo.bar"), now=1.0)
    assert table.is_live(table.me, now=1.0 + 100 * DEAD_AFTER)


def test_extra_load_lasts_exactly_extra_reports_further_reports() -> None:
    for extra_reports in (1, 2, 3):
        table = make_table(extra_reports=extra_reports, extra_ttl=1000.0)
        peer = table.get("galileo.foo.bar")
        assert peer is not None
        table.merge(report(seq=1), now=0.0)
        table.add_extra(peer, 1.0, now=0.0)
        table.add_extra(peer, 0.5, now=0.0)
        assert peer.extra == 1.5
        for seq in range(2, 2 + extra_reports - 1):
            table.merge(report(seq=seq), now=float(seq))
            assert peer.extra == 1.5, f"extra_reports={extra_reports}, report {seq}"
        table.merge(report(seq=1 + extra_reports), now=10.0)
        assert peer.extra == 0.0


def test_stale_reports_do_not_use_up_extra_load() -> None:
    table = make_table(extra_reports=2, extra_ttl=1000.0)
    peer = table.get("galileo.foo.bar")
    assert peer is not None
    table.merge(report(seq=5), now=0.0)
    table.add_extra(peer, 1.0, now=0.0)
    for _ in range(5):
        assert not table.merge(report(seq=5), now=1.0)  # duplicates
    assert peer.extra == 1.0


def test_extra_load_of_other_peers_is_untouched_by_a_report() -> None:
    table = make_table(extra_reports=1, extra_ttl=1000.0)
    galileo, kepler = table.get("galileo.foo.bar"), table.get("kepler.foo.bar")
    assert galileo is not None and kepler is not None
    table.add_extra(kepler, 1.0, now=0.0)
    table.merge(report(), now=1.0)
    assert (galileo.extra, kepler.extra) == (0.0, 1.0)


def test_zero_or_negative_extra_is_not_recorded() -> None:
    table = make_table()
    peer = table.me
    table.add_extra(peer, 0.0, now=0.0)
    table.add_extra(peer, -1.0, now=0.0)
    assert peer.extras == []


def test_expire_drops_extra_after_extra_ttl() -> None:
    table = make_table(extra_reports=100, extra_ttl=6.0)
    peer = table.get("kepler.foo.bar")
    assert peer is not None
    table.add_extra(peer, 1.0, now=10.0)
    table.add_extra(peer, 2.0, now=12.0)
    table.expire(15.9)
    assert peer.extra == 3.0
    table.expire(16.0)  # the first one's time is up
    assert peer.extra == 2.0
    table.expire(18.0)
    assert peer.extra == 0.0


def test_merge_also_drops_expired_extra() -> None:
    table = make_table(extra_reports=100, extra_ttl=6.0)
    peer = table.get("galileo.foo.bar")
    assert peer is not None
    table.add_extra(peer, 1.0, now=0.0)
    table.merge(report(seq=1), now=7.0)
    assert peer.extra == 0.0


DRAIN_CLUSTER = """\
newton.foo.bar
galileo.foo.bar
kepler.foo.bar drain
tycho.foo.bar
brahe.foo.bar
hubble.foo.bar
"""


def test_candidates_are_live_heard_and_not_drained() -> None:
    table = make_table(DRAIN_CLUSTER)
    now = 100.0
    table.merge(report("newton.foo.bar"), now=now)  # self
    table.merge(report("galileo.foo.bar"), now=now - 1)  # live
    table.merge(report("kepler.foo.bar"), now=now - 1)  # drained in the cluster file
    table.merge(report("tycho.foo.bar", drained=True), now=now - 1)  # drained itself
    table.merge(report("brahe.foo.bar"), now=now - DEAD_AFTER - 1)  # down
    # hubble.foo.bar: never heard
    names = sorted(p.spec.name for p in table.candidates(now))
    assert names == ["galileo.foo.bar", "newton.foo.bar"]


def test_self_is_no_candidate_before_its_first_sample() -> None:
    table = make_table()
    assert table.candidates(0.0) == []


def test_undrained_node_becomes_a_candidate_again() -> None:
    table = make_table()
    table.merge(report(seq=1, drained=True), now=1.0)
    assert table.candidates(1.0) == []
    table.merge(report(seq=2, drained=False), now=2.0)
    assert [p.spec.name for p in table.candidates(2.0)] == ["galileo.foo.bar"]


def test_replace_specs_reports_changes_and_keeps_state() -> None:
    table = make_table()
    table.merge(report("galileo.foo.bar", load=3.0), now=1.0)
    table.merge(report("kepler.foo.bar", load=4.0), now=1.0)
    galileo = table.get("galileo.foo.bar")
    kepler_before = table.get("kepler.foo.bar")
    assert galileo is not None and kepler_before is not None
    table.add_extra(galileo, 1.0, now=1.0)

    new = parse_cluster(
        "# reordered, one added, one removed, one changed\n"
        "galileo.foo.bar 2.0 2.0\n"  # same values, different line
        "tycho.foo.bar\n"
        "newton.foo.bar 1.5\n"
    )
    changes = table.replace_specs(new)
    assert changes.added == ("tycho.foo.bar",)
    assert changes.removed == ("kepler.foo.bar",)
    assert changes.changed == ("newton.foo.bar",)
    assert changes
    assert sorted(table.peers) == ["galileo.foo.bar", "newton.foo.bar", "tycho.foo.bar"]
    assert table.get("kepler.foo.bar") is None
    # a kept node keeps what we knew of it
    assert table.get("galileo.foo.bar") is galileo
    assert galileo.state is not None and galileo.state.load == 3.0
    assert galileo.heard_at == 1.0 and galileo.extra == 1.0
    # ... and takes its new spec
    assert table.me.spec.loadscale == 1.5
    tycho = table.get("tycho.foo.bar")
    assert tycho is not None and tycho.state is None


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
def test_replace_specs_changed(line: str, changed: tuple[str, ...]) -> None:
    table = make_table()
    changes = table.replace_specs(parse_cluster(f"newton.foo.bar\n{line}\nkepler.foo.bar 2.0\n"))
    assert changes.changed == changed
    assert not changes.added and not changes.removed
    assert bool(changes) is bool(changed)


def test_replace_specs_with_same_file_is_no_change() -> None:
    table = make_table()
    assert not table.replace_specs(parse_cluster(CLUSTER))


def test_replace_specs_without_self_raises_and_keeps_table() -> None:
    table = make_table()
    before = dict(table.peers)
    with pytest.raises(ValueError):
        table.replace_specs(parse_cluster("galileo.foo.bar\nkepler.foo.bar\n"))
    assert table.peers == before


def test_drained_reads_spec_and_state() -> None:
    table = make_table()
    peer = table.get("galileo.foo.bar")
    assert peer is not None
    assert not peer.drained
    peer.spec = replace(peer.spec, drained=True)
    assert peer.drained
    peer.spec = NodeSpec("galileo.foo.bar")
    table.merge(report(drained=True), now=0.0)
    assert peer.drained

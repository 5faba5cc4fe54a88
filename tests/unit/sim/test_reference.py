"""The placement yardstick (sim/reference.py): the real rule, fed true loads instead of reports."""

from __future__ import annotations

from array import array
from statistics import fmean

from dsh.sim.cluster import SimCluster
from dsh.sim.load import LoadModel
from dsh.sim.metrics import percentile
from dsh.sim.reference import LoadHistory
from dsh.sim.scenario import Scenario, run

FLAT = LoadModel(spread=0.0)  # every background stays at 4.0: only jobs move loads


def test_history_answers_from_the_newest_snapshot_at_least_delay_old() -> None:
    h = LoadHistory(delay=2.0)
    assert h.at(0, 0.0) is None
    for k in range(40):  # one snapshot every 0.1 s, loads = the time
        t = k / 10
        h.record(t, array("d", [t, -t]))
    assert h.at(0, 3.9) == 1.9
    assert h.at(1, 3.95) == -1.9
    assert h.at(0, 1.0) is None  # older than anything kept, and before the run
    assert h.at(2, 3.9) is None  # a node started after the snapshot
    assert len(h.times) <= 21  # what is older than the delay needs is dropped


def seen(cluster: SimCluster, observer: int, member: int) -> float:
    node = cluster.nodes[observer]
    assert node is not None
    peer = node.table.get(cluster.names[member])
    assert peer is not None
    view = node.view(peer)
    assert view is not None
    return view.load


def test_the_reports_show_a_job_after_a_tick_the_exact_yardstick_at_once() -> None:
    clusters = {ref: SimCluster(10, seed=3, load_model=FLAT, reference=ref) for ref in (None, 0.0)}
    for cluster in clusters.values():
        cluster.start()
        cluster.run_until(10.0)
        cluster.loads.place_job(5, cluster.now)
    assert seen(clusters[0.0], 0, 5) == clusters[0.0].loads.value(5, 10.0) == 5.0
    assert seen(clusters[None], 0, 5) == 4.0  # dshd: the job is in node 5's next report
    cluster = clusters[None]
    cluster.run_until(10.0 + 2 * 1.5 * 1.1)  # two intervals, with the jitter
    assert seen(cluster, 0, 5) > 4.9


def test_a_delayed_yardstick_sees_a_job_only_once_it_is_that_old() -> None:
    cluster = SimCluster(10, seed=3, load_model=FLAT, reference=2.0)
    cluster.start()
    cluster.run_until(10.0)
    cluster.loads.place_job(5, 10.0)
    cluster.run_until(11.8)
    assert seen(cluster, 0, 5) == 4.0
    cluster.run_until(12.2)
    assert seen(cluster, 0, 5) > 4.9


def test_exact_loads_place_better_than_reports_and_the_two_measures_agree() -> None:
    # 40 nodes: above the threshold (32), so answers come from 32 random choices
    def placement(reference: float | None) -> tuple[list[float], list[float]]:
        sc = Scenario(40, duration=120.0, warmup=30.0, crash_every=1e9, best_rate=4.0,
                      reference=reference)  # fmt: skip
        p = run(sc).placement
        return p.percentiles, p.excess

    reports, exact = placement(None), placement(0.0)
    for percentiles, excess in (reports, exact):
        assert len(percentiles) == len(excess) > 400
        # below the 10th percentile <=> at most the 10th-percentile node's load
        assert all((p < 10) == (e <= 1e-9) for p, e in zip(percentiles, excess, strict=True))
    # (the mean: at 40 nodes percentiles come in steps of 2.6, and medians may tie)
    assert fmean(exact[0]) < fmean(reports[0])
    assert percentile(exact[1], 0.9) < percentile(reports[1], 0.9)

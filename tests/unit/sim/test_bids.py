"""Best-node questions (core/bids.py) in the simulator: asks in flight on the
virtual network, answers when the bids are in or the wait is over."""

from __future__ import annotations

from dsh.core.bids import ASK_BEST
from dsh.sim.cluster import NodeConfig
from dsh.sim.metrics import percentile
from dsh.sim.scenario import Result, Scenario, run


def placed(ask_best: int, loss: float = 0.0) -> Result:
    # 40 nodes: above the threshold (32), where answers ask; 4 jobs a second
    sc = Scenario(40, loss=loss, duration=120.0, warmup=30.0, crash_every=1e9, best_rate=4.0,
                  config=NodeConfig(ask_best=ask_best))  # fmt: skip
    return run(sc)


def best10(percentiles: list[float]) -> float:
    return sum(1 for p in percentiles if p < 10) / len(percentiles)


def test_asking_places_better_than_the_reports_alone_and_costs_datagrams() -> None:
    reports, asked = placed(0), placed(ASK_BEST)
    a, r = asked.placement, reports.placement
    assert len(a.percentiles) > 400 and len(r.percentiles) > 400
    assert a.no_answer == r.no_answer == 0
    assert percentile(a.percentiles, 0.5) < percentile(r.percentiles, 0.5)
    assert percentile(a.excess, 0.9) < percentile(r.excess, 0.9)
    assert best10(a.percentiles) > best10(r.percentiles)
    # every question: ASKs, BIDs, CLAIMs; and nothing of it dropped as malformed
    assert asked.sent_per_node_s > reports.sent_per_node_s
    # counted apart (bench/membership_sim.py shows the gossip without them)
    assert reports.question_sent_per_node_s == reports.question_bytes_per_node_s == 0
    assert 0 < asked.question_sent_per_node_s < asked.sent_per_node_s
    assert 0 < asked.question_bytes_per_node_s < asked.bytes_per_node_s
    # an ASK, a BID or a CLAIM: 17-39 bytes of UDP payload and the sender's name
    assert 25 < asked.question_bytes_per_node_s / asked.question_sent_per_node_s < 55
    assert asked.core_counters.get("malformed", 0) == 0
    assert asked.core_counters["accepted"] > reports.core_counters["accepted"]


def test_under_loss_every_question_is_answered_and_runs_repeat() -> None:
    first, second = placed(ASK_BEST, loss=0.3), placed(ASK_BEST, loss=0.3)
    assert first.placement.no_answer == 0 and first.placement.dead_answer == 0
    assert first.placement.percentiles == second.placement.percentiles
    assert first.events == second.events

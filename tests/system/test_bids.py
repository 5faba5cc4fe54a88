"""Best-node questions between real dshd processes above the full-mesh threshold
(core/bids.py): five daemons on loopback, keyed, with ``--fanout-above 2``."""

from __future__ import annotations

from pathlib import Path

from support.dshd import Cluster, ClusterFactory
from support.waiting import wait_for

NODES = [f"127.0.0.{i}" for i in range(91, 96)]


def sparse_cluster(make_cluster: ClusterFactory, tmp_path: Path) -> Cluster:
    cluster = make_cluster(NODES)
    cluster.keyed_above_threshold(tmp_path / "key")
    cluster.start()
    wait_for(cluster.all_up, 20, "five daemons up everywhere")
    return cluster


def test_each_answer_asks_the_candidates_and_claims_the_node_it_names(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    cluster = sparse_cluster(make_cluster, tmp_path)
    asker = cluster.nodes[NODES[0]]
    assert "fanout 2 + 2 monitors (above 2)" in asker.status_text()
    answers = [asker.best() for _ in range(6)]
    assert set(answers) <= set(NODES), answers
    questions = asker.counters()["questions"]
    assert sum(questions.values()) == 6, questions
    assert questions["all_bids"] >= 1, questions  # loopback loses nothing
    # Every job sent to another node was claimed there: the node counts it.
    elsewhere = sum(1 for a in answers if a != asker.name)

    def claimed() -> int:
        return sum(cluster.nodes[n].counters()["bids"]["claimed"] for n in NODES[1:])

    wait_for(lambda: claimed() == elsewhere, 5, f"{elsewhere} claims at the chosen nodes")
    answered = sum(cluster.nodes[n].counters()["bids"]["answered"] for n in NODES[1:])
    assert answered >= questions["all_bids"], answered
    # Each daemon's own bids and claims, and only sealed datagrams: nothing refused.
    for name in NODES:
        datagrams = cluster.nodes[name].counters()["datagrams"]
        assert datagrams["bad_auth"] == datagrams["malformed"] == 0, (name, datagrams)

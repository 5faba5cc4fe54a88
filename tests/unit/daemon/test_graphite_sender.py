"""daemon/graphite.py without a socket: what a reading puts in the buffer, the
footer line, and what a reload carries over to the new sender."""

from __future__ import annotations

from collections import Counter

from dsh.daemon.conf import GraphiteConf
from dsh.daemon.graphite import GraphiteSender
from dsh.daemon.sensors.base import Value
from dsh.daemon.sensors.runner import SensorRunner, SensorState


def sender(conf: GraphiteConf, previous: GraphiteSender | None = None) -> GraphiteSender:
    return GraphiteSender(conf, "node1.example.org", SensorRunner({}), Counter(), Counter(),
                          previous=previous)  # fmt: skip


def reading(read_at: float = 1700000000.7) -> SensorState:
    state = SensorState("DiskUsage", 1.0, 1.0)
    state.values = (Value("free", 5.0, (("path", "/"),)), Value("free", 7.0, (("path", "/a/b"),)))
    state.read_at, state.up = read_at, True
    return state


def test_a_reading_goes_in_with_its_paths_and_whole_second() -> None:
    s = sender(GraphiteConf("carbon", 2003, prefix="c"))
    s.listener(reading())
    assert s.buffer.take() == [
        ("c.node1_example_org.DiskUsage.free.root", 5.0, 1700000000),
        ("c.node1_example_org.DiskUsage.free.a_b", 7.0, 1700000000),
    ]
    assert s.footer() == [
        "graphite sent=0 dropped=0 buffered=0 connects=0 errors=0 resent=0 connected=0"
    ]


def test_with_an_interval_the_timer_sends_not_the_listener() -> None:
    s = sender(GraphiteConf("carbon", 2003, interval=10.0))
    s.listener(reading())
    assert len(s.buffer) == 0


def test_a_reload_keeps_the_waiting_metrics_for_the_same_target_only() -> None:
    old = sender(GraphiteConf("carbon", 2003))
    old.listener(reading())
    old.stats["sent"] = 9
    same = sender(GraphiteConf("carbon", 2003, prefix="new"), previous=old)
    assert same.buffer is old.buffer and same.counters["buffered"] == 2
    assert same.counters["sent"] == 9
    other = sender(GraphiteConf("carbon", 2004, "pickle"), previous=same)
    assert other.counters["buffered"] == 0 and other.counters["dropped"] == 2
    assert other.counters["sent"] == 9


def test_dshd_own_state_has_one_path_per_instance() -> None:
    runner = SensorRunner({})
    runner.states = {"LoadAvg": SensorState("LoadAvg", 1.0, 1.0, up=True, duration=0.5)}
    for path, ok in (("/", True), ("/nfs", False)):
        state = SensorState("DiskUsage", 1.0, 1.0, {"path": (path,)}, up=ok, duration=1.0,
                            instance_option="path", instance=path)  # fmt: skip
        runner.states[state.key] = state
    s = GraphiteSender(GraphiteConf("carbon", 2003), "node1", runner, Counter(), Counter())
    s._add_own(100.0)
    got = {p: v for p, v, _ in s.buffer.take() if ".sensor_up." in p}
    assert got == {"node1.dshd.sensor_up.LoadAvg": 1.0, "node1.dshd.sensor_up.DiskUsage_root": 1.0,
                  "node1.dshd.sensor_up.DiskUsage_nfs": 0.0}  # fmt: skip

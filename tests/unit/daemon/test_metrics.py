"""daemon/metrics: the mapping of sensor values, status rows and dshd's counters to
Prometheus metrics, with hand-built Values, StatusRows and SensorStates; the text
that /metrics serves, parsed back by prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from support.gossip_node import make_node

from dsh import __version__
from dsh.core.gossip import StatusRow
from dsh.core.wire import Usage
from dsh.daemon.http import parse_head
from dsh.daemon.metrics import (
    BY_LABEL,
    EXPORTS,
    OMITTED,
    DshdCollector,
    Own,
    cluster_families,
    export_value,
    http_pages,
    is_fresh,
    own_families,
    render,
    sensor_families,
)
from dsh.daemon.sensors.base import Value
from dsh.daemon.sensors.catalogue import SENSORS
from dsh.daemon.sensors.runner import SensorState

NOW = 1_700_000_000.0  # wall clock: the readings' timestamps
MONO = 5_000.0  # monotonic clock: their ages

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(families: Iterable[Metric]) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def state(name: str, values: list[Value], *, up: bool | None = True, age: float = 1.0,
          interval: float = 10.0, timeout: float = 5.0) -> SensorState:  # fmt: skip
    return SensorState(name, interval, timeout, values=tuple(values),
                       read_at=None if up is None else NOW - age,
                       read_mono=None if up is None else MONO - age, up=up,
                       duration=0.01 if up is not None else None)  # fmt: skip


def row(name: str, state: str = "up", usage: Usage | None = None, **kw: object) -> StatusRow:
    fields: dict[str, object] = dict(
        name=name, state=state, load=1.5, ncpu=4, mem_avail=3 << 30, loadscale=1.0,
        memscale=2.0, score=0.4, age=0.3, load1=1.25, extra=0.0, is_self=False,
        mem_total=8 << 30, drained=state == "drained", usage=usage,
    )  # fmt: skip
    fields.update(kw)
    return StatusRow(**fields)  # type: ignore[arg-type]


# -- the mapping table ------------------------------------------------------------------


def test_every_sensor_field_is_exported_or_omitted_on_purpose() -> None:
    fields = {(s.name, f.name) for s in SENSORS.values() for f in s.fields}
    assert fields - set(EXPORTS) == OMITTED
    assert set(EXPORTS) <= fields  # no mapping of a field that no sensor has


def test_counters_end_in_total_and_gauges_do_not() -> None:
    for export in EXPORTS.values():
        assert export.metric.endswith("_total") == (export.kind == "counter"), export.metric
        assert export.metric.startswith(("node_", "dsh_")), export.metric


def test_units_become_base_units() -> None:
    def one(sensor: str, value: Value) -> tuple[str, dict[str, str], float]:
        found = export_value(sensor, value)
        assert found is not None
        return found[0].metric, found[1], found[2]

    assert one("CPUPercent", Value("percent", 50.0, (("cpu", "1"),))) == (
        "dsh_cpu_busy_ratio", {"cpu": "1"}, 0.5)  # fmt: skip
    assert one("NetIFStats", Value("speed", 1000.0, (("device", "eth0"),))) == (
        "node_network_speed_bytes", {"device": "eth0"}, 125_000_000.0)  # fmt: skip
    assert one("CPUFreq", Value("current", 2400.0, (("cpu", "0"),))) == (
        "node_cpu_scaling_frequency_hertz", {"cpu": "0"}, 2.4e9)  # fmt: skip
    assert one("DiskUsage", Value("free", 7.0, (("path", "/scratch"),))) == (
        "node_filesystem_avail_bytes", {"mountpoint": "/scratch"}, 7.0)  # fmt: skip
    assert one("CPUCount", Value("physical", 2.0)) == ("dsh_cpus", {"kind": "physical"}, 2.0)
    assert one("SensorsBattery", Value("percent", 80.0)) == ("dsh_battery_ratio", {}, 0.8)
    assert one("GPU", Value("utilization", 30.0, (("gpu", "0"), ("name", "T4")))) == (
        "dsh_gpu_utilization_ratio", {"gpu": "0", "name": "T4"}, 0.3)  # fmt: skip
    # seconds already: the sensor turned psutil's milliseconds into seconds
    assert one("DiskIOCounters", Value("busy_time", 1.5, (("device", "sda"),)))[2] == 1.5
    # psutil's 0 for an unknown minimum frequency is no frequency
    assert export_value("CPUFreq", Value("min", 0.0, (("cpu", "0"),))) is None
    assert export_value("VirtualMemory", Value("percent", 40.0)) is None
    assert export_value("NoSuchSensor", Value("x", 1.0)) is None


def test_sensor_values_under_node_exporter_names() -> None:
    cpu = state("CPUTimes", [Value("seconds", 10.0, (("cpu", "0"), ("mode", "user"))),
                             Value("seconds", 90.0, (("cpu", "0"), ("mode", "idle")))])  # fmt: skip
    memory = state("VirtualMemory", [Value("total", 8e9), Value("available", 3e9),
                                     Value("percent", 62.5), Value("used", 5e9)])  # fmt: skip
    load = state("LoadAvg", [Value("load1", 0.5), Value("load5", 0.4), Value("load15", 0.3)])
    got = samples(sensor_families([cpu, memory, load], MONO))
    assert got == {
        ("node_cpu_seconds_total", (("cpu", "0"), ("mode", "user"))): 10.0,
        ("node_cpu_seconds_total", (("cpu", "0"), ("mode", "idle"))): 90.0,
        ("node_memory_MemTotal_bytes", ()): 8e9,
        ("node_memory_MemAvailable_bytes", ()): 3e9,
        ("dsh_memory_used_bytes", ()): 5e9,
        ("node_load1", ()): 0.5,
        ("node_load5", ()): 0.4,
        ("node_load15", ()): 0.3,
    }


def test_guest_time_is_node_exporters_guest_metric_not_a_cpu_mode() -> None:
    """Linux counts guest in user and guest_nice in nice already: node_exporter exports
    them apart, so that a sum over node_cpu_seconds_total's modes counts each second once."""
    modes = ("user", "nice", "idle", "guest", "guest_nice")
    cpu = state("CPUTimes", [Value("seconds", float(i), (("cpu", "1"), ("mode", m)))
                             for i, m in enumerate(modes)])  # fmt: skip
    assert samples(sensor_families([cpu], MONO)) == {
        ("node_cpu_seconds_total", (("cpu", "1"), ("mode", "user"))): 0.0,
        ("node_cpu_seconds_total", (("cpu", "1"), ("mode", "nice"))): 1.0,
        ("node_cpu_seconds_total", (("cpu", "1"), ("mode", "idle"))): 2.0,
        ("node_cpu_guest_seconds_total", (("cpu", "1"), ("mode", "user"))): 3.0,
        ("node_cpu_guest_seconds_total", (("cpu", "1"), ("mode", "nice"))): 4.0,
    }
    for export in BY_LABEL.values():
        assert export.metric.endswith("_total") == (export.kind == "counter"), export.metric


def test_psutils_cached_is_not_node_exporters_cached() -> None:
    """psutil's cached is meminfo Cached + SReclaimable; node_exporter's name means Cached."""
    found = export_value("VirtualMemory", Value("cached", 5.0))
    assert found is not None and found[0].metric == "dsh_memory_cached_bytes"
    assert "node_memory_Cached_bytes" not in {e.metric for e in EXPORTS.values()}


def test_two_fields_of_one_metric_make_one_family() -> None:
    count = state("CPUCount", [Value("logical", 8.0), Value("physical", 4.0)])
    families = sensor_families([count], MONO)
    assert [f.name for f in families] == ["dsh_cpus"]
    assert samples(families) == {("dsh_cpus", (("kind", "logical"),)): 8.0,
                                 ("dsh_cpus", (("kind", "physical"),)): 4.0}  # fmt: skip


# -- a sensor that is down exports nothing ----------------------------------------------


@pytest.mark.parametrize(
    ("up", "age", "fresh"),
    [(True, 1.0, True), (True, 25.0, True), (True, 25.1, False), (False, 1.0, False),
     (None, 0.0, False)],
)  # fmt: skip
def test_a_sensor_is_up_while_its_last_reading_succeeded_and_is_fresh(
    up: bool | None, age: float, fresh: bool
) -> None:
    load = state("LoadAvg", [Value("load1", 0.5)], up=up, age=age, interval=10.0, timeout=5.0)
    assert is_fresh(load, MONO) is fresh  # 2 intervals + the timeout: 25 s
    values = samples(sensor_families([load], MONO))
    assert values == ({("node_load1", ()): 0.5} if fresh else {})
    own = samples(own_families(Own("n", {}, {}, {}, {}), [load], MONO))
    assert own[("dsh_sensor_up", (("sensor", "LoadAvg"),))] == float(fresh)


def test_freshness_is_the_monotonic_clocks_not_the_wall_clocks() -> None:
    """An NTP step moves the wall clock: a reading's age must not move with it."""
    load = state("LoadAvg", [Value("load1", 0.5)], age=1.0)
    load.read_at = NOW - 3600.0  # the wall clock stepped an hour on since
    assert is_fresh(load, MONO)
    dead = state("LoadAvg", [Value("load1", 0.5)], age=60.0)
    dead.read_at = NOW + 3600.0  # ... or an hour back: the dead sensor is still stale
    assert not is_fresh(dead, MONO)
    got = samples(own_families(Own("n", {}, {}, {}, {}), [load], MONO))
    label = (("sensor", "LoadAvg"),)
    assert got[("dsh_sensor_last_reading_timestamp_seconds", label)] == NOW - 3600.0  # wall


def test_sensor_state_metrics() -> None:
    s = state("DiskUsage", [], age=2.0)
    s.errors, s.skipped = 3, 1
    got = samples(own_families(Own("n", {}, {}, {}, {}), [s, state("GPU", [], up=None)], MONO))
    label = (("sensor", "DiskUsage"),)
    assert got[("dsh_sensor_up", label)] == 1.0
    assert got[("dsh_sensor_errors_total", label)] == 3.0
    assert got[("dsh_sensor_skipped_total", label)] == 1.0
    assert got[("dsh_sensor_duration_seconds", label)] == 0.01
    assert got[("dsh_sensor_last_reading_timestamp_seconds", label)] == NOW - 2.0
    # before its first reading: 0, counters, and no duration or timestamp
    gpu = (("sensor", "GPU"),)
    assert got[("dsh_sensor_up", gpu)] == 0.0
    assert ("dsh_sensor_duration_seconds", gpu) not in got
    assert ("dsh_sensor_last_reading_timestamp_seconds", gpu) not in got


def test_an_instance_of_a_sensor_has_its_option_as_a_label_the_others_do_not() -> None:
    # An interval that keeps a reading fresh whatever clock ``now`` is: this is about labels.
    ever = 1e10
    root = state("DiskUsage", [Value("free", 7.0, (("path", "/"),))], interval=ever)
    nfs = state("DiskUsage", [], up=False, interval=ever)
    for s, path in ((root, "/"), (nfs, "/nfs")):
        s.options, s.instance_option, s.instance = {"path": (path,)}, "path", path
    nfs.errors, nfs.skipped, nfs.duration = 1, 4, 5.0
    load = state("LoadAvg", [Value("load1", 0.5)], interval=ever)
    own = Own("n", {}, {}, {}, {})
    got = samples(own_families(own, [root, nfs, load], NOW))
    slash = (("path", "/"), ("sensor", "DiskUsage"))
    hung = (("path", "/nfs"), ("sensor", "DiskUsage"))
    assert got[("dsh_sensor_up", slash)] == 1.0 and got[("dsh_sensor_up", hung)] == 0.0
    assert got[("dsh_sensor_up", (("sensor", "LoadAvg"),))] == 1.0
    assert got[("dsh_sensor_errors_total", hung)] == 1.0
    assert got[("dsh_sensor_skipped_total", hung)] == 4.0
    assert got[("dsh_sensor_duration_seconds", hung)] == 5.0
    assert got[("dsh_sensor_last_reading_timestamp_seconds", slash)] == NOW - 1.0
    # / exports its values while /nfs is down; the page parses back, each with its labels
    assert samples(sensor_families([root, nfs], NOW)) == {
        ("node_filesystem_avail_bytes", (("mountpoint", "/"),)): 7.0
    }
    text = render(Fixed(own_families(own, [root, nfs, load], NOW))).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name in ("dsh_sensor_up", "dsh_sensor_errors"):  # (a counter: the parser drops _total)
        assert [s.labels for s in families[name].samples] == [
            {"sensor": "DiskUsage", "path": "/"},
            {"sensor": "DiskUsage", "path": "/nfs"},
            {"sensor": "LoadAvg"},
        ]


class Fixed(Collector):
    """Families made beforehand, as /metrics renders them."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


# -- the cluster -----------------------------------------------------------------------


def test_cluster_rows_with_usage() -> None:
    usage = Usage(cpu_user=0.25, cpu_system=0.05, cpu_idle=0.6, cpu_iowait=0.1,
                  disk_read=1000.0, disk_write=2000.0, net_receive=300.0, net_transmit=400.0,
                  swap_used=1 << 20, swap_total=1 << 30)  # fmt: skip
    got = samples(cluster_families([row("a", usage=usage)]))
    a = (("node", "a"),)
    assert got[("dsh_node_up", a)] == 1.0
    assert got[("dsh_node_drained", a)] == 0.0
    assert got[("dsh_node_load", a)] == 1.5
    assert got[("dsh_node_load1", a)] == 1.25
    assert got[("dsh_node_cpus", a)] == 4.0
    assert got[("dsh_node_score", a)] == 0.4
    assert got[("dsh_node_memory_available_bytes", a)] == 3 << 30
    assert got[("dsh_node_memory_total_bytes", a)] == 8 << 30
    assert got[("dsh_node_memscale", a)] == 2.0
    assert got[("dsh_node_last_report_age_seconds", a)] == 0.3
    assert got[("dsh_node_swap_used_bytes", a)] == 1 << 20
    assert got[("dsh_node_swap_total_bytes", a)] == 1 << 30
    assert got[("dsh_node_cpu_ratio", (("mode", "iowait"), ("node", "a")))] == 0.1
    assert got[("dsh_node_cpu_ratio", (("mode", "user"), ("node", "a")))] == 0.25
    assert got[("dsh_node_disk_written_bytes_per_second", a)] == 2000.0
    assert got[("dsh_node_network_transmit_bytes_per_second", a)] == 400.0


def test_a_down_node_is_up_0_without_its_last_values_and_old_nodes_without_usage() -> None:
    rows = [row("up-v1"), row("gone", "down", score=None), row("never", "down", load=None,
            ncpu=None, mem_avail=None, score=None, age=None, load1=None, mem_total=None),
            row("d", "drained")]  # fmt: skip
    got = samples(cluster_families(rows))
    assert got[("dsh_node_up", (("node", "gone"),))] == 0.0
    assert got[("dsh_node_up", (("node", "never"),))] == 0.0
    assert got[("dsh_node_up", (("node", "d"),))] == 1.0
    assert got[("dsh_node_drained", (("node", "d"),))] == 1.0
    for name in ("gone", "never"):
        assert ("dsh_node_load", (("node", name),)) not in got
        assert ("dsh_node_score", (("node", name),)) not in got
    assert ("dsh_node_last_report_age_seconds", (("node", "never"),)) not in got
    assert ("dsh_node_last_report_age_seconds", (("node", "gone"),)) in got
    assert ("dsh_node_cpu_ratio", (("mode", "user"), ("node", "up-v1"))) not in got
    assert ("dsh_node_swap_used_bytes", (("node", "up-v1"),)) not in got


def test_suspect_is_live_with_its_values_left_is_like_down_and_the_state_set() -> None:
    rows = [row("s", "suspect", age=3.5), row("l", "left", score=None),
            row("f", listed=False), row("u"), row("d", "drained"), row("x", "down")]  # fmt: skip
    got = samples(cluster_families(rows))

    def one(name: str, node: str) -> float:
        return got[(name, (("node", node),))]

    assert [one("dsh_node_up", n) for n in "slfudx"] == [1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    assert one("dsh_node_load", "s") == 1.5 and one("dsh_node_cpus", "s") == 4.0
    assert ("dsh_node_load", (("node", "l"),)) not in got
    assert ("dsh_node_cpus", (("node", "l"),)) not in got
    assert one("dsh_node_last_report_age_seconds", "l") == 0.3
    assert [one("dsh_node_listed", n) for n in "slfudx"] == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    # every node has one series per state, 1 for its own: sum by (state) counts them
    states = {labels: v for (name, labels), v in got.items() if name == "dsh_node_state"}
    assert len(states) == 5 * len(rows)
    mine = {dict(labels)["node"]: dict(labels)["state"] for labels, v in states.items() if v}
    assert mine == {"s": "suspect", "l": "left", "f": "up", "u": "up", "d": "drained",
                    "x": "down"}  # fmt: skip
    assert {dict(labels)["state"] for labels in states} == {"up", "drained", "suspect", "down",
                                                            "left"}  # fmt: skip


# -- dshd's own, and the whole page -------------------------------------------------------


def test_own_counters() -> None:
    own = Own("n1", {"accepted": 5, "malformed": 1}, {"served": 2, "none": 1},
              {"served": 3, "denied": 1}, {"n1": 4},
              {"sent": 10.0, "dropped": 2.0, "buffered": 7.0},
              {"suspected": 3, "refuted": 2, "declared_down": 1}, 2)  # fmt: skip
    got = samples(own_families(own, [], MONO))
    assert got[("dsh_membership_events_total", (("event", "suspected"),))] == 3.0
    assert got[("dsh_membership_events_total", (("event", "declared_down"),))] == 1.0
    assert got[("dsh_membership_health", ())] == 2.0
    assert got[("dsh_build_info", (("node", "n1"), ("version", __version__)))] == 1.0
    assert got[("dsh_datagrams_total", (("outcome", "malformed"),))] == 1.0
    assert got[("dsh_tcp_clients_total", (("outcome", "served"),))] == 2.0
    assert got[("dsh_http_requests_total", (("outcome", "denied"),))] == 1.0
    assert got[("dsh_best_node_answers_total", (("node", "n1"),))] == 4.0
    assert got[("dsh_best_node_none_total", ())] == 1.0  # not a node, not a client outcome
    assert ("dsh_tcp_clients_total", (("outcome", "none"),)) not in got
    assert got[("dsh_graphite_sent_total", ())] == 10.0
    assert got[("dsh_graphite_dropped_total", ())] == 2.0
    assert got[("dsh_graphite_buffered", ())] == 7.0
    without = samples(own_families(Own("n1", {}, {}, {}, {}), [], MONO))
    assert not any(name.startswith("dsh_graphite") for name, _ in without)


def test_the_page_parses_back_with_one_help_and_type_per_family() -> None:
    node = make_node()
    sensors = [state("CPUTimes", [Value("seconds", 1.0, (("cpu", "0"), ("mode", "user")))]),
               state("DiskUsage", [Value("total", 9.0, (("path", '/we"ird\\path'),))])]  # fmt: skip
    collector = DshdCollector(node, lambda: Own(node.name, node.counters, {}, {}, {}),
                              lambda: sensors, lambda: MONO)  # fmt: skip
    text = render(collector).decode()
    names = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(names) == len(set(names))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["node_cpu_seconds"].type == "counter"  # the parser drops _total
    assert {s.labels["node"] for s in families["dsh_node_up"].samples} == {"127.0.0.1",
                                                                          "127.0.0.2"}  # fmt: skip
    size = families["node_filesystem_size_bytes"].samples[0]
    assert size.labels == {"mountpoint": '/we"ird\\path'} and size.value == 9.0
    pages = http_pages(collector)
    get = parse_head(b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
    body, content_type = pages["/metrics"](get)
    assert content_type.startswith("text/plain; version=0.0.4") and b"dsh_build_info" in body

"""What ``GET /metrics`` says, in the Prometheus text format: custom collectors on a
private registry (no process or platform collectors: dshd's own cost is not
what a cluster's dashboards are about, and node_exporter's names cover the node).

Three parts, each a pure function of what the daemon holds, so that the unit
tests build their input by hand:

- ``cluster_families(rows)``: the cluster as this daemon sees it, one series
  per member (label ``node``); ONE scrape target shows the whole cluster.
  ``dsh_node_up`` is 1 for a live member (up, drained or suspect: a suspect
  one is most likely fine, and an alert on ``dsh_node_up == 0`` must not fire
  on a lost datagram) and 0 for one down or left; ``dsh_node_state{state}`` is
  the state itself, 1 for the member's and 0 for the other four (a state set,
  so ``sum by (state)`` counts them), and ``dsh_node_listed`` says whether it
  is in the cluster file (0: found by discovery). A member that is down or
  left exports those, its weights, age and extra load, but no load, memory or
  usage: those would be its last report's, and a graph should show a gap
  rather than a flat line from a dead node.
- ``own_families(...)``: dshd's counters (datagrams, TCP clients, HTTP requests,
  best-node answers, Graphite) and the state of each sensor.
- ``sensor_families(states, now)`` (``now`` monotonic): this node's sensor values under
  node_exporter's names where node_exporter has the same quantity (so the
  node dashboard works with node_exporter too), under ``dsh_`` names
  otherwise, in base units (percent -> ratio, MHz -> Hz, Mbit/s -> bytes/s).
  ``EXPORTS`` is the mapping table; a field absent from it is not exported
  (``OMITTED`` names those on purpose: shares that are one division away).

A sensor that is down exports nothing, as a failed node_exporter collector
does (node_scrape_collector_success 0 and no values for that scrape):
``dsh_sensor_up{sensor}`` is 1 only while the last reading succeeded AND it
is fresh, that is no older than 2 intervals + the timeout (a reading that is
late by more than that is hung or its timer is dead); otherwise it is 0 and
the sensor's values are left out, so that Prometheus marks them stale and no
dashboard shows an old value as the current one. 0 also before the first
reading has ended.
"""

# ruff: noqa: E501  (EXPORTS is a table: one line per field reads better than three)

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from .. import __version__
from ..core.gossip import GossipNode, StatusRow
from ..core.status import LIVE, STATES
from .http import Body, Request
from .sensors.base import Value
from .sensors.runner import SensorState

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what Prometheus 2.x parses; generate_latest writes it

GAUGE, COUNTER = "gauge", "counter"
_MB_BITS = 1e6 / 8  # Mbit/s -> bytes/s (node_exporter's node_network_speed_bytes)


class _Families:
    """Metric families by name, in the order first seen; each name has one type and label set."""

    def __init__(self) -> None:
        self._by_name: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}

    def add(self, name: str, kind: str, help: str, labels: Mapping[str, str], value: float) -> None:
        family = self._by_name.get(name)
        if family is None:
            family = (CounterMetricFamily if kind == COUNTER else GaugeMetricFamily)(name, help)
            self._by_name[name] = family
        # Each sample its own label names (add_metric would give it the
        # family's first): an instance's state has one more (dsh_sensor_up's path).
        family.samples.append(Sample(family.name + ("_total" if kind == COUNTER else ""),
                                     dict(labels), value))  # fmt: skip

    def families(self) -> list[Metric]:
        return list(self._by_name.values())


# -- this node's sensors ------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    """How one sensor field becomes one metric."""

    metric: str
    kind: str  # GAUGE or COUNTER (counters' names end in _total)
    help: str
    labels: tuple[str, ...] = ()  # the metric's label names, taken from the Value's (renamed)
    scale: float = 1.0  # multiplies the value into the metric's base unit
    rename: tuple[tuple[str, str], ...] = ()  # Value label -> metric label
    const: tuple[tuple[str, str], ...] = ()  # labels with a fixed value, after the others
    skip_zero: bool = False  # 0 means "unknown" for this field (psutil's CPU min/max)


def _e(metric: str, kind: str, help: str, *labels: str, **kw: object) -> Export:
    return Export(metric, kind, help, labels, **kw)  # type: ignore[arg-type]


G, C = GAUGE, COUNTER
_DISK, _NIC, _CPU, _HW = ("device",), ("device",), ("cpu",), ("chip", "sensor")
_MOUNT = {"rename": (("path", "mountpoint"),)}

# (sensor, field) -> its metric. node_exporter's names and units where it has the quantity.
EXPORTS: dict[tuple[str, str], Export] = {
    ("CPUTimes", "seconds"): _e("node_cpu_seconds_total", C, "Seconds the CPUs spent in each mode.", "cpu", "mode"),
    ("LoadAvg", "load1"): _e("node_load1", G, "1m load average."),
    ("LoadAvg", "load5"): _e("node_load5", G, "5m load average."),
    ("LoadAvg", "load15"): _e("node_load15", G, "15m load average."),
    ("VirtualMemory", "total"): _e("node_memory_MemTotal_bytes", G, "Memory information field MemTotal_bytes."),
    ("VirtualMemory", "available"): _e("node_memory_MemAvailable_bytes", G, "Memory information field MemAvailable_bytes."),
    ("VirtualMemory", "free"): _e("node_memory_MemFree_bytes", G, "Memory information field MemFree_bytes."),
    ("VirtualMemory", "buffers"): _e("node_memory_Buffers_bytes", G, "Memory information field Buffers_bytes."),
    # psutil's cached is /proc/meminfo's Cached + SReclaimable (what free(1) counts as
    # cache); node_exporter's node_memory_Cached_bytes is Cached alone: not the same number.
    ("VirtualMemory", "cached"): _e("dsh_memory_cached_bytes", G, "Page cache and reclaimable slab (meminfo Cached + SReclaimable)."),
    ("VirtualMemory", "active"): _e("node_memory_Active_bytes", G, "Memory information field Active_bytes."),
    ("VirtualMemory", "inactive"): _e("node_memory_Inactive_bytes", G, "Memory information field Inactive_bytes."),
    ("VirtualMemory", "shared"): _e("node_memory_Shmem_bytes", G, "Memory information field Shmem_bytes."),
    ("VirtualMemory", "slab"): _e("node_memory_Slab_bytes", G, "Memory information field Slab_bytes."),
    ("VirtualMemory", "used"): _e("dsh_memory_used_bytes", G, "Memory in use (psutil's used)."),
    ("SwapMemory", "total"): _e("node_memory_SwapTotal_bytes", G, "Memory information field SwapTotal_bytes."),
    ("SwapMemory", "free"): _e("node_memory_SwapFree_bytes", G, "Memory information field SwapFree_bytes."),
    ("SwapMemory", "used"): _e("dsh_swap_used_bytes", G, "Swap space in use."),
    ("SwapMemory", "sin"): _e("dsh_swap_in_bytes_total", C, "Bytes swapped in since boot."),
    ("SwapMemory", "sout"): _e("dsh_swap_out_bytes_total", C, "Bytes swapped out since boot."),
    ("DiskIOCounters", "read_count"): _e("node_disk_reads_completed_total", C, "The total number of reads completed successfully.", *_DISK),
    ("DiskIOCounters", "write_count"): _e("node_disk_writes_completed_total", C, "The total number of writes completed successfully.", *_DISK),
    ("DiskIOCounters", "read_bytes"): _e("node_disk_read_bytes_total", C, "The total number of bytes read successfully.", *_DISK),
    ("DiskIOCounters", "write_bytes"): _e("node_disk_written_bytes_total", C, "The total number of bytes written successfully.", *_DISK),
    # The sensor has turned psutil's milliseconds into seconds already.
    ("DiskIOCounters", "read_time"): _e("node_disk_read_time_seconds_total", C, "The total number of seconds spent by all reads.", *_DISK),
    ("DiskIOCounters", "write_time"): _e("node_disk_write_time_seconds_total", C, "This is the total number of seconds spent by all writes.", *_DISK),
    ("DiskIOCounters", "busy_time"): _e("node_disk_io_time_seconds_total", C, "Total seconds spent doing I/Os.", *_DISK),
    ("DiskUsage", "total"): _e("node_filesystem_size_bytes", G, "Filesystem size in bytes.", "mountpoint", **_MOUNT),
    ("DiskUsage", "free"): _e("node_filesystem_avail_bytes", G, "Filesystem space available to non-root users in bytes.", "mountpoint", **_MOUNT),
    ("DiskUsage", "used"): _e("dsh_filesystem_used_bytes", G, "Filesystem space in use in bytes.", "mountpoint", **_MOUNT),
    ("NetIOCounters", "bytes_recv"): _e("node_network_receive_bytes_total", C, "Network device statistic receive_bytes.", *_NIC),
    ("NetIOCounters", "bytes_sent"): _e("node_network_transmit_bytes_total", C, "Network device statistic transmit_bytes.", *_NIC),
    ("NetIOCounters", "packets_recv"): _e("node_network_receive_packets_total", C, "Network device statistic receive_packets.", *_NIC),
    ("NetIOCounters", "packets_sent"): _e("node_network_transmit_packets_total", C, "Network device statistic transmit_packets.", *_NIC),
    ("NetIOCounters", "errin"): _e("node_network_receive_errs_total", C, "Network device statistic receive_errs.", *_NIC),
    ("NetIOCounters", "errout"): _e("node_network_transmit_errs_total", C, "Network device statistic transmit_errs.", *_NIC),
    ("NetIOCounters", "dropin"): _e("node_network_receive_drop_total", C, "Network device statistic receive_drop.", *_NIC),
    ("NetIOCounters", "dropout"): _e("node_network_transmit_drop_total", C, "Network device statistic transmit_drop.", *_NIC),
    ("NetIFStats", "isup"): _e("node_network_up", G, "1 when the interface is up.", *_NIC),
    ("NetIFStats", "speed"): _e("node_network_speed_bytes", G, "Link speed in bytes per second (0: unknown).", *_NIC, scale=_MB_BITS),
    ("NetIFStats", "mtu"): _e("node_network_mtu_bytes", G, "Largest packet in bytes.", *_NIC),
    ("CPUStats", "ctx_switches"): _e("node_context_switches_total", C, "Total number of context switches."),
    ("CPUStats", "interrupts"): _e("node_intr_total", C, "Total number of interrupts serviced."),
    ("CPUStats", "soft_interrupts"): _e("dsh_cpu_soft_interrupts_total", C, "Software interrupts since boot."),
    ("CPUStats", "syscalls"): _e("dsh_cpu_syscalls_total", C, "System calls since boot (0 on Linux)."),
    ("CPUFreq", "current"): _e("node_cpu_scaling_frequency_hertz", G, "Current scaled CPU thread frequency in hertz.", *_CPU, scale=1e6),
    ("CPUFreq", "min"): _e("node_cpu_scaling_frequency_min_hertz", G, "Minimum scaled CPU thread frequency in hertz.", *_CPU, scale=1e6, skip_zero=True),
    ("CPUFreq", "max"): _e("node_cpu_scaling_frequency_max_hertz", G, "Maximum scaled CPU thread frequency in hertz.", *_CPU, scale=1e6, skip_zero=True),
    ("BootTime", "boot_time"): _e("node_boot_time_seconds", G, "Node boot time, in unixtime."),
    ("SensorsTemperatures", "current"): _e("node_hwmon_temp_celsius", G, "Hardware monitor for temperature (input).", *_HW),
    ("SensorsTemperatures", "high"): _e("node_hwmon_temp_max_celsius", G, "Hardware monitor for temperature (max).", *_HW),
    ("SensorsTemperatures", "critical"): _e("node_hwmon_temp_crit_celsius", G, "Hardware monitor for temperature (crit).", *_HW),
    ("SensorsFans", "current"): _e("node_hwmon_fan_rpm", G, "Hardware monitor for fan revolutions per minute (input).", *_HW),
    # node_exporter has no such quantity: dsh_ names, base units.
    ("CPUPercent", "percent"): _e("dsh_cpu_busy_ratio", G, "Busy share of each CPU since the last reading.", *_CPU, scale=0.01),
    ("CPUTimesPercent", "percent"): _e("dsh_cpu_mode_ratio", G, "Share of all CPUs' time in each mode since the last reading.", "mode", scale=0.01),
    ("CPUCount", "logical"): _e("dsh_cpus", G, "CPUs by kind.", const=(("kind", "logical"),)),
    ("CPUCount", "physical"): _e("dsh_cpus", G, "CPUs by kind.", const=(("kind", "physical"),)),
    ("NetConnections", "count"): _e("dsh_net_connections", G, "Internet sockets by kind and state.", "kind", "status"),
    ("NetIFAddrs", "addresses"): _e("dsh_network_addresses", G, "Addresses of each interface by family.", "device", "family"),
    ("DiskPartitions", "mounted"): _e("dsh_filesystem_mounted", G, "1 for each mounted partition.", "device", "mountpoint", "fstype"),
    ("Users", "sessions"): _e("dsh_user_sessions", G, "Login sessions of each user.", "user"),
    ("SensorsBattery", "percent"): _e("dsh_battery_ratio", G, "Battery charge, 0..1.", scale=0.01),
    ("SensorsBattery", "secsleft"): _e("dsh_battery_seconds_left", G, "Battery time left."),
    ("SensorsBattery", "power_plugged"): _e("dsh_battery_plugged", G, "1 on mains power."),
    ("GPU", "utilization"): _e("dsh_gpu_utilization_ratio", G, "Busy share of the GPU, 0..1.", "gpu", "name", scale=0.01),
    ("GPU", "memory_used"): _e("dsh_gpu_memory_used_bytes", G, "GPU memory in use.", "gpu", "name"),
    ("GPU", "memory_total"): _e("dsh_gpu_memory_total_bytes", G, "GPU memory on the board.", "gpu", "name"),
    ("GPU", "temperature"): _e("dsh_gpu_temperature_celsius", G, "GPU core temperature.", "gpu", "name"),
    ("GPU", "power"): _e("dsh_gpu_power_watts", G, "GPU power draw.", "gpu", "name"),
}  # fmt: skip

# Values that one of their labels sends elsewhere: (sensor, field, (label, value)) -> metric,
# looked up before EXPORTS. Linux counts guest time in user and guest_nice in nice too;
# node_exporter keeps them out of node_cpu_seconds_total (a sum over its modes is then
# the CPU's time, once) and exports them as node_cpu_guest_seconds_total{mode="user"|"nice"}.
_GUEST = "node_cpu_guest_seconds_total"
_GUEST_HELP = "Seconds the CPUs spent in guests (VMs) for each mode."
BY_LABEL: dict[tuple[str, str, tuple[str, str]], Export] = {
    ("CPUTimes", "seconds", ("mode", "guest")): _e(_GUEST, C, _GUEST_HELP, "cpu", const=(("mode", "user"),)),
    ("CPUTimes", "seconds", ("mode", "guest_nice")): _e(_GUEST, C, _GUEST_HELP, "cpu", const=(("mode", "nice"),)),
}  # fmt: skip

# Fields not exported on purpose: each is a share of two exported values.
OMITTED = {("VirtualMemory", "percent"), ("SwapMemory", "percent"), ("DiskUsage", "percent")}


def export_value(sensor: str, value: Value) -> tuple[Export, dict[str, str], float] | None:
    """The metric, its labels and the scaled value for one sensor value; None: not exported."""
    export = next((e for e in (BY_LABEL.get((sensor, value.field, label)) for label in value.labels)
                   if e is not None), None) or EXPORTS.get((sensor, value.field))  # fmt: skip
    if export is None or (export.skip_zero and value.value == 0):
        return None
    rename = dict(export.rename)
    have = {rename.get(k, k): v for k, v in value.labels}
    labels = {name: have.get(name, "") for name in export.labels}
    labels.update(export.const)
    return export, labels, value.value * export.scale


def is_fresh(state: SensorState, now: float) -> bool:
    """Up, with a reading no older than 2 intervals + the timeout. ``now`` is the
    monotonic clock, as ``read_mono``: a step of the wall clock (NTP) must neither
    make every sensor stale nor keep a dead one fresh."""
    return (
        state.up is True
        and state.read_mono is not None
        and now - state.read_mono <= 2 * state.interval + state.timeout
    )


def _add_sensor_values(out: _Families, states: Iterable[SensorState], now: float) -> None:
    for state in states:
        if not is_fresh(state, now):
            continue
        for value in state.values:
            found = export_value(state.name, value)
            if found is not None:
                export, labels, number = found
                out.add(export.metric, export.kind, export.help, labels, number)


def sensor_families(states: Iterable[SensorState], now: float) -> list[Metric]:
    out = _Families()
    _add_sensor_values(out, states, now)
    return out.families()


# -- the cluster ----------------------------------------------------------------------

_CPU_MODES = ("user", "system", "idle", "iowait")


def _add_cluster(out: _Families, rows: Iterable[StatusRow]) -> None:
    def gauge(name: str, help: str, row: StatusRow, value: float | None, **extra: str) -> None:
        if value is not None:
            out.add(name, GAUGE, help, {"node": row.name, **extra}, float(value))

    for row in rows:
        up = row.state in LIVE
        gauge("dsh_node_up", "1 when the node is live (up, drained or suspect), 0 when down "
              "or left.", row, up)  # fmt: skip
        for state in STATES:
            gauge("dsh_node_state", "1 for the node's membership state, 0 for the others.",
                  row, row.state == state, state=state)  # fmt: skip
        gauge("dsh_node_listed", "1 when the node is in the cluster file, 0 when found by "
              "discovery.", row, row.listed)  # fmt: skip
        gauge("dsh_node_drained", "1 when the node is drained (takes no new jobs).", row,
              row.drained or row.state == "drained")  # fmt: skip
        gauge("dsh_node_loadscale", "The node's load weight in the cluster file.", row,
              row.loadscale)  # fmt: skip
        gauge("dsh_node_memscale", "The node's memory weight in the cluster file.", row,
              row.memscale)  # fmt: skip
        gauge("dsh_node_extra_load", "Load added for the jobs just given to the node.", row,
              row.extra)  # fmt: skip
        gauge("dsh_node_last_report_age_seconds", "Seconds since the node's last report.", row,
              row.age)  # fmt: skip
        gauge("dsh_node_score", "The node's score (lower is chosen first).", row, row.score)
        if not up:
            continue  # its last report's values are no longer its state
        gauge("dsh_node_load", "The effective load the score uses.", row, row.load)
        gauge("dsh_node_load1", "The node's 1-minute load average.", row, row.load1)
        gauge("dsh_node_cpus", "The node's logical CPUs.", row, row.ncpu)
        gauge("dsh_node_memory_available_bytes", "The node's available memory.", row,
              row.mem_avail)  # fmt: skip
        gauge("dsh_node_memory_total_bytes", "The node's memory.", row, row.mem_total)
        u = row.usage
        if u is None:
            continue
        gauge("dsh_node_swap_used_bytes", "The node's swap in use.", row, u.swap_used)
        gauge("dsh_node_swap_total_bytes", "The node's swap space.", row, u.swap_total)
        for mode in _CPU_MODES:
            gauge("dsh_node_cpu_ratio", "Share of the node's CPU time in a mode, 0..1.", row,
                  getattr(u, f"cpu_{mode}"), mode=mode)  # fmt: skip
        gauge("dsh_node_disk_read_bytes_per_second", "The node's disk reads, all disks.", row,
              u.disk_read)  # fmt: skip
        gauge("dsh_node_disk_written_bytes_per_second", "The node's disk writes, all disks.",
              row, u.disk_write)  # fmt: skip
        gauge(
            "dsh_node_network_receive_bytes_per_second",
            "The node's network traffic in, all interfaces but loopback.",
            row,
            u.net_receive,
        )
        gauge("dsh_node_network_transmit_bytes_per_second",
              "The node's network traffic out, all interfaces but loopback.", row,
              u.net_transmit)  # fmt: skip


def cluster_families(rows: Iterable[StatusRow]) -> list[Metric]:
    out = _Families()
    _add_cluster(out, rows)
    return out.families()


# -- dshd's own -------------------------------------------------------------------------


@dataclass(frozen=True)
class Own:
    """dshd's own counters, as the daemon holds them."""

    node: str
    datagrams: Mapping[str, int]
    tcp: Mapping[str, int]
    http: Mapping[str, int]
    best_answers: Mapping[str, int]
    graphite: Mapping[str, float] | None = None  # sent, dropped, buffered; None: no [graphite]
    membership: Mapping[str, int] | None = None  # GossipNode.events: suspected, refuted, ...
    health: int = 0  # GossipNode.health: Lifeguard's local health, 0 = fine
    questions: Mapping[str, int] | None = None  # TcpPorts.questions: all_bids, some_bids, ...
    bids: Mapping[str, int] | None = None  # GossipNode.bids: answered, claimed


def _add_own(out: _Families, own: Own, states: Iterable[SensorState], now: float) -> None:
    out.add("dsh_build_info", GAUGE, "dshd's version, and the node it runs as.",
            {"version": __version__, "node": own.node}, 1.0)  # fmt: skip
    # TcpPorts.counters' "none" counts answers, not clients: a family of its own.
    tcp = {k: v for k, v in own.tcp.items() if k != "none"}
    if "none" in own.tcp:
        out.add("dsh_best_node_none_total", COUNTER, "Best-node answers that named no node (NONE).",
                {}, float(own.tcp["none"]))  # fmt: skip
    for name, help, counts, label in (
        ("dsh_datagrams_total", "Gossip datagrams received, by outcome.", own.datagrams, "outcome"),
        ("dsh_tcp_clients_total", "Status and best-node clients, by outcome.", tcp, "outcome"),
        ("dsh_http_requests_total", "HTTP requests and connections, by outcome.", own.http,
         "outcome"),
        ("dsh_best_node_answers_total", "Best-node answers (jobs placed), by node named.",
         own.best_answers, "node"),
        ("dsh_membership_events_total", "Membership events seen by this dshd: suspicions, "
         "refutations, downs, departures, rejoins, found and forgotten members.",
         own.membership or {}, "event"),
        ("dsh_best_node_questions_total", "Best-node questions this dshd asked of its best "
         "candidates, by how many bids came in time.", own.questions or {}, "outcome"),
        ("dsh_bids_total", "Other daemons' best-node questions: answered with a bid, and jobs "
         "claimed on this node.", own.bids or {}, "kind"),
    ):  # fmt: skip
        for key, count in sorted(counts.items()):
            out.add(name, COUNTER, help, {label: key}, float(count))
    if own.membership is not None:
        out.add("dsh_membership_health", GAUGE, "Local health (Lifeguard): 0 fine, up to 8 when "
                "this dshd runs late and stretches its own timeouts.", {}, float(own.health))  # fmt: skip
    if own.graphite is not None:
        g = own.graphite
        for key, kind, help in (
            ("sent", COUNTER, "Values sent to Graphite."),
            ("dropped", COUNTER, "Values dropped: Graphite unreachable and the buffer full."),
            ("buffered", GAUGE, "Values waiting to be sent to Graphite."),
        ):
            if key in g:
                name = f"dsh_graphite_{key}" + ("_total" if kind == COUNTER else "")
                out.add(name, kind, help, {}, float(g[key]))
    for s in states:
        labels = s.labels  # sensor; an instance's also its option (DiskUsage: path)
        out.add("dsh_sensor_up", GAUGE, "1 when the sensor's last reading succeeded and is fresh.",
                labels, float(is_fresh(s, now)))  # fmt: skip
        if s.duration is not None:
            out.add("dsh_sensor_duration_seconds", GAUGE, "Seconds the last reading took.",
                    labels, s.duration)  # fmt: skip
        out.add("dsh_sensor_errors_total", COUNTER, "Readings that failed or hung.", labels,
                float(s.errors))  # fmt: skip
        out.add("dsh_sensor_skipped_total", COUNTER,
                "Turns skipped because the last reading had not returned.", labels,
                float(s.skipped))  # fmt: skip
        if s.read_at is not None:
            out.add(
                "dsh_sensor_last_reading_timestamp_seconds",
                GAUGE,
                "When the last good reading was taken, in unixtime.",
                labels,
                s.read_at,
            )


def own_families(own: Own, states: Iterable[SensorState], now: float) -> list[Metric]:
    out = _Families()
    _add_own(out, own, states, now)
    return out.families()


# -- the collector ------------------------------------------------------------------------


class DshdCollector(Collector):
    """Reads the daemon at each scrape; the monotonic clock is passed in (ages only: the
    timestamps exported are the readings' own)."""

    def __init__(
        self,
        node: GossipNode,
        own: Callable[[], Own],
        states: Callable[[], Iterable[SensorState]],
        monotonic: Callable[[], float],
    ) -> None:
        self.node, self.own, self.states = node, own, states
        self.monotonic = monotonic

    def collect(self) -> Iterable[Metric]:
        now = self.monotonic()
        states = list(self.states())
        out = _Families()
        _add_cluster(out, self.node.status_rows(now))
        _add_own(out, self.own(), states, now)
        _add_sensor_values(out, states, now)
        return out.families()


def render(collector: Collector) -> bytes:
    """The /metrics body."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry)


def http_pages(collector: Collector) -> dict[str, Callable[[Request], Body]]:
    """The HTTP port's /metrics (the live page at / is view.py's)."""
    return {"/metrics": lambda _request: (render(collector), CONTENT_TYPE)}

"""The Prometheus panels of dshd's dashboards (panels.py says how they are built).

The names are those of the /metrics contract. The cluster dashboard reads the
``dsh_node_*`` series, which every dshd exports for every member, so
``max by (node)`` keeps one series per node however many dshds Prometheus
scrapes; the node dashboard reads node_exporter's names, filtered by the
scrape target ``instance`` = ``$node`` with any port, so it also works over
node_exporter itself.
"""

from __future__ import annotations

from .panels import (
    FULL,
    SENSOR_STATES,
    UP_STATES,
    Panel,
    Rows,
    both_ways,
    cpu_busy_per_core,
    cpu_by_mode,
    load,
    qs,
    stat,
)

_NODES = 'node=~"$node"'
_IDLE = ', mode="idle"'
_NOT_IDLE = ', mode!="idle"'
_RATE = "[$__rate_interval]"


def _by_node(metric: str, matchers: str = "") -> str:
    return f"max by (node) ({metric}{{{_NODES}{matchers}}})"


def _state_number() -> str:
    """Each node's state as UP_STATES numbers it: per scraped dshd (one-to-one
    on all labels but ``state``), then the highest of what the dshds say (as
    ``max`` of dsh_node_up: one dshd that hears the node is enough to show it
    live). A cluster of dshds older than dsh_node_state: up + drained."""
    terms = [f'{k} * dsh_node_state{{{_NODES}, state="{s}"}}'
             for k, s in ((1, "up"), (2, "drained"), (3, "suspect"), (4, "left"))]  # fmt: skip
    old = f"{_by_node('dsh_node_up')} + {_by_node('dsh_node_drained')}"
    return f"max by (node) ({' + ignoring (state) '.join(terms)}) or ({old})"


def prometheus_cluster() -> Rows:
    up = _by_node("dsh_node_up")
    state = _state_number()
    jobs = f"60 * sum by (node) (rate(dsh_best_node_answers_total{{{_NODES}}}{_RATE}))"
    return [
        [
            stat("Nodes up", "short", f"sum({up})", description="up, drained or suspect"),
            stat(
                "Nodes down",
                "short",
                f"count({up}) - sum({up})",
                description="down or left",
                thresholds=((1, "red"),),
            ),
            stat(
                "Drained",
                "short",
                f"sum({_by_node('dsh_node_drained')})",
                thresholds=((1, "orange"),),
            ),
            stat("Jobs placed", "opm", f"sum({jobs})", description="best-node answers a minute"),
            stat("CPUs", "short", f"sum({_by_node('dsh_node_cpus')})"),
            stat(
                "Memory available", "bytes", f"sum({_by_node('dsh_node_memory_available_bytes')})"
            ),
        ],
        [
            Panel(
                "Membership: up, drained, suspect, down, left",
                "state-timeline",
                qs((state, "{{node}}")),
                "none",
                24,
                states=UP_STATES,
                description="as the gossip of the scraped dshd sees it",
            )
        ],
        [
            Panel(
                "Load",
                "timeseries",
                qs((_by_node("dsh_node_load"), "{{node}}")),
                "short",
                12,
                minimum=0,
                description="effective load: what the best-node score uses",
            ),
            Panel(
                "Load per CPU",
                "timeseries",
                qs((f"{_by_node('dsh_node_load')} / {_by_node('dsh_node_cpus')}", "{{node}}")),
                "percentunit",
                12,
                minimum=0,
                description="100% = one runnable task per CPU",
            ),
        ],
        [
            Panel(
                "CPU busy",
                "timeseries",
                qs((f"1 - {_by_node('dsh_node_cpu_ratio', _IDLE)}", "{{node}}")),
                "percentunit",
                12,
                minimum=0,
                maximum=1,
            ),
            Panel(
                "CPU by mode, mean of the nodes",
                "timeseries",
                qs((f'avg by (mode) (dsh_node_cpu_ratio{{{_NODES}, mode!="idle"}})', "{{mode}}")),
                "percentunit",
                12,
                stack=True,
                minimum=0,
                maximum=1,
            ),
        ],
        [
            Panel(
                "Memory used",
                "timeseries",
                qs(
                    (
                        f"1 - {_by_node('dsh_node_memory_available_bytes')} / "
                        f"{_by_node('dsh_node_memory_total_bytes')}",
                        "{{node}}",
                    )
                ),
                "percentunit",
                8,
                minimum=0,
                maximum=1,
                description="1 - available / total",
            ),
            Panel(
                "Memory available",
                "timeseries",
                qs((_by_node("dsh_node_memory_available_bytes"), "{{node}}")),
                "bytes",
                8,
                minimum=0,
            ),
            Panel(
                "Swap used",
                "timeseries",
                qs((_by_node("dsh_node_swap_used_bytes"), "{{node}}")),
                "bytes",
                8,
                minimum=0,
            ),
        ],
        [
            both_ways(
                "Disk read / write",
                qs(
                    (_by_node("dsh_node_disk_read_bytes_per_second"), "{{node}} read"),
                    (_by_node("dsh_node_disk_written_bytes_per_second"), "{{node}} write"),
                ),
                "Bps",
                12,
                "write",
            ),
            both_ways(
                "Network receive / transmit",
                qs(
                    (_by_node("dsh_node_network_receive_bytes_per_second"), "{{node}} receive"),
                    (_by_node("dsh_node_network_transmit_bytes_per_second"), "{{node}} transmit"),
                ),
                "Bps",
                12,
                "transmit",
            ),
        ],
        [
            Panel(
                "Report age",
                "bargauge",
                qs((_by_node("dsh_node_last_report_age_seconds"), "{{node}}")),
                "s",
                8,
                minimum=0,
                thresholds=((5, "orange"), (15, "red")),
                description="seconds since the node's last gossip report",
            ),
            Panel(
                "Jobs placed per node",
                "timeseries",
                qs((jobs, "{{node}}")),
                "opm",
                8,
                stack=True,
                minimum=0,
                description="best-node answers naming the node, a minute, summed over "
                "the scraped dshds",
            ),
            Panel(
                "Gossip datagrams",
                "timeseries",
                qs((f"sum by (outcome) (rate(dsh_datagrams_total{_RATE}))", "{{outcome}}")),
                "pps",
                8,
                minimum=0,
                description="received by the scraped dshds, by outcome",
            ),
        ],
        [
            Panel(
                "Sensors",
                "state-timeline",
                qs(("min by (instance, sensor) (dsh_sensor_up)", "{{instance}} {{sensor}}")),
                "none",
                12,
                states=SENSOR_STATES,
                description="failing: the last reading failed or hung",
            ),
            Panel(
                "Sensor reading time",
                "timeseries",
                qs(
                    (
                        "max by (instance, sensor) (dsh_sensor_duration_seconds)",
                        "{{instance}} {{sensor}}",
                    )
                ),
                "s",
                12,
                minimum=0,
            ),
        ],
    ]


# The scrape target, HOST:PORT, of the node $node (a bare name, as the variable shows it).
_INSTANCE = 'instance=~"$node(:[0-9]+)?"'
_DISKS = ', device!~"(loop|ram)[0-9]+"'
_NICS = ', device!="lo"'
_FILESYSTEMS = ', fstype!~"tmpfs|devtmpfs|overlay|squashfs|ramfs"'  # node_exporter's pseudo ones


def _n(metric: str, matchers: str = "") -> str:
    return f"{metric}{{{_INSTANCE}{matchers}}}"


def _rate(metric: str, matchers: str = "") -> str:
    return f"rate({_n(metric, matchers)}{_RATE})"


def prometheus_node() -> Rows:
    cpus = f"count(count by (cpu) ({_n('node_cpu_seconds_total')}))"
    idle = _rate("node_cpu_seconds_total", _IDLE)
    # Cache as free(1) counts it: page cache + reclaimable slab. dshd exports it as
    # dsh_memory_cached_bytes (psutil's cached); node_exporter has the two parts.
    cached = (
        f"({_n('dsh_memory_cached_bytes')} or "
        f"{_n('node_memory_Cached_bytes')} + {_n('node_memory_SReclaimable_bytes')})"
    )
    used = " - ".join(
        [*(_n(f"node_memory_{m}_bytes") for m in ("MemTotal", "MemFree", "Buffers")), cached]
    )
    fs = _FILESYSTEMS
    return [
        [
            stat("Load (1 min)", "short", _n("node_load1")),
            stat("CPUs", "short", cpus),
            stat("CPU busy", "percentunit", f"1 - avg({idle})", thresholds=FULL),
            stat(
                "Memory used",
                "percentunit",
                f"1 - {_n('node_memory_MemAvailable_bytes')} / {_n('node_memory_MemTotal_bytes')}",
                thresholds=FULL,
            ),
            stat("Memory", "bytes", _n("node_memory_MemTotal_bytes")),
            stat("Up for", "dtdurations", f"time() - {_n('node_boot_time_seconds')}"),
        ],
        [
            cpu_busy_per_core(qs((f"1 - avg by (cpu) ({idle})", "cpu {{cpu}}"))),
            cpu_by_mode(
                qs((f"avg by (mode) ({_rate('node_cpu_seconds_total', _NOT_IDLE)})", "{{mode}}"))
            ),
        ],
        [
            load(
                qs(
                    (_n("node_load1"), "1 min"),
                    (_n("node_load5"), "5 min"),
                    (_n("node_load15"), "15 min"),
                    (cpus, "CPUs"),
                )
            ),
            Panel(
                "CPU frequency",
                "timeseries",
                qs((f"avg by (cpu) ({_n('node_cpu_scaling_frequency_hertz')})", "cpu {{cpu}}")),
                "hertz",
                12,
            ),
        ],
        [
            Panel(
                "Memory",
                "timeseries",
                qs(
                    (used, "used"),
                    (_n("node_memory_Buffers_bytes"), "buffers"),
                    (cached, "cached"),
                    (_n("node_memory_MemFree_bytes"), "free"),
                ),
                "bytes",
                12,
                stack=True,
                minimum=0,
                description="stacked: the total; as free(1) counts: cached = page cache + "
                "reclaimable slab, used = total - free - buffers - cached",
            ),
            Panel(
                "Swap",
                "timeseries",
                qs(
                    (
                        f"{_n('node_memory_SwapTotal_bytes')} - {_n('node_memory_SwapFree_bytes')}",
                        "used",
                    ),
                    (_n("node_memory_SwapTotal_bytes"), "size"),
                ),
                "bytes",
                12,
                minimum=0,
            ),
        ],
        [
            Panel(
                "Disk use",
                "bargauge",
                qs(
                    (
                        f"1 - {_n('node_filesystem_avail_bytes', fs)} / "
                        f"{_n('node_filesystem_size_bytes', fs)}",
                        "{{mountpoint}}",
                    )
                ),
                "percentunit",
                8,
                minimum=0,
                maximum=1,
                thresholds=FULL,
                description="1 - available to users / size",
            ),
            Panel(
                "Disk space available",
                "timeseries",
                qs((_n("node_filesystem_avail_bytes", fs), "{{mountpoint}}")),
                "bytes",
                16,
                minimum=0,
            ),
        ],
        [
            both_ways(
                "Disk I/O",
                qs(
                    (_rate("node_disk_read_bytes_total", _DISKS), "{{device}} read"),
                    (_rate("node_disk_written_bytes_total", _DISKS), "{{device}} write"),
                ),
                "Bps",
                12,
                "write",
            ),
            Panel(
                "Disk operations",
                "timeseries",
                qs(
                    (_rate("node_disk_reads_completed_total", _DISKS), "{{device}} reads"),
                    (_rate("node_disk_writes_completed_total", _DISKS), "{{device}} writes"),
                ),
                "iops",
                12,
                below=".* writes$",
                description="writes below the axis",
            ),
        ],
        [
            Panel(
                "Disk busy",
                "timeseries",
                qs((_rate("node_disk_io_time_seconds_total", _DISKS), "{{device}}")),
                "percentunit",
                8,
                minimum=0,
                maximum=1,
                description="share of the time with I/O in flight",
            ),
            both_ways(
                "Network",
                qs(
                    (_rate("node_network_receive_bytes_total", _NICS), "{{device}} receive"),
                    (_rate("node_network_transmit_bytes_total", _NICS), "{{device}} transmit"),
                ),
                "Bps",
                16,
                "transmit",
            ),
        ],
        [
            Panel(
                "Network packets",
                "timeseries",
                qs(
                    (_rate("node_network_receive_packets_total", _NICS), "{{device}} receive"),
                    (_rate("node_network_transmit_packets_total", _NICS), "{{device}} transmit"),
                ),
                "pps",
                12,
                below=".* transmit$",
            ),
            Panel(
                "Network errors and drops",
                "timeseries",
                qs(
                    *(
                        (
                            _rate(f"node_network_{way}_{what}_total", _NICS),
                            f"{{{{device}}}} {way} {what}",
                        )
                        for way in ("receive", "transmit")
                        for what in ("errs", "drop")
                    )
                ),
                "pps",
                12,
                minimum=0,
            ),
        ],
    ]

"""The Graphite panels of dshd's dashboards (panels.py says how they are built).

Paths are ``PREFIX.HOST.Sensor.field[.label...]``, values as the sensors read
them: percent stays percent, CPUFreq is in MHz, counters are totals since boot
and go through ``perSecond``. Functions name a path's parts by position, which
the prefix shifts: ``k`` below is the host's position. Every target was
evaluated by graphite-web 1.1.8 against a whisper tree while writing them.
"""

from __future__ import annotations

from .panels import (
    BUSY_MODES,
    FULL,
    FULL_PERCENT,
    REPORT_STATES,
    SENSOR_STATES,
    Panel,
    Query,
    Rows,
    cpu_busy_per_core,
    cpu_by_mode,
    load,
    qs,
    stat,
)

_NOT_DISKS = "'[.](loop|ram)[0-9]+$'"  # exclude()'s regex, on the path
_NOT_LO = "'[.]lo$'"


def _base(prefix: str, host: str = "$node") -> tuple[str, int]:
    """``PREFIX.HOST`` and the host's position in a path."""
    return (f"{prefix}.{host}", prefix.count(".") + 1) if prefix else (host, 0)


def _busy(cpus: str) -> str:
    """1 - idle share, per CPU, of CPUTimes paths ending in .idle."""
    return f"offset(scale(perSecond({cpus}), -1), 1)"


def graphite_cluster(prefix: str) -> Rows:
    h, k = _base(prefix)
    every, _ = _base(prefix, "*")
    reporting = f"isNonNull(keepLastValue({h}.LoadAvg.load1, 2))"
    jobs = f"scale(perSecond({every}.dshd.best_answers.$node), 60)"
    per_cpu = "divideSeries(%.LoadAvg.load1, countSeries(%.CPUTimes.seconds.*.idle))"
    return [
        [
            stat(
                "Nodes reporting",
                "short",
                f"sumSeries({reporting})",
                width=6,
                description="hosts with a recent LoadAvg in Graphite",
            ),
            stat(
                "Jobs placed",
                "opm",
                f"sumSeries({jobs})",
                width=6,
                description="best-node answers a minute",
            ),
            stat("CPUs", "short", f"countSeries({h}.CPUTimes.seconds.*.idle)", width=6),
            stat("Memory available", "bytes", f"sumSeries({h}.VirtualMemory.available)", width=6),
        ],
        [
            Panel(
                "Reporting",
                "state-timeline",
                qs(f"aliasByNode({reporting}, {k})"),
                "none",
                24,
                states=REPORT_STATES,
                description="a host is silent when Graphite has no "
                "LoadAvg from it (down, or not sending)",
            )
        ],
        [
            Panel(
                "Load (1 min)",
                "timeseries",
                qs(f"aliasByNode({h}.LoadAvg.load1, {k})"),
                "short",
                12,
                minimum=0,
            ),
            Panel(
                "Load per CPU",
                "timeseries",
                qs(f"aliasByNode(applyByNode({h}.LoadAvg.load1, {k}, '{per_cpu}', '%'), {k})"),
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
                qs(f"groupByNode({_busy(f'{h}.CPUTimes.seconds.*.idle')}, {k}, 'average')"),
                "percentunit",
                12,
                minimum=0,
                maximum=1,
            ),
            Panel(
                "CPU by mode, all CPUs",
                "timeseries",
                qs(
                    f"groupByNode(perSecond({h}.CPUTimes.seconds.*.{{{BUSY_MODES}}}), {k + 4}, "
                    "'average')"
                ),
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
                qs(f"aliasByNode({h}.VirtualMemory.percent, {k})"),
                "percent",
                8,
                minimum=0,
                maximum=100,
            ),
            Panel(
                "Memory available",
                "timeseries",
                qs(f"aliasByNode({h}.VirtualMemory.available, {k})"),
                "bytes",
                8,
                minimum=0,
            ),
            Panel(
                "Swap used",
                "timeseries",
                qs(f"aliasByNode({h}.SwapMemory.used, {k})"),
                "bytes",
                8,
                minimum=0,
            ),
        ],
        [
            Panel(
                "Disk read / write",
                "timeseries",
                qs(
                    *(
                        f"groupByNodes(perSecond(exclude({h}.DiskIOCounters.{f}.*, {_NOT_DISKS})), "
                        f"'sum', {k}, {k + 2})"
                        for f in ("read_bytes", "write_bytes")
                    )
                ),
                "Bps",
                12,
                below=".*write_bytes$",
                description="writes below the axis",
            ),
            Panel(
                "Network receive / transmit",
                "timeseries",
                qs(
                    *(
                        f"groupByNodes(perSecond(exclude({h}.NetIOCounters.{f}.*, {_NOT_LO})), "
                        f"'sum', {k}, {k + 2})"
                        for f in ("bytes_recv", "bytes_sent")
                    )
                ),
                "Bps",
                12,
                below=".*bytes_sent$",
                description="transmits below the axis",
            ),
        ],
        [
            Panel(
                "Jobs placed per node",
                "timeseries",
                qs(f"groupByNode({jobs}, {k + 3}, 'sum')"),
                "opm",
                12,
                stack=True,
                minimum=0,
                description="best-node answers naming the node, a minute, summed over the "
                "answering hosts",
            ),
            Panel(
                "Gossip datagrams",
                "timeseries",
                qs(f"groupByNode(perSecond({h}.dshd.datagrams.*), {k + 3}, 'sum')"),
                "pps",
                12,
                minimum=0,
                description="received by the hosts, by outcome",
            ),
        ],
        [
            Panel(
                "Sensors",
                "state-timeline",
                qs(f"aliasByNode({h}.dshd.sensor_up.*, {k}, {k + 3})"),
                "none",
                12,
                states=SENSOR_STATES,
                description="failing: the last reading failed or hung",
            ),
            Panel(
                "Sensor reading time",
                "timeseries",
                qs(f"aliasByNode({h}.dshd.sensor_duration.*, {k}, {k + 3})"),
                "s",
                12,
                minimum=0,
            ),
        ],
    ]


def graphite_node(prefix: str) -> Rows:
    b, k = _base(prefix)
    cpus = f"countSeries({b}.CPUTimes.seconds.*.idle)"
    idle = f"{b}.CPUTimes.seconds.*.idle"
    # total - free - buffers - cached, as node_exporter's users compute it; psutil's own
    # "used" is total - available, which overlaps cached and free: stacked with them
    # it came to more than the total. Total first, as diffSeries wants it (one path
    # each: a glob's order is the finder's).
    used = ", ".join(f"{b}.VirtualMemory.{f}" for f in ("total", "free", "buffers", "cached"))

    def io(sensor: str, fields: tuple[str, str], exclude: str) -> tuple[Query, ...]:
        return qs(
            *(
                f"aliasByNode(perSecond(exclude({b}.{sensor}.{f}.*, {exclude})), {k + 3}, {k + 2})"
                for f in fields
            )
        )

    return [
        [
            stat("Load (1 min)", "short", f"{b}.LoadAvg.load1"),
            stat("CPUs", "short", cpus),
            stat("CPU busy", "percentunit", f"averageSeries({_busy(idle)})", thresholds=FULL),
            stat("Memory used", "percent", f"{b}.VirtualMemory.percent", thresholds=FULL_PERCENT),
            stat("Memory", "bytes", f"{b}.VirtualMemory.total"),
            stat("Booted", "dateTimeFromNow", f"scale({b}.BootTime.boot_time, 1000)"),
        ],
        [
            cpu_busy_per_core(qs(f"aliasByNode({_busy(idle)}, {k + 3})")),
            cpu_by_mode(
                qs(
                    f"groupByNode(perSecond({b}.CPUTimes.seconds.*.{{{BUSY_MODES}}}), {k + 4}, "
                    "'average')"
                )
            ),
        ],
        [
            load(
                qs(
                    f"aliasByNode({b}.LoadAvg.{{load1,load5,load15}}, {k + 2})",
                    f"alias({cpus}, 'CPUs')",
                )
            ),
            Panel(
                "CPU frequency",
                "timeseries",
                qs(f"aliasByNode(scale({b}.CPUFreq.current.*, 1000000), {k + 3})"),
                "hertz",
                12,
                description="CPUFreq reads MHz",
            ),
        ],
        [
            Panel(
                "Memory",
                "timeseries",
                qs(
                    f"alias(diffSeries({used}), 'used')",
                    f"aliasByNode({b}.VirtualMemory.{{buffers,cached,free}}, {k + 2})",
                ),
                "bytes",
                12,
                stack=True,
                minimum=0,
                description="stacked: the total (used = total - free - buffers - cached)",
            ),
            Panel(
                "Swap",
                "timeseries",
                qs(f"aliasByNode({b}.SwapMemory.{{used,total}}, {k + 2})"),
                "bytes",
                12,
                minimum=0,
            ),
        ],
        [
            Panel(
                "Disk use",
                "bargauge",
                qs(f"aliasByNode({b}.DiskUsage.percent.*, {k + 3})"),
                "percent",
                8,
                minimum=0,
                maximum=100,
                thresholds=FULL_PERCENT,
                description="the DiskUsage paths ('/' is root)",
            ),
            Panel(
                "Disk space free",
                "timeseries",
                qs(f"aliasByNode({b}.DiskUsage.free.*, {k + 3})"),
                "bytes",
                16,
                minimum=0,
            ),
        ],
        [
            Panel(
                "Disk I/O",
                "timeseries",
                io("DiskIOCounters", ("read_bytes", "write_bytes"), _NOT_DISKS),
                "Bps",
                12,
                below=".*write_bytes$",
                description="writes below the axis",
            ),
            Panel(
                "Disk operations",
                "timeseries",
                io("DiskIOCounters", ("read_count", "write_count"), _NOT_DISKS),
                "iops",
                12,
                below=".*write_count$",
                description="writes below the axis",
            ),
        ],
        [
            Panel(
                "Disk busy",
                "timeseries",
                qs(
                    f"aliasByNode(perSecond(exclude({b}.DiskIOCounters.busy_time.*, "
                    f"{_NOT_DISKS})), {k + 3})"
                ),
                "percentunit",
                8,
                minimum=0,
                maximum=1,
                description="share of the time with I/O in flight",
            ),
            Panel(
                "Network",
                "timeseries",
                io("NetIOCounters", ("bytes_recv", "bytes_sent"), _NOT_LO),
                "Bps",
                16,
                below=".*bytes_sent$",
                description="transmits below the axis",
            ),
        ],
        [
            Panel(
                "Network packets",
                "timeseries",
                io("NetIOCounters", ("packets_recv", "packets_sent"), _NOT_LO),
                "pps",
                12,
                below=".*packets_sent$",
            ),
            Panel(
                "Network errors and drops",
                "timeseries",
                io("NetIOCounters", ("errin", "errout"), _NOT_LO)
                + io("NetIOCounters", ("dropin", "dropout"), _NOT_LO),
                "pps",
                12,
                minimum=0,
            ),
        ],
    ]

"""FrUCToSA's sensors, under FrUCToSA's names: what psutil measures.

Each ``read`` asks psutil; each ``parse`` turns psutil's structures into
values, and is what the unit tests check.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import psutil

from .base import Field, Option, Options, Sensor, Value, is_yes, values_of, yes_no

_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
              "guest", "guest_nice")  # fmt: skip


# The shortest span a "since the last reading" figure is measured over: the
# kernel counts CPU time in ticks (10 ms at most), so a shorter one is noise.
MIN_SPAN = 0.1


def _deltas(before: Any, after: Any) -> dict[str, float]:
    both = [m for m in _CPU_MODES if hasattr(before, m) and hasattr(after, m)]
    return {m: max(0.0, getattr(after, m) - getattr(before, m)) for m in both}


def _total(deltas: Mapping[str, float]) -> float:
    # Linux counts guest time in user and nice as well: do not count it twice.
    return sum(deltas.values()) - deltas.get("guest", 0.0) - deltas.get("guest_nice", 0.0)


def busy_percent(before: Any, after: Any) -> float:
    """Busy share of one CPU between two ``cpu_times`` samples, as psutil.cpu_percent."""
    deltas = _deltas(before, after)
    total = _total(deltas)
    busy = total - deltas.get("idle", 0.0) - deltas.get("iowait", 0.0)
    return 0.0 if total <= 0 else round(min(100.0, max(0.0, 100.0 * busy / total)), 1)


def mode_percents(before: Any, after: Any) -> SimpleNamespace:
    """Each mode's share between two samples, as psutil.cpu_times_percent."""
    deltas = _deltas(before, after)
    total = _total(deltas)
    return SimpleNamespace(**{m: 0.0 if total <= 0 else round(min(100.0, 100.0 * d / total), 1)
                              for m, d in deltas.items()})  # fmt: skip


class SinceLast:
    """The CPU times of the last reading, for the sensors that measure since then.

    Not psutil's ``cpu_percent(interval=None)``: that keeps its last sample
    per thread, and every reading runs in a thread of its own (runner.py), so
    it would compare each sample with itself and report 0 %."""

    def __init__(self, times: Callable[[], Any]) -> None:
        self.times = times  # psutil.cpu_times, per CPU or not
        self._lock = threading.Lock()
        self._last: tuple[float, Any] | None = None

    def _sample(self) -> tuple[float, Any]:
        return time.monotonic(), self.times()

    def prime(self) -> None:
        with self._lock:
            if self._last is None:
                self._last = self._sample()

    def take(self) -> tuple[Any, Any]:
        """(the last sample, a new one) at least MIN_SPAN apart; the new one is kept."""
        with self._lock:
            last = self._last or self._sample()
            time.sleep(max(0.0, last[0] + MIN_SPAN - time.monotonic()))
            self._last = self._sample()
            return last[1], self._last[1]


class CPUPercent(Sensor):
    name = "CPUPercent"
    help = "busy share of each CPU since the last reading"
    fields = (Field("percent", "percent", "busy time of the CPU (label cpu)"),)
    interval = 10.0

    @staticmethod
    def parse(percents: Sequence[float]) -> list[Value]:
        return [Value("percent", float(p), (("cpu", str(i)),)) for i, p in enumerate(percents)]

    def __init__(self) -> None:
        self._since = SinceLast(lambda: psutil.cpu_times(percpu=True))

    def prime(self) -> None:  # the first reading measures since this
        self._since.prime()

    def read(self, options: Options) -> list[Value]:
        before, after = self._since.take()
        return self.parse([busy_percent(b, a) for b, a in zip(before, after, strict=False)])


class CPUTimes(Sensor):
    name = "CPUTimes"
    help = "seconds each CPU spent in each mode since boot"
    fields = (Field("seconds", "seconds", "time in a mode (labels cpu, mode)"),)
    interval = 30.0

    @staticmethod
    def parse(per_cpu: Sequence[Any]) -> list[Value]:
        out = []
        for i, times in enumerate(per_cpu):
            for mode in _CPU_MODES:
                if getattr(times, mode, None) is not None:
                    out.append(Value("seconds", float(getattr(times, mode)),
                                     (("cpu", str(i)), ("mode", mode))))  # fmt: skip
        return out

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.cpu_times(percpu=True))


class CPUTimesPercent(Sensor):
    name = "CPUTimesPercent"
    help = "share of all CPUs' time in each mode since the last reading"
    fields = (Field("percent", "percent", "time in a mode (label mode)"),)
    interval = 10.0

    @staticmethod
    def parse(times: Any) -> list[Value]:
        return [Value("percent", float(getattr(times, m)), (("mode", m),))
                for m in _CPU_MODES if getattr(times, m, None) is not None]  # fmt: skip

    def __init__(self) -> None:
        self._since = SinceLast(psutil.cpu_times)

    def prime(self) -> None:
        self._since.prime()

    def read(self, options: Options) -> list[Value]:
        return self.parse(mode_percents(*self._since.take()))


class CPUCount(Sensor):
    name = "CPUCount"
    help = "logical and physical CPUs"
    fields = (Field("logical", "count", "logical CPUs"),
              Field("physical", "count", "physical cores (absent where unknown)"))  # fmt: skip
    interval = 300.0

    @staticmethod
    def parse(logical: int | None, physical: int | None) -> list[Value]:
        return [Value(name, float(n)) for name, n in (("logical", logical), ("physical", physical))
                if n is not None]  # fmt: skip

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.cpu_count(logical=True), psutil.cpu_count(logical=False))


class CPUStats(Sensor):
    name = "CPUStats"
    help = "context switches, interrupts and system calls since boot"
    _NAMES = ("ctx_switches", "interrupts", "soft_interrupts", "syscalls")
    fields = tuple(Field(n, "count", f"{n.replace('_', ' ')} since boot") for n in _NAMES)
    interval = 30.0

    @staticmethod
    def parse(stats: Any) -> list[Value]:
        return values_of(stats, CPUStats._NAMES)

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.cpu_stats())


class CPUFreq(Sensor):
    name = "CPUFreq"
    help = "each CPU's clock frequency"
    fields = (Field("current", "mhz", "frequency now (label cpu)"),
              Field("min", "mhz", "lowest frequency (0 where unknown)"),
              Field("max", "mhz", "highest frequency (0 where unknown)"))  # fmt: skip
    interval = 300.0

    def available(self) -> str | None:
        return None if psutil.cpu_freq() is not None else "the kernel reports no CPU frequency"

    @staticmethod
    def parse(per_cpu: Sequence[Any]) -> list[Value]:
        out: list[Value] = []
        for i, freq in enumerate(per_cpu):
            out += values_of(freq, ("current", "min", "max"), (("cpu", str(i)),))
        return out

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.cpu_freq(percpu=True))


_MEMORY = ("total", "available", "used", "free", "active", "inactive", "buffers", "cached",
           "shared", "slab")  # fmt: skip


class VirtualMemory(Sensor):
    name = "VirtualMemory"
    help = "memory in bytes (the kernel's fields that psutil has on this system)"
    fields = (*(Field(n, "bytes", f"{n} memory") for n in _MEMORY),
              Field("percent", "percent", "used share of total"))  # fmt: skip
    interval = 30.0

    @staticmethod
    def parse(memory: Any) -> list[Value]:
        return values_of(memory, (*_MEMORY, "percent"))

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.virtual_memory())


class SwapMemory(Sensor):
    name = "SwapMemory"
    help = "swap space, and bytes swapped in and out since boot"
    fields = (Field("total", "bytes", "swap space"), Field("used", "bytes", "swap in use"),
              Field("free", "bytes", "swap free"), Field("percent", "percent", "used share"),
              Field("sin", "bytes", "swapped in since boot"),
              Field("sout", "bytes", "swapped out since boot"))  # fmt: skip
    interval = 60.0

    @staticmethod
    def parse(swap: Any) -> list[Value]:
        return values_of(swap, ("total", "used", "free", "percent", "sin", "sout"))

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.swap_memory())


class DiskPartitions(Sensor):
    name = "DiskPartitions"
    help = "mounted disk partitions (1 per partition; labels device, mountpoint, fstype)"
    fields = (Field("mounted", "count", "1 for each mounted partition"),)
    interval = 60.0
    options = (yes_no("all", "also pseudo, memory and duplicate file systems"),)

    @staticmethod
    def parse(partitions: Iterable[Any]) -> list[Value]:
        return [Value("mounted", 1.0, (("device", p.device), ("mountpoint", p.mountpoint),
                                       ("fstype", p.fstype))) for p in partitions]  # fmt: skip

    def read(self, options: Options) -> list[Value]:
        every = is_yes(self.option_values(options)["all"][0])
        return self.parse(psutil.disk_partitions(all=every))


class DiskUsage(Sensor):
    name = "DiskUsage"
    help = "size and use of the file system under each path (label path)"
    fields = (Field("total", "bytes", "size"), Field("used", "bytes", "in use"),
              Field("free", "bytes", "free for unprivileged users"),
              Field("percent", "percent", "used share"))  # fmt: skip
    interval = 30.0
    options = (Option("path", "a path on the file system to measure", ("/",), repeatable=True,
                      per_instance=True),)  # fmt: skip

    @staticmethod
    def parse(path: str, usage: Any) -> list[Value]:
        return values_of(usage, ("total", "used", "free", "percent"), (("path", path),))

    def read(self, options: Options) -> list[Value]:
        out: list[Value] = []
        for path in self.option_values(options)["path"]:
            out += self.parse(path, psutil.disk_usage(path))  # may hang on a dead NFS mount
        return out


# node_exporter's default --collector.diskstats.device-exclude: partitions (their
# I/O is their disk's too, so a sum over devices would count it twice), loop,
# RAM and floppy devices. ``all = yes`` keeps every device psutil lists.
PARTITIONS_AND_PSEUDO_DISKS = re.compile(r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$")


class DiskIOCounters(Sensor):
    name = "DiskIOCounters"
    help = "each disk's reads and writes since boot (label device)"
    fields = (Field("read_count", "count", "reads"), Field("write_count", "count", "writes"),
              Field("read_bytes", "bytes", "bytes read"),
              Field("write_bytes", "bytes", "bytes written"),
              Field("read_time", "seconds", "time spent reading"),
              Field("write_time", "seconds", "time spent writing"),
              Field("busy_time", "seconds", "time with I/O in flight"))  # fmt: skip
    interval = 20.0
    options = (
        yes_no("all", "also partitions, loop and RAM disks (node_exporter leaves them out)"),
    )

    def available(self) -> str | None:
        return None if psutil.disk_io_counters() is not None else "the kernel reports no disks"

    @staticmethod
    def parse(per_disk: Mapping[str, Any], every: bool = False) -> list[Value]:
        out: list[Value] = []
        for device, io in per_disk.items():
            if not every and PARTITIONS_AND_PSEUDO_DISKS.match(device):
                continue
            labels = (("device", device),)
            out += values_of(io, ("read_count", "write_count", "read_bytes", "write_bytes"),
                             labels)  # fmt: skip
            for name in ("read_time", "write_time", "busy_time"):  # psutil: milliseconds
                if getattr(io, name, None) is not None:
                    out.append(Value(name, getattr(io, name) / 1000.0, labels))
        return out

    def read(self, options: Options) -> list[Value]:
        every = is_yes(self.option_values(options)["all"][0])
        return self.parse(psutil.disk_io_counters(perdisk=True) or {}, every)


_NET_IO = ("bytes_sent", "bytes_recv", "packets_sent", "packets_recv", "errin", "errout",
           "dropin", "dropout")  # fmt: skip


class NetIOCounters(Sensor):
    name = "NetIOCounters"
    help = "each network interface's traffic since boot (label device)"
    fields = tuple(Field(n, "bytes" if n.startswith("bytes") else "count", n.replace("_", " "))
                   for n in _NET_IO)  # fmt: skip
    interval = 10.0

    @staticmethod
    def parse(per_nic: Mapping[str, Any]) -> list[Value]:
        out: list[Value] = []
        for device, io in per_nic.items():
            out += values_of(io, _NET_IO, (("device", device),))
        return out

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.net_io_counters(pernic=True))


class NetConnections(Sensor):
    name = "NetConnections"
    help = "Internet sockets by state (labels kind, status); all users' need root"
    fields = (Field("count", "count", "sockets in that state"),)
    interval = 20.0

    @staticmethod
    def parse(connections: Iterable[Any]) -> list[Value]:
        kinds = {socket.SOCK_STREAM: "tcp", socket.SOCK_DGRAM: "udp"}
        counts = Counter((kinds.get(c.type, str(c.type)), c.status or "NONE") for c in connections)
        return [Value("count", float(n), (("kind", kind), ("status", status)))
                for (kind, status), n in sorted(counts.items())]  # fmt: skip

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.net_connections(kind="inet"))


class NetIFAddrs(Sensor):
    name = "NetIFAddrs"
    help = "addresses of each network interface (labels device, family)"
    fields = (Field("addresses", "count", "addresses of that family"),)
    interval = 30.0

    @staticmethod
    def parse(per_nic: Mapping[str, Iterable[Any]]) -> list[Value]:
        out = []
        for device, addresses in per_nic.items():
            families = Counter(getattr(a.family, "name", str(a.family)) for a in addresses)
            out += [Value("addresses", float(n), (("device", device), ("family", family)))
                    for family, n in sorted(families.items())]  # fmt: skip
        return out

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.net_if_addrs())


class NetIFStats(Sensor):
    name = "NetIFStats"
    help = "each network interface's state (label device)"
    fields = (Field("isup", "bool", "1 when up"),
              Field("speed", "mbit/s", "link speed (0: unknown)"),
              Field("mtu", "bytes", "largest packet"))  # fmt: skip
    interval = 30.0

    @staticmethod
    def parse(per_nic: Mapping[str, Any]) -> list[Value]:
        out: list[Value] = []
        for device, stats in per_nic.items():
            out += values_of(stats, ("isup", "speed", "mtu"), (("device", device),))
        return out

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.net_if_stats())


class SensorsTemperatures(Sensor):
    name = "SensorsTemperatures"
    help = "hardware temperatures (labels chip, sensor)"
    fields = (Field("current", "celsius", "temperature now"),
              Field("high", "celsius", "the high mark"),
              Field("critical", "celsius", "the critical mark"))  # fmt: skip
    interval = 30.0

    def available(self) -> str | None:
        return None if psutil.sensors_temperatures() else "no temperature sensors (hwmon) here"

    @staticmethod
    def parse(per_chip: Mapping[str, Iterable[Any]]) -> list[Value]:
        out: list[Value] = []
        for chip, readings in per_chip.items():
            for i, r in enumerate(readings):
                labels = (("chip", chip), ("sensor", r.label or str(i)))
                out += values_of(r, ("current", "high", "critical"), labels)
        return out

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.sensors_temperatures())


class SensorsFans(Sensor):
    name = "SensorsFans"
    help = "fan speeds (labels chip, sensor)"
    fields = (Field("current", "rpm", "fan speed"),)
    interval = 30.0

    def available(self) -> str | None:
        return None if psutil.sensors_fans() else "no fan sensors (hwmon) here"

    @staticmethod
    def parse(per_chip: Mapping[str, Iterable[Any]]) -> list[Value]:
        return [Value("current", float(r.current), (("chip", chip), ("sensor", r.label or str(i))))
                for chip, readings in per_chip.items()
                for i, r in enumerate(readings)]  # fmt: skip

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.sensors_fans())


class SensorsBattery(Sensor):
    name = "SensorsBattery"
    help = "the battery's charge and whether it is plugged in"
    fields = (Field("percent", "percent", "charge"),
              Field("secsleft", "seconds", "time left (absent when plugged in or unknown)"),
              Field("power_plugged", "bool", "1 on mains power"))  # fmt: skip
    interval = 30.0

    def available(self) -> str | None:
        return None if psutil.sensors_battery() is not None else "no battery here"

    @staticmethod
    def parse(battery: Any) -> list[Value]:
        if battery is None:
            return []
        out = values_of(battery, ("percent", "power_plugged"))
        if isinstance(battery.secsleft, int | float) and battery.secsleft >= 0:
            out.append(Value("secsleft", float(battery.secsleft)))
        return out

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.sensors_battery())


class LoadAvg(Sensor):
    name = "LoadAvg"
    help = "the kernel's load averages over 1, 5 and 15 minutes (dshd's; not in FrUCToSA)"
    fields = (Field("load1", "count", "runnable and uninterruptible tasks, 1-minute average"),
              Field("load5", "count", "the same over 5 minutes"),
              Field("load15", "count", "the same over 15 minutes"))  # fmt: skip
    interval = 10.0

    @staticmethod
    def parse(averages: Sequence[float]) -> list[Value]:
        return [Value(n, float(v)) for n, v in zip(("load1", "load5", "load15"), averages,
                                                    strict=True)]  # fmt: skip

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.getloadavg())


class BootTime(Sensor):
    name = "BootTime"
    help = "when the node booted"
    fields = (Field("boot_time", "seconds", "boot time, seconds since 1970 (UTC)"),)
    interval = 300.0

    def read(self, options: Options) -> list[Value]:
        return [Value("boot_time", psutil.boot_time())]


class Users(Sensor):
    name = "Users"
    help = "login sessions (label user)"
    fields = (Field("sessions", "count", "that user's login sessions"),)
    interval = 10.0

    @staticmethod
    def parse(users: Iterable[Any]) -> list[Value]:
        counts = Counter(u.name for u in users)
        return [
            Value("sessions", float(n), (("user", name),)) for name, n in sorted(counts.items())
        ]

    def read(self, options: Options) -> list[Value]:
        return self.parse(psutil.users())


PSUTIL_SENSORS: tuple[type[Sensor], ...] = (
    CPUPercent, CPUTimes, CPUTimesPercent, CPUCount, CPUStats, CPUFreq, VirtualMemory,
    SwapMemory, DiskPartitions, DiskUsage, DiskIOCounters, NetIOCounters, NetConnections,
    NetIFAddrs, NetIFStats, SensorsTemperatures, SensorsFans, SensorsBattery, LoadAvg, BootTime,
    Users,
)  # fmt: skip

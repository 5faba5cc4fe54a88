"""Reads this machine's state: the only module of the core that touches the system.

The effective load is what the score uses. The 1-minute load average lags a
new job by tens of seconds and stays high for a minute after a build, so the
daemon measures instead, over the last interval:

    load = CPUs busy over the interval (from /proc/stat via psutil)
           + tasks waiting beyond the CPUs right now (/proc/loadavg)

The first term reacts within one interval and is smooth; the second makes an
overloaded node (make -j64 on 8 CPUs) look as loaded as it is. The 1-minute
load average is reported too, for people and for the ``loadavg`` score.

Between two samples, ``load_now`` measures the same over the time since the
last sample or ``load_now`` (the poller calls it four times an interval):
what this node bids when another daemon asks how loaded it is now
(core/bids.py).

The usage (wire.Usage: CPU modes, disk and network rates, swap) is measured
over the same interval, for the cluster views (status columns, dsh_node_*
metrics, dsh top). Network counts every interface but loopback: traffic a
node has with itself says nothing of its load on the network.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from ..core.gossip import Sample
from ..core.wire import Usage

# Seconds of CPU time accounting that load_now needs: 20 clock ticks at USER_HZ 100.
MIN_WINDOW = 0.2


def _running_tasks() -> int:
    """Tasks running or runnable now, not counting the reader itself."""
    try:
        # Binary: a text codec may be imported lazily, and after dropping
        # privileges the interpreter's own files may no longer be readable.
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


def _io_bytes() -> tuple[int, int, int, int]:
    """Bytes read and written by all disks, received and sent by all but loopback, since boot."""
    disks = psutil.disk_io_counters(perdisk=False, nowrap=True)
    nics = psutil.net_io_counters(pernic=True, nowrap=True)
    rx = sum(n.bytes_recv for name, n in nics.items() if name != "lo")
    tx = sum(n.bytes_sent for name, n in nics.items() if name != "lo")
    if disks is None:  # a machine with no block devices (some containers)
        return (0, 0, rx, tx)
    return (disks.read_bytes, disks.write_bytes, rx, tx)


def cpu_shares(now: Any, last: Any) -> tuple[float, float, float, float]:
    """User (with nice and guests), system (with irq, softirq), idle and iowait shares
    between two psutil.cpu_times(); steal counts in the total only."""

    def delta(*modes: str) -> float:
        return sum(max(0.0, getattr(now, m, 0.0) - getattr(last, m, 0.0)) for m in modes)

    total = sum(max(0.0, a - b) for a, b in zip(now, last, strict=True))
    if total <= 0:
        return (0.0, 0.0, 1.0, 0.0)
    # The kernel counts guest time in user and nice as well: out of the total,
    # kept in user (a CPU running a guest is busy).
    total = max(total - delta("guest", "guest_nice"), 1e-9)
    shares = (
        delta("user", "nice") / total,
        delta("system", "irq", "softirq") / total,
        delta("idle") / total,
        delta("iowait") / total,
    )
    # To the wire's precision (0.01 %), so that this node reads the same here as elsewhere.
    user, system, idle, iowait = (round(min(1.0, x), 4) for x in shares)
    return (user, system, idle, iowait)


class Sampler:
    def __init__(self) -> None:
        self.ncpu = psutil.cpu_count(logical=True) or 1
        self._last = psutil.cpu_times()
        self._last_io = _io_bytes()
        self._last_at = time.monotonic()
        self._peeked, self._peeked_at = self._last, self._last_at

    def _busy_cpus(self, now: Any, last: Any) -> float:
        total = float(sum(now) - sum(last))
        waits = getattr(now, "iowait", 0.0) - getattr(last, "iowait", 0.0)
        idle = float(now.idle - last.idle + waits)
        if total <= 0:
            return 0.0
        return max(0.0, min(1.0, 1.0 - idle / total)) * self.ncpu

    def sample(self) -> Sample:
        waiting = max(0, _running_tasks() - self.ncpu)
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        times, at, io = psutil.cpu_times(), time.monotonic(), _io_bytes()
        last, last_at, last_io = self._last, self._last_at, self._last_io
        self._last, self._last_at, self._last_io = times, at, io
        self._peeked, self._peeked_at = times, at
        elapsed = max(at - last_at, 1e-3)
        dread, dwrite, rx, tx = (max(0, a - b) / elapsed for a, b in zip(io, last_io, strict=True))
        return Sample(
            ncpu=self.ncpu,
            load=round(self._busy_cpus(times, last) + waiting, 3),
            load1=psutil.getloadavg()[0],
            mem_avail=memory.available,
            mem_total=memory.total,
            usage=Usage(*cpu_shares(times, last), dread, dwrite, rx, tx, swap.used, swap.total),
        )

    def load_now(self) -> float | None:
        """The effective load since the last sample or call, None within
        MIN_WINDOW of it (a few clock ticks of CPU time say nothing)."""
        times, at = psutil.cpu_times(), time.monotonic()
        if at - self._peeked_at < MIN_WINDOW:
            return None
        last, self._peeked, self._peeked_at = self._peeked, times, at
        waiting = max(0, _running_tasks() - self.ncpu)
        return round(self._busy_cpus(times, last) + waiting, 3)

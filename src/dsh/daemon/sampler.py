"""Reads this machine's state: the only module of the core that touches the system.

The effective load is what the score uses. The 1-minute load average lags a
new job by tens of seconds and stays high for a minute after a build, so the
daemon measures instead, over the last interval:

    load = CPUs busy over the interval (from /proc/stat via psutil)
           + tasks waiting beyond the CPUs right now (/proc/loadavg)

The first term reacts within one interval and is smooth; the second makes an
overloaded node (make -j64 on 8 CPUs) look as loaded as it is. The 1-minute
load average is reported too, for people and for the ``loadavg`` score.
"""

from __future__ import annotations

import psutil

from ..core.gossip import Sample


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


class Sampler:
    def __init__(self) -> None:
        self.ncpu = psutil.cpu_count(logical=True) or 1
        self._last = psutil.cpu_times()

    def _busy_cpus(self) -> float:
        now = psutil.cpu_times()
        last, self._last = self._last, now
        total = sum(now) - sum(last)
        idle = (now.idle + getattr(now, "iowait", 0.0)) - (last.idle + getattr(last, "iowait", 0.0))
        if total <= 0:
            return 0.0
        return max(0.0, min(1.0, 1.0 - idle / total)) * self.ncpu

    def sample(self) -> Sample:
        waiting = max(0, _running_tasks() - self.ncpu)
        memory = psutil.virtual_memory()
        return Sample(
            ncpu=self.ncpu,
            load=round(self._busy_cpus() + waiting, 3),
            load1=psutil.getloadavg()[0],
            mem_avail=memory.available,
            mem_total=memory.total,
        )

"""The process table's pure parts: ``/proc`` texts in, rows and answers out.

What dshd's ``quik`` and ``jobs`` answers are made of (daemon/procs.py reads
the files and passes their text here; nothing in this module does I/O or
reads a clock, so the tests give it the text they write).

    quik   one line: load averages, CPU busy over the last interval,
           running/total tasks, memory available
    jobs   a count line, then one line per process: pid, user, state, %CPU
           over the last interval, RSS, elapsed, command line

Every parser raises ValueError for a text it cannot read: the reader skips
that process (it exited mid-read, or its files are not what Linux writes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# The command line in the text answers is cut at this many characters (and
# marked with "..."); JSON keeps every argument, each cut at ARG_LIMIT, at
# most ARGS_LIMIT of them: a compiler's thousand-file command line must not
# make a node's answer megabytes long.
COMMAND_LIMIT = 200
ARG_LIMIT = 4096
# All of a process's arguments kept, in bytes: a table of thousands of
# processes with long command lines must stay bounded (root's dshd holds it).
ARGV_BYTES = 16 * 1024
ARGS_LIMIT = 256
# The environment variable node/launch.py sets in every command dsh starts on a
# node: what `--jobs own` looks for in /proc/PID/environ.
JOB_MARKER = b"DSH_JOB"


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/PID/stat that the table uses."""

    pid: int
    comm: str
    state: str  # R, S, D, Z, T, ...
    ppid: int
    ticks: int  # utime + stime, clock ticks
    start: int  # starttime: clock ticks after boot
    rss_pages: int


def parse_stat(text: str) -> Stat:
    """/proc/PID/stat; the command name (in parentheses) may hold spaces and ')'."""
    head, close, rest = text.rpartition(")")
    pid_text, open_, comm = head.partition(" (")
    fields = rest.split()
    if not close or not open_ or len(fields) < 22:
        raise ValueError("not a /proc/PID/stat line")
    # fields[0] is field 3 (state); utime 14, stime 15, starttime 22, rss 24
    return Stat(int(pid_text), comm, fields[0], int(fields[1]),
                int(fields[11]) + int(fields[12]), int(fields[19]), int(fields[21]))  # fmt: skip


def parse_argv(cmdline: bytes) -> list[str]:
    """/proc/PID/cmdline: NUL-separated (a kernel thread's is empty), bounded."""
    args = cmdline[:ARGV_BYTES].split(b"\0")
    if args and args[-1] == b"":
        args.pop()
    return [a[:ARG_LIMIT].decode("utf-8", "replace") for a in args[:ARGS_LIMIT]]


def has_marker(environ: bytes) -> bool:
    """Whether a /proc/PID/environ holds JOB_MARKER=... (dsh started it, or its parent)."""
    return environ.startswith(JOB_MARKER + b"=") or b"\0" + JOB_MARKER + b"=" in environ


def command_text(argv: Sequence[str], comm: str, limit: int = COMMAND_LIMIT) -> str:
    """What ps shows: the arguments joined, or ``[comm]`` for a kernel thread;
    one line, at most ``limit`` characters."""
    text = " ".join(argv) if argv else f"[{comm}]"
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Loadavg:
    load1: float
    load5: float
    load15: float
    running: int
    tasks: int


def parse_loadavg(text: str) -> Loadavg:
    """/proc/loadavg: ``0.52 0.48 0.40 3/412 12345``."""
    parts = text.split()
    running, slash, tasks = parts[3].partition("/") if len(parts) >= 4 else ("", "", "")
    if not slash:
        raise ValueError("not a /proc/loadavg line")
    return Loadavg(float(parts[0]), float(parts[1]), float(parts[2]), int(running), int(tasks))


def parse_cpu(text: str) -> tuple[int, int]:
    """(busy, total) clock ticks of /proc/stat's ``cpu`` line; idle and iowait are not busy."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            ticks = [int(v) for v in line.split()[1:]]
            # guest and guest_nice (9th, 10th) are already in user and nice
            total = sum(ticks[:8])
            return total - ticks[3] - (ticks[4] if len(ticks) > 4 else 0), total
    raise ValueError("no cpu line in /proc/stat")


def parse_uptime(text: str) -> float:
    """Seconds since boot: the first number of /proc/uptime."""
    return float(text.split()[0])


def parse_meminfo(text: str) -> tuple[int, int]:
    """(available, total) bytes of /proc/meminfo."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("MemAvailable", "MemTotal"):
            found[key] = int(value.split()[0]) * 1024
    if len(found) < 2:
        raise ValueError("no MemAvailable or MemTotal in /proc/meminfo")
    return found["MemAvailable"], found["MemTotal"]


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """CPU busy 0..1 between two parse_cpu readings; None when no tick passed."""
    total = after[1] - before[1]
    if total <= 0:
        return None
    return min(1.0, max(0.0, (after[0] - before[0]) / total))


@dataclass(frozen=True)
class Proc:
    pid: int
    user: str
    uid: int
    state: str
    cpu: float  # percent of one CPU over the interval (may exceed 100 for threads)
    rss: int  # bytes
    elapsed: float  # seconds since it started
    argv: tuple[str, ...]
    command: str  # command_text: one line, at most COMMAND_LIMIT characters

    def as_json(self) -> dict[str, object]:
        return {"pid": self.pid, "user": self.user, "state": self.state,
                "cpu": round(self.cpu, 1), "rss": self.rss, "elapsed": round(self.elapsed, 1),
                "command": self.command, "argv": list(self.argv)}  # fmt: skip


def cpu_percent(before: int | None, after: int, seconds: float, hz: int) -> float:
    """%CPU from utime+stime ticks: over ``seconds`` since the previous sample
    (``before``; None: the process is newer than it, counted from its start)."""
    if seconds <= 0:
        return 0.0
    return max(0.0, (after - (before or 0)) * 100.0 / hz / seconds)


def elapsed(start_ticks: int, hz: int, uptime: float) -> float:
    """Seconds since a process started (its starttime) at ``uptime`` seconds after boot."""
    return max(0.0, uptime - start_ticks / hz)


def duration(seconds: float) -> str:
    """ps's elapsed: ``MM:SS``, ``HH:MM:SS``, ``D-HH:MM:SS``."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}-{hours:02d}:{minutes:02d}:{s:02d}"
    if hours:
        return f"{hours:02d}:{minutes:02d}:{s:02d}"
    return f"{minutes:02d}:{s:02d}"


SORTS = {"cpu": lambda p: -p.cpu, "mem": lambda p: -p.rss, "time": lambda p: -p.elapsed}


def select(procs: Iterable[Proc], user: str | None, top: int | None) -> list[Proc]:
    """Those of ``user`` (None: everyone's), the busiest first, at most ``top``."""
    chosen = [p for p in procs if user is None or p.user == user]
    chosen.sort(key=lambda p: (-p.cpu, -p.rss, p.pid))
    return chosen if top is None else chosen[:top]


def jobs_text(node: str, procs: Sequence[Proc], header: str) -> str:
    """procstatd's jobs: a count line, then one line per process."""
    lines = [f"jobs {node} {len(procs)} {header}".rstrip()]
    lines.append(f"{'PID':>7} {'USER':<10} S {'%CPU':>5} {'RSS':>8} {'ELAPSED':>11} COMMAND")
    for p in procs:
        lines.append(f"{p.pid:>7} {p.user[:10]:<10} {p.state} {p.cpu:>5.1f} {kib(p.rss):>8} "
                     f"{duration(p.elapsed):>11} {p.command}")  # fmt: skip
    return "\n".join(lines) + "\n"


def kib(size: int) -> str:
    """RSS as ps shows it, in KiB; larger ones in M or G."""
    k = size // 1024
    if k < 100_000:
        return str(k)
    if k < 100_000 * 1024:
        return f"{k / 1024:.0f}M"
    return f"{k / 1024 / 1024:.1f}G"


@dataclass(frozen=True)
class Quik:
    load: Loadavg
    busy: float | None  # CPU busy 0..1 over the interval; None: not known yet
    interval: float  # seconds that busy covers
    mem_avail: int  # bytes
    mem_total: int

    def as_json(self, node: str, now: float) -> dict[str, object]:
        return {"node": node, "time": round(now, 3), "load1": self.load.load1,
                "load5": self.load.load5, "load15": self.load.load15,
                "cpu_busy": None if self.busy is None else round(self.busy, 4),
                "interval": round(self.interval, 3), "running": self.load.running,
                "tasks": self.load.tasks, "mem_avail": self.mem_avail,
                "mem_total": self.mem_total}  # fmt: skip


def quik_text(node: str, q: Quik) -> str:
    """One line: ``quik NODE load L1 L5 L15 cpu P% running R/T memavail KB kB``."""
    busy = "-" if q.busy is None else f"{q.busy * 100:.1f}%"
    return (f"quik {node} load {q.load.load1:.2f} {q.load.load5:.2f} {q.load.load15:.2f} "
            f"cpu {busy} running {q.load.running}/{q.load.tasks} "
            f"memavail {q.mem_avail // 1024} kB\n")  # fmt: skip


class RateLimit:
    """At most one fresh table per ``period`` seconds; asks within it share the last."""

    def __init__(self, period: float) -> None:
        self.period = period
        self.last: float | None = None

    def fresh(self, now: float) -> bool:
        """Whether a new table is due now (and, if so, that one is being made)."""
        if self.last is not None and 0 <= now - self.last < self.period:
            return False
        self.last = now
        return True

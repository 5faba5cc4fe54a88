"""procstatd's ``quik`` and ``jobs``: on the HTTP port (``GET /quik``, ``GET
/jobs``) and on procstatd's own line protocol (``--procstat-port``).

Rules of this file: /proc is read off the event loop (a Later, in a worker
thread, for ``jobs``; ``quik`` reads three small files and is cheap enough for
the loop), at most one fresh process table per ``TABLE_PERIOD`` (a script asking
in a loop gets the same table, and its header says how old it is), and a
process that exits mid-read is skipped. The parsing is core/procs.py's.

Who may see what (``--jobs``; README "quik and jobs"):

- ``off``: /jobs is a 403, the line protocol's ``jobs`` one error line.
- ``own`` (the default): only the processes dsh placed on this node, that is
  those whose environment holds ``DSH_JOB`` (node/launch.py sets it in every
  command rexec and the executor start; their children inherit it). dshd
  reads /proc/PID/environ for it, which only root or the process's own user
  may: a dshd running as ``--user nobody`` shows none of them.
- ``all``: every process dshd can see.

A /proc mounted with ``hidepid`` means the node hides users' processes from
each other; dshd cannot tell who asks over the network, so its default is
then ``off`` (an explicit ``--jobs`` still wins: the administrator's choice).
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs

from ..core import procs as core
from .config import DaemonConfig
from .http import BadRequest, Body, Later, Page, Request
from .ports import denied, listen_on

log = logging.getLogger(__name__)

POLICIES = ("off", "own", "all")
DEFAULT_POLICY = "own"
TABLE_PERIOD = 1.0  # seconds: at most one fresh table per period
# The first table has no previous sample for %CPU: one is taken this long before.
FIRST_SPAN = 0.2
MAX_TOP = 100_000
READ_CHUNK = 65536  # a stat line is a few hundred bytes: one read
# bytes of a cmdline or environ read at most (ARG_MAX is 2 MiB; what is past
# this is not shown: core.ARGS_LIMIT and ARG_LIMIT cut sooner)
READ_LIMIT = 1 << 20
MAX_REQUEST_LINE = 64  # procstatd's commands are four letters
TEXT = "text/plain; charset=utf-8"
JSON = "application/json"


def hidepid(mounts: str) -> bool:
    """Whether /proc is mounted with hidepid (not 0/off), from /proc/mounts' text."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[1] == "/proc" and fields[2] == "proc":
            for option in fields[3].split(","):
                key, _, value = option.partition("=")
                if key == "hidepid" and value not in ("0", "off"):
                    return True
    return False


def effective_policy(configured: str | None, mounts: str) -> str:
    """``--jobs`` if given, else own (off where /proc has hidepid)."""
    if configured is not None:
        return configured
    return "off" if hidepid(mounts) else DEFAULT_POLICY


@dataclass(frozen=True)
class Table:
    procs: tuple[core.Proc, ...]
    made: float  # wall seconds
    span: float  # seconds the %CPU covers
    cost: float  # seconds it took to read
    skipped: int  # processes gone (or unreadable) mid-read

    def header(self, now: float) -> str:
        age = max(0.0, now - self.made)
        return (f"cpu-over={self.span:.2f}s age={age:.2f}s read={self.cost * 1000:.0f}ms "
                f"skipped={self.skipped}")  # fmt: skip


class ProcTable:
    """Reads /proc into Tables; thread-safe; at most one fresh table per period."""

    def __init__(self, policy: str, proc: str = "/proc", period: float = TABLE_PERIOD,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 first_span: float = FIRST_SPAN) -> None:  # fmt: skip
        self.policy = policy
        self.first_span = first_span
        self.proc = proc
        self.hz = os.sysconf("SC_CLK_TCK")
        self.clock = clock
        self.monotonic = monotonic
        self._limit = core.RateLimit(period)
        self._lock = threading.Lock()
        self._table: Table | None = None
        self._table_policy = ""  # the policy the table was read under
        self._prev: dict[int, tuple[int, int]] = {}  # pid -> (starttime, ticks)
        self._prev_at: float | None = None
        self._users: dict[int, str] = {}
        self.fresh = 0  # tables read
        self.shared = 0  # answers given an earlier table

    def table(self) -> Table:
        """A fresh table, or the last one if it is younger than the period."""
        with self._lock:
            if (self._table is not None and self._table_policy == self.policy
                    and not self._limit.fresh(self.monotonic())):  # fmt: skip
                self.shared += 1
                return self._table
            if self._prev_at is None:
                self._sample()
                time.sleep(self.first_span)
            while True:  # a SIGHUP that changed the policy meanwhile: read again
                policy = self.policy
                self._table = self._sample()
                if policy == self.policy:
                    break
            self._table_policy = policy
            self._limit.last = self.monotonic()
            self.fresh += 1
            return self._table

    def set_policy(self, policy: str) -> None:
        """A new policy (SIGHUP): the table made under the old one is not shown again.

        On the event loop, so without the lock (a worker may hold it for a
        whole read): the next table() sees the policy changed and reads afresh."""
        self.policy = policy
        self._table = None

    def user(self, uid: int) -> str:
        name = self._users.get(uid)
        if name is None:
            try:
                name = pwd.getpwuid(uid).pw_name
            except KeyError:
                name = str(uid)
            self._users[uid] = name
        return name

    def _read(self, pid: str, name: str, whole: bool = True) -> bytes:
        """A /proc file: with os.read, a quarter cheaper than open() per file, which
        counts at thousands of processes; ``whole``: to its end, at most READ_LIMIT."""
        fd = os.open(f"{self.proc}/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, READ_CHUNK)
            if not whole or not data:
                return data
            chunks, size = [data], len(data)
            while size < READ_LIMIT:
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _real_uid(self, pid: str, uid: int) -> int:
        try:
            return _real_uid(self._read(pid, "status"), uid)
        except OSError:  # gone (the next read says so), or no status: the owner it has
            return uid

    def _marked(self, pid: str) -> bool:
        try:
            return core.has_marker(self._read(pid, "environ"))
        except ProcessLookupError:  # a kernel thread has no environment (ESRCH)
            return False

    def _sample(self) -> Table:
        started = self.monotonic()
        with open(f"{self.proc}/uptime") as f:
            uptime = core.parse_uptime(f.read())
        span = None if self._prev_at is None else started - self._prev_at
        prev, current = self._prev, {}
        procs: list[core.Proc] = []
        skipped = 0
        own = self.policy != "all"  # read once: the caller checks it did not change
        page = os.sysconf("SC_PAGE_SIZE")
        for pid in os.listdir(self.proc):
            if not pid.isdigit():
                continue
            try:
                text = self._read(pid, "stat", whole=False).decode("utf-8", "replace")
                stat = core.parse_stat(text)
                current[stat.pid] = (stat.start, stat.ticks)
                if own and not self._marked(pid):
                    continue
                uid = os.stat(f"{self.proc}/{pid}").st_uid
                if uid == 0:
                    # The kernel makes a non-dumpable process's /proc entry
                    # root's (ssh-agent, setuid programs): its real uid is in status.
                    uid = self._real_uid(pid, uid)
                argv = core.parse_argv(self._read(pid, "cmdline"))
            except PermissionError:  # not ours to read (dshd as --user nobody, hidepid)
                continue
            except (OSError, ValueError):  # gone mid-read
                skipped += 1
                continue
            before = prev.get(stat.pid)
            ticks = before[1] if before is not None and before[0] == stat.start else None
            age = core.elapsed(stat.start, self.hz, uptime)
            seconds = span if ticks is not None and span is not None else age
            procs.append(core.Proc(
                stat.pid, self.user(uid), uid, stat.state,
                core.cpu_percent(ticks, stat.ticks, seconds, self.hz),
                stat.rss_pages * page, age, tuple(argv),
                core.command_text(argv, stat.comm)))  # fmt: skip
        self._prev, self._prev_at = current, started
        cost = self.monotonic() - started
        return Table(tuple(procs), self.clock(), span or 0.0, cost, skipped)


class Quik:
    """The node's one-line load: /proc/loadavg, /proc/meminfo, and CPU busy
    between the last two of ``sample()`` (called at every gossip tick)."""

    def __init__(self, proc: str = "/proc",
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.proc = proc
        self.monotonic = monotonic
        self._last: tuple[float, tuple[int, int]] | None = None
        self._busy: float | None = None
        self._span = 0.0

    def _text(self, name: str) -> str:
        with open(f"{self.proc}/{name}") as f:
            return f.read()

    def sample(self) -> None:
        try:
            now, cpu = self.monotonic(), core.parse_cpu(self._text("stat"))
        except (OSError, ValueError) as exc:
            log.debug("quik: /proc/stat: %s", exc)
            return
        if self._last is not None:
            busy = core.busy_share(self._last[1], cpu)
            if busy is not None:
                self._busy, self._span = busy, now - self._last[0]
        self._last = (now, cpu)

    def read(self) -> core.Quik:
        """OSError or ValueError if /proc is not Linux's."""
        load = core.parse_loadavg(self._text("loadavg"))
        avail, total = core.parse_meminfo(self._text("meminfo"))
        return core.Quik(load, self._busy, self._span, avail, total)


class Jobs:
    """The pages and the line protocol's answers."""

    def __init__(self, node: str, policy: str, table: ProcTable, quik: Quik,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.node = node
        self.policy = policy
        self.tables = table
        self.quik = quik
        self.clock = clock

    def set_policy(self, policy: str) -> None:
        self.policy = policy
        self.tables.set_policy(policy)

    def pages(self) -> dict[str, Page]:
        return {"/quik": self.quik_page, "/jobs": self.jobs_page}

    def quik_text(self) -> str:
        try:
            return core.quik_text(self.node, self.quik.read())
        except (OSError, ValueError) as exc:
            return f"error quik: cannot read /proc: {exc}\n"

    def quik_page(self, request: Request) -> Body:
        query = parse_qs(request.query)
        try:
            q = self.quik.read()
        except (OSError, ValueError) as exc:
            raise BadRequest(503, f"cannot read /proc: {exc}") from None
        if _format(query) == "json":
            return _json(q.as_json(self.node, self.clock()))
        return core.quik_text(self.node, q).encode(), TEXT

    def refusal(self) -> str | None:
        if self.policy == "off":
            return "jobs are off on this node (dshd --jobs off, or /proc has hidepid)"
        return None

    def jobs_text(self, user: str | None = None, top: int | None = None) -> str:
        """The whole answer in a worker thread (the line protocol's, and /jobs's text)."""
        refused = self.refusal()
        if refused is not None:
            return f"error {refused}\n"
        table = self.tables.table()
        chosen = core.select(table.procs, user, top)
        header = f"policy={self.policy} {table.header(self.clock())}"
        return core.jobs_text(self.node, chosen, header)

    def jobs_page(self, request: Request) -> Later:
        query = parse_qs(request.query)
        refused = self.refusal()
        if refused is not None:
            raise BadRequest(403, refused)
        users = query.get("user")
        user = users[-1] if users else None
        top = None
        if "top" in query:
            text = query["top"][-1]
            if not text.isdigit() or not 0 < int(text) <= MAX_TOP:
                raise BadRequest(400, f"top={text!r} is not a number from 1 to {MAX_TOP}")
            top = int(text)
        as_json = _format(query) == "json"

        def make() -> Body:
            if not as_json:
                return self.jobs_text(user, top).encode(), TEXT
            table = self.tables.table()
            chosen = core.select(table.procs, user, top)
            now = self.clock()
            return _json({"node": self.node, "time": round(now, 3), "policy": self.policy,
                          "cpu_over": round(table.span, 3), "age": round(now - table.made, 3),
                          "skipped": table.skipped, "count": len(chosen),
                          "processes": [p.as_json() for p in chosen]})  # fmt: skip

        return make


def _format(query: dict[str, list[str]]) -> str:
    value = query.get("format", ["text"])[-1]
    if value not in ("text", "json"):
        raise BadRequest(400, f"format={value!r}: text or json")
    return value


def _json(data: object) -> Body:
    import json

    return json.dumps(data, separators=(",", ":")).encode(), JSON


class ProcstatPort:
    """procstatd's line protocol: ``quik\\n`` or ``jobs\\n`` in, the text out, closed.

    Bounded as the TCP ports are: --allow first, max_clients, client_timeout
    for the request line, at most MAX_REQUEST_LINE bytes of it."""

    def __init__(self, config: DaemonConfig, allowed: Callable[[str], bool], jobs: Jobs) -> None:
        self.config = config
        self.allowed = allowed
        self.jobs = jobs
        self.counters = {"served": 0, "denied": 0, "busy": 0, "timeout": 0, "bad_request": 0}
        self._clients = 0

    async def listen(self) -> list[asyncio.Server]:
        port = self.config.procstat_port
        if port is None:
            return []
        return await listen_on(self.config.listen, port, self._handle, limit=MAX_REQUEST_LINE)

    def footer(self) -> list[str]:
        return ["procstat " + " ".join(f"{k}={v}" for k, v in self.counters.items())]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if denied(writer, self.allowed, self.counters):
            return
        if self._clients >= self.config.max_clients:
            self.counters["busy"] += 1
            writer.transport.abort()
            return
        self._clients += 1
        try:
            async with asyncio.timeout(self.config.client_timeout):
                try:
                    line = await reader.readuntil(b"\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    line = b""
                command = line.strip().decode("ascii", "replace")
                if command == "quik":
                    answer = self.jobs.quik_text()
                elif command == "jobs":
                    answer = await asyncio.to_thread(self.jobs.jobs_text)
                else:
                    self.counters["bad_request"] += 1
                    answer = "error: send quik or jobs, one line\n"
                writer.write(answer.encode())
                await writer.drain()
            self.counters["served"] += 1
        except (OSError, TimeoutError):
            self.counters["timeout"] += 1
            writer.transport.abort()
        except Exception:  # a bug here must cost one connection, never the daemon
            log.exception("procstat: client %s", writer.get_extra_info("peername"))
            writer.transport.abort()
        finally:
            self._clients -= 1
            writer.close()


def _real_uid(status: bytes, default: int) -> int:
    """The real uid from a /proc/PID/status text ("Uid:\treal\teffective..."), else ``default``."""
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            fields = line.split()
            if len(fields) > 1 and fields[1].isdigit():
                return int(fields[1])
    return default

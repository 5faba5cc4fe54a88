"""Pushes this node's sensor values, and dshd's own state, to carbon (Graphite).

Rules of this file: nothing here may hold the loop or the gossip. Every wait
has a deadline (connecting, each write); a carbon that is down, slow or never
reads costs at most the bounded buffer (core.graphite.MAX_PENDING metrics,
oldest dropped first) and a small send buffer (SEND_BUFFER), and is tried again with
exponential backoff and jitter, never in a tight loop. A batch whose write
fails goes back in front of the buffer, so carbon gets it on the next
connection. So do the batches written in the RESEND seconds before a
connection failed: written is not stored (a carbon that stops, or dies,
loses what it had not read yet), and whisper takes a point sent twice as one.

Names, encodings and the buffer are core.graphite's; this is the shell that
moves them to a socket.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections import Counter, deque
from collections.abc import Mapping

from ..core.graphite import (
    BATCH,
    ENCODERS,
    Metric,
    MetricBuffer,
    base,
    dshd_metrics,
    reading_metrics,
    sensor_part,
)
from .conf import GraphiteConf
from .sensors.runner import SensorRunner, SensorState

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds for the name lookup and the TCP connect
WRITE_TIMEOUT = 5.0  # seconds a batch may take to reach the kernel; else carbon is stuck
# The socket's send buffer, fixed: Linux would grow it to 4 MB for a carbon
# that stopped reading, hours of metrics that a reconnect could not get back.
# 64 KiB (the kernel doubles it) still carries some 10,000 metrics a second
# at 100 ms round trip, far more than dshd's sensors make.
SEND_BUFFER = 64 * 1024
BACKOFF_FIRST = 1.0  # seconds before the first retry, doubling on each failure ...
BACKOFF_MAX = 60.0  # ... up to this; a batch written resets it
BACKOFF_JITTER = 0.2  # each wait is that share longer or shorter, at random
OWN_INTERVAL = 10.0  # seconds between two sends of dshd's own state without `interval`
# Batches written this many seconds before a connection failed are sent again
# on the next one. Longer than carbon takes to stop (about 1 s) plus a write's
# deadline: what a carbon that went away had not stored yet.
RESEND = 10.0


def _part(state: SensorState) -> str:
    return sensor_part(state.name, state.instance if state.instance_option else None)


class GraphiteSender:
    """One ``[graphite]`` target. ``listener`` goes to ``SensorRunner.add_listener``;
    ``run()`` is the task; ``footer`` the status footer's line."""

    def __init__(
        self,
        conf: GraphiteConf,
        host_name: str,
        sensors: SensorRunner,
        datagrams: Mapping[str, int],
        best_answers: Mapping[str, int],
        *,
        previous: GraphiteSender | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.conf = conf
        self.root = base(conf.prefix, host_name)
        self._sensors, self._datagrams, self._best = sensors, datagrams, best_answers
        self._rng = rng or random.Random()
        self._encode = ENCODERS[conf.protocol]
        # Totals over the process's life: a reload carries them on, and the
        # metrics waiting too when they still go to the same place.
        self.stats: Counter[str] = Counter({"sent": 0, "connects": 0, "errors": 0, "resent": 0})
        self.buffer = MetricBuffer()
        if previous is not None:
            self.stats = previous.stats
            if previous.target == self.target:
                self.buffer = previous.buffer  # shared: the old task gives its batch back here
            else:  # what was waiting for the old target is lost, and counted so
                self.buffer.dropped = previous.buffer.dropped + len(previous.buffer)
        self.connected = False
        self._delay = BACKOFF_FIRST
        self._wake = asyncio.Event()
        self._last_sent: dict[str, float] = {}  # state key -> read_at last buffered (interval mode)
        self._last_error: str | None = None

    @property
    def target(self) -> tuple[str, int, str]:
        return (self.conf.host, self.conf.port, self.conf.protocol)

    @property
    def counters(self) -> dict[str, int]:
        """What the footer and the Prometheus exporter show."""
        return {
            "sent": self.stats["sent"],
            "dropped": self.buffer.dropped,
            "buffered": len(self.buffer),
            "connects": self.stats["connects"],
            "errors": self.stats["errors"],
            "resent": self.stats["resent"],
            "connected": int(self.connected),
        }

    def footer(self) -> list[str]:
        return ["graphite " + " ".join(f"{k}={v}" for k, v in self.counters.items())]

    # -- what goes in ----------------------------------------------------------

    def listener(self, state: SensorState) -> None:
        """Each good reading, as it is read; with ``interval`` the timer sends instead."""
        if self.conf.interval is None and state.read_at is not None:
            self._add_reading(state)
            self._wake.set()

    def _add_reading(self, state: SensorState) -> None:
        assert state.read_at is not None
        values = ((v.field, v.value, v.labels) for v in state.values)
        self.buffer.add(reading_metrics(self.root, state.name, values, int(state.read_at)))
        self._last_sent[state.key] = state.read_at

    def _add_latest(self) -> None:
        """``interval`` set: each sensor's latest good reading, unless already sent
        (a sensor slower than ``interval`` gives one point per reading, not copies)."""
        for key, state in self._sensors.states.items():
            fresh = state.read_at is not None and self._last_sent.get(key) != state.read_at
            if state.up and fresh:
                self._add_reading(state)

    def _add_own(self, now: float) -> None:
        states = {_part(s): s for s in self._sensors.states.values()}
        self.buffer.add(
            dshd_metrics(
                self.root,
                int(now),
                datagrams=self._datagrams,
                best_answers=self._best,
                sensor_up={n: s.up for n, s in states.items()},
                sensor_duration={n: s.duration for n, s in states.items()},
                graphite_dropped=self.buffer.dropped,
            )
        )

    # -- the tasks -------------------------------------------------------------

    async def run(self) -> None:
        log.info(
            "graphite: sending to %s:%d (%s) as %s.*",
            self.conf.host,
            self.conf.port,
            self.conf.protocol,
            self.root,
        )
        await asyncio.gather(self._timer(), self._connection())

    async def _timer(self) -> None:
        every = self.conf.interval or OWN_INTERVAL
        # A random first wait: nodes started together do not all send at once.
        await asyncio.sleep(self._rng.uniform(0, min(every, 1.0)))
        while True:
            try:
                if self.conf.interval is not None:
                    self._add_latest()
                self._add_own(time.time())
            except Exception:  # a bug here must not end the sending for good
                log.exception("graphite: collecting the values failed")
            self._wake.set()
            await asyncio.sleep(every)

    async def _connection(self) -> None:
        while True:
            while not self.buffer:
                self._wake.clear()
                await self._wake.wait()
            self.stats["connects"] += 1
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.conf.host, self.conf.port), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                self._failed("cannot connect", exc)
                await self._backoff()
                continue
            self.connected = True
            if self._last_error is not None:
                log.info("graphite: connected to %s:%d again", self.conf.host, self.conf.port)
                self._last_error = None
            written: deque[tuple[float, list[Metric]]] = deque()
            try:
                await self._send(reader, writer, written)
            except (OSError, TimeoutError) as exc:
                self._failed("cannot send", exc)
            except Exception:  # a bug: logged, and the connection is made again
                self.stats["errors"] += 1
                log.exception("graphite: sending failed")
            finally:
                self.connected = False
                writer.transport.abort()
                self._resend(written)
            await self._backoff()

    def _resend(self, written: deque[tuple[float, list[Metric]]]) -> None:
        """Into the buffer's front again, in order: what the dead connection took lately."""
        horizon = time.monotonic() - RESEND
        for at, batch in reversed(written):
            if at < horizon:
                break
            self.buffer.give_back(batch)
            self.stats["resent"] += len(batch)

    async def _send(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    written: deque[tuple[float, list[Metric]]]) -> None:  # fmt: skip
        # drain() returns only when everything is in the kernel: at most one
        # batch is ever held in user space, and a stuck carbon shows at once.
        writer.transport.set_write_buffer_limits(high=0)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        while True:
            while not self.buffer:
                self._wake.clear()
                await self._wake.wait()
            batch = self.buffer.take(BATCH)
            try:
                # Carbon never writes to us: end of input means it closed (a
                # restart); found here, before the batch is lost in a dead socket.
                if reader.at_eof() or writer.is_closing():
                    raise ConnectionResetError("carbon closed the connection")
                writer.write(self._encode(batch))
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
            except BaseException:  # cancelled too: a reload's new sender gets it
                self.buffer.give_back(batch)
                raise
            self.stats["sent"] += len(batch)
            self._delay = BACKOFF_FIRST
            now = time.monotonic()
            written.append((now, batch))
            while written[0][0] < now - RESEND:
                written.popleft()

    def _failed(self, what: str, exc: BaseException) -> None:
        self.stats["errors"] += 1
        if isinstance(exc, TimeoutError):
            reason = (f"no connection in {CONNECT_TIMEOUT:g} s" if what == "cannot connect"
                      else f"carbon took no data for {WRITE_TIMEOUT:g} s")  # fmt: skip
        elif isinstance(exc, OSError) and exc.errno:
            reason = os.strerror(exc.errno)
        else:
            reason = str(exc) or type(exc).__name__
        error = f"{what} to {self.conf.host}:{self.conf.port}: {reason}"
        if error != self._last_error:  # one line per new reason, not one per retry
            log.warning("graphite: %s; %d metrics waiting, retrying with backoff",
                        error, len(self.buffer))  # fmt: skip
            self._last_error = error

    async def _backoff(self) -> None:
        delay = self._delay * self._rng.uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)
        self._delay = min(self._delay * 2, BACKOFF_MAX)
        await asyncio.sleep(delay)

"""Runs the configured sensors off the event loop, each on its own timer and deadline.

Rules of this file: a sensor can never hold the loop or another sensor. Each
reading runs in a thread of its own, a daemon thread, because a read stuck
in the kernel (``statfs`` on a hung NFS or FUSE mount) cannot be cancelled,
and a pool's worker that never returns would be lost for good, and would
keep the process from exiting. A sensor has at most one reading in flight:
while one hangs, its later turns are skipped and counted, and it is down
(``up`` false, the error says since when); the others and the gossip go on.

A sensor whose option is ``per_instance`` (DiskUsage's ``path``) is one
reading per value of it, an *instance*: its own thread, deadline and state,
keyed ``NAME[VALUE]`` (``DiskUsage[/nfs]``), so that a hung NFS mount leaves
``/`` up. Whether a sensor works here (``available()``, which may take
seconds: NVML's init, every hwmon device) is asked in the reading's thread
too, within its deadline, never on the loop; once it says yes it is not
asked again.

What the exporters read is ``SensorState``: the last good values, with when
they were read, and how the last attempt went. The schedule itself is pure
(``Schedule``: ``now`` in, what is due out) and unit-tested without threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..conf import SensorConf
from .base import Sensor, Value
from .catalogue import SENSORS

log = logging.getLogger(__name__)

# A reading that takes longer than this is abandoned (and the sensor is
# down), unless the sensor's section sets ``timeout``; never longer than the
# sensor's interval, so that a slow sensor cannot queue up behind itself.
DEFAULT_TIMEOUT = 5.0


@dataclass
class SensorState:
    """One sensor as the exports and the status footer show it."""

    name: str
    interval: float  # seconds between two readings
    timeout: float  # seconds a reading may take
    options: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    values: tuple[Value, ...] = ()  # the last good reading
    read_at: float | None = None  # wall clock (time.time()) of that reading: its timestamp
    read_mono: float | None = None  # monotonic clock of that reading: its age (freshness)
    up: bool | None = None  # None until the first reading ends; False: the last one failed
    last_error: str | None = None  # one line: why the last failed reading failed
    duration: float | None = None  # seconds the last finished (or abandoned) reading took
    readings: int = 0  # readings that returned values
    errors: int = 0  # readings that raised or were abandoned
    skipped: int = 0  # turns skipped because the previous reading had not returned
    busy_since: float | None = None  # monotonic start of the reading in flight
    # A sensor of a per-instance option: that option's name, and the one value
    # this state reads (DiskUsage: "path", "/nfs"); "" for the other sensors.
    instance_option: str = ""
    instance: str = ""
    available: bool | None = None  # what available() said; True: it is not asked again

    @property
    def status(self) -> str:
        """One word for the status footer: up, down, or waiting (no reading yet)."""
        return "waiting" if self.up is None else "up" if self.up else "down"

    @property
    def key(self) -> str:
        """Its key in ``SensorRunner.states``: ``NAME``, or ``NAME[INSTANCE]``."""
        return f"{self.name}[{self.instance}]" if self.instance_option else self.name

    @property
    def labels(self) -> dict[str, str]:
        """The exports' labels of its own state: sensor, and its instance's option."""
        if not self.instance_option:
            return {"sensor": self.name}
        return {"sensor": self.name, self.instance_option: self.instance}

    @property
    def footer_name(self) -> str:
        """The key as one word of the footer: whitespace, '=', '[', ']' and '%' as %XX."""
        if not self.instance_option:
            return self.name
        return f"{self.name}[{_FOOTER_UNSAFE.sub(_percent, self.instance)}]"


_FOOTER_UNSAFE = re.compile(r"[\s=\[\]%]")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match[0].encode())


Instance = tuple[str, str, dict[str, tuple[str, ...]]]  # option, value, the reading's options


def instances(sensor: Sensor, options: Mapping[str, tuple[str, ...]]) -> list[Instance]:
    """The readings one ``[sensor:NAME]`` section makes: one per value of its
    per-instance option (its default where the section gives none), each with
    that value alone; for a sensor without one, one reading of all its options."""
    per = next((o for o in sensor.options if o.per_instance), None)
    if per is None:
        return [("", "", dict(options))]
    values = dict.fromkeys(sensor.option_values(options)[per.name])  # in order, once each
    return [(per.name, value, {**options, per.name: (value,)}) for value in values]


def timeout_of(conf: SensorConf) -> float:
    return min(conf.timeout or DEFAULT_TIMEOUT, conf.interval)


class Schedule:
    """When each sensor is next due; pure: the caller passes ``now`` (monotonic)."""

    def __init__(self, intervals: Mapping[str, float], now: float,
                 delays: Mapping[str, float] | None = None) -> None:  # fmt: skip
        self.intervals = dict(intervals)
        # Every sensor at once at start, but for those given a delay.
        self.next_at = {name: now + (delays or {}).get(name, 0.0) for name in intervals}

    def due(self, now: float) -> list[str]:
        """The sensors whose turn it is; each is then scheduled one interval on."""
        out = [name for name, at in self.next_at.items() if at <= now]
        for name in out:
            at = self.next_at[name] + self.intervals[name]
            # After a pause (a suspended VM, a stopped process) start afresh
            # instead of running every missed turn in a row.
            self.next_at[name] = at if at > now else now + self.intervals[name]
        return out

    def wait(self, now: float) -> float:
        """Seconds until the next sensor is due (0 if one is due now)."""
        return max(0.0, min(self.next_at.values(), default=now + 60.0) - now)


Listener = Callable[[SensorState], None]
# values or an error; seconds taken; what available() said (None: not asked, or it raised)
_Result = tuple[list[Value] | None, str | None, float, bool | None]


class SensorRunner:
    """The sensors of one configuration; ``reconfigure`` swaps in another on SIGHUP."""

    def __init__(
        self, confs: Mapping[str, SensorConf], catalogue: Mapping[str, Sensor] = SENSORS
    ) -> None:
        self.catalogue = catalogue  # name -> Sensor: the known sensors (tests bring their own)
        self.states: dict[str, SensorState] = {}  # by SensorState.key
        self._sensors: dict[str, Sensor] = {}  # by SensorState.key
        self._listeners: list[Listener] = []
        self._wake: asyncio.Future[None] | None = None  # set: the schedule changed
        self._schedule = Schedule({}, 0.0)
        self._aside: list[SensorState] = []  # configured away, their reading still in flight
        self._configure(confs)

    def add_listener(self, listener: Listener) -> None:
        """``listener(state)`` runs on the loop after each good reading (Graphite)."""
        self._listeners.append(listener)

    def reconfigure(self, confs: Mapping[str, SensorConf]) -> None:
        self._configure(confs)
        if self._wake is not None:
            _settle(self._wake, None)

    def _configure(self, confs: Mapping[str, SensorConf]) -> None:
        # A sensor configured away while its reading hangs is kept aside, so
        # that configured back it is still the one hung reading, not a second.
        # No available() here: it may take seconds (it is asked in the
        # reading's thread, see _start), and this runs on the loop.
        old = [*self.states.values(), *(s for s in self._aside if s.busy_since is not None)]
        self.states, self._sensors = {}, {}
        for name, conf in confs.items():
            sensor = self.catalogue[name]
            for option, value, options in instances(sensor, conf.options):
                state = next((s for s in old if s.name == name and s.instance == value
                              and s.options == options), None)  # fmt: skip
                if state is not None:
                    # The same sensor reads the same thing: the same state, with
                    # its history and its reading in flight (a hung one must
                    # stay counted as hung, and not be started twice).
                    state.interval, state.timeout = conf.interval, timeout_of(conf)
                else:
                    state = SensorState(name, conf.interval, timeout_of(conf), options,
                                        instance_option=option, instance=value)  # fmt: skip
                self.states[state.key] = state
                self._sensors[state.key] = sensor
        in_use = {id(s) for s in self.states.values()}
        self._aside = [s for s in old if s.busy_since is not None and id(s) not in in_use]
        # A sensor that measures since its last reading (CPUPercent) is primed
        # at start; its first turn comes a second later, or it would measure
        # over no time at all.
        delays = {k: min(1.0, s.interval) for k, s in self.states.items()
                  if type(self._sensors[k]).prime is not Sensor.prime}  # fmt: skip
        self._schedule = Schedule({k: s.interval for k, s in self.states.items()},
                                  time.monotonic(), delays)  # fmt: skip

    def prime(self) -> None:
        """Sensors that measure since their last reading take a first one now, at start,
        on the caller's thread: a prime reads a file of /proc, it cannot hang."""
        for sensor in {id(s): s for s in self._sensors.values()}.values():  # once per sensor
            _quietly(sensor.prime)

    async def run(self) -> None:
        # A plain future and a timer, not wait_for(event.wait()): Python 3.11's
        # wait_for loses a cancellation that comes as the event is set (a
        # SIGTERM right after a SIGHUP), and this task would then never end.
        loop = asyncio.get_running_loop()
        while True:
            for key in self._schedule.due(time.monotonic()):
                self._start(self.states[key])
            self._wake = wake = loop.create_future()
            timer = loop.call_at(loop.time() + self._schedule.wait(time.monotonic()),
                                 _settle, wake, None)  # fmt: skip
            try:
                await wake
            finally:
                timer.cancel()

    def _start(self, state: SensorState) -> None:
        now = time.monotonic()
        if state.busy_since is not None:
            state.skipped += 1
            state.last_error = f"no answer for {now - state.busy_since:.0f} s"
            return
        state.busy_since = now
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Result] = loop.create_future()
        sensor, options = self._sensors[state.key], state.options
        ask = state.available is not True  # until it has said yes once

        def read() -> None:
            start = time.monotonic()
            values: list[Value] | None = None
            error: str | None = "the reading ended without a result"  # (SystemExit...)
            available: bool | None = None
            try:
                why_not = sensor.available() if ask else None
                if ask:
                    available = why_not is None
                if why_not is None:
                    values, error = sensor.read(options), None
                else:
                    error = f"unavailable here: {why_not}".splitlines()[0][:200]
            except Exception as exc:  # a sensor's failure is its own, never the daemon's
                error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            finally:  # settled whatever happens: else the sensor would stay busy for good
                result = (values, error, time.monotonic() - start, available)
                with contextlib.suppress(RuntimeError):  # the loop is closed: dshd is exiting
                    loop.call_soon_threadsafe(_settle, done, result)

        try:
            threading.Thread(target=read, daemon=True, name=f"sensor {state.key}").start()
        except RuntimeError as exc:  # "can't start new thread": out of threads or memory
            state.busy_since = None
            self._fail(state, f"cannot start a thread: {exc}", 0.0)
            return
        task = asyncio.ensure_future(self._finish(state, done))
        task.add_done_callback(_log_failure)

    async def _finish(self, state: SensorState, done: asyncio.Future[_Result]) -> None:
        try:
            values, error, duration, available = await asyncio.wait_for(
                asyncio.shield(done), state.timeout
            )
        except TimeoutError:
            self._fail(state, f"no answer in {state.timeout:g} s", state.timeout)
            values, error, duration, available = await done  # the thread may yet come back
            state.busy_since = None
            log.warning("sensor %s answered again after %.1f s", state.key, duration)
            # Too late to count, but what available() said holds: a slow
            # check (NVML's init) is not made again on every turn.
            self._note_available(state, available, error)
            return  # the next turn reads afresh
        state.busy_since = None
        if available is False:
            self._note_available(state, available, error)
            self._fail(state, error or "unavailable here", duration, quiet=True)
            return
        self._note_available(state, available, error)
        if values is None:
            self._fail(state, error or "failed", duration)
            return
        if state.up is False:
            log.info("sensor %s is up again", state.key)
        state.values, state.read_at, state.up = tuple(values), time.time(), True
        state.read_mono = time.monotonic()
        state.duration, state.last_error = duration, None
        state.readings += 1
        if self.states.get(state.key) is not state:
            return  # configured away meanwhile
        for listener in self._listeners:
            try:
                listener(state)
            except Exception:  # an exporter's bug must not stop the sensors
                log.exception("sensor listener failed")

    @staticmethod
    def _note_available(state: SensorState, available: bool | None, error: str | None) -> None:
        """Logs the "unavailable here" line once, when a sensor is found so (on the loop)."""
        if available is False and state.available is not False:
            log.warning("sensor %s: %s; it will report down", state.key, error)
        if available is not None:
            state.available = available

    def _fail(self, state: SensorState, error: str, duration: float, quiet: bool = False) -> None:
        if not quiet and (state.up is not False or state.last_error != error):
            log.warning("sensor %s is down: %s", state.key, error)
        state.up, state.last_error, state.duration = False, error, duration
        state.errors += 1

    def footer(self) -> list[str]:
        """The status footer's line per sensor (instance): ``sensor NAME up interval=...
        duration=... readings=... errors=... skipped=...``, ``error=...`` last when down;
        an instance's NAME is ``NAME[INSTANCE]`` (``DiskUsage[/nfs]``)."""
        lines = []
        for s in self.states.values():
            duration = "-" if s.duration is None else f"{s.duration:.3f}"
            line = (f"sensor {s.footer_name} {s.status} interval={s.interval:g} duration={duration}"
                    f" readings={s.readings} errors={s.errors} skipped={s.skipped}")  # fmt: skip
            if s.last_error and not s.up:
                line += f" error={s.last_error}"
            lines.append(line)
        return lines


def _settle(future: asyncio.Future[Any], result: object) -> None:
    if not future.done():
        future.set_result(result)


def _quietly(fn: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):
        fn()


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sensor reading failed", exc_info=task.exception())

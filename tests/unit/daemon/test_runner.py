"""daemon/sensors/runner.py: the pure schedule, and the runner with tiny real
sensors that answer, raise, or hang past their deadline in their own threads.

Intervals and deadlines are tens of milliseconds; every wait has a deadline
(``until``), none is a fixed sleep that the assertions rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from dsh.daemon.conf import SensorConf
from dsh.daemon.sensors.base import Field, Option, Options, Sensor, Value
from dsh.daemon.sensors.runner import (
    DEFAULT_TIMEOUT,
    Schedule,
    SensorRunner,
    SensorState,
    instances,
)

INTERVAL = 0.05  # seconds between turns
DEADLINE = 0.03  # seconds a reading may take


# -- Schedule: pure ---------------------------------------------------------------


def test_every_sensor_is_due_at_start_then_once_per_interval() -> None:
    schedule = Schedule({"a": 1.0, "b": 3.0}, now=100.0)
    assert schedule.due(100.0) == ["a", "b"]
    assert schedule.due(100.0) == []
    assert schedule.wait(100.0) == 1.0
    assert schedule.wait(100.6) == pytest.approx(0.4)
    assert schedule.due(100.99) == []
    assert schedule.due(101.0) == ["a"]
    assert schedule.due(102.5) == ["a"]  # due at 102, late by 0.5: still on its grid
    assert schedule.next_at["a"] == 103.0
    assert schedule.due(103.0) == ["a", "b"]
    assert schedule.wait(103.0) == 1.0


def test_a_pause_skips_the_missed_turns_instead_of_running_them_all() -> None:
    schedule = Schedule({"a": 1.0}, now=0.0)
    assert schedule.due(0.0) == ["a"]
    # Suspended for ten seconds: one turn now, then the next a full interval on.
    assert schedule.due(10.25) == ["a"]
    assert schedule.due(10.3) == []
    assert schedule.next_at["a"] == 11.25
    assert schedule.wait(10.3) == pytest.approx(0.95)


def test_wait_is_never_negative_and_bounded_without_sensors() -> None:
    schedule = Schedule({"a": 1.0}, now=0.0)
    assert schedule.wait(5.0) == 0.0  # overdue: at once
    assert Schedule({}, now=0.0).wait(0.0) == 60.0


# -- real sensors of the tests' own ---------------------------------------------------


class Counting(Sensor):
    """Answers at once with how many times it was read."""

    name = "Counting"
    help = "counts its readings"
    fields = (Field("n", "count", "readings so far"),)

    def __init__(self) -> None:
        self.n = 0

    def read(self, options: Options) -> list[Value]:
        self.n += 1
        return [Value("n", float(self.n), tuple((k, v[0]) for k, v in options.items()))]


class Failing(Sensor):
    name = "Failing"
    help = "always raises"
    fields = (Field("x", "count", "never"),)

    def read(self, options: Options) -> list[Value]:
        raise OSError(5, "disk on fire\nsecond line")


class Exiting(Sensor):
    name = "Exiting"
    help = "raises what is not an Exception"
    fields = (Field("x", "count", "never"),)

    def read(self, options: Options) -> list[Value]:
        raise SystemExit(3)


class Hanging(Sensor):
    """Blocks (as statfs on a dead mount does) while ``hang`` is set; counts
    how many readings started and the most that were ever in flight at once."""

    name = "Hanging"
    help = "hangs until released"
    fields = (Field("ok", "count", "1"),)

    def __init__(self) -> None:
        self.hang = threading.Event()
        self.released = threading.Event()
        self.started = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def read(self, options: Options) -> list[Value]:
        with self._lock:
            self.started += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.hang.is_set():
                self.released.wait(30)
            return [Value("ok", 1.0)]
        finally:
            with self._lock:
                self.in_flight -= 1


class Unavailable(Sensor):
    """Not here, as GPU is without a driver: says why from ``available()`` (in
    the thread it is asked on), which blocks while ``hang`` is set (NVML's slow
    init); says yes once ``here`` is set."""

    name = "Unavailable"
    help = "not on this machine"
    fields = (Field("x", "count", "1"),)

    def __init__(self) -> None:
        self.asked_on: list[str] = []
        self.here = threading.Event()
        self.hang = threading.Event()
        self.released = threading.Event()
        self.readings = 0

    def available(self) -> str | None:
        self.asked_on.append(threading.current_thread().name)
        if self.hang.is_set():
            self.released.wait(30)
        return None if self.here.is_set() else "no such device\nsecond line"

    def read(self, options: Options) -> list[Value]:
        self.readings += 1
        return [Value("x", 1.0)]


class PerPath(Sensor):
    """DiskUsage's shape: a per-instance ``path``; ``/hung`` blocks (a dead
    NFS mount) until released, ``/missing`` raises, the others answer."""

    name = "PerPath"
    help = "one reading per path"
    fields = (Field("free", "bytes", "free"),)
    options = (Option("path", "a path", ("/",), repeatable=True, per_instance=True),
               Option("unit", "another option", ("b",)))  # fmt: skip

    def __init__(self) -> None:
        self.released = threading.Event()
        self.started: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.most_in_flight: Counter[str] = Counter()
        self._lock = threading.Lock()

    def read(self, options: Options) -> list[Value]:
        (path,) = options["path"]  # one path per reading
        with self._lock:
            self.started[path] += 1
            self.in_flight[path] += 1
            self.most_in_flight[path] = max(self.most_in_flight[path], self.in_flight[path])
        try:
            if path == "/hung":
                self.released.wait(30)
            if path == "/missing":
                raise FileNotFoundError(2, "No such file or directory", path)
            return [Value("free", float(self.started[path]), (("path", path),))]
        finally:
            with self._lock:
                self.in_flight[path] -= 1


def conf(name: str, interval: float = INTERVAL, timeout: float | None = DEADLINE,
         **options: str) -> SensorConf:  # fmt: skip
    return SensorConf(name, interval, {k: (v,) for k, v in options.items()}, timeout=timeout)


def paths(*values: str, interval: float = INTERVAL) -> dict[str, SensorConf]:
    return {"PerPath": SensorConf("PerPath", interval, {"path": values}, timeout=DEADLINE)}


async def until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def running(runner: SensorRunner) -> AsyncIterator[SensorRunner]:
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled(), "the runner did not stop when cancelled"


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    sensor = Hanging()
    yield sensor
    sensor.released.set()  # no thread of the test's left blocked, also on failure


@pytest.fixture
def unavailable() -> Iterator[Unavailable]:
    sensor = Unavailable()
    yield sensor
    sensor.released.set()


@pytest.fixture
def per_path() -> Iterator[PerPath]:
    sensor = PerPath()
    yield sensor
    sensor.released.set()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 30))


# -- the runner ---------------------------------------------------------------------


def test_good_readings_are_up_with_values_and_call_the_listeners() -> None:
    async def test() -> None:
        counting = Counting()
        runner = SensorRunner({"Counting": conf("Counting", where="here")}, {"Counting": counting})
        seen: list[tuple[float, bool | None]] = []
        runner.add_listener(lambda s: seen.append((s.values[0].value, s.up)))
        state = runner.states["Counting"]
        assert state.status == "waiting" and state.up is None
        before, before_mono = time.time(), time.monotonic()
        async with running(runner):
            await until(lambda: state.readings >= 3, "three readings")
        assert state.up is True and state.status == "up"
        assert state.last_error is None and state.errors == 0 and state.skipped == 0
        assert state.values[-1].labels == (("where", "here"),)
        assert state.read_at is not None and state.read_at >= before
        assert state.read_mono is not None and before_mono <= state.read_mono <= time.monotonic()
        assert state.duration is not None and 0 <= state.duration < DEADLINE
        assert state.interval == INTERVAL and state.timeout == DEADLINE
        # one call per good reading, after the state holds it
        assert [n for n, _ in seen] == [float(i) for i in range(1, len(seen) + 1)]
        assert all(up for _, up in seen) and len(seen) == state.readings
        line = runner.footer()[0]
        assert line.startswith(f"sensor Counting up interval={INTERVAL:g} duration=0.0")
        assert "error=" not in line

    run(test)


def test_a_failing_sensor_is_down_with_its_error_and_no_listener_hears_of_it() -> None:
    async def test() -> None:
        sensors = {"Failing": Failing(), "Counting": Counting()}
        runner = SensorRunner({n: conf(n) for n in sensors}, sensors)
        heard: list[str] = []
        runner.add_listener(lambda s: heard.append(s.name))
        failing = runner.states["Failing"]
        async with running(runner):
            await until(lambda: failing.errors >= 2, "two failed readings")
            await until(lambda: runner.states["Counting"].readings >= 2, "the other to go on")
        assert failing.up is False and failing.status == "down"
        assert failing.last_error == "OSError: [Errno 5] disk on fire"  # its first line only
        assert failing.readings == 0 and failing.values == () and failing.read_at is None
        assert failing.duration is not None
        assert set(heard) == {"Counting"}
        assert "sensor Failing down" in runner.footer()[0]
        assert runner.footer()[0].endswith(" error=OSError: [Errno 5] disk on fire")

    run(test)


# (dshd's own threading.excepthook is Python's, which passes over SystemExit quietly)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_reading_that_ends_without_an_exception_still_settles() -> None:
    async def test() -> None:
        runner = SensorRunner({"Exiting": conf("Exiting")}, {"Exiting": Exiting()})
        state = runner.states["Exiting"]
        async with running(runner):
            await until(lambda: state.errors >= 2, "two settled readings")
        assert state.last_error == "the reading ended without a result"
        assert state.skipped == 0  # not left busy: every turn read afresh

    run(test)
    # A reading still in flight when the runner stopped raises its SystemExit
    # later; inside this test, or pytest blames the next one (a CI run did).
    deadline = time.monotonic() + 10
    while any(t.name == "sensor Exiting" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "a sensor thread outlived the runner by 10 s"
        time.sleep(0.01)


def test_a_hung_sensor_is_down_skipped_and_alone_then_answers_again(
    hanging: Hanging, caplog: pytest.LogCaptureFixture
) -> None:
    async def test() -> None:
        counting = Counting()
        sensors: dict[str, Sensor] = {"Hanging": hanging, "Counting": counting}
        runner = SensorRunner({n: conf(n) for n in sensors}, sensors)
        heard: list[str] = []
        runner.add_listener(lambda s: heard.append(s.name))
        state, other = runner.states["Hanging"], runner.states["Counting"]
        async with running(runner):
            await until(lambda: state.readings >= 1, "a first good reading")
            good_at = state.read_at
            hanging.hang.set()
            await until(lambda: state.up is False, "the deadline to pass")
            # "no answer in 0.03 s", or already "no answer for 0 s" if a turn was skipped
            assert state.last_error is not None and state.last_error.startswith("no answer")
            assert state.duration == DEADLINE
            await until(lambda: state.skipped >= 3, "turns to be skipped")
            assert state.last_error is not None and state.last_error.startswith("no answer for ")
            assert state.errors == 1  # one hung reading, however many turns it lasts
            assert state.busy_since is not None
            assert hanging.started == 2 and hanging.most_in_flight == 1
            # the last good reading is kept (exporters keep its time) ...
            assert state.values == (Value("ok", 1.0),) and state.read_at == good_at
            # ... and the other sensor goes on meanwhile
            readings = other.readings
            await until(lambda: other.readings >= readings + 3, "the other sensor's readings")
            assert "error=no answer for " in runner.footer()[0]
            heard_before = len(heard)
            assert heard.count("Hanging") == 1

            hanging.hang.clear()
            hanging.released.set()  # the hang ends: the late answer is not counted ...
            await until(lambda: state.busy_since is None, "the hung reading to return")
            assert "sensor Hanging answered again after" in caplog.text
            await until(lambda: state.up is True, "the next turn to read afresh")
            assert state.last_error is None and state.readings == 2
            assert hanging.most_in_flight == 1
            assert state.read_at is not None and good_at is not None and state.read_at > good_at
            assert heard.count("Hanging") == 2 and len(heard) > heard_before
        assert "sensor Hanging is down: no answer in" in caplog.text
        assert "sensor Hanging is up again" in caplog.text

    caplog.set_level(logging.INFO, logger="dsh.daemon.sensors.runner")
    run(test)


def test_reconfigure_keeps_a_hung_sensors_state_and_never_starts_it_twice(
    hanging: Hanging,
) -> None:
    async def test() -> None:
        counting = Counting()
        sensors: dict[str, Sensor] = {"Hanging": hanging, "Counting": counting}
        hanging.hang.set()
        runner = SensorRunner({n: conf(n) for n in sensors}, sensors)
        state = runner.states["Hanging"]
        async with running(runner):
            await until(lambda: state.skipped >= 2, "the hang to be skipped")
            # The same sensor reading the same thing, at another interval: the same state.
            runner.reconfigure({**{n: conf(n) for n in sensors}, "Hanging": conf("Hanging", 0.04)})
            assert runner.states["Hanging"] is state and state.interval == 0.04
            skipped = state.skipped
            await until(lambda: state.skipped > skipped + 2, "more skipped turns")
            assert state.errors == 1 and hanging.started == 1
            # Configured away, and back: still that one hung reading.
            runner.reconfigure({"Counting": conf("Counting")})
            assert list(runner.states) == ["Counting"]
            readings = runner.states["Counting"].readings
            await until(lambda: runner.states["Counting"].readings > readings + 2, "readings")
            runner.reconfigure({n: conf(n) for n in sensors})
            assert runner.states["Hanging"] is state
            skipped = state.skipped
            await until(lambda: state.skipped > skipped, "a skipped turn after coming back")
            assert hanging.started == 1 and hanging.most_in_flight == 1
            # Other options are another reading (another path, say): a fresh state.
            runner.reconfigure({"Hanging": conf("Hanging", path="/elsewhere")})
            fresh = runner.states["Hanging"]
            assert fresh is not state and fresh.skipped == 0 and fresh.options
            assert "Counting" not in runner.states
            assert [line.split()[1] for line in runner.footer()] == ["Hanging"]

    run(test)


def test_a_sensor_configured_away_mid_reading_tells_no_listener(hanging: Hanging) -> None:
    async def test() -> None:
        hanging.hang.set()
        runner = SensorRunner({"Hanging": conf("Hanging", 5.0, 5.0)}, {"Hanging": hanging})
        heard: list[SensorState] = []
        runner.add_listener(heard.append)
        state = runner.states["Hanging"]
        async with running(runner):
            await until(lambda: hanging.started == 1, "the reading to start")
            runner.reconfigure({})
            hanging.released.set()
            await until(lambda: state.readings == 1, "the reading to end")
            await asyncio.sleep(0)  # (the listeners would run in the same callback)
        assert heard == [] and runner.states == {}

    run(test)


def test_a_listeners_bug_stops_neither_the_sensor_nor_the_other_listeners(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def test() -> None:
        runner = SensorRunner({"Counting": conf("Counting")}, {"Counting": Counting()})
        heard: list[str] = []

        def broken(state: SensorState) -> None:
            raise ValueError("exporter bug")

        runner.add_listener(broken)
        runner.add_listener(lambda s: heard.append(s.name))
        async with running(runner):
            await until(lambda: len(heard) >= 3, "three readings heard")
        assert runner.states["Counting"].up is True
        assert "sensor listener failed" in caplog.text

    run(test)


def test_the_deadline_is_never_longer_than_the_interval() -> None:
    runner = SensorRunner(
        {"A": conf("A", 10.0, None), "B": conf("B", 2.0, None), "C": conf("C", 10.0, 1.5)},
        {"A": Counting(), "B": Counting(), "C": Counting()},
    )
    assert runner.states["A"].timeout == DEFAULT_TIMEOUT
    assert runner.states["B"].timeout == 2.0
    assert runner.states["C"].timeout == 1.5


def test_cancelled_right_after_a_reconfigure_the_runner_stops() -> None:
    # (Python 3.11's wait_for on an event that is set as the task is cancelled
    # returns instead of raising: the runner went on for good.)
    async def test() -> None:
        runner = SensorRunner({"Counting": conf("Counting")}, {"Counting": Counting()})
        for _ in range(20):
            task = asyncio.create_task(runner.run())
            await asyncio.sleep(0.001)
            runner.reconfigure({"Counting": conf("Counting")})
            task.cancel()
            await asyncio.wait({task}, timeout=5)
            assert task.cancelled()

    run(test)


# -- available(): asked off the loop ------------------------------------------------


def test_availability_is_asked_in_the_readings_thread_and_logged_once(
    unavailable: Unavailable, caplog: pytest.LogCaptureFixture
) -> None:
    async def test() -> None:
        sensors: dict[str, Sensor] = {"Unavailable": unavailable, "Counting": Counting()}
        runner = SensorRunner({n: conf(n) for n in sensors}, sensors)
        runner.reconfigure({n: conf(n, 0.04) for n in sensors})  # (SIGHUP)
        assert unavailable.asked_on == []  # neither at start nor on SIGHUP: on the loop
        state = runner.states["Unavailable"]
        async with running(runner):
            await until(lambda: state.errors >= 3, "three failed readings")
            assert state.up is False and state.available is False
            assert state.last_error == "unavailable here: no such device"  # its first line
            assert unavailable.readings == 0 and state.readings == 0
            assert "error=unavailable here: no such device" in runner.footer()[0]
            assert threading.current_thread().name not in unavailable.asked_on
            assert all(n == "sensor Unavailable" for n in unavailable.asked_on)
            # The driver is loaded: asked once more, then read, never asked again.
            unavailable.here.set()
            await until(lambda: state.readings >= 3, "readings once it is here")
            asked = len(unavailable.asked_on)
            await until(lambda: state.readings >= 6, "more readings")
            assert len(unavailable.asked_on) == asked and state.available is True
            assert state.up is True and runner.states["Counting"].up is True
        lines = [r.getMessage() for r in caplog.records if "Unavailable" in r.getMessage()]
        assert lines == [
            "sensor Unavailable: unavailable here: no such device; it will report down",
            "sensor Unavailable is up again",
        ]

    caplog.set_level(logging.INFO, logger="dsh.daemon.sensors.runner")
    run(test)


def test_a_slow_availability_check_holds_neither_the_loop_nor_its_deadline(
    unavailable: Unavailable,
) -> None:
    async def test() -> None:
        unavailable.hang.set()
        unavailable.here.set()
        sensors: dict[str, Sensor] = {"Unavailable": unavailable, "Counting": Counting()}
        runner = SensorRunner({n: conf(n) for n in sensors}, sensors)
        state, other = runner.states["Unavailable"], runner.states["Counting"]
        async with running(runner):
            await until(lambda: state.up is False, "the deadline to pass")
            assert state.last_error is not None and state.last_error.startswith("no answer")
            await until(lambda: other.readings >= 3, "the other sensor to go on")
            assert len(unavailable.asked_on) == 1 and state.available is None
            # The late answer is too late to count, but it said yes: not asked again.
            unavailable.released.set()
            await until(lambda: state.up is True, "a reading after the slow check")
            assert state.available is True and len(unavailable.asked_on) == 1

    run(test)


# -- per-instance options: one reading per path --------------------------------------------


def test_instances_are_one_per_value_of_the_per_instance_option() -> None:
    sensor = PerPath()
    assert instances(sensor, {}) == [("path", "/", {"path": ("/",)})]  # its default
    assert instances(sensor, {"path": ("/", "/nfs", "/"), "unit": ("k",)}) == [
        ("path", "/", {"path": ("/",), "unit": ("k",)}),
        ("path", "/nfs", {"path": ("/nfs",), "unit": ("k",)}),
    ]
    assert instances(Counting(), {"where": ("x",)}) == [("", "", {"where": ("x",)})]


def test_a_hung_or_missing_path_takes_no_other_path_down(
    per_path: PerPath, caplog: pytest.LogCaptureFixture
) -> None:
    async def test() -> None:
        runner = SensorRunner(paths("/", "/hung", "/missing"), {"PerPath": per_path})
        assert list(runner.states) == ["PerPath[/]", "PerPath[/hung]", "PerPath[/missing]"]
        root, hung, missing = runner.states.values()
        assert (root.instance_option, root.instance) == ("path", "/")
        assert root.labels == {"sensor": "PerPath", "path": "/"}
        heard: list[str] = []
        runner.add_listener(lambda s: heard.append(s.key))
        async with running(runner):
            await until(lambda: hung.skipped >= 3, "the hung path's turns to be skipped")
            readings = root.readings
            await until(lambda: root.readings >= readings + 3, "/ to go on reading")
        assert root.up is True and [v.labels for v in root.values] == [(("path", "/"),)]
        assert hung.up is False and hung.errors == 1 and per_path.started["/hung"] == 1
        assert hung.last_error is not None and hung.last_error.startswith("no answer for ")
        assert missing.up is False and missing.errors >= 3
        assert missing.last_error == (
            "FileNotFoundError: [Errno 2] No such file or directory: '/missing'"
        )
        assert set(heard) == {"PerPath[/]"}
        assert max(per_path.most_in_flight.values()) == 1
        footer = runner.footer()
        assert [line.split()[1:3] for line in footer] == [
            ["PerPath[/]", "up"], ["PerPath[/hung]", "down"], ["PerPath[/missing]", "down"]
        ]  # fmt: skip
        assert "sensor PerPath[/hung] is down: no answer in" in caplog.text

    run(test)


def test_reconfigure_keeps_each_paths_state_and_never_starts_a_hung_one_twice(
    per_path: PerPath,
) -> None:
    async def test() -> None:
        runner = SensorRunner(paths("/", "/hung"), {"PerPath": per_path})
        hung = runner.states["PerPath[/hung]"]
        async with running(runner):
            await until(lambda: hung.skipped >= 2, "the hang to be skipped")
            # Another path added, / dropped, another interval: /hung is the same state.
            runner.reconfigure(paths("/hung", "/new", interval=0.04))
            assert list(runner.states) == ["PerPath[/hung]", "PerPath[/new]"]
            assert runner.states["PerPath[/hung]"] is hung and hung.interval == 0.04
            new = runner.states["PerPath[/new]"]
            await until(lambda: new.readings >= 2, "the new path's readings")
            # /hung configured away and back: still its one hung reading.
            runner.reconfigure(paths("/new"))
            readings = new.readings
            await until(lambda: new.readings >= readings + 2, "readings without /hung")
            runner.reconfigure(paths("/", "/hung", "/new"))
            assert runner.states["PerPath[/hung]"] is hung
            assert runner.states["PerPath[/new]"] is new
            skipped = hung.skipped
            await until(lambda: hung.skipped > skipped, "a skipped turn after coming back")
            assert per_path.started["/hung"] == 1 and per_path.most_in_flight["/hung"] == 1
            # The hang ends: /hung reads again, alone.
            per_path.released.set()
            await until(lambda: hung.up is True, "/hung up again")
            assert max(per_path.most_in_flight.values()) == 1

    run(test)


def test_an_instance_is_one_word_of_the_footer_whatever_its_path() -> None:
    runner = SensorRunner(paths("/a b=c", "/x[1]%"), {"PerPath": PerPath()})
    assert list(runner.states) == ["PerPath[/a b=c]", "PerPath[/x[1]%]"]
    words = [line.split()[1] for line in runner.footer()]
    assert words == ["PerPath[/a%20b%3Dc]", "PerPath[/x%5B1%5D%25]"]
    for line in runner.footer():  # tests/support/dshd.py's counters() skips it
        assert "=" not in line.split()[1] and line.split()[2] == "waiting"

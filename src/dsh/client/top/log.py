"""``dsh top --log FILE``: every node's new report as a CSV (or JSON) line, until stopped.

Rules of this file: a line is written whole or not at all. The file is
opened with O_APPEND and each line goes out in one ``write`` (looped on the
rare short write), so lines from two loggers, or a logger restarted onto its
own file, never mix; SIGTERM and SIGINT only set a flag that the loop reads
between intervals (Python retries a write a signal interrupts), so a stop
never leaves half a line. The header is written only to a file that is
empty (or a pipe or terminal), so restarting onto the same file appends rows.

A node's row is logged once per report: the report's time is the daemon's
``time`` less the node's ``age``; a row whose report is no newer than the
last one logged (the node is down, or its next report has not come yet) is
skipped, except when its state changed (a node going down gets one line).
"""

from __future__ import annotations

import csv
import io
import json
import os
import select
import signal
import stat
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from types import FrameType

from .fetch import FetchError
from .rows import COLUMNS, LOG_FORMATS, Row, as_record, node_rows

FORMATS = LOG_FORMATS
HEADER = ("time", *COLUMNS)
DEFAULT_INTERVAL = 1.5  # until the daemon says its own


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="milliseconds")


class Logbook:
    """Which reports were logged: decides what of an answer is new."""

    def __init__(self) -> None:
        self.last: dict[str, tuple[float | None, str]] = {}

    def fresh(self, data: Mapping[str, object], now: float) -> list[tuple[float, Row]]:
        """(report time, row) for each node with a report not logged before."""
        when = data.get("time")
        daemon_now = float(when) if isinstance(when, int | float) else now
        interval = data.get("interval")
        step = float(interval) if isinstance(interval, int | float) and interval > 0 else 1.0
        # Rounding (the API's milliseconds) moves one report's time by ~2 ms;
        # the next report is an interval later.
        slack = min(0.05, step / 4)
        out = []
        for row in node_rows(data):
            report = None if row.age is None else daemon_now - row.age
            previous = self.last.get(row.name)
            if previous is not None:
                last_report, last_state = previous
                newer = report is not None and (last_report is None or report > last_report + slack)
                if not newer and row.state == last_state:
                    continue
            self.last[row.name] = (report, row.state)
            out.append((daemon_now if report is None else report, row))
        return out


def csv_line(values: list[object]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def format_line(when: float, row: Row, fmt: str) -> str:
    record = as_record(row)
    if fmt == "jsonl":
        return json.dumps({"time": iso(when), **record}, separators=(",", ":")) + "\n"
    return csv_line([iso(when), *record.values()])


def needs_header(fd: int) -> bool:
    """Unless it is a file that already has lines: those have their header."""
    info = os.fstat(fd)
    return not (stat.S_ISREG(info.st_mode) and info.st_size > 0)


def write_line(fd: int, line: str) -> None:
    data = line.encode()
    while data:
        data = data[os.write(fd, data) :]


def open_log(path: str) -> int:
    """The file descriptor to append to: ``-`` is standard output."""
    if path == "-":
        return sys.stdout.fileno()
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


class Stopper:
    """SIGTERM and SIGINT ask the loop to stop; ``wait`` sleeps until then or a timeout."""

    def __init__(self) -> None:
        self.requested = False
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        os.set_blocking(self._read, False)
        self._old_fd = signal.set_wakeup_fd(self._write)
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def wait(self, seconds: float) -> None:
        if not self.requested and seconds > 0:
            select.select([self._read], [], [], seconds)
            try:
                os.read(self._read, 512)
            except BlockingIOError:
                pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._old_fd)
        for signum, old in self._old.items():
            signal.signal(signum, old)
        os.close(self._read)
        os.close(self._write)


def run(fetch: Callable[[], dict[str, object]], fd: int, fmt: str,
        say: Callable[[str], None]) -> int:  # fmt: skip
    """Log until SIGTERM or SIGINT (exit 0); a daemon that stops answering is
    said once on stderr and asked again every interval."""
    stopper = Stopper()
    try:
        if fmt == "csv" and needs_header(fd):
            write_line(fd, csv_line(list(HEADER)))
        book = Logbook()
        interval = DEFAULT_INTERVAL
        failing = False
        next_at = time.monotonic()
        while not stopper.requested:
            try:
                data = fetch()
            except FetchError as exc:
                if not failing:
                    say(f"{exc}; retrying")
                failing = True
            else:
                if failing:
                    say("dshd answers again")
                failing = False
                for when, row in book.fresh(data, time.time()):
                    write_line(fd, format_line(when, row, fmt))
                given = data.get("interval")
                if isinstance(given, int | float) and 0 < given < 3600:
                    interval = float(given)
            next_at += interval
            now = time.monotonic()
            if next_at < now:  # fell behind (a slow answer, a suspended process): start over
                next_at = now + interval
            stopper.wait(next_at - now)
    except BrokenPipeError:  # `dsh top --log - | head`: the reader has what it wanted
        pass
    finally:
        stopper.close()
    return 0

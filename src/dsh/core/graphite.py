"""Graphite (carbon) push, the pure part: path names, the two wire encodings,
and the bounded buffer of metrics waiting to be sent.

Rules of this file: no I/O and no clock; timestamps come in with the values.
The names are the scheme the README's "Graphite (carbon push)" section
documents (the Grafana Graphite dashboards use them):
``PREFIX.HOST.Sensor.field.LABELVALUE...``, and dshd's own under ``HOST.dshd``.

Carbon's two receivers, as carbon 1.1 reads them (carbon/protocols.py):
- plaintext (port 2003): one ``path value timestamp\\n`` line per metric;
- pickle (port 2004): frames of a 4-byte big-endian length and a pickle of
  ``[(path, (timestamp, value)), ...]``; carbon refuses a frame longer than
  ``PICKLE_RECEIVER_MAX_LENGTH`` (1 MiB by default) and its own clients send
  at most ``MAX_DATAPOINTS_PER_MESSAGE`` (500) metrics per frame, as here.
"""

from __future__ import annotations

import math
import pickle
import re
import struct
from collections import deque
from collections.abc import Iterable, Iterator, Mapping

# One metric as buffered: (path, value, timestamp in whole seconds).
Metric = tuple[str, float, int]

# Metrics per message (a pickle frame, or a write of plaintext lines): carbon's
# own clients' MAX_DATAPOINTS_PER_MESSAGE. 500 paths of a few dozen bytes make
# a frame of some 30 kB, far below the receiver's 1 MiB limit.
BATCH = 500
# Metrics kept while carbon cannot be reached. At 100 metrics a second (every
# default sensor each second) that is 100 s of data, at the sensors' default
# intervals many minutes; about 2 MB of memory. When full, the OLDEST go first:
# recent data matters most when carbon comes back.
MAX_PENDING = 10_000
# FrUCToSA's name for dshd's own state: HOST.dshd.datagrams.OUTCOME, ...
DSHD = "dshd"

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_HEADER = struct.Struct("!L")


def sanitise(text: str) -> str:
    """A label value as one path component: '/' stripped at both ends (nothing
    left: "root"), then every character outside [A-Za-z0-9_-] made '_'."""
    text = text.strip("/")
    return _UNSAFE.sub("_", text) if text else "root"


def host_part(name: str) -> str:
    """A node's cluster name as one component: node1.example.org -> node1_example_org.

    Only '.' occurs in a host name that is not safe; anything else unsafe
    (a cluster file is not checked for it) is made '_' too, so that a name
    can never split the path or a plaintext line.
    """
    return _UNSAFE.sub("_", name) or "_"


def base(prefix: str, host: str) -> str:
    """``PREFIX.HOST`` (``HOST`` without a prefix); ``host`` is the cluster name."""
    return f"{prefix}.{host_part(host)}" if prefix else host_part(host)


def path_of(root: str, sensor: str, field: str, labels: Iterable[tuple[str, str]] = ()) -> str:
    """``ROOT.Sensor.field.LABELVALUE...``, label values in the order given."""
    return ".".join([root, sensor, field, *(sanitise(v) for _, v in labels)])


def sensor_part(sensor: str, instance: str | None = None) -> str:
    """A sensor's state as one path component: ``LoadAvg``; an instance of a
    sensor (DiskUsage of one path) ``SENSOR_INSTANCE``, its value sanitised as
    a label's: ``DiskUsage_root``, ``DiskUsage_scratch_data``. One component, so
    that ``dshd.sensor_up.*`` matches every one; sensor names have no ``_``."""
    return sanitise(sensor) if instance is None else f"{sanitise(sensor)}_{sanitise(instance)}"


def reading_metrics(
    root: str,
    sensor: str,
    values: Iterable[tuple[str, float, tuple[tuple[str, str], ...]]],
    timestamp: int,
) -> list[Metric]:
    """One sensor reading, ``(field, value, labels)`` each; values that are
    not finite numbers (NaN, inf) are left out: carbon would store them as they are."""
    return [
        (path_of(root, sensor, field, labels), float(value), timestamp)
        for field, value, labels in values
        if math.isfinite(value)
    ]


def dshd_metrics(
    root: str,
    timestamp: int,
    *,
    datagrams: Mapping[str, int],
    best_answers: Mapping[str, int],
    sensor_up: Mapping[str, bool | None],
    sensor_duration: Mapping[str, float | None],
    graphite_dropped: int,
) -> list[Metric]:
    """dshd's own state under the pseudo-sensor ``dshd`` (the README's Graphite
    section lists these paths): counters
    as totals, a sensor up 1 or 0 (0 also before its first reading)."""
    d = f"{root}.{DSHD}"
    out: list[Metric] = [(f"{d}.best_answers.{host_part(n)}", float(c), timestamp)
                         for n, c in best_answers.items()]  # fmt: skip
    out += [(f"{d}.datagrams.{sanitise(o)}", float(c), timestamp) for o, c in datagrams.items()]
    out += [(f"{d}.sensor_up.{sanitise(s)}", 1.0 if up else 0.0, timestamp)
            for s, up in sensor_up.items()]  # fmt: skip
    out += [(f"{d}.sensor_duration.{sanitise(s)}", seconds, timestamp)
            for s, seconds in sensor_duration.items() if seconds is not None]  # fmt: skip
    out.append((f"{d}.graphite_dropped", float(graphite_dropped), timestamp))
    return out


# -- the wire -----------------------------------------------------------------


def _number(value: float) -> str:
    # Whole numbers without ".0" (byte counts stay exact and short); the rest
    # as the shortest text that reads back as the same float.
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def encode_plaintext(metrics: Iterable[Metric]) -> bytes:
    """``path value timestamp\\n`` per metric: carbon's line receiver."""
    return "".join(f"{p} {_number(v)} {t}\n" for p, v, t in metrics).encode()


def encode_pickle(metrics: Iterable[Metric]) -> bytes:
    """One frame for carbon's pickle receiver: length header, then the pickle
    (protocol 2, which carbon's safe unpickler reads) of (path, (timestamp, value))."""
    payload = pickle.dumps([(p, (t, v)) for p, v, t in metrics], protocol=2)
    return _HEADER.pack(len(payload)) + payload


ENCODERS = {"plaintext": encode_plaintext, "pickle": encode_pickle}


def batches(metrics: list[Metric], size: int = BATCH) -> Iterator[list[Metric]]:
    for start in range(0, len(metrics), size):
        yield metrics[start : start + size]


# -- the buffer ---------------------------------------------------------------


class MetricBuffer:
    """Metrics waiting for carbon, oldest first, at most ``limit``; full, the
    oldest are dropped (and counted) to make room."""

    def __init__(self, limit: int = MAX_PENDING) -> None:
        if limit < 1:
            raise ValueError("a buffer holds at least one metric")
        self.limit = limit
        self._pending: deque[Metric] = deque(maxlen=limit)  # appending drops from the left
        self.added = 0  # metrics ever put in (not counting ones given back)
        self.dropped = 0  # metrics dropped because the buffer was full

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, metrics: Iterable[Metric]) -> None:
        for metric in metrics:
            if len(self._pending) == self.limit:
                self.dropped += 1
            self._pending.append(metric)
            self.added += 1

    def take(self, count: int = BATCH) -> list[Metric]:
        """Up to ``count`` of the oldest, removed."""
        pending = self._pending
        return [pending.popleft() for _ in range(min(count, len(pending)))]

    def give_back(self, batch: list[Metric]) -> None:
        """A batch that could not be sent goes back in front, in its order. If
        what came in meanwhile leaves no room for all of it, its oldest are dropped."""
        room = self.limit - len(self._pending)
        keep = batch[len(batch) - room :] if room < len(batch) else batch
        self.dropped += len(batch) - len(keep)
        self._pending.extendleft(reversed(keep))

"""What a sensor is: a name, help, fields with units, a default interval,
options, whether it works on this machine, and a reading.

Rules of this package: a sensor's ``read`` is the only place that calls
psutil (or nvidia-smi); what it makes of psutil's structures is a pure
``parse`` of its own, tested with structures the tests build. A reading is
a list of values, each a field and its labels (cpu, device, path...), so
that every export can name it its own way: Graphite as
``HOST.Sensor.field.label...`` (FrUCToSA's layout), Prometheus as a metric
with labels.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    unit: str  # "percent", "bytes", "seconds", "count", "celsius", "rpm", "mhz", "watts", ...
    help: str


YES = ("yes", "true", "1", "on")
NO = ("no", "false", "0", "off")


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    default: tuple[str, ...] = ()
    # Each value is a reading of its own (an instance: its own thread, deadline
    # and state), so that one that hangs or fails (a dead NFS mount) takes no
    # other value down with it. At most one option of a sensor; repeatable.
    per_instance: bool = False
    repeatable: bool = False
    choices: tuple[str, ...] = ()  # the values it takes (any case); empty: any value

    def invalid(self, value: str) -> str | None:
        """None when ``value`` is one this option takes, else why not (one line)."""
        if not self.choices or value.lower() in self.choices:
            return None
        return f"{value!r} is not one of {', '.join(self.choices)}"


def yes_no(name: str, help: str, default: str = "no") -> Option:
    """A switch: yes/no, true/false, 1/0, on/off."""
    return Option(name, help, (default,), choices=(*YES, *NO))


def is_yes(value: str) -> bool:
    return value.lower() in YES


@dataclass(frozen=True)
class Value:
    field: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


Options = Mapping[str, tuple[str, ...]]


class Sensor(ABC):
    """One kind of measurement. Subclasses set the class attributes and ``read``."""

    name = ""
    help = ""
    fields: tuple[Field, ...] = ()
    interval = 30.0  # seconds between two readings unless the config says otherwise
    options: tuple[Option, ...] = ()

    def available(self) -> str | None:
        """None when it can read here, else why not (one line)."""
        return None

    def prime(self) -> None:  # noqa: B027  (a hook: most sensors need no first reading)
        """Take a first, discarded reading (sensors that measure since the last one)."""

    @abstractmethod
    def read(self, options: Options) -> list[Value]:
        """Measure now (in a worker thread: it may block, and is given a deadline)."""

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(name)

    def option_values(self, options: Options) -> dict[str, tuple[str, ...]]:
        """Each option's values, its default where the config gave none."""
        return {o.name: tuple(options.get(o.name, ())) or o.default for o in self.options}


def values_of(record: object, names: tuple[str, ...], labels: tuple[tuple[str, str], ...] = ()
              ) -> list[Value]:  # fmt: skip
    """The named attributes of a psutil namedtuple that it has (they vary by OS)."""
    return [
        Value(name, float(getattr(record, name)), labels)
        for name in names
        if getattr(record, name, None) is not None
    ]

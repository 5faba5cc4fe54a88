"""dshd's configuration file (``/etc/dsh/dshd.conf``, ``--config FILE``): INI,
read as FrUCToSA's lagent reads its ``lagent.conf``, so that one works as it is.

    [sensor:CPUPercent]          one section per sensor to run (dshd --list-sensors)
    time_interval = 10           seconds between readings; the sensor's default if absent
    timeout = 2                  seconds a reading may take (dshd's; default 5, <= interval)
    [sensor:DiskUsage]
    path = /                     a sensor's options (DiskUsage: path, repeatable)
    path = /scratch
    [graphite]                   dshd's: host needed; plaintext, port 2003 by default
    host = carbon.example.org
    carbon receiver pickle port = 2004      FrUCToSA's key: protocol pickle, that port
    protocol = plaintext | pickle           dshd's keys: protocol, port, prefix, interval
    [Graphite]                   FrUCToSA's spelling, FrUCToSA's defaults: every key
                                 optional, host localhost, pickle on port 2004
    [view]                       the live page's and dsh plot's charts (core/charts.py)
    charts = usr sys idle wait read:200M    cstat's keys: which charts, their order, scales
    colours = red green blue                and the nodes' colours
    [dshd]                       dshd's own settings
    jobs = own                   who may see the node's processes: off, own, all
                                 (daemon/procs.py; the --jobs flag wins)

Other sections (lagent's ``[lmaster]``, ``[logging]``) are not dshd's: each
is named in the result, for one log line, and otherwise ignored; so is a
sensor FrUCToSA has and dshd has not (``[sensor:SlurmJobs]``), for a warning. Anything
else that does not fit is a ``ConfigFileError`` naming the file and line,
so that a typo stops dshd at start (exit 2) and, on SIGHUP, keeps the old
configuration. This is the file's pure reader: no I/O but ``load_conf``.

The reader is dshd's own rather than configparser's because every error
must carry its line, and a repeatable option (``path``) may appear more than
once in a section, which configparser refuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .. import defaults
from ..core.charts import ViewConf, parse_view
from ..errors import ConfigFileError
from .sensors.catalogue import SENSORS, TIME_INTERVAL, TIMEOUT

DEFAULT_CONF = "/etc/dsh/dshd.conf"
GRAPHITE_PORTS = {"plaintext": 2003, "pickle": 2004}  # carbon's defaults
_FRUCTOSA_PICKLE_PORT = "carbon receiver pickle port"
_FRUCTOSA_PLAINTEXT_PORT = "carbon receiver plaintext port"
FRUCTOSA_GRAPHITE = "Graphite"  # FrUCToSA's section, spelled so: its defaults apply
_FRUCTOSA_HOST = "localhost"  # FrUCToSA's default carbon host
# Sensors FrUCToSA's lagent has and dshd does not (FrUCToSA's fructosa/sensors.py:
# its 20 psutil sensors, which dshd has, and these): a lagent.conf that runs
# them still works, each skipped with a warning.
FRUCTOSA_ONLY_SENSORS = frozenset({"SlurmJobs"})


@dataclass(frozen=True)
class SensorConf:
    name: str
    interval: float  # seconds
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Of its section header, for later messages; not part of the value, so
    # that a SIGHUP after a comment was added does not restart the sensor.
    line: int = field(default=0, compare=False)
    timeout: float | None = None  # seconds a reading may take; None: runner.DEFAULT_TIMEOUT


@dataclass(frozen=True)
class GraphiteConf:
    host: str
    port: int
    protocol: str = "plaintext"  # or "pickle"
    prefix: str = ""  # paths are PREFIX.HOST.Sensor.field (no prefix: HOST.Sensor.field)
    interval: float | None = None  # seconds between sends; None: as each sensor reads


# Without a config file: what the node view and the dashboards need, at the
# sensors' own intervals; the cheap ones (each reads a file or two of /proc).
DEFAULT_SENSORS = ("CPUTimes", "CPUFreq", "LoadAvg", "VirtualMemory", "SwapMemory",
                   "DiskUsage", "DiskIOCounters", "NetIOCounters", "NetIFStats", "CPUStats",
                   "BootTime")  # fmt: skip


@dataclass(frozen=True)
class DshdConf:
    sensors: dict[str, SensorConf] = field(default_factory=dict)
    graphite: GraphiteConf | None = None
    # (section, line) of sections that are not dshd's, and (sensor, line) of
    # FrUCToSA's sensors dshd lacks: for the log, not the value
    ignored: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    skipped: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    view: ViewConf = field(default_factory=ViewConf)  # [view]: the page's and dsh plot's charts
    jobs: str | None = None  # [dshd] jobs: off, own or all; None: not set here

    @classmethod
    def defaults(cls) -> DshdConf:
        return cls({n: SensorConf(n, SENSORS[n].interval) for n in DEFAULT_SENSORS})


def _seconds(text: str, what: str, filename: str, lineno: int) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value < math.inf):
        raise ConfigFileError(filename, lineno, f"{what} {text!r} is not a number of seconds > 0")
    return value


def _port(text: str, what: str, filename: str, lineno: int) -> int:
    if not defaults.is_port(text):
        raise ConfigFileError(filename, lineno, f"{what} {text!r} is not a port number (1-65535)")
    return int(text)


def _sections(text: str, filename: str) -> list[tuple[str, int, list[tuple[str, str, int]]]]:
    """(section, its line, [(key, value, line)]) in order; INI as configparser reads it:
    ``#`` and ``;`` comment lines, ``key = value`` or ``key: value``, keys case-insensitive."""
    sections: list[tuple[str, int, list[tuple[str, str, int]]]] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            if not line.endswith("]") or len(line) < 3:
                raise ConfigFileError(filename, lineno, f"bad section header {line!r}")
            sections.append((line[1:-1].strip(), lineno, []))
            continue
        key, sep, value = min((raw.partition(s) for s in "=:" if s in raw), key=lambda p: len(p[0]),
                              default=(raw, "", ""))  # fmt: skip
        if not sep or not key.strip():
            raise ConfigFileError(filename, lineno, f"expected KEY = VALUE, not {line!r}")
        if not sections:
            raise ConfigFileError(filename, lineno, "a setting before the first [section]")
        sections[-1][2].append((" ".join(key.lower().split()), value.strip(), lineno))
    return sections


def _sensor(name: str, header: int, items: list[tuple[str, str, int]], filename: str
            ) -> SensorConf:  # fmt: skip
    sensor = SENSORS.get(name)
    if sensor is None:
        raise ConfigFileError(
            filename, header, f"unknown sensor {name!r} (dshd --list-sensors lists them)"
        )
    interval = sensor.interval
    options: dict[str, list[str]] = {}
    known = {o.name: o for o in sensor.options}
    seen_interval = seen_timeout = 0
    timeout = None
    for key, value, lineno in items:
        if key == TIMEOUT:
            if seen_timeout:
                raise ConfigFileError(
                    filename, lineno, f"{TIMEOUT} given twice (first on line {seen_timeout})"
                )
            timeout, seen_timeout = _seconds(value, TIMEOUT, filename, lineno), lineno
            continue
        if key == TIME_INTERVAL:
            if seen_interval:
                raise ConfigFileError(
                    filename, lineno, f"{TIME_INTERVAL} given twice (first on line {seen_interval})"
                )
            interval, seen_interval = _seconds(value, TIME_INTERVAL, filename, lineno), lineno
            continue
        option = known.get(key)
        if option is None:
            takes = ", ".join([TIME_INTERVAL, TIMEOUT, *known])
            raise ConfigFileError(
                filename, lineno, f"sensor {name} has no option {key!r} (it takes: {takes})"
            )
        if key in options and not option.repeatable:
            raise ConfigFileError(filename, lineno, f"option {key!r} of {name} given twice")
        if not value:
            raise ConfigFileError(filename, lineno, f"option {key!r} of {name} has no value")
        why_not = option.invalid(value)
        if why_not is not None:
            raise ConfigFileError(filename, lineno, f"option {key!r} of {name}: {why_not}")
        options.setdefault(key, []).append(value)
    return SensorConf(name, interval, {k: tuple(v) for k, v in options.items()}, header, timeout)


def _graphite(section: str, header: int, items: list[tuple[str, str, int]], filename: str
              ) -> GraphiteConf:  # fmt: skip
    """``[graphite]`` (dshd's: a host is needed, plaintext on 2003 by default) or
    ``[Graphite]`` as FrUCToSA spells it, with FrUCToSA's defaults: every key
    optional, host localhost, pickle on 2004 (the only protocol FrUCToSA speaks)."""
    fructosa = section == FRUCTOSA_GRAPHITE
    values: dict[str, tuple[str, int]] = {}
    allowed = ("host", "port", "protocol", "prefix", "interval", _FRUCTOSA_PICKLE_PORT,
               _FRUCTOSA_PLAINTEXT_PORT)  # fmt: skip
    for key, value, lineno in items:
        if key not in allowed:
            raise ConfigFileError(
                filename,
                lineno,
                f"[{section}] has no setting {key!r} (it takes: {', '.join(allowed)})",
            )
        if key in values:
            raise ConfigFileError(filename, lineno, f"{key!r} given twice in [{section}]")
        values[key] = (value, lineno)
    if "host" not in values and not fructosa:
        raise ConfigFileError(filename, header, f"[{section}] needs a host")
    host = values.get("host", (_FRUCTOSA_HOST, header))[0]
    protocol, where = values.get("protocol", ("", header))
    ports = [(k, v) for k, v in values.items() if k in ("port", _FRUCTOSA_PICKLE_PORT,
                                                        _FRUCTOSA_PLAINTEXT_PORT)]  # fmt: skip
    if len(ports) > 1:
        raise ConfigFileError(filename, ports[1][1][1], f"[{section}] gives more than one port")
    if not protocol:  # FrUCToSA's keys name the protocol; else the section's default
        by_key = {_FRUCTOSA_PICKLE_PORT: "pickle", _FRUCTOSA_PLAINTEXT_PORT: "plaintext"}
        protocol = by_key.get(ports[0][0], "") if ports else ""
        protocol = protocol or ("pickle" if fructosa else "plaintext")
    if protocol not in GRAPHITE_PORTS:
        raise ConfigFileError(filename, where,
                              f"protocol {protocol!r} is not plaintext or pickle")  # fmt: skip
    port = GRAPHITE_PORTS[protocol]
    if ports:
        key, (text, lineno) = ports[0]
        port = _port(text, key, filename, lineno)
    interval = None
    if "interval" in values:
        interval = _seconds(values["interval"][0], "interval", filename, values["interval"][1])
    return GraphiteConf(host=host, port=port, protocol=protocol,
                        prefix=values.get("prefix", ("", 0))[0].strip("."),
                        interval=interval)  # fmt: skip


def parse_conf(text: str, filename: str = "<config>") -> DshdConf:
    sensors: dict[str, SensorConf] = {}
    graphite: GraphiteConf | None = None
    ignored: list[tuple[str, int]] = []
    skipped: list[tuple[str, int]] = []
    view: tuple[ViewConf, int] | None = None  # and its line
    jobs: str | None = None
    dshd_line = 0
    for section, header, items in _sections(text, filename):
        kind, colon, name = section.partition(":")
        if colon and kind.strip().lower() == "sensor":
            name = name.strip()
            if name in FRUCTOSA_ONLY_SENSORS and name not in SENSORS:
                skipped.append((name, header))
                continue
            if name in sensors:
                raise ConfigFileError(
                    filename,
                    header,
                    f"[sensor:{name}] given twice (first on line {sensors[name].line})",
                )
            sensors[name] = _sensor(name, header, items, filename)
        elif section.lower() == "graphite":
            if graphite is not None:
                raise ConfigFileError(filename, header, "[graphite] given twice")
            graphite = _graphite(section, header, items, filename)
        elif section.lower() == "view":  # the charts: core/charts.py
            if view is not None:
                raise ConfigFileError(
                    filename, header, f"[view] given twice (first on line {view[1]})"
                )
            view = parse_view(items, filename), header
        elif section.lower() == "dshd":
            if dshd_line:
                raise ConfigFileError(
                    filename, header, f"[dshd] given twice (first on line {dshd_line})"
                )
            dshd_line = header
            jobs = _dshd(items, filename)
        else:
            ignored.append((section, header))
    return DshdConf(sensors, graphite, tuple(ignored), tuple(skipped),
                    view[0] if view else ViewConf(), jobs)  # fmt: skip


JOBS_POLICIES = ("off", "own", "all")  # daemon/procs.py POLICIES


def _dshd(items: list[tuple[str, str, int]], filename: str) -> str | None:
    """``[dshd]``: ``jobs = off|own|all``."""
    jobs = None
    for key, value, lineno in items:
        if key != "jobs":
            raise ConfigFileError(
                filename, lineno, f"[dshd] has no setting {key!r} (it takes: jobs)"
            )
        if jobs is not None:
            raise ConfigFileError(filename, lineno, "'jobs' given twice in [dshd]")
        if value not in JOBS_POLICIES:
            raise ConfigFileError(filename, lineno, f"jobs {value!r} is not off, own or all")
        jobs = value
    return jobs


def load_conf(path: str | Path) -> DshdConf:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigFileError(str(path), 0, f"cannot read: {reason}") from None
    return parse_conf(text, str(path))

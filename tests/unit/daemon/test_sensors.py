"""daemon/sensors: each sensor's parse of psutil's structures (built here, as
psutil builds them), nvidia-smi's CSV, the catalogue and --list-sensors."""

from __future__ import annotations

import socket
import threading
from collections import namedtuple

import psutil
import pytest

from dsh.daemon import cli
from dsh.daemon.conf import parse_conf
from dsh.daemon.sensors import psutil_sensors as ps
from dsh.daemon.sensors.base import Value
from dsh.daemon.sensors.catalogue import SENSORS, describe, list_sensors
from dsh.daemon.sensors.gpu import GPU

FRUCTOSA = [
    "CPUPercent",
    "CPUTimes",
    "CPUTimesPercent",
    "CPUCount",
    "CPUStats",
    "CPUFreq",
    "VirtualMemory",
    "SwapMemory",
    "DiskPartitions",
    "DiskUsage",
    "DiskIOCounters",
    "NetIOCounters",
    "NetConnections",
    "NetIFAddrs",
    "NetIFStats",
    "SensorsTemperatures",
    "SensorsFans",
    "SensorsBattery",
    "BootTime",
    "Users",
]

# psutil's structures on Linux, field for field (psutil keeps them in a
# private module whose name changed in 7.0: the tests build their own)
sbattery = namedtuple("sbattery", ["percent", "secsleft", "power_plugged"])
sconn = namedtuple("sconn", ["fd", "family", "type", "laddr", "raddr", "status", "pid"])
scpufreq = namedtuple("scpufreq", ["current", "min", "max"])
scpustats = namedtuple("scpustats", ["ctx_switches", "interrupts", "soft_interrupts", "syscalls"])
scputimes = namedtuple(
    "scputimes",
    ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice"],
)
sdiskio = namedtuple(
    "sdiskio",
    [
        "read_count",
        "write_count",
        "read_bytes",
        "write_bytes",
        "read_time",
        "write_time",
        "read_merged_count",
        "write_merged_count",
        "busy_time",
    ],
)
sdiskpart = namedtuple("sdiskpart", ["device", "mountpoint", "fstype", "opts"])
sdiskusage = namedtuple("sdiskusage", ["total", "used", "free", "percent"])
sfan = namedtuple("sfan", ["label", "current"])
shwtemp = namedtuple("shwtemp", ["label", "current", "high", "critical"])
snetio = namedtuple(
    "snetio",
    [
        "bytes_sent",
        "bytes_recv",
        "packets_sent",
        "packets_recv",
        "errin",
        "errout",
        "dropin",
        "dropout",
    ],
)
snicaddr = namedtuple("snicaddr", ["family", "address", "netmask", "broadcast", "ptp"])
snicstats = namedtuple("snicstats", ["isup", "duplex", "speed", "mtu", "flags"])
sswap = namedtuple("sswap", ["total", "used", "free", "percent", "sin", "sout"])
suser = namedtuple("suser", ["name", "terminal", "host", "started", "pid"])
svmem = namedtuple(
    "svmem",
    [
        "total",
        "available",
        "percent",
        "used",
        "free",
        "active",
        "inactive",
        "buffers",
        "cached",
        "shared",
        "slab",
    ],
)


def test_the_structures_here_are_psutils() -> None:
    """Where this machine has them, psutil returns the same fields."""
    assert psutil.cpu_times()._fields == scputimes._fields
    assert psutil.virtual_memory()._fields == svmem._fields
    assert psutil.swap_memory()._fields == sswap._fields
    assert psutil.cpu_stats()._fields == scpustats._fields
    assert next(iter(psutil.net_io_counters(pernic=True).values()))._fields == snetio._fields
    assert next(iter(psutil.net_if_stats().values()))._fields == snicstats._fields
    assert psutil.disk_usage("/")._fields == sdiskusage._fields


def by(values: list[Value]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(v.field, v.labels): v.value for v in values}


def test_the_catalogue_has_fructosas_sensors_under_their_names_and_gpu() -> None:
    # FrUCToSA's twenty, under its names, plus dshd's LoadAvg (node_exporter's node_load*) and GPU.
    assert [n for n in SENSORS if n not in ("LoadAvg", "GPU")] == FRUCTOSA
    assert list(SENSORS)[-1] == "GPU" and "LoadAvg" in SENSORS
    for sensor in SENSORS.values():
        assert sensor.help and sensor.fields and sensor.interval > 0
        assert len({f.name for f in sensor.fields}) == len(sensor.fields)


def test_cpu_percent_and_times() -> None:
    assert by(ps.CPUPercent.parse([12.5, 0.0])) == {
        ("percent", (("cpu", "0"),)): 12.5,
        ("percent", (("cpu", "1"),)): 0.0,
    }
    times = by(ps.CPUTimes.parse([scputimes(1.0, 2.0, 3.0, 4.0, 5.0, 0.0, 0.5, 0.0, 0.0, 0.0)]))
    assert times[("seconds", (("cpu", "0"), ("mode", "iowait")))] == 5.0
    assert len(times) == 10
    percent = by(ps.CPUTimesPercent.parse(scputimes(10, 0, 5, 80, 5, 0, 0, 0, 0, 0)))
    assert percent[("percent", (("mode", "idle"),))] == 80.0


def test_cpu_shares_since_the_last_reading_are_the_sensors_own() -> None:
    # user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice
    before = scputimes(100, 0, 50, 800, 50, 0, 0, 0, 10, 0)
    after = scputimes(130, 0, 60, 850, 60, 0, 0, 0, 20, 0)  # guest (in user too) not twice
    assert ps.busy_percent(before, after) == 40.0  # 40 of 100 s neither idle nor iowait
    shares = ps.mode_percents(before, after)
    assert (shares.user, shares.system, shares.idle, shares.iowait) == (30.0, 10.0, 50.0, 10.0)
    assert ps.busy_percent(after, after) == 0.0 and ps.mode_percents(after, after).idle == 0.0
    assert ps.busy_percent(after, before) == 0.0  # counters that went back count as nothing


def test_since_last_measures_between_readings_in_different_threads() -> None:
    # Each reading runs in a new thread; psutil's cpu_percent(interval=None)
    # remembers per thread, and gave 0.0 for every CPU every time.
    samples = iter(range(10))
    since = ps.SinceLast(lambda: next(samples))
    since.prime()
    out: list[tuple[int, int]] = []
    for _ in range(3):
        thread = threading.Thread(target=lambda: out.append(since.take()))
        thread.start()
        thread.join()
    assert out == [(0, 1), (1, 2), (2, 3)]
    first = ps.SinceLast(lambda: next(samples))  # not primed: waits MIN_SPAN, then measures
    assert first.take() == (4, 5)


def test_cpu_percent_reads_real_shares_in_fresh_threads() -> None:
    sensor = ps.CPUPercent()
    sensor.prime()
    out: list[list[Value]] = []
    for _ in range(2):
        thread = threading.Thread(target=lambda: out.append(sensor.read({})))
        thread.start()
        thread.join()
    for reading in out:
        assert len(reading) == psutil.cpu_count()
        assert all(0.0 <= v.value <= 100.0 for v in reading)
    assert all(0.0 <= v.value <= 100.0 for v in ps.CPUTimesPercent().read({}))


def test_counts_stats_and_frequency() -> None:
    assert by(ps.CPUCount.parse(8, None)) == {("logical", ()): 8.0}  # physical unknown: absent
    stats = by(ps.CPUStats.parse(scpustats(10, 20, 30, 0)))
    assert stats[("ctx_switches", ())] == 10.0 and stats[("syscalls", ())] == 0.0
    freq = by(ps.CPUFreq.parse([scpufreq(2600.0, 800.0, 3500.0)]))
    assert freq[("max", (("cpu", "0"),))] == 3500.0


def test_memory_and_swap() -> None:
    mem = by(ps.VirtualMemory.parse(svmem(16, 8, 50.0, 8, 4, 2, 2, 1, 3, 1, 1)))
    assert (mem[("total", ())], mem[("available", ())], mem[("percent", ())]) == (16, 8, 50)
    swap = by(ps.SwapMemory.parse(sswap(100, 25, 75, 25.0, 4096, 8192)))
    assert swap[("sout", ())] == 8192.0 and len(swap) == 6


def test_disks() -> None:
    parts = ps.DiskPartitions.parse([sdiskpart("/dev/sda1", "/", "ext4", "rw")])
    assert parts == [
        Value("mounted", 1.0, (("device", "/dev/sda1"), ("mountpoint", "/"), ("fstype", "ext4")))
    ]
    usage = by(ps.DiskUsage.parse("/scratch", sdiskusage(1000, 250, 750, 25.0)))
    assert usage[("used", (("path", "/scratch"),))] == 250.0
    io = by(ps.DiskIOCounters.parse({"vda": sdiskio(1, 2, 512, 1024, 1500, 2500, 0, 0, 4000)}))
    assert io[("read_bytes", (("device", "vda"),))] == 512.0
    assert io[("read_time", (("device", "vda"),))] == 1.5  # milliseconds to seconds
    assert io[("busy_time", (("device", "vda"),))] == 4.0


def test_disk_io_counts_each_byte_once_as_node_exporter_does() -> None:
    """Partitions (their I/O is their disk's too), loop and RAM disks are left out by
    default, as node_exporter's diskstats collector does; all = yes keeps them."""
    disks = ("sda", "sda1", "vdb", "vdb2", "xvda1", "hda3", "nvme0n1", "nvme0n1p1", "nvme10n2p12",
             "loop0", "ram1", "zram0", "fd0", "dm-0", "md127", "mmcblk0", "sr0")  # fmt: skip
    per_disk = {d: sdiskio(1, 2, 512, 1024, 1500, 2500, 0, 0, 4000) for d in disks}

    def devices(values: list[Value]) -> list[str]:
        return list(dict.fromkeys(dict(v.labels)["device"] for v in values))

    kept = ["sda", "vdb", "nvme0n1", "dm-0", "md127", "mmcblk0", "sr0"]
    assert devices(ps.DiskIOCounters.parse(per_disk)) == kept
    assert devices(ps.DiskIOCounters.parse(per_disk, every=True)) == list(disks)
    sensor = SENSORS["DiskIOCounters"]
    assert sensor.option_values({}) == {"all": ("no",)}
    assert parse_conf("[sensor:DiskIOCounters]\nall = yes\n").sensors["DiskIOCounters"].options == {
        "all": ("yes",)
    }


def test_disk_usage_reads_every_path_it_is_given(tmp_path: object) -> None:
    values = SENSORS["DiskUsage"].read({"path": ("/", str(tmp_path))})
    paths = {dict(v.labels)["path"] for v in values}
    assert paths == {"/", str(tmp_path)}
    assert {dict(v.labels)["path"] for v in SENSORS["DiskUsage"].read({})} == {"/"}  # default


def test_network() -> None:
    io = by(ps.NetIOCounters.parse({"eth0": snetio(10, 20, 1, 2, 0, 0, 3, 0)}))
    assert io[("bytes_recv", (("device", "eth0"),))] == 20.0
    assert io[("dropin", (("device", "eth0"),))] == 3.0
    tcp = sconn(3, socket.AF_INET, socket.SOCK_STREAM, ("127.0.0.1", 22), (), "LISTEN", 1)
    udp = sconn(4, socket.AF_INET, socket.SOCK_DGRAM, ("0.0.0.0", 53), (), psutil.CONN_NONE, 2)
    conns = by(ps.NetConnections.parse([tcp, tcp, udp]))
    assert conns == {
        ("count", (("kind", "tcp"), ("status", "LISTEN"))): 2.0,
        ("count", (("kind", "udp"), ("status", "NONE"))): 1.0,
    }
    addrs = by(
        ps.NetIFAddrs.parse(
            {
                "lo": [
                    snicaddr(socket.AF_INET, "127.0.0.1", None, None, None),
                    snicaddr(socket.AF_INET6, "::1", None, None, None),
                ]
            }
        )
    )
    assert addrs[("addresses", (("device", "lo"), ("family", "AF_INET6")))] == 1.0
    stats = by(ps.NetIFStats.parse({"lo": snicstats(True, 0, 1000, 65536, "up")}))
    assert stats[("isup", (("device", "lo"),))] == 1.0 and stats[("mtu", (("device", "lo"),))]


def test_hardware_sensors() -> None:
    temps = by(
        ps.SensorsTemperatures.parse(
            {"coretemp": [shwtemp("Core 0", 45.0, 80.0, None), shwtemp("", 40.0, None, None)]}
        )
    )
    assert temps[("current", (("chip", "coretemp"), ("sensor", "Core 0")))] == 45.0
    assert temps[("current", (("chip", "coretemp"), ("sensor", "1")))] == 40.0
    assert ("critical", (("chip", "coretemp"), ("sensor", "Core 0"))) not in temps  # None: absent
    fans = by(ps.SensorsFans.parse({"thinkpad": [sfan("", 2100)]}))
    assert fans == {("current", (("chip", "thinkpad"), ("sensor", "0"))): 2100.0}
    battery = by(ps.SensorsBattery.parse(sbattery(80.0, psutil.POWER_TIME_UNLIMITED, True)))
    assert battery == {("percent", ()): 80.0, ("power_plugged", ()): 1.0}
    assert by(ps.SensorsBattery.parse(sbattery(50.0, 3600, False)))[("secsleft", ())] == 3600.0
    assert ps.SensorsBattery.parse(None) == []


def test_users() -> None:
    users = [
        suser("ann", "pts/0", "h", 0.0, 1),
        suser("ann", "pts/1", "h", 0.0, 2),
        suser("bob", "pts/2", "h", 0.0, 3),
    ]
    assert by(ps.Users.parse(users)) == {
        ("sessions", (("user", "ann"),)): 2.0,
        ("sessions", (("user", "bob"),)): 1.0,
    }


def test_nvidia_smi_csv() -> None:
    text = (
        "0, NVIDIA A100-SXM4-40GB, 87, 1024, 40960, 61, 250.50\n"
        "1, Tesla K80, [N/A], 0, 11441, 35, [Not Supported]\n"
        "garbage line\n"
    )
    values = by(GPU.parse_csv(text))
    a100 = (("gpu", "0"), ("name", "NVIDIA A100-SXM4-40GB"))
    assert values[("utilization", a100)] == 87.0
    assert values[("memory_used", a100)] == 1024 * 1024 * 1024.0
    assert values[("power", a100)] == 250.5
    k80 = (("gpu", "1"), ("name", "Tesla K80"))
    assert ("utilization", k80) not in values and ("power", k80) not in values  # not 0
    assert values[("temperature", k80)] == 35.0


def test_every_available_sensor_reads_here() -> None:
    """Against this machine's real psutil: what says it is available gives values
    of its own fields (and at least one for what every Linux has)."""
    for sensor in SENSORS.values():
        if sensor.available() is not None:
            continue
        names = {f.name for f in sensor.fields}
        values = sensor.read({})
        assert all(v.field in names for v in values), sensor.name
        if sensor.name in ("CPUTimes", "VirtualMemory", "NetIOCounters", "BootTime", "CPUCount"):
            assert values, sensor.name


def test_list_sensors_says_what_and_why_not(capsys: pytest.CaptureFixture[str]) -> None:
    text = list_sensors()
    for name in [*FRUCTOSA, "GPU"]:
        assert f"\n{name}  (" in "\n" + text
    assert "option path (repeatable): a path on the file system to measure; default /" in text
    assert "option all: also pseudo, memory and duplicate file systems (yes/true/1/on/no/" in text
    gpu = describe(SENSORS["GPU"])
    assert gpu.startswith("GPU  (available)") or "unavailable: no NVIDIA GPU" in gpu
    assert cli.main(["--list-sensors"]) == cli.EXIT_OK
    assert capsys.readouterr().out == text
    assert "; default /; each value is a reading of its own, up or down alone\n" in text

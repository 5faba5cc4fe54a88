"""A sensor never stalls dshd: the real hang, statfs on a FUSE mount whose
server is stopped, and config files that are wrong at start and on SIGHUP.

The mount is Debian's bindfs (a FUSE file system that mirrors a directory);
SIGSTOP on the bindfs process makes every request to the mount wait in the
kernel, as a hung NFS server does: ``os.statvfs(MOUNT)`` blocks, and no
Python code can interrupt it. SIGCONT lets it answer again. DiskUsage reads
the mount and ``/``: each path is a reading of its own, and ``/`` stays up.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.dshd import ClusterFactory, Node
from support.paths import DSHD, LAGENT_CONF_FILE, PY, REPO
from support.waiting import wait_for

A, B = "127.0.0.61", "127.0.0.62"
FUSECTL = Path("/sys/fs/fuse/connections")
_SENSOR_LINE = re.compile(
    r"^# sensor (?P<name>\S+) (?P<status>\S+) interval=(?P<interval>\S+)"
    r" duration=(?P<duration>\S+) readings=(?P<readings>\d+) errors=(?P<errors>\d+)"
    r" skipped=(?P<skipped>\d+)(?: error=(?P<error>.*))?$"
)


def sensors(node: Node) -> dict[str, dict[str, str]]:
    """The status footer's ``# sensor NAME ...`` lines, by sensor."""
    found = {}
    for line in node.status_text().splitlines():
        match = _SENSOR_LINE.match(line)
        if match:
            found[match["name"]] = {k: v or "" for k, v in match.groupdict().items()}
    return found


def status_of(node: Node, sensor: str) -> str:
    return sensors(node).get(sensor, {}).get("status", "absent")


def readings_of(node: Node, sensor: str) -> int:
    return int(sensors(node)[sensor]["readings"])


def metrics(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics, by (sample name, its sorted labels)."""
    connection = http.client.HTTPConnection(node.name, node.cluster.http_port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        answer = connection.getresponse()
        assert answer.status == 200
        text = answer.read().decode()
    finally:
        connection.close()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}  # fmt: skip


def accepted(node: Node) -> int:
    return node.counters().get("datagrams", {}).get("accepted", 0)


def age_of(node: Node, name: str) -> float:
    for line in node.status_text().splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return float(fields[8])  # the age column
    raise AssertionError(f"{name} is not in {node.name}'s status")


def _mounted(path: Path) -> bool:
    """From /proc, not stat(): a stat of the mount point itself would go to FUSE."""
    with open("/proc/self/mountinfo") as mounts:
        return any(line.split()[4] == str(path) for line in mounts)


@dataclass
class HungMount:
    """A bindfs mount, and its server to stop and continue."""

    path: Path
    process: subprocess.Popen[bytes]
    connection: int  # its number under /sys/fs/fuse/connections

    def stop(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        self.process.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        """Undo everything, whatever state the test left it in."""
        if self.process.poll() is None:
            self.cont()
        if self.process.poll() is None:
            # A server that does not answer (stopped again, wedged): aborting
            # the connection fails every request waiting on it at once.
            abort = FUSECTL / str(self.connection) / "abort"
            if abort.exists() and _requests_waiting(self.connection):
                abort.write_text("1")
        if _mounted(self.path):
            unmount = shutil.which("fusermount3")
            argv = [unmount, "-u", "-z"] if unmount else ["umount", "-l"]
            subprocess.run([*argv, str(self.path)], capture_output=True, timeout=10)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def _requests_waiting(connection: int) -> bool:
    try:
        return int((FUSECTL / str(connection) / "waiting").read_text()) > 0
    except (OSError, ValueError):
        return True  # cannot tell: abort to be sure


@pytest.fixture
def hung_mount(tmp_path: Path) -> Iterator[HungMount]:
    """A FUSE mount that the test can hang; skipped where the kernel or the
    machine cannot mount FUSE (a container without /dev/fuse), never for a
    package contrib/install-deps installs."""
    bindfs = shutil.which("bindfs")
    assert bindfs is not None, "bindfs is not installed: run contrib/install-deps"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        pytest.skip("no usable /dev/fuse: FUSE cannot mount here")
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        pytest.skip("not root and no fusermount3: FUSE cannot mount here")
    source, mount = tmp_path / "fuse-source", tmp_path / "fuse-mount"
    source.mkdir()
    mount.mkdir()
    (source / "file").write_text("data\n")
    # -f: in the foreground, so that this is the server's own PID to stop.
    process = subprocess.Popen(
        [bindfs, "-f", "--no-allow-other", str(source), str(mount)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not _mounted(mount):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, err = process.communicate()
            pytest.skip(f"FUSE cannot mount here: bindfs: {err.decode(errors='replace').strip()}")
        time.sleep(0.02)
    # The connection's number is the minor device number of the mount.
    hung = HungMount(mount, process, os.minor(os.stat(mount).st_dev))
    if not (FUSECTL / str(hung.connection)).exists() and os.geteuid() == 0:
        # (the control file system is not always mounted; it is only needed to abort)
        subprocess.run(["mount", "-t", "fusectl", "none", str(FUSECTL)], capture_output=True)
    try:
        assert (mount / "file").read_text() == "data\n"
        yield hung
    finally:
        hung.cleanup()
    assert not _mounted(mount)


def _sensor_conf(path: Path, mount: Path, extra: str = "") -> Path:
    path.write_text(
        "# node A: DiskUsage on the mount that will hang and on /; the others every second\n"
        f"[sensor:DiskUsage]\ntime_interval = 1\ntimeout = 0.5\npath = {mount}\npath = /\n"
        "[sensor:LoadAvg]\ntime_interval = 1\n"
        "[sensor:VirtualMemory]\ntime_interval = 1\n" + extra
    )
    return path


def test_a_hung_mount_stalls_neither_gossip_nor_ports_nor_sigterm(
    hung_mount: HungMount, make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    cluster = make_cluster([A, B], interval=0.2, maxloops=5)
    a, b = cluster.nodes[A], cluster.nodes[B]
    conf = _sensor_conf(tmp_path / "a.conf", hung_mount.path)
    a.extra_args += ["--config", str(conf)]
    cluster.start()
    hung, root = f"DiskUsage[{hung_mount.path}]", "DiskUsage[/]"  # one reading per path
    wait_for(cluster.all_up, 10, "both nodes up")
    wait_for(lambda: status_of(a, hung) == status_of(a, root) == "up", 10, "DiskUsage up on A")

    hung_mount.stop()
    # Check the hang is real, from outside dshd: statvfs does not return.
    probe = subprocess.Popen([PY, "-c", f"import os; os.statvfs({str(hung_mount.path)!r})"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            probe.wait(1.0)
    finally:
        probe.kill()
        probe.wait()

    wait_for(lambda: status_of(a, hung) == "down", 10, "the hung path down")
    down = sensors(a)[hung]
    assert down["error"].startswith("no answer"), down  # in 0.5 s, or for N s (skipped turns)
    hung_at = {name: int(s["readings"]) for name, s in sensors(a).items()}
    datagrams = accepted(a)
    wait_for(lambda: int(sensors(a)[hung]["skipped"]) >= 2, 10, "skipped turns")
    now = sensors(a)
    assert now[hung]["status"] == "down" and now[hung]["errors"] == down["errors"]
    assert re.fullmatch(r"no answer for \d+ s", now[hung]["error"]), now[hung]
    assert now[hung]["readings"] == str(hung_at[hung])
    wait_for(lambda: all(readings_of(a, n) >= hung_at[n] + 2 for n in (root, "LoadAvg",
                                                                      "VirtualMemory")),
             10, "the other sensors, and / of the same one, to go on reading")  # fmt: skip
    assert status_of(a, root) == status_of(a, "LoadAvg") == status_of(a, "VirtualMemory") == "up"
    assert sensors(a)[root]["errors"] == "0"
    # The exports: / up, fresh, with its values; the hung path down, without any.
    mount = str(hung_mount.path)
    got = metrics(a)
    assert got[("dsh_sensor_up", (("path", "/"), ("sensor", "DiskUsage")))] == 1.0
    assert got[("dsh_sensor_up", (("path", mount), ("sensor", "DiskUsage")))] == 0.0
    assert got[("dsh_sensor_up", (("sensor", "LoadAvg"),))] == 1.0
    assert ("node_filesystem_avail_bytes", (("mountpoint", "/"),)) in got
    assert ("node_filesystem_avail_bytes", (("mountpoint", mount),)) not in got
    stamp = ("dsh_sensor_last_reading_timestamp_seconds", (("path", "/"), ("sensor", "DiskUsage")))
    wait_for(lambda: metrics(a)[stamp] > got[stamp], 10, "a newer reading of /")
    assert accepted(a) > datagrams  # A still hears B
    assert b.state_of(A) == "up" and age_of(b, A) < 1.0  # and B hears A
    assert a.best() in (A, B)
    assert a.process is not None and a.process.poll() is None

    # SIGHUP mid-hang: the same file (nothing to do), then one with another sensor.
    a.send(signal.SIGHUP)
    wait_for(lambda: "cluster reloaded" in a.log.read_text(), 10, "the first reload")
    _sensor_conf(conf, hung_mount.path, "[sensor:BootTime]\ntime_interval = 1\n")
    a.send(signal.SIGHUP)
    wait_for(lambda: "BootTime" in sensors(a), 10, "the new sensor after the second reload")
    kept = sensors(a)[hung]
    assert kept["status"] == "down" and kept["errors"] == down["errors"]  # the same hung state
    assert int(kept["skipped"]) >= 2
    wait_for(lambda: int(sensors(a)["BootTime"]["readings"]) >= 1, 10, "BootTime reads")
    assert status_of(a, root) == "up" and int(sensors(a)[root]["readings"]) > hung_at[root]
    assert b.state_of(A) == "up" and age_of(b, A) < 1.0

    # The server answers again: so does the sensor.
    hung_mount.cont()
    wait_for(lambda: status_of(a, hung) == "up", 10, "the hung path up again")
    log = a.log.read_text()
    assert f"sensor {hung} answered again after" in log
    assert f"sensor {hung} is up again" in log
    assert f"sensor {root} is down" not in log

    # Hung once more, SIGTERM: a thread stuck in the kernel does not keep dshd.
    hung_mount.stop()
    wait_for(lambda: status_of(a, hung) == "down", 10, "the hung path down again")
    started = time.monotonic()
    code = a.stop(signal.SIGTERM, timeout=10)
    took = time.monotonic() - started
    assert code == 0, a.tail()
    assert took < 5, f"SIGTERM took {took:.1f} s"
    assert "Traceback" not in a.log.read_text(), a.tail()
    print(f"stopped in {took:.2f} s with a reading hung; skipped {kept['skipped']}+ turns")


def test_a_bad_config_stops_dshd_at_start_with_file_and_line(tmp_path: Path) -> None:
    conf = tmp_path / "dshd.conf"
    conf.write_text("[sensor:LoadAvg]\ntime_interval = 1\n\n[sensor:DiskUsage]\npaht = /\n")
    cluster = tmp_path / "cluster"
    cluster.write_text(f"{A}\n")
    done = subprocess.run(
        [PY, str(DSHD), "-f", str(cluster), "--name", A, "--listen", A, "--no-key",
         "--control", str(tmp_path / "ctl"), "--config", str(conf)],
        capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done
    assert f"{conf}:5: sensor DiskUsage has no option 'paht'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_bad_config_on_sighup_is_logged_and_the_old_sensors_keep_running(
    make_cluster: ClusterFactory, tmp_path: Path
) -> None:
    cluster = make_cluster([A])
    a = cluster.nodes[A]
    conf = tmp_path / "a.conf"
    conf.write_text("[sensor:LoadAvg]\ntime_interval = 0.5\n[sensor:BootTime]\n")
    a.extra_args += ["--config", str(conf)]
    a.start()
    wait_for(lambda: sensors(a).get("LoadAvg", {}).get("status") == "up", 10, "LoadAvg up")
    before = sensors(a)
    conf.write_text("[sensor:LoadAvg]\ntime_interval = soon\n[sensor:Users]\n")
    a.send(signal.SIGHUP)
    wait_for(lambda: "reload failed" in a.log.read_text(), 10, "the failed reload")
    line = next(x for x in a.log.read_text().splitlines() if "reload failed" in x)
    assert f"{conf}:2: time_interval 'soon' is not a number of seconds > 0" in line
    readings = int(before["LoadAvg"]["readings"])
    wait_for(lambda: int(sensors(a)["LoadAvg"]["readings"]) >= readings + 2, 10, "LoadAvg reads")
    after = sensors(a)
    assert list(after) == list(before) == ["LoadAvg", "BootTime"]  # the footer is unchanged
    assert {n: s["interval"] for n, s in after.items()} == {"LoadAvg": "0.5", "BootTime": "300"}
    assert all(s["status"] == "up" for s in after.values())
    assert a.process is not None and a.process.poll() is None


@pytest.mark.parametrize(
    ("example", "count"), [(LAGENT_CONF_FILE, 20), (REPO / "contrib" / "dshd.conf", 22)]
)
def test_the_example_configs_start_dshd(
    make_cluster: ClusterFactory, example: Path, count: int
) -> None:
    cluster = make_cluster([A])
    a = cluster.nodes[A]
    a.extra_args += ["--config", str(example)]
    a.start()
    wait_for(lambda: len(sensors(a)) == count, 10, f"the {count} sensors of {example.name}")
    if example == LAGENT_CONF_FILE:
        log = a.log.read_text()
        assert "section [lmaster] is not dshd's; ignored" in log
        assert "section [logging] is not dshd's; ignored" in log
    # Every sensor gives its first reading (those that cannot work here: down, saying why).
    wait_for(lambda: all(s["status"] != "waiting" for s in sensors(a).values()), 15,
             "every sensor's first reading")  # fmt: skip
    found = sensors(a)
    for name in ("CPUPercent", "CPUTimes", "VirtualMemory", "DiskUsage[/]", "NetIOCounters"):
        assert found[name]["status"] == "up", found[name]

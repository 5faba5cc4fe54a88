"""A real carbon-cache (Debian's graphite-carbon) on loopback, for the tests
that push to Graphite and the ones that check the Graphite dashboards' paths.

It runs in the foreground from a private carbon.conf: both receivers and the
cache query port on free 127.0.0.1 ports, every directory under the test's
own, one-second resolution, no rate limits (a test cannot wait for carbon's
default 500 updates a second). ``stop()`` and ``start()`` again keep the ports
and the data, as a restarted carbon would. Whisper files are read with
Debian's ``whisper-fetch`` (python3-whisper), not a module in the test venv.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from .waiting import wait_for

CARBON_CACHE = "/usr/bin/carbon-cache"
WHISPER_FETCH = "/usr/bin/whisper-fetch"
SYSTEM_PYTHON = "/usr/bin/python3"  # whisper-fetch's, with python3-whisper
RETENTION = "1s:2h"  # every second is a point: tests see each sensor reading


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


class Carbon:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.address = "127.0.0.1"
        self.line_port, self.pickle_port, self.query_port = (free_port() for _ in range(3))
        self.data = directory / "whisper"
        self.conf = directory / "carbon.conf"
        self.log = directory / "carbon.log"
        self.process: subprocess.Popen[bytes] | None = None
        for sub in ("whisper", "log", "run", "lists"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        (directory / "storage-schemas.conf").write_text(
            f"[everything]\npattern = .*\nretentions = {RETENTION}\n"
        )
        (directory / "storage-aggregation.conf").write_text(
            "[default]\npattern = .*\nxFilesFactor = 0\naggregationMethod = last\n"
        )
        a = self.address
        self.conf.write_text(
            "[cache]\n"
            f"STORAGE_DIR = {directory}\n"
            f"LOCAL_DATA_DIR = {self.data}\n"
            f"WHITELISTS_DIR = {directory / 'lists'}\n"
            f"LOG_DIR = {directory / 'log'}\n"
            f"PID_DIR = {directory / 'run'}\n"
            "USER =\n"
            "ENABLE_LOGROTATION = False\n"
            "ENABLE_TAGS = False\n"
            "LOG_UPDATES = False\n"
            "LOG_CACHE_HITS = False\n"
            "MAX_CACHE_SIZE = inf\n"
            "MAX_UPDATES_PER_SECOND = inf\n"
            "MAX_CREATES_PER_MINUTE = inf\n"
            f"LINE_RECEIVER_INTERFACE = {a}\n"
            f"LINE_RECEIVER_PORT = {self.line_port}\n"
            f"PICKLE_RECEIVER_INTERFACE = {a}\n"
            f"PICKLE_RECEIVER_PORT = {self.pickle_port}\n"
            "ENABLE_UDP_LISTENER = False\n"
            f"CACHE_QUERY_INTERFACE = {a}\n"
            f"CACHE_QUERY_PORT = {self.query_port}\n"
        )

    def port(self, protocol: str) -> int:
        return self.pickle_port if protocol == "pickle" else self.line_port

    def start(self) -> None:
        run, logs = self.directory / "run", self.directory / "log"
        argv = [CARBON_CACHE, f"--config={self.conf}", f"--pidfile={run / 'pid'}",
                f"--logdir={logs}", "--nodaemon", "start"]  # fmt: skip
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        wait_for(self._listening, 20, "carbon-cache to listen")

    def _listening(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"carbon-cache exited {self.process.returncode}:\n{self.tail()}")
        for port in (self.line_port, self.pickle_port):
            with socket.create_connection((self.address, port), timeout=1):
                pass
        return True

    def stop(self) -> None:
        """SIGTERM, as an init system stops it (carbon writes its cache out first)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def tail(self) -> str:
        lines: list[str] = []
        for log in (self.log, *sorted((self.directory / "log").rglob("*.log"))):
            try:
                lines += log.read_text(errors="replace").splitlines()[-15:]
            except OSError:
                pass
        return "\n".join(lines)

    # -- what it stored ----------------------------------------------------------

    def paths(self) -> set[str]:
        """Every metric path carbon has a whisper file for."""
        return {
            ".".join(f.relative_to(self.data).with_suffix("").parts)
            for f in self.data.rglob("*.wsp")
        }

    def file(self, path: str) -> Path:
        return self.data.joinpath(*path.split(".")).with_suffix(".wsp")

    def fetch(self, path: str, since: float | None = None) -> list[tuple[int, float]]:
        """The (timestamp, value) points stored for ``path`` (nulls left out), oldest first."""
        start = int(since if since is not None else time.time() - 3600)
        if not self.file(path).exists():  # not created yet
            return []
        out = subprocess.run(
            [WHISPER_FETCH, "--json", f"--from={start}", str(self.file(path))],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode != 0:
            raise AssertionError(f"whisper-fetch {path}: {out.stderr.strip()}")
        series = json.loads(out.stdout)
        t0, step = int(series["start"]), int(series["step"])
        return [(t0 + i * step, float(v)) for i, v in enumerate(series["values"]) if v is not None]

    def fetch_many(self, paths: Iterable[str], since: float) -> dict[str, list[float]]:
        """Each path's stored values since ``since`` (nulls left out), read by one
        python3 with Debian's whisper module: a whisper-fetch per path costs ~60 ms."""
        paths = sorted(paths)
        script = (
            "import json, sys, whisper\n"
            "since, files = int(sys.argv[1]), sys.argv[2:]\n"
            "out = [[v for v in whisper.fetch(f, since)[1] if v is not None] for f in files]\n"
            "print(json.dumps(out))\n"
        )
        files = [str(self.file(p)) for p in paths]
        done = subprocess.run([SYSTEM_PYTHON, "-c", script, str(int(since)), *files],
                              capture_output=True, text=True, timeout=30)  # fmt: skip
        if done.returncode != 0:
            raise AssertionError(f"reading whisper files: {done.stderr.strip()[-2000:]}")
        return dict(zip(paths, json.loads(done.stdout), strict=True))


def carbon_available() -> bool:
    return all(shutil.which(p) for p in (CARBON_CACHE, WHISPER_FETCH))


def running_carbon(directory: Path) -> Iterator[Carbon]:
    """For a fixture: a started Carbon, always stopped afterwards."""
    if not carbon_available():
        pytest.fail("carbon-cache or whisper-fetch missing: contrib/install-deps installs them")
    carbon = Carbon(directory)
    try:
        carbon.start()
        yield carbon
    finally:
        carbon.stop()

"""A real Prometheus (Debian's ``prometheus``) scraping the targets a test gives it.

Private everything: its config (scrape and evaluation every second), its
storage under the test's directory, its web port on 127.0.0.1 (a free one).
``start`` waits for ``/-/ready``; ``stop`` always ends it. ``query(expr)`` is
the HTTP API's instant query, for any test (the dashboards' queries too):

    with Prometheus(tmp_path / "prom", ["127.0.0.11:8385"]) as prom:
        wait_for(lambda: prom.query('up == 1'), 20, "a scrape")
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from .waiting import wait_for

PROMETHEUS = "prometheus"  # Debian's package and binary; promtool comes with it
JOB = "dsh"


def ensure_prometheus() -> str:
    """The prometheus binary. contrib/install-deps installs it, as everything the
    suite needs: a test neither installs packages nor passes without it."""
    found = shutil.which(PROMETHEUS)
    if found is None:
        raise AssertionError("prometheus is not installed: run contrib/install-deps")
    return found


def free_port(address: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def config_text(targets: list[str], interval: str = "1s") -> str:
    quoted = ", ".join(json.dumps(t) for t in targets)
    return (
        "global:\n"
        f"  scrape_interval: {interval}\n"
        f"  scrape_timeout: {interval}\n"
        f"  evaluation_interval: {interval}\n"
        "scrape_configs:\n"
        f"  - job_name: {JOB}\n"
        "    static_configs:\n"
        f"      - targets: [{quoted}]\n"
    )


class Prometheus:
    def __init__(self, directory: Path, targets: list[str], interval: str = "1s") -> None:
        self.directory = directory
        self.targets = targets
        self.interval = interval
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "prometheus.log"

    def start(self, timeout: float = 30.0) -> None:
        binary = ensure_prometheus()
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "prometheus.yml"
        config.write_text(config_text(self.targets, self.interval))
        self.port = free_port()
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}",
                 f"--storage.tsdb.path={self.directory / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--storage.tsdb.retention.time=1h", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            wait_for(self._ready, timeout, "prometheus to be ready", poll=0.1)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited {self.process.returncode}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError as exc:  # 503 while it starts: its socket closed now,
            exc.close()  # not when the garbage collector gets to it (a ResourceWarning then)
            return False

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def api(self, path: str, **params: str) -> Any:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            reply = json.load(answer)
        if reply.get("status") != "success":
            raise AssertionError(f"{path} {params}: {reply}")
        return reply["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's results: each ``{"metric": {labels}, "value": [t, "v"]}``."""
        data = self.api("query", query=expr)
        result = data["result"]
        return result if isinstance(result, list) else [result]

    def values(self, expr: str, by: str = "instance") -> dict[str, float]:
        """An instant query's values by one label (the last wins where it repeats)."""
        return {r["metric"].get(by, ""): float(r["value"][1]) for r in self.query(expr)}

    def scraped(self) -> bool:
        """Every target has been scraped, successfully."""
        return self.values(f'up{{job="{JOB}"}}') == {t: 1.0 for t in self.targets}

    def __enter__(self) -> Prometheus:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

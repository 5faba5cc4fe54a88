"""Headless Chromium, as these machines run it (TESTBED.md): the DOM after a
virtual-time budget, and screenshots. Every process is waited for or killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# No network but the page's own (loopback), no profile, no background fetches.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio"]  # fmt: skip


def run(url: str, profile: Path, *args: str, timeout: float = 60.0) -> str:
    """Chromium on ``url`` with ``args``; its stdout. The whole process group is
    killed when it is done or late, so that no renderer outlives the test."""
    assert CHROMIUM is not None, "chromium is not installed (contrib/install-deps)"
    profile.mkdir(parents=True, exist_ok=True)
    argv = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args, url]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"chromium took more than {timeout} s on {url}") from None
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
    if process.returncode != 0:
        raise AssertionError(f"chromium exited {process.returncode}: {err.decode()[-2000:]}")
    return out.decode()


def dump_dom(url: str, profile: Path, budget_ms: int = 3000, size: str = "1400,1000") -> str:
    return run(url, profile, f"--virtual-time-budget={budget_ms}", f"--window-size={size}",
               "--dump-dom")  # fmt: skip


def screenshot(url: str, profile: Path, out: Path, budget_ms: int = 3000,
               size: str = "1400,1000") -> None:  # fmt: skip
    run(url, profile, f"--virtual-time-budget={budget_ms}", f"--window-size={size}",
        f"--screenshot={out}")  # fmt: skip
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"no PNG at {out}"

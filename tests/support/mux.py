"""The dsh mux and executors in tests: find them, stop them, see their log."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import time
from pathlib import Path

from .waiting import wait_for

_PEERCRED = struct.Struct("3i")


def mux_sockets(runtime: Path) -> list[Path]:
    """The mux sockets in a dsh runtime directory ($XDG_RUNTIME_DIR/dsh)."""
    return sorted(runtime.glob("mux-*.sock")) if runtime.is_dir() else []


def mux_pid(runtime: Path) -> int | None:
    """The pid of the mux listening in ``runtime``, asked of the kernel (SO_PEERCRED)."""
    for path in mux_sockets(runtime):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            try:
                sock.connect(str(path))
            except OSError:
                continue
            pid, _uid, _gid = _PEERCRED.unpack(
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
            )
            return int(pid)
    return None


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return not stat[stat.rfind(")") + 2 :].startswith("Z")


def stop_mux(runtime: Path, timeout: float = 10.0) -> None:
    """SIGTERM the mux of ``runtime`` (if any), SIGKILL if it lingers; wait until gone."""
    pid = mux_pid(runtime)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not alive(pid), 5, f"mux {pid} gone")


def executor_pids() -> list[int]:
    """Every running executor on this machine (their command line ends with dsh-executor)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if len(argv) >= 2 and argv[-2] == b"dsh-executor" and alive(int(entry)):
            found.append(int(entry))
    return found


def log_tail(runtime: Path, lines: int = 30) -> str:
    try:
        text = (runtime / "mux.log").read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])

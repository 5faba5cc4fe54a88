"""``dsh plot --png`` against a real 3-node loopback cluster: a valid PNG of the stated
size whose tEXt chunks name the eight charts and the node count; without matplotlib,
one line and exit 1; a dead daemon or garbage, one line and exit 1."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dshd import ClusterFactory
from support.paths import DSH, PY
from support.waiting import wait_for

NODES = ["127.0.0.66", "127.0.0.67", "127.0.0.68"]
EIGHT = ["User CPU", "Sys CPU", "Idle CPU", "Wait CPU", "Disk Read", "Disk Write", "Net In",
         "Net Out"]  # fmt: skip


def chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """A PNG's (type, data) chunks, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        yield kind, body
        at += 12 + length
        if kind == b"IEND":
            assert at == len(data), "bytes after IEND"
            return
    raise AssertionError("no IEND")


def png_info(path: Path) -> tuple[int, int, dict[str, str]]:
    found = list(chunks(path.read_bytes()))
    assert found[0][0] == b"IHDR" and found[-1][0] == b"IEND"
    width, height = struct.unpack(">II", found[0][1][:8])
    assert any(kind == b"IDAT" for kind, _ in found)
    text = {}
    for kind, body in found:
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
    return width, height, text


def dsh(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, DSH, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def environment(port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    return {**env, "DSH_DAEMON": NODES[0], "DSH_HTTP_PORT": str(port), **extra}


def test_plot_png_of_a_real_cluster(make_cluster: ClusterFactory, tmp_path: Path) -> None:
    cluster = make_cluster(NODES, interval=0.2)
    cluster.start()
    wait_for(cluster.all_up, 10, "every node up")
    history = f"http://{NODES[0]}:{cluster.http_port}/api/history?since=-60&fields=load"

    def points() -> bool:
        with urllib.request.urlopen(history, timeout=10) as answer:
            return len(json.load(answer)["times"]) >= 15

    wait_for(points, 15, "three seconds of history")
    env = environment(cluster.http_port, MPLCONFIGDIR=str(tmp_path / "mpl"))
    done = dsh(["plot", "--since", "1m", "--png", "out.png", "--size", "1200x900"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    width, height, text = png_info(tmp_path / "out.png")
    assert (width, height) == (1200, 900)
    assert text["dsh-charts"].split("|") == EIGHT
    assert text["dsh-nodes"] == "3" and text["dsh-since"] == "60"
    print(f"plot: {tmp_path / 'out.png'} ({(tmp_path / 'out.png').stat().st_size} bytes)")

    # Another size, the host given with -H (and its HTTP port).
    other = environment(1, MPLCONFIGDIR=str(tmp_path / "mpl"))
    done = dsh(["plot", "-H", f"{NODES[1]}:{cluster.http_port}", "--since", "30s", "--png",
                "small.png", "--size", "640x480"], other, tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert png_info(tmp_path / "small.png")[:2] == (640, 480)


def test_plot_without_matplotlib_says_one_line(tmp_path: Path) -> None:
    stub = tmp_path / "stub" / "matplotlib"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('matplotlib is not installed here')\n")
    env = environment(1, PYTHONPATH=str(tmp_path / "stub"))
    done = dsh(["plot", "--png", "x.png"], env, tmp_path)
    assert done.returncode == 1
    assert done.stderr == "dsh plot --png needs matplotlib: pip install 'dsh[plot]'\n"
    assert not (tmp_path / "x.png").exists()


@pytest.fixture
def garbage_server() -> Iterator[int]:
    """A TCP port on loopback that answers every request with non-JSON."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                continue
            with client:
                client.settimeout(2)
                try:
                    client.recv(65536)
                    client.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                                   b"Connection: close\r\n\r\nnot json!")  # fmt: skip
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_plot_of_a_dead_or_garbled_daemon_says_one_line(tmp_path: Path,
                                                        garbage_server: int) -> None:  # fmt: skip
    env = environment(1, MPLCONFIGDIR=str(tmp_path / "mpl"))
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    done = dsh(["plot", "-H", f"127.0.0.1:{dead}", "--png", "x.png"], env, tmp_path)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(
        f"dsh plot: no answer from dshd at 127.0.0.1:{dead}: "
    ), done.stderr
    done = dsh(["plot", "-H", f"127.0.0.1:{garbage_server}", "--png", "x.png"], env, tmp_path)
    assert done.returncode == 1
    assert done.stderr == (f"dsh plot: dshd at 127.0.0.1:{garbage_server} answered /api/view"
                           " with what is not JSON\n")  # fmt: skip
    assert not (tmp_path / "x.png").exists()
    done = dsh(["plot", "--since", "ten", "--png", "x.png"], env, tmp_path)
    assert done.returncode == 2 and "'ten' is not a time" in done.stderr

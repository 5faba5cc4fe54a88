"""The node's executor, driven locally without SSH: executor.py in a subprocess,
spoken to through a pipe pair in the frames the mux sends."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dshd import pid_alive
from support.paths import PY, WAITFILE
from support.waiting import wait_for

from dsh.node import protocol as ep
from dsh.node.source import executor_source
from dsh.request import Request


class LocalExecutor:
    """executor.py in a subprocess, spoken to in frames as the mux does."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PY, "-c", executor_source(), "dsh-executor"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.out = self.proc.stdout.fileno()
        buffer = b""
        while (hello := ep.parse_hello(buffer)) is None:
            buffer += self._read(10)
        assert hello[0] == ep.VERSION
        self.pid = hello[1]
        self.reader = ep.FrameReader(ep.TO_MUX)
        self.frames: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self.output: dict[int, dict[int, bytes]] = defaultdict(lambda: defaultdict(bytes))
        self.frames_from(hello[3])

    def _read(self, timeout: float) -> bytes:
        readable, _, _ = select.select([self.out], [], [], timeout)
        assert readable, "the executor said nothing in time"
        return os.read(self.out, 65536)

    def frames_from(self, data: bytes) -> None:
        for cid, kind, payload in self.reader.feed(data):
            self.frames[cid].append((kind, payload))

    def listen(self, seconds: float) -> None:
        """Take in every frame that comes within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.out], [], [], remaining)
            if readable:
                data = os.read(self.out, 65536)
                assert data, "the executor closed its output"
                self.frames_from(data)

    def send(self, cid: int, kind: int, payload: bytes = b"") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(ep.frame(cid, kind, payload))
        self.proc.stdin.flush()

    def open(self, cid: int, argv: list[bytes], cwd: Path, **request: object) -> None:
        body = Request(argv=argv, cwd=os.fsencode(cwd), umask=0o022, **request).to_json()
        self.send(cid, ep.OPEN, body)

    def expect(self, cid: int, kinds: set[int], timeout: float = 10.0) -> tuple[int, bytes]:
        """The next frame of ``cid`` of one of ``kinds``, acknowledging output on the way."""
        deadline = time.monotonic() + timeout
        while True:
            while self.frames[cid]:
                kind, payload = self.frames[cid].pop(0)
                if kind in (ep.STDOUT, ep.STDERR):
                    self.output[cid][kind] += payload
                    self.send(cid, ep.OUT_ACK, ep.COUNT.pack(len(payload)))
                if kind in kinds:
                    return kind, payload
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no frame {kinds} for command {cid}"
            data = self._read(remaining)
            assert data, "the executor closed its output"
            self.frames_from(data)

    def run(
        self, cid: int, argv: list[bytes], cwd: Path, stdin: bytes = b""
    ) -> tuple[int, bytes, bytes]:
        self.output[cid].clear()
        self.open(cid, argv, cwd)
        assert self.expect(cid, {ep.READY, ep.FAILED})[0] == ep.READY
        self.send(cid, ep.GO)
        for start in range(0, len(stdin), ep.CHUNK):
            self.send(cid, ep.STDIN, stdin[start : start + ep.CHUNK])
        self.send(cid, ep.STDIN_EOF)
        _, status = self.expect(cid, {ep.EXIT}, 60)
        return ep.STATUS.unpack(status)[0], self.output[cid][ep.STDOUT], self.output[cid][ep.STDERR]

    def close(self) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            return self.proc.wait(10)
        finally:
            self.proc.kill()
            self.proc.wait()
            assert self.proc.stdout is not None
            self.proc.stdout.close()


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    local = LocalExecutor()
    try:
        yield local
    finally:
        local.close()


def test_executor_runs_commands_byte_exact_with_their_statuses(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    blob = bytes(range(256)) * 400
    status, out, err = executor.run(1, [b"sh", b"-c", b"cat; printf 'e\\0' >&2; exit 7"], tmp_path,
                                    stdin=blob)  # fmt: skip
    assert (status, out, err) == (7, blob, b"e\x00")
    assert executor.run(2, [b"sh", b"-c", b"kill -TERM $$"], tmp_path)[0] == 128 + 15
    status, out, err = executor.run(3, [b"no-such-command-dsh-test"], tmp_path)
    assert status == 127 and err == b"dsh: no-such-command-dsh-test: No such file or directory\n"
    status, out, _ = executor.run(4, [b"sh", b"-c", b'pwd; echo "$PWD"'], tmp_path)
    assert out == f"{tmp_path}\n{tmp_path}\n".encode()


def test_executor_streams_many_megabytes_both_ways_within_its_windows(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    data = os.urandom(3 * ep.OUT_WINDOW + 12345)
    status, out, _ = executor.run(1, [b"cat"], tmp_path, stdin=data)
    assert status == 0 and out == data


def test_executor_interleaves_commands_on_one_channel(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    for cid in (1, 2, 3):
        executor.open(cid, [b"sh", b"-c", f"sleep 0.{cid}; echo {cid}".encode()], tmp_path)
    for cid in (1, 2, 3):
        assert executor.expect(cid, {ep.READY})[0] == ep.READY
        executor.send(cid, ep.GO)
        executor.send(cid, ep.STDIN_EOF)
    for cid in (3, 1, 2):
        assert executor.expect(cid, {ep.EXIT})[1] == ep.STATUS.pack(0)
        assert executor.output[cid][ep.STDOUT] == f"{cid}\n".encode()


def test_executor_runs_nothing_before_go(executor: LocalExecutor, tmp_path: Path) -> None:
    executor.open(1, [b"touch", b"ran"], tmp_path)
    assert executor.expect(1, {ep.READY})[0] == ep.READY
    executor.send(1, ep.KILL)  # its dsh went away before the mux committed
    assert executor.run(2, [b"true"], tmp_path)[0] == 0  # (the KILL has been handled)
    assert not (tmp_path / "ran").exists()


def test_executor_refuses_before_the_start_what_cannot_start(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    executor.open(1, [b"true"], tmp_path / "missing")
    kind, text = executor.expect(1, {ep.READY, ep.FAILED})
    assert kind == ep.FAILED
    assert text.decode() == f"cwd cannot enter {tmp_path / 'missing'}: No such file or directory"
    sync = tmp_path / ".dsh-sync.test"
    executor.open(2, [b"true"], tmp_path, sync=str(sync), sync_timeout=0.3,
                  waitfile=WAITFILE)  # fmt: skip
    kind, text = executor.expect(2, {ep.READY, ep.FAILED})
    assert kind == ep.FAILED and text.startswith(b"sync waitfile: ")


def test_executor_waits_for_the_sync_file_then_removes_it(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    sync = tmp_path / ".dsh-sync.test"
    executor.open(1, [b"ls", b"-a"], tmp_path, sync=str(sync), sync_timeout=10.0,
                  waitfile=WAITFILE)  # fmt: skip
    executor.listen(0.3)  # that it keeps waiting is what is tested: a while, then look
    assert not executor.frames[1]  # still waiting
    sync.write_text("")
    assert executor.expect(1, {ep.READY})[0] == ep.READY
    executor.send(1, ep.GO)
    executor.send(1, ep.STDIN_EOF)
    assert executor.expect(1, {ep.EXIT})[1] == ep.STATUS.pack(0)
    assert b".dsh-sync.test" in executor.output[1][ep.STDOUT]
    assert not sync.exists()


def _started(executor: LocalExecutor, cid: int, script: str, cwd: Path) -> None:
    executor.open(cid, [b"sh", b"-c", script.encode()], cwd)
    assert executor.expect(cid, {ep.READY})[0] == ep.READY
    executor.send(cid, ep.GO)
    wait_for(lambda: (cwd / f"{cid}.pids").read_text().count("\n") == 2, 10, "command started")


def _pids(cwd: Path, cid: int) -> list[int]:
    return [int(p) for p in (cwd / f"{cid}.pids").read_text().split()]


SLEEPER = "sleep 300 & echo $! > {cid}.tmp; echo $$ >> {cid}.tmp; mv {cid}.tmp {cid}.pids; wait"


def test_executor_signals_and_kills_whole_groups(executor: LocalExecutor, tmp_path: Path) -> None:
    _started(executor, 1, SLEEPER.format(cid=1), tmp_path)
    executor.send(1, ep.SIGNAL, bytes([signal.SIGINT]))
    assert executor.expect(1, {ep.EXIT})[1] == ep.STATUS.pack(128 + signal.SIGINT)
    wait_for(lambda: not any(map(pid_alive, _pids(tmp_path, 1))), 10, "group 1 gone")
    _started(executor, 2, SLEEPER.format(cid=2), tmp_path)
    executor.send(2, ep.KILL)  # its dsh is gone
    wait_for(lambda: not any(map(pid_alive, _pids(tmp_path, 2))), 10, "group 2 gone")


def test_executor_kills_everything_and_exits_when_its_channel_closes(tmp_path: Path) -> None:
    local = LocalExecutor()
    try:
        _started(local, 1, SLEEPER.format(cid=1), tmp_path)
        _started(local, 2, "trap '' HUP; " + SLEEPER.format(cid=2), tmp_path)
    finally:
        assert local.close() == 0
    wait_for(lambda: not any(map(pid_alive, _pids(tmp_path, 1) + _pids(tmp_path, 2))), 10,
             "both groups gone, even the one ignoring SIGHUP")  # fmt: skip

"""The mux and the executor: their protocols, dsh's light start, and what happens
when one of them is killed, refused or idle.

The behaviour every path shares (exit statuses, I/O, signals, sync files...)
is in test_dsh.py, which runs each test on every path. Here: what is
particular to the mux and the executor. The executor is also driven locally,
without SSH, through a pipe pair: the same frames the mux sends.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import pwd
import re
import select
import signal
import socket
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.dshd import pid_alive
from support.mux import alive, log_tail, mux_pid, mux_sockets, stop_mux
from support.paths import DSH, PY, WAITFILE
from support.ssh_cluster import PATH_ENV, SshCluster
from support.waiting import wait_for

from dsh.client.cli import Options, build_parser, parse_quick
from dsh.client.config import _FIELDS, ClientConfig
from dsh.mux import protocol as mp
from dsh.mux.executor_link import executor_source
from dsh.node import protocol as ep
from dsh.ssh.session import Request

# -- the dsh <-> mux protocol --------------------------------------------------------

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=20)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(body=st.dictionaries(st.text(max_size=8), values, max_size=6), cut=st.integers(0, 50))
def test_mux_messages_round_trip_in_any_pieces(body, cut):
    data = mp.encode(mp.REQUEST, body) + mp.encode(mp.SIGNAL, {"signum": 2})
    reader = mp.MessageReader(mp.TO_MUX)
    got = reader.feed(data[:cut]) + reader.feed(data[cut:])
    assert got == [(mp.REQUEST, body), (mp.SIGNAL, {"signum": 2})]
    assert reader.pending == 0


@pytest.mark.parametrize(
    "data, why",
    [
        (mp.header(2, mp.REQUEST) + b"N", "not a dict"),
        (mp.header(3, mp.REQUEST) + b"d\x00", "ends inside"),
        (mp.header(7, mp.REQUEST) + b"d\x00\x00\x00\x00NN", "after the value"),
        (mp.header(6, mp.REQUEST) + b"d\x00\x00\x00\x01", "beyond the end"),
        (mp.header(2, mp.REQUEST) + b"X", "unknown value tag"),
        (mp.header(2, mp.EXIT) + b"N", "unexpected message type"),
        (mp.header(0, mp.REQUEST), "out of range"),
        (mp.header(mp.MAX_MESSAGE + 1, mp.REQUEST), "out of range"),
        (mp.header(10, mp.REQUEST) + b"d" + b"\x00\x00\x00\x01" + b"i" + b"\x00" * 4, "ends"),
    ],
)
def test_mux_reader_rejects_what_is_not_a_message(data, why):
    with pytest.raises(mp.MuxProtocolError, match=why):
        mp.MessageReader(mp.TO_MUX).feed(data)


def test_mux_fields_are_typed():
    body: dict[str, mp.Value] = {"n": 3, "b": True, "s": "x", "l": [b"a"], "f": 1}
    assert mp.get_int(body, "n") == 3 and mp.get_float(body, "f") == 1.0
    for getter, name in [(mp.get_int, "b"), (mp.get_str, "n"), (mp.get_bool, "n"),
                         (mp.get_bytes_list, "s"), (mp.get_bytes, "missing")]:  # fmt: skip
        with pytest.raises(mp.MuxProtocolError, match=name):
            getter(body, name)


def test_executor_frames_are_strict():
    reader = ep.FrameReader(ep.TO_MUX)
    data = ep.frame(7, ep.STDOUT, b"abc") + ep.frame(7, ep.EXIT, ep.STATUS.pack(3))
    assert reader.feed(data[:5]) == []
    assert reader.feed(data[5:]) == [(7, ep.STDOUT, b"abc"), (7, ep.EXIT, ep.STATUS.pack(3))]
    with pytest.raises(ep.ProtocolError, match="unexpected frame type"):
        ep.FrameReader(ep.TO_MUX).feed(ep.frame(1, ep.OPEN, b"{}"))
    with pytest.raises(ep.ProtocolError, match="limit"):
        ep.FrameReader(ep.TO_EXECUTOR).feed(ep.HEADER.pack(1, ep.STDIN, ep.MAX_PAYLOAD + 1))
    assert ep.parse_hello(b"junk from .bashrc\n" + ep.hello_line(42) + b"rest") == (
        ep.VERSION,
        42,
        b"junk from .bashrc\n",
        b"rest",
    )
    assert ep.parse_hello(ep.HELLO_MAGIC + b"1 4") is None  # not complete yet
    with pytest.raises(ep.ProtocolError):
        ep.parse_hello(ep.HELLO_MAGIC + b"one two\n")


# -- dsh's light start ----------------------------------------------------------------

option_tokens = st.lists(
    st.sampled_from(["-n", "-t", "-v", "-q", "--no-fallback", "--no-sync", "--direct", "--mux-stop",
                     "--dry-run", "--slots", "--status", "-H", "h:1", "--status-port", "8",
                     "--status-port=9", "--sync-timeout", "2.5", "--attempts", "4", "--backoff",
                     "x", "--ssh-config", "f", "--ssh-config=g", "-vn", "--stat", "--", "-1",
                     "--attempts=zz", "-Hh", "gcc", "-c", "a.c", "-"]),
    max_size=8,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(argv=option_tokens)
def test_quick_parser_reads_what_argparse_reads(argv):
    quick = parse_quick(argv)
    if quick is None:
        return  # argparse reads it (or reports the mistake), as before
    try:
        expected = build_parser().parse_args(argv)
    except SystemExit:
        # argparse looks for abbreviated options even among the command's own
        # arguments (`dsh gcc --stat`: "ambiguous option"); the quick reader
        # leaves those to the command, as the usage says.
        assert quick.command and any(a.startswith("--") for a in quick.command)
        return
    got = {k: v for k, v in vars(quick).items() if k != "version"}
    assert got == vars(expected)


def test_quick_parser_takes_the_usual_command_lines():
    assert parse_quick(["-v", "-H", "n:1", "gcc", "-c", "-o", "x.o", "x.c"]) is not None
    assert parse_quick(["--help"]) is None and parse_quick(["-vn", "true"]) is None
    options = parse_quick(["--version"])
    assert isinstance(options, Options) and options.version


def test_client_config_fields_are_its_signature():
    params = inspect.signature(ClientConfig).parameters
    assert tuple(params) == _FIELDS
    config = ClientConfig()
    assert all(getattr(config, name) == p.default for name, p in params.items())
    changed = config.replace(attempts=5)
    assert changed.attempts == 5 and config.attempts == 3 and changed != config
    with pytest.raises(AttributeError, match="frozen"):
        config.attempts = 4  # type: ignore[misc]
    from dsh.daemon import config as daemon_config

    assert daemon_config.ClientConfig is ClientConfig
    assert (config.best_port, config.status_port) == (
        daemon_config.DEFAULT_BEST_PORT,
        daemon_config.DEFAULT_STATUS_PORT,
    )


# -- the executor, driven locally -----------------------------------------------------


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

    def send(self, cid: int, kind: int, payload: bytes = b"") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(ep.frame(cid, kind, payload))
        self.proc.stdin.flush()

    def open(self, cid: int, argv: list[bytes], cwd: Path, **request: object) -> None:
        body = Request(argv=argv, cwd=os.fsencode(cwd), umask=0o022, **request).body()  # type: ignore[arg-type]
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
def executor():
    local = LocalExecutor()
    try:
        yield local
    finally:
        local.close()


def test_executor_runs_commands_byte_exact_with_their_statuses(executor, tmp_path):
    blob = bytes(range(256)) * 400
    status, out, err = executor.run(1, [b"sh", b"-c", b"cat; printf 'e\\0' >&2; exit 7"], tmp_path,
                                    stdin=blob)  # fmt: skip
    assert (status, out, err) == (7, blob, b"e\x00")
    assert executor.run(2, [b"sh", b"-c", b"kill -TERM $$"], tmp_path)[0] == 128 + 15
    status, out, err = executor.run(3, [b"no-such-command-dsh-test"], tmp_path)
    assert status == 127 and err == b"dsh: no-such-command-dsh-test: No such file or directory\n"
    status, out, _ = executor.run(4, [b"sh", b"-c", b'pwd; echo "$PWD"'], tmp_path)
    assert out == f"{tmp_path}\n{tmp_path}\n".encode()


def test_executor_streams_many_megabytes_both_ways_within_its_windows(executor, tmp_path):
    data = os.urandom(3 * ep.OUT_WINDOW + 12345)
    status, out, _ = executor.run(1, [b"cat"], tmp_path, stdin=data)
    assert status == 0 and out == data


def test_executor_interleaves_commands_on_one_channel(executor, tmp_path):
    for cid in (1, 2, 3):
        executor.open(cid, [b"sh", b"-c", f"sleep 0.{cid}; echo {cid}".encode()], tmp_path)
    for cid in (1, 2, 3):
        assert executor.expect(cid, {ep.READY})[0] == ep.READY
        executor.send(cid, ep.GO)
        executor.send(cid, ep.STDIN_EOF)
    for cid in (3, 1, 2):
        assert executor.expect(cid, {ep.EXIT})[1] == ep.STATUS.pack(0)
        assert executor.output[cid][ep.STDOUT] == f"{cid}\n".encode()


def test_executor_runs_nothing_before_go(executor, tmp_path):
    executor.open(1, [b"touch", b"ran"], tmp_path)
    assert executor.expect(1, {ep.READY})[0] == ep.READY
    executor.send(1, ep.KILL)  # its dsh went away before the mux committed
    assert executor.run(2, [b"true"], tmp_path)[0] == 0  # (the KILL has been handled)
    assert not (tmp_path / "ran").exists()


def test_executor_refuses_before_the_start_what_cannot_start(executor, tmp_path):
    executor.open(1, [b"true"], tmp_path / "missing")
    kind, text = executor.expect(1, {ep.READY, ep.FAILED})
    assert kind == ep.FAILED
    assert text.decode() == f"cwd cannot enter {tmp_path / 'missing'}: No such file or directory"
    sync = tmp_path / ".dsh-sync.test"
    executor.open(2, [b"true"], tmp_path, sync=str(sync), sync_timeout=0.3,
                  waitfile=WAITFILE)  # fmt: skip
    kind, text = executor.expect(2, {ep.READY, ep.FAILED})
    assert kind == ep.FAILED and text.startswith(b"sync waitfile: ")


def test_executor_waits_for_the_sync_file_then_removes_it(executor, tmp_path):
    sync = tmp_path / ".dsh-sync.test"
    executor.open(1, [b"ls", b"-a"], tmp_path, sync=str(sync), sync_timeout=10.0,
                  waitfile=WAITFILE)  # fmt: skip
    time.sleep(0.3)
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


def test_executor_signals_and_kills_whole_groups(executor, tmp_path):
    _started(executor, 1, SLEEPER.format(cid=1), tmp_path)
    executor.send(1, ep.SIGNAL, bytes([signal.SIGINT]))
    assert executor.expect(1, {ep.EXIT})[1] == ep.STATUS.pack(128 + signal.SIGINT)
    wait_for(lambda: not any(map(pid_alive, _pids(tmp_path, 1))), 10, "group 1 gone")
    _started(executor, 2, SLEEPER.format(cid=2), tmp_path)
    executor.send(2, ep.KILL)  # its dsh is gone
    wait_for(lambda: not any(map(pid_alive, _pids(tmp_path, 2))), 10, "group 2 gone")


def test_executor_kills_everything_and_exits_when_its_channel_closes(tmp_path):
    local = LocalExecutor()
    try:
        _started(local, 1, SLEEPER.format(cid=1), tmp_path)
        _started(local, 2, "trap '' HUP; " + SLEEPER.format(cid=2), tmp_path)
    finally:
        assert local.close() == 0
    wait_for(lambda: not any(map(pid_alive, _pids(tmp_path, 1) + _pids(tmp_path, 2))), 10,
             "both groups gone, even the one ignoring SIGHUP")  # fmt: skip


# -- the mux, with real sshd ---------------------------------------------------------


def run_dsh(cluster: SshCluster, env: dict[str, str], *args: str, cwd: Path,
            **kwargs: object) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    return subprocess.run(
        [PY, DSH, *cluster.dsh_args(), *args], capture_output=True, cwd=cwd,
        env={**env, "PWD": str(cwd)}, stdin=subprocess.DEVNULL, timeout=60, **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture
def mux_env(tmp_path: Path):
    """A runtime directory of its own, the mux and executor path; the mux is stopped after."""
    run = tmp_path / "run"
    run.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    env.update({"XDG_RUNTIME_DIR": str(run), "PWD": str(tmp_path)})
    try:
        yield env
    finally:
        print(f"mux.log:\n{log_tail(run / 'dsh')}")  # shown when the test failed
        stop_mux(run / "dsh")


def test_one_mux_one_executor_per_node_for_many_commands(ssh_cluster, tmp_path, mux_env):
    procs = [
        subprocess.Popen(
            [PY, DSH, *ssh_cluster.dsh_args(), "sh", "-c", f"echo {i}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp_path,
            env=mux_env,
            stdin=subprocess.DEVNULL,
        )
        for i in range(12)
    ]
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, out) == (0, f"{i}\n".encode()), err
    runtime = tmp_path / "run" / "dsh"
    log = (runtime / "mux.log").read_text()
    assert log.count("listening on") == 1, log
    assert log.count(" started (") <= 2, log  # one executor per node at most
    assert oct(runtime.stat().st_mode & 0o777) == "0o700"
    assert oct(mux_sockets(runtime)[0].stat().st_mode & 0o777) == "0o700"


@pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another user needs root")
def test_mux_refuses_a_client_of_another_user(ssh_cluster, tmp_path, mux_env):
    assert run_dsh(ssh_cluster, mux_env, "true", cwd=tmp_path).returncode == 0
    runtime = tmp_path / "run" / "dsh"
    (sock,) = mux_sockets(runtime)
    # The directory (0700) keeps other users out; open it up (reached through
    # a descriptor opened before the switch: pytest's directories are 0700 too)
    # to show that the mux's own check refuses them as well.
    runtime.chmod(0o755)
    sock.chmod(0o777)
    directory = os.open(runtime, os.O_PATH | os.O_DIRECTORY)
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(f"/proc/self/fd/{directory}/{sock.name}")
                client.settimeout(10)
                answer = client.recv(4096)
            os.write(write_end, answer or b"closed")
        except BaseException as exc:
            os.write(write_end, repr(exc).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.close(directory)
    os.waitpid(child, 0)
    answer = os.read(read_end, 4096)
    os.close(read_end)
    messages = mp.MessageReader(mp.TO_DSH).feed(answer)
    assert messages == [(mp.REFUSED, {"message": "this mux serves another user"})], answer
    assert f"refused a client of uid {nobody.pw_uid}" in (runtime / "mux.log").read_text()
    assert run_dsh(ssh_cluster, mux_env, "true", cwd=tmp_path).returncode == 0  # still serving


def test_mux_exits_when_idle_and_the_next_dsh_starts_another(ssh_cluster, tmp_path, mux_env):
    env = {**mux_env, "DSH_MUX_IDLE": "1"}
    runtime = tmp_path / "run" / "dsh"
    assert run_dsh(ssh_cluster, env, "true", cwd=tmp_path).returncode == 0
    first = mux_pid(runtime)
    assert first is not None
    wait_for(lambda: not alive(first), 10, "idle mux gone")
    assert not mux_sockets(runtime)
    assert "idle for 1s, exiting" in (runtime / "mux.log").read_text()
    out = run_dsh(ssh_cluster, env, "echo", "again", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, b"again\n"), out.stderr
    second = mux_pid(runtime)
    assert second not in (None, first)


def _start_sleeper(cluster: SshCluster, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    script = "echo $PPID > parent.tmp; echo $$ > shell.tmp; mv parent.tmp parent.pid; " \
             "mv shell.tmp shell.pid; sleep 300"  # fmt: skip
    proc = subprocess.Popen([PY, DSH, *cluster.dsh_args(), "sh", "-c", script], cwd=cwd,
                            env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    wait_for(lambda: (cwd / "shell.pid").exists(), 30, "remote command started")
    return proc


@pytest.mark.parametrize("path", ["channel", "executor"])
def test_mux_killed_mid_command(ssh_cluster, tmp_path, mux_env, path):
    env = {**mux_env, **PATH_ENV[path]}
    runtime = tmp_path / "run" / "dsh"
    proc = _start_sleeper(ssh_cluster, env, tmp_path)
    try:
        shell = int((tmp_path / "shell.pid").read_text())
        mux = mux_pid(runtime)
        assert mux is not None
        os.kill(mux, signal.SIGKILL)
        assert proc.wait(20) == 255
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        assert err.count("\n") == 1 and err.startswith("dsh: node 127.0.0.2")
        assert "the dsh mux ended while the command ran" in err
        wait_for(lambda: not pid_alive(shell), 15, "the remote command gone with the mux")
        assert not list(tmp_path.glob(".dsh-sync.*"))
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    out = run_dsh(ssh_cluster, env, "echo", "next", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, b"next\n"), out.stderr
    assert mux_pid(runtime) not in (None, mux)


@pytest.mark.parametrize("path", ["channel", "executor"])
def test_a_stuck_mux_is_gone_around_and_never_runs_the_command(ssh_cluster, tmp_path, mux_env,
                                                               path):  # fmt: skip
    env = {**mux_env, **PATH_ENV[path]}
    runtime = tmp_path / "run" / "dsh"
    assert run_dsh(ssh_cluster, env, "true", cwd=tmp_path).returncode == 0
    mux = mux_pid(runtime)
    assert mux is not None
    os.kill(mux, signal.SIGSTOP)  # stuck: it takes connections but answers nothing
    try:
        out = run_dsh(ssh_cluster, env, "-v", "sh", "-c", "echo ran >> runs", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        assert "did not answer within 10s" in out.stderr.decode()
        assert "connecting directly" in out.stderr.decode()
    finally:
        os.kill(mux, signal.SIGCONT)
    # Woken up, the mux finds the request's dsh gone and does not run it.
    assert run_dsh(ssh_cluster, env, "true", cwd=tmp_path).returncode == 0
    time.sleep(1)
    assert (tmp_path / "runs").read_text() == "ran\n"
    assert mux_pid(runtime) == mux


def test_executor_killed_mid_command(ssh_cluster, tmp_path, mux_env):
    proc = _start_sleeper(ssh_cluster, mux_env, tmp_path)
    try:
        shell = int((tmp_path / "shell.pid").read_text())
        executor = int((tmp_path / "parent.pid").read_text())
        assert Path(f"/proc/{executor}/cmdline").read_bytes().endswith(b"\0dsh-executor\0")
        os.kill(executor, signal.SIGKILL)
        assert proc.wait(20) == 255
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        assert err.count("\n") == 1 and "the remote executor ended" in err, err
        # The executor could not kill its commands; the mux did, over SSH.
        wait_for(lambda: not pid_alive(shell), 15, "the remote command gone with its executor")
        assert not list(tmp_path.glob(".dsh-sync.*"))
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    for _ in range(2):
        out = run_dsh(ssh_cluster, mux_env, "echo", "next", cwd=tmp_path)
        assert (out.returncode, out.stdout) == (0, b"next\n"), out.stderr


def test_mux_stop_lets_running_commands_end(ssh_cluster, tmp_path, mux_env):
    runtime = tmp_path / "run" / "dsh"
    assert run_dsh(ssh_cluster, mux_env, "--mux-stop", cwd=tmp_path).stderr == (
        b"dsh: no mux is running\n"
    )
    slow = subprocess.Popen([PY, DSH, *ssh_cluster.dsh_args(), "sh", "-c", "sleep 2; echo done"],
                            stdout=subprocess.PIPE, cwd=tmp_path, env=mux_env,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: mux_pid(runtime), 30, "mux up")
        old = mux_pid(runtime)
        assert old is not None
        time.sleep(0.5)  # (the command has started)
        out = run_dsh(ssh_cluster, mux_env, "--mux-stop", cwd=tmp_path)
        assert out.stderr == f"dsh: mux {old} stops once its 1 running command(s) end\n".encode()
        assert not mux_sockets(runtime)
        new = run_dsh(ssh_cluster, mux_env, "echo", "meanwhile", cwd=tmp_path)
        assert (new.returncode, new.stdout) == (0, b"meanwhile\n"), new.stderr
        assert mux_pid(runtime) not in (None, old)
        assert slow.communicate(timeout=30)[0] == b"done\n" and slow.returncode == 0
        wait_for(lambda: not alive(old), 10, "the old mux gone after its command")
    finally:
        slow.kill()
        slow.wait()
        if slow.stdout is not None:
            slow.stdout.close()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_direct_runs_without_a_mux(ssh_cluster, tmp_path, mux_env, how):
    env = {**mux_env, "DSH_DIRECT": "1"} if how == "env" else mux_env
    args = ["--direct"] if how == "flag" else []
    out = run_dsh(ssh_cluster, env, *args, "sh", "-c", "echo ran", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, b"ran\n"), out.stderr
    assert not mux_sockets(tmp_path / "run" / "dsh")


@pytest.mark.parametrize("path", ["direct", "channel", "executor"])
def test_the_command_runs_the_way_asked(ssh_cluster, tmp_path, mux_env, path):
    env = {**mux_env, **PATH_ENV[path]}
    out = run_dsh(ssh_cluster, env, "sh", "-c", 'tr "\\0" " " < /proc/$PPID/cmdline', cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    parent = out.stdout.decode()
    if path == "executor":
        assert parent.endswith(" dsh-executor ")
    else:
        assert "dsh-rexec:" in parent and "dsh-executor" not in parent
    assert bool(mux_sockets(tmp_path / "run" / "dsh")) == (path != "direct")


def _imports(argv: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    out = subprocess.run([PY, *argv], capture_output=True, env=env, cwd=cwd, timeout=60,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", out.stderr.decode(), re.M))


def test_dsh_imports_neither_paramiko_nor_psutil(ssh_cluster, tmp_path, mux_env):
    run = [DSH, *ssh_cluster.dsh_args(), "true"]
    assert run_dsh(ssh_cluster, mux_env, "true", cwd=tmp_path).returncode == 0  # mux up
    imported = _imports(["-X", "importtime", *run], mux_env, tmp_path)
    assert "dsh.mux.client" in imported
    assert not {m for m in imported if m.split(".")[0] in ("paramiko", "psutil", "cryptography")}
    # Without site (whose .pth files import what they like), nothing heavy at all.
    bare = _imports(["-S", "-X", "importtime", *run], mux_env, tmp_path)
    heavy = {"argparse", "dataclasses", "typing", "socket", "signal", "enum", "re", "json",
             "subprocess", "pathlib", "threading", "logging"}  # fmt: skip
    assert not bare & heavy, sorted(bare & heavy)
    version = _imports(["-S", "-X", "importtime", DSH, "--version"], mux_env, tmp_path)
    assert not version & heavy


def test_a_node_without_executor_gets_exec_channels(ssh_cluster, tmp_path, mux_env):
    # A "python" on the node that cannot run the executor (but runs rexec.py).
    wrapper = tmp_path / "python-no-executor"
    wrapper.write_text(f'#!/bin/sh\n[ "$3" = dsh-executor ] && exit 3\nexec {PY} "$@"\n')
    wrapper.chmod(0o755)
    env = {**mux_env, "DSH_REMOTE_PYTHON": str(wrapper)}
    for _ in range(2):
        out = run_dsh(ssh_cluster, env, "sh", "-c", "echo ok; exit 4", cwd=tmp_path)
        assert (out.returncode, out.stdout) == (4, b"ok\n"), out.stderr
    log = log_tail(tmp_path / "run" / "dsh")
    assert "no executor on" in log and "the executor exited (status 3)" in log


def test_a_private_directory_is_required(ssh_cluster, tmp_path, mux_env):
    runtime = tmp_path / "run" / "dsh"
    runtime.mkdir(mode=0o755)
    runtime.chmod(0o755)
    assert run_dsh(ssh_cluster, mux_env, "true", cwd=tmp_path).returncode == 0
    assert runtime.stat().st_mode & 0o777 == 0o700  # made private before use
    if os.geteuid() == 0:
        stop_mux(runtime)
        os.chown(runtime, 65534, 65534)  # someone else's: no mux there, the direct path
        try:
            out = run_dsh(ssh_cluster, mux_env, "-v", "echo", "direct", cwd=tmp_path)
            assert (out.returncode, out.stdout) == (0, b"direct\n"), out.stderr
            assert "connecting directly" in out.stderr.decode()
            assert not mux_sockets(runtime)
        finally:
            os.chown(runtime, 0, 0)


def test_the_mux_takes_no_more_memory_for_100_mb(ssh_cluster, tmp_path, mux_env):
    import psutil

    assert run_dsh(ssh_cluster, mux_env, "true", cwd=tmp_path).returncode == 0
    mux = psutil.Process(mux_pid(tmp_path / "run" / "dsh"))
    before = mux.memory_info().rss
    proc = subprocess.Popen([PY, DSH, *ssh_cluster.dsh_args(), "head", "-c", "100000000",
                             "/dev/zero"], stdout=subprocess.PIPE, cwd=tmp_path, env=mux_env,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    assert proc.stdout is not None
    peak, total = before, 0
    while chunk := proc.stdout.read(1 << 20):
        total += len(chunk)
        peak = max(peak, mux.memory_info().rss)
    assert proc.wait(60) == 0 and total == 100_000_000
    proc.stdout.close()
    print(f"mux RSS {before / 2**20:.0f} MiB before, {peak / 2**20:.0f} MiB at most")
    assert peak - before < 32 * 2**20


def test_argparse_namespace_matches_options():
    """Options has exactly the attributes argparse gives (plus version)."""
    parsed = build_parser().parse_args(["true"])
    assert set(vars(Options())) - {"version"} == set(vars(parsed))
    assert isinstance(parsed, argparse.Namespace)
    assert json.dumps(sorted(vars(parsed)))  # plain values only

"""The mux with real sshd: what happens when it or the executor is killed, stuck,
refused or idle, and dsh's light start.

The behaviour every path shares (exit statuses, I/O, signals, sync files...)
is in test_dsh.py, which runs each test on every path. Here: what is
particular to the mux and the executor. The executor driven locally, without
SSH, is in test_executor.py; the protocols are in tests/unit/mux and
tests/unit/node.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dshd import pid_alive
from support.mux import alive, log_tail, mux_pid, mux_sockets, stop_mux
from support.paths import DSH, PY
from support.ssh_cluster import PATH_ENV, SshCluster
from support.waiting import wait_for

from dsh.mux import protocol as mp


def run_dsh(
    cluster: SshCluster, env: dict[str, str], *args: str, cwd: Path
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [PY, DSH, *cluster.dsh_args(), *args], capture_output=True, cwd=cwd,
        env={**env, "PWD": str(cwd)}, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip


@pytest.fixture
def mux_env(tmp_path: Path) -> Iterator[dict[str, str]]:
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


def test_one_mux_one_executor_per_node_for_many_commands(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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
def test_mux_refuses_a_client_of_another_user(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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


def test_mux_exits_when_idle_and_the_next_dsh_starts_another(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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
def test_mux_killed_mid_command(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str], path: str
) -> None:
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
def test_a_stuck_mux_is_gone_around_and_never_runs_the_command(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str], path: str
) -> None:
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
    # Nothing to wait for: what is tested is that a second "ran" never comes.
    # The mux took the stale request before this one; had it run it, the line
    # would be there within this second (a command starts in ~0.1 s).
    time.sleep(1)
    assert (tmp_path / "runs").read_text() == "ran\n"
    assert mux_pid(runtime) == mux


def test_executor_killed_mid_command(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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


def test_mux_stop_lets_running_commands_end(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
    runtime = tmp_path / "run" / "dsh"
    assert run_dsh(ssh_cluster, mux_env, "--mux-stop", cwd=tmp_path).stderr == (
        b"dsh: no mux is running\n"
    )
    # The command runs until the test lets it end, so that it still runs at
    # --mux-stop and while another dsh gets a new mux, however slow these are.
    script = "touch started; while [ ! -e finish ]; do sleep 0.05; done; echo done"
    slow = subprocess.Popen([PY, DSH, *ssh_cluster.dsh_args(), "sh", "-c", script],
                            stdout=subprocess.PIPE, cwd=tmp_path, env=mux_env,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for(lambda: mux_pid(runtime), 30, "mux up")
        old = mux_pid(runtime)
        assert old is not None
        wait_for(lambda: (tmp_path / "started").exists(), 30, "the command started")
        out = run_dsh(ssh_cluster, mux_env, "--mux-stop", cwd=tmp_path)
        assert out.stderr == f"dsh: mux {old} stops once its 1 running command(s) end\n".encode()
        assert not mux_sockets(runtime)
        new = run_dsh(ssh_cluster, mux_env, "echo", "meanwhile", cwd=tmp_path)
        assert (new.returncode, new.stdout) == (0, b"meanwhile\n"), new.stderr
        assert mux_pid(runtime) not in (None, old)
        assert alive(old)  # still serving its command
        (tmp_path / "finish").touch()
        assert slow.communicate(timeout=30)[0] == b"done\n" and slow.returncode == 0
        wait_for(lambda: not alive(old), 10, "the old mux gone after its command")
    finally:
        slow.kill()
        slow.wait()
        if slow.stdout is not None:
            slow.stdout.close()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_direct_runs_without_a_mux(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str], how: str
) -> None:
    env = {**mux_env, "DSH_DIRECT": "1"} if how == "env" else mux_env
    args = ["--direct"] if how == "flag" else []
    out = run_dsh(ssh_cluster, env, *args, "sh", "-c", "echo ran", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, b"ran\n"), out.stderr
    assert not mux_sockets(tmp_path / "run" / "dsh")


@pytest.mark.parametrize("path", ["direct", "channel", "executor"])
def test_the_command_runs_the_way_asked(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str], path: str
) -> None:
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


def test_dsh_imports_neither_paramiko_nor_psutil(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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


def test_a_node_without_executor_gets_exec_channels(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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


def test_a_private_directory_is_required(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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


def test_the_mux_takes_no_more_memory_for_100_mb(
    ssh_cluster: SshCluster, tmp_path: Path, mux_env: dict[str, str]
) -> None:
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

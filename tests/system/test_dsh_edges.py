"""Edges of running remotely that a review found: a reader that goes away, a
signal while the command ignores its stdin, processes left behind. On every path."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import pytest
from support.dshd import pid_alive
from support.paths import DSH, PY
from support.ssh_cluster import SshCluster, default_signals
from support.waiting import wait_for


def dsh_cmd(ssh_cluster: SshCluster, *args: str) -> list[str]:
    return [PY, DSH, *ssh_cluster.dsh_args(), *args]


def test_a_closed_output_pipe_stops_the_remote_command(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    """`dsh yes | head -1` ends, as `yes | head -1` does, and yes is gone remotely."""
    import shlex

    command = " ".join(shlex.quote(a) for a in dsh_cmd(
        ssh_cluster, "sh", "-c", "echo $$ > yes.pid; exec yes"))  # fmt: skip
    out = subprocess.run(
        ["bash", "-c", f"{command} | head -1; echo status ${{PIPESTATUS[0]}}"],
        capture_output=True, cwd=tmp_path, env=dsh_env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "y"
    assert lines[1] == "status 141", out.stderr  # 128 + SIGPIPE, as the local yes
    remote = int((tmp_path / "yes.pid").read_text())
    wait_for(lambda: not pid_alive(remote), 15, "remote yes gone")
    # And dsh itself dies of SIGPIPE, silently, as the local yes would.
    with subprocess.Popen(dsh_cmd(ssh_cluster, "yes"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, cwd=tmp_path, env=dsh_env,
                          stdin=subprocess.DEVNULL) as proc:  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(2) == b"y\n"
        proc.stdout.close()
        assert proc.wait(60) == -signal.SIGPIPE
        assert proc.stderr.read() == b""


def test_ctrl_c_stops_a_shell_loop_around_dsh(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    """Ctrl-C at a terminal signals the whole foreground group: bash and dsh.
    bash ends its loop only if the child died of SIGINT (a child that exits 130
    is taken to have handled it), as a local command would have."""
    import shlex

    command = " ".join(shlex.quote(a) for a in dsh_cmd(
        ssh_cluster, "sh", "-c", "echo $$ >> started; exec sleep 300"))  # fmt: skip
    out = tmp_path / "out"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            ["bash", "-c", f"for i in 1 2 3; do {command}; done; echo after"],
            stdout=stdout, stdin=subprocess.DEVNULL, cwd=tmp_path, env=dsh_env,
            start_new_session=True, preexec_fn=default_signals,
        )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "started").read_text().strip(), 30, "first command started")
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == -signal.SIGINT
        assert out.read_bytes() == b""  # no "after"
        pids = (tmp_path / "started").read_text().split()
        assert len(pids) == 1, pids  # the loop went no further
        wait_for(lambda: not pid_alive(int(pids[0])), 15, "remote sleep gone")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_ctrl_c_reaches_a_command_that_does_not_read_its_stdin(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    # 50 MB of stdin that the command never reads: the stdin pump is stuck in a
    # send, so the signal must get through some other way.
    feeder = subprocess.Popen(["head", "-c", "50000000", "/dev/zero"], stdout=subprocess.PIPE)
    proc = subprocess.Popen(
        dsh_cmd(ssh_cluster, "sh", "-c", "echo $$ > shell.pid; exec sleep 300"),
        stdin=feeder.stdout, cwd=tmp_path, env=dsh_env, preexec_fn=default_signals,
    )  # fmt: skip
    assert feeder.stdout is not None
    feeder.stdout.close()
    try:
        wait_for(lambda: (tmp_path / "shell.pid").read_text().strip(), 30, "remote started")
        remote = int((tmp_path / "shell.pid").read_text())
        proc.send_signal(2)
        assert proc.wait(30) == -signal.SIGINT
        wait_for(lambda: not pid_alive(remote), 15, "remote sleep gone")
    finally:
        for p in (proc, feeder):
            p.kill()
            p.wait()


# The command traps SIGINT; a background cat, immune to it, copies the input.
TRAPPING = """
exec 3<&0
(trap '' INT; exec cat <&3 > input) &
trap 'echo INT >> got' INT
echo $$ > shell.pid
while [ ! -e stop ]; do sleep 0.1; done
"""


@pytest.mark.parametrize("stdin", ["input-between", "none"])
def test_each_ctrl_c_arrives_exactly_once(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str], stdin: str
) -> None:
    """dsh sends a signal as the SSH request plus an in-band frame, or, once it
    has sent input, as kill(1) over a second channel: each signal must arrive
    once, also when the two signals of one kind went different ways."""
    got = tmp_path / "got"
    proc = subprocess.Popen(
        dsh_cmd(ssh_cluster, "sh", "-c", TRAPPING), cwd=tmp_path, env=dsh_env,
        stdin=subprocess.PIPE if stdin == "input-between" else subprocess.DEVNULL,
        preexec_fn=default_signals,
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "shell.pid").read_text().strip(), 30, "remote started")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: got.exists() and got.read_text() == "INT\n", 30, "first trap")
        if proc.stdin is not None:
            proc.stdin.write(b"input\n")
            proc.stdin.flush()  # and it stays open
            wait_for(lambda: (tmp_path / "input").read_bytes() == b"input\n", 30, "input")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: got.read_text().count("INT") >= 2, 30, "second trap")
        # A third delivery would come within this wait: the slowest way (a
        # shell started on a new channel) takes a fraction of it.
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(3)
        if proc.stdin is not None:
            proc.stdin.close()
        (tmp_path / "stop").touch()
        assert proc.wait(30) == 0  # the command handled the signals and ended well
        assert got.read_text() == "INT\nINT\n"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


def test_sigterm_reaches_a_command_in_a_pseudo_terminal(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    """Under -t, SIGTERM cannot travel in band (stdin is the terminal's) and
    root's sshd refuses the SSH request: it must still arrive, once."""
    script = ('trap "echo TERM >> got; exit 3" TERM; echo $$ > shell.pid; '
              "while :; do sleep 0.1; done")  # fmt: skip
    proc = subprocess.Popen(
        dsh_cmd(ssh_cluster, "-t", "sh", "-c", script), cwd=tmp_path, env=dsh_env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "shell.pid").read_text().strip(), 30, "remote started")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 3  # the trap's exit status: the command got it
        assert (tmp_path / "got").read_text() == "TERM\n"
    finally:
        proc.kill()
        proc.wait()


def test_background_processes_left_behind_get_a_hangup(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    out = subprocess.run(
        dsh_cmd(ssh_cluster, "sh", "-c", "sleep 300 & echo $! > bg.pid"),
        capture_output=True, cwd=tmp_path, env=dsh_env, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    background = int((tmp_path / "bg.pid").read_text())
    wait_for(lambda: not pid_alive(background), 15, "left-behind sleep gone")


def test_dry_run_never_runs_the_command_even_without_a_daemon(tmp_path: Path) -> None:
    target = tmp_path / "created"
    out = subprocess.run(
        [PY, DSH, "-H", "127.0.0.1:1", "--status-port", "1", "--dry-run", "touch", str(target)],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 0
    assert out.stdout == "local\n"
    assert "would run locally" in out.stderr
    assert not target.exists()


def test_double_dash_ends_dshs_options(tmp_path: Path) -> None:
    out = subprocess.run(
        [PY, DSH, "-H", "127.0.0.1:1", "--status-port", "1", "-q", "--", "echo", "-v"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert (out.returncode, out.stdout, out.stderr) == (0, "-v\n", "")


@pytest.mark.parametrize("dsh_path", ["executor", "direct", "channel"])
def test_a_signal_ignored_at_start_stays_ignored(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    """`nohup dsh ...` or `dsh ... &` in a script: SIGINT is ignored, as it would be
    by the command run here; SIGTERM still reaches it."""
    proc = subprocess.Popen(
        dsh_cmd(ssh_cluster, "sh", "-c", "echo $$ > shell.pid; exec sleep 300"),
        stdin=subprocess.DEVNULL, cwd=tmp_path, env=dsh_env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "shell.pid").read_text().strip(), 30, "remote started")
        remote = int((tmp_path / "shell.pid").read_text())
        proc.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(1.5)  # (a relayed SIGINT ends the command in well under this)
        assert pid_alive(remote)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == -signal.SIGTERM
        wait_for(lambda: not pid_alive(remote), 15, "remote sleep gone")
    finally:
        proc.kill()
        proc.wait()

"""A node that stops answering in mid-command: its commands fail in seconds, not hang.

The node's sshd processes for the connection are frozen (SIGSTOP), as a node
whose power or network went would look: the kernel still holds the TCP
connection, so only an SSH-level check notices. On every path.
"""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import psutil
from support.dshd import pid_alive
from support.paths import DSH, PY
from support.ssh_cluster import SshCluster
from support.waiting import wait_for


def config_with_alive_check(ssh_cluster: SshCluster, path: Path, interval: int, count: int) -> Path:
    """The cluster's ssh config, plus ServerAlive* for every host (first value wins,
    and the cluster's blocks set neither)."""
    alive = f"    ServerAliveInterval {interval}\n    ServerAliveCountMax {count}\n"
    path.write_text(ssh_cluster.ssh_config.read_text() + "\nHost *\n" + alive)
    return path


def dsh_cmd(ssh_cluster: SshCluster, config: Path, *command: str) -> list[str]:
    args = ssh_cluster.dsh_args()
    args[args.index("--ssh-config") + 1] = str(config)
    # A sync-file wait longer than the test's deadline: a lost command must not
    # wait for a sync file that nobody will remove.
    return [PY, DSH, *args, "--sync-timeout", "600", *command]


def frozen_sshd_of(pid: int, listeners: set[int]) -> list[psutil.Process]:
    """Stop the sshd processes between a remote command and its node's sshd listener."""
    sessions = [p for p in psutil.Process(pid).parents()
                if p.name().startswith("sshd") and p.pid not in listeners]  # fmt: skip
    assert sessions, "the remote command runs under no sshd session"
    for proc in sessions:
        proc.suspend()
    return sessions


def test_a_node_that_stops_answering_fails_its_command_with_255(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    config = config_with_alive_check(ssh_cluster, tmp_path / "ssh_config", interval=1, count=2)
    listeners = {server.pid for server in ssh_cluster.sshd.values()}
    err = tmp_path / "err"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            dsh_cmd(ssh_cluster, config, "sh", "-c", "echo $$ > cmd.pid; exec sleep 300"),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
            cwd=tmp_path, env=dsh_env,
        )  # fmt: skip
    frozen: list[psutil.Process] = []
    try:
        wait_for(lambda: (tmp_path / "cmd.pid").read_text().strip(), 30, "remote command started")
        remote = int((tmp_path / "cmd.pid").read_text())
        frozen = frozen_sshd_of(remote, listeners)
        # 1 s x 2 unanswered, plus the time to notice: well inside the deadline,
        # and far less than the sync-file wait.
        assert proc.wait(60) == 255
        message = err.read_text()
        assert "no answer from 127.0.0." in message and "for 2s" in message, message
        assert message.count("\n") == 1, message  # one line
    finally:
        for p in frozen:
            with contextlib.suppress(psutil.Error):
                p.resume()
        proc.kill()
        proc.wait()
    # Thawed, the node's sshd finds the connection gone and ends the command.
    wait_for(lambda: not pid_alive(remote), 30, "remote command gone")
    # The next dsh connects anew (the mux dropped the closed connection).
    again = subprocess.run(dsh_cmd(ssh_cluster, config, "echo", "again"), cwd=tmp_path,
                           env=dsh_env, capture_output=True, timeout=60)  # fmt: skip
    assert (again.returncode, again.stdout) == (0, b"again\n"), again.stderr

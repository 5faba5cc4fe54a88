"""Proves tests/support/sshd.py runs real OpenSSH servers that real clients use.

No mocks: two sshd processes on 127.0.0.11 and 127.0.0.12 share one port, and
both the OpenSSH client and paramiko log in to them with the session's keys and
strict host key checking.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest
from support.sshd import (
    ClientKeys,
    Sshd,
    common_free_port,
    free_port,
    make_client_keys,
    write_ssh_config,
)

ADDRESSES = ["127.0.0.11", "127.0.0.12"]


@dataclass
class Cluster:
    keys: ClientKeys
    servers: list[Sshd]
    config: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("sshd")
    keys = make_client_keys(root / "client")
    port = common_free_port(ADDRESSES)
    servers = [Sshd(address, port, root / address, keys) for address in ADDRESSES]
    try:
        for server in servers:
            server.start()
        config = write_ssh_config(root / "ssh_config", servers, keys)
        yield Cluster(keys=keys, servers=servers, config=config)
    finally:
        for server in servers:
            server.stop()


def run_ssh(cluster: Cluster, server: Sshd, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ssh", "-F", str(cluster.config), server.address, *command],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )


def explain(result: subprocess.CompletedProcess[str], server: Sshd) -> str:
    return (
        f"exit {result.returncode}\nstdout: {result.stdout!r}\nstderr: {result.stderr}\n"
        f"sshd log ({server.log}):\n{server.log_tail()}"
    )


def test_openssh_client_reaches_each_node(cluster: Cluster) -> None:
    assert len({s.port for s in cluster.servers}) == 1
    for server in cluster.servers:
        result = run_ssh(cluster, server, "echo", "hello")
        assert result.returncode == 0, explain(result, server)
        assert result.stdout.strip().splitlines()[-1] == "hello", explain(result, server)
    known = cluster.keys.known_hosts.read_text().splitlines()
    assert sorted(line.split()[0] for line in known) == sorted(
        f"[{s.address}]:{s.port}" for s in cluster.servers
    )


def paramiko_run(cluster: Cluster, address: str, command: str) -> tuple[int, str]:
    options = paramiko.SSHConfig.from_path(str(cluster.config)).lookup(address)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(options["userknownhostsfile"])
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            options["hostname"],
            port=options.as_int("port"),
            username=options["user"],
            key_filename=options["identityfile"][0],
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        _, stdout, _ = client.exec_command(command, timeout=30)
        output = stdout.read().decode()
        return stdout.channel.recv_exit_status(), output
    finally:
        client.close()


def test_paramiko_uses_config_and_known_hosts(cluster: Cluster) -> None:
    for server in cluster.servers:
        options = paramiko.SSHConfig.from_path(str(cluster.config)).lookup(server.address)
        assert options["hostname"] == server.address
        assert int(options["port"]) == server.port
        # A list at run time (IdentityFile may repeat), whatever type stubs say.
        assert list(options["identityfile"]) == [str(cluster.keys.identity)]
        status, output = paramiko_run(cluster, server.address, "echo hi")
        assert status == 0, server.log_tail()
        assert output.strip().splitlines()[-1] == "hi"


def test_paramiko_rejects_unknown_host_key(cluster: Cluster) -> None:
    server = cluster.servers[0]
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        with pytest.raises(paramiko.SSHException):
            client.connect(
                server.address,
                port=server.port,
                key_filename=str(cluster.keys.identity),
                look_for_keys=False,
                allow_agent=False,
                timeout=10,
            )
    finally:
        client.close()


def test_stop_refuses_and_restart_keeps_host_key(cluster: Cluster) -> None:
    server = cluster.servers[1]
    host_key = server.host_key_pub.read_text()
    known_hosts = cluster.keys.known_hosts.read_text()
    pid = server._process.pid if server._process else None
    try:
        server.stop()
        server.stop()  # idempotent
        assert not server.running()
        assert pid is not None and not Path(f"/proc/{pid}").exists()  # reaped, no zombie
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((server.address, server.port), timeout=5).close()
        # The other node is unaffected.
        other = cluster.servers[0]
        assert run_ssh(cluster, other, "true").returncode == 0
    finally:
        server.start()
    assert server.running()
    assert server.host_key_pub.read_text() == host_key
    assert cluster.keys.known_hosts.read_text() == known_hosts
    result = run_ssh(cluster, server, "echo", "again")
    assert result.returncode == 0, explain(result, server)
    assert result.stdout.strip().splitlines()[-1] == "again"


def test_start_fails_cleanly_when_port_taken(cluster: Cluster, tmp_path: Path) -> None:
    address = "127.0.0.13"
    with socket.socket() as blocker:
        blocker.bind((address, 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = Sshd(address, port, tmp_path / "node", cluster.keys)
        try:
            with pytest.raises(RuntimeError, match="log tail"):
                server.start(timeout=5)
            assert not server.running()
            assert f"Bind to port {port} on {address} failed" in server.log_tail()
        finally:
            server.stop()


def test_stop_ends_running_sessions(cluster: Cluster, tmp_path: Path) -> None:
    address = "127.0.0.14"
    server = Sshd(address, free_port(address), tmp_path / "node", cluster.keys)
    config = write_ssh_config(tmp_path / "ssh_config", [server], cluster.keys)
    try:
        server.start()
        session = subprocess.Popen(
            ["ssh", "-F", str(config), address, "echo $$; exec sleep 60"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert session.stdout is not None
            # The remote command prints its pid once it runs (sshd and the
            # test share this machine, so the pid is visible here).
            remote_pid = int(session.stdout.readline())
            assert Path(f"/proc/{remote_pid}").exists()
            server.stop()
            assert session.wait(timeout=10) != 0
            assert _gone(remote_pid), "remote command outlived its sshd"
        finally:
            if session.poll() is None:
                session.kill()
            session.communicate()
    finally:
        server.stop()


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].startswith("Z")

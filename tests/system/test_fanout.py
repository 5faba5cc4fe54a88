"""dsh -a / dsh -w on a cluster of its own: three nodes with real dshd and sshd
(127.0.0.50-52), one whose dshd runs but whose sshd is gone (.53: cannot be
reached) and one in the cluster file with nothing running (.54: down)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dshd import Cluster
from support.mux import log_tail, stop_mux
from support.paths import DSH, PY
from support.ssh_cluster import default_signals
from support.sshd import Sshd, common_free_port, make_client_keys, write_ssh_config
from support.waiting import wait_for

N1, N2, N3, UNREACHABLE, DOWN = (f"127.0.0.{n}" for n in range(50, 55))
UP = [N1, N2, N3]
ALL = "127.0.0.[50-52]"


class FanCluster:
    def __init__(self, directory: Path) -> None:
        keys = make_client_keys(directory / "keys")
        port = common_free_port([*UP, UNREACHABLE])
        self.sshd = [Sshd(a, port, directory / f"sshd-{a}", keys) for a in (*UP, UNREACHABLE)]
        self.ssh_config = write_ssh_config(directory / "ssh_config", self.sshd, keys)
        (directory / "dshd").mkdir()
        self.dshd = Cluster(directory / "dshd", [*UP, UNREACHABLE, DOWN], interval=0.2)

    def start(self) -> None:
        for server in self.sshd[:3]:  # UNREACHABLE's sshd is never started
            server.start()
        self.dshd.start([*UP, UNREACHABLE])
        wait_for(lambda: self.dshd.all_up([*UP, UNREACHABLE]), 10, "fan-out cluster up")
        wait_for(lambda: self.dshd.nodes[N1].state_of(DOWN) == "down", 10, f"{DOWN} down")

    def stop(self) -> None:
        self.dshd.stop()
        for server in self.sshd:
            server.stop()


@pytest.fixture(scope="module")
def fan_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FanCluster]:
    cluster = FanCluster(tmp_path_factory.mktemp("fancluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["executor", "channel"])
def env(
    request: pytest.FixtureRequest, tmp_path: Path, fan_cluster: FanCluster
) -> Iterator[dict[str, str]]:
    run = tmp_path / "run"
    run.mkdir()
    e = {k: v for k, v in os.environ.items() if not k.startswith("DSH_")}
    e.update({"XDG_RUNTIME_DIR": str(run), "PWD": str(tmp_path),
              "DSH_HTTP_PORT": str(fan_cluster.dshd.http_port)})  # fmt: skip
    if request.param == "channel":
        e["DSH_EXECUTOR"] = "0"
    try:
        yield e
    finally:
        print(f"mux.log:\n{log_tail(run / 'dsh')}")
        stop_mux(run / "dsh")


def dsh_argv(cluster: FanCluster, *args: str) -> list[str]:
    port = cluster.dshd.port
    return [PY, DSH, "-H", f"{N1}:{port + 1}", "--status-port", str(port),
            "--ssh-config", str(cluster.ssh_config), *args]  # fmt: skip


def dsh(cluster: FanCluster, env: dict[str, str], tmp_path: Path, *args: str
        ) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    return subprocess.run(dsh_argv(cluster, *args), capture_output=True, cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, timeout=60)  # fmt: skip


# The node a command runs on, as the command sees it: sshd's address in $SSH_CONNECTION.
WHERE = 'set -- $SSH_CONNECTION; echo "$3"'


def test_every_line_is_prefixed_with_its_node(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    script = WHERE + "; printf 'two\\nlines\\n'; printf 'err\\n' >&2; printf 'no newline'"
    out = dsh(fan_cluster, env, tmp_path, "-w", ALL, "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines(keepends=True)
    for node in UP:
        mine = [line for line in lines if line.startswith(f"{node}: ")]
        assert mine == [f"{node}: {node}\n", f"{node}: two\n", f"{node}: lines\n",
                        f"{node}: no newline\n"]  # fmt: skip
    assert len(lines) == 12
    assert sorted(out.stderr.decode().splitlines()) == [f"{n}: err" for n in UP]


def test_a_carriage_return_stays_inside_its_line(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    # A progress bar (\r) is one line to pdsh, which splits at \n only.
    out = dsh(fan_cluster, env, tmp_path, "-w", ALL, "printf", "10%%\\r50%%\\r100%%\\n")
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split(b"\n")[:-1]) == [f"{n}: 10%\r50%\r100%".encode()
                                                    for n in UP]  # fmt: skip


def test_a_skips_the_down_node_and_names_the_unreachable_one(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    out = dsh(fan_cluster, env, tmp_path, "-a", "sh", "-c", WHERE)
    assert out.returncode == 255, out.stderr
    assert sorted(out.stdout.decode().splitlines()) == [f"{n}: {n}" for n in UP]
    err = out.stderr.decode().splitlines()
    assert f"dsh: skipping down nodes {DOWN} (--all-listed tries them)" in err
    assert [line for line in err if UNREACHABLE in line and "cannot connect" in line], err
    assert len(err) == 2, err
    # -x takes it out, and the down node is still skipped: all is well.
    ok = dsh(fan_cluster, env, tmp_path, "-a", "-x", UNREACHABLE, "true")
    assert ok.returncode == 0 and ok.stdout == b"", ok.stderr
    # --all-listed tries the down node too: one more failure.
    tried = dsh(fan_cluster, env, tmp_path, "-a", "-x", UNREACHABLE, "--all-listed", "true")
    assert tried.returncode == 255
    assert DOWN in tried.stderr.decode() and "skipping" not in tried.stderr.decode()


def test_exit_status_is_the_highest(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    script = (
        f'set -- $SSH_CONNECTION; test "$3" = {N2} && exit 3; test "$3" = {N3} && exit 1; exit 0'
    )
    out = dsh(fan_cluster, env, tmp_path, "-w", ALL, "sh", "-c", script)
    assert out.returncode == 3, out.stderr
    assert dsh(fan_cluster, env, tmp_path, "-w", f"{N1},{N3}", "sh", "-c", script).returncode == 1
    assert dsh(fan_cluster, env, tmp_path, "-w", f"{N2},{UNREACHABLE}", "sh", "-c", script
               ).returncode == 255  # fmt: skip


def test_b_gathers_identical_output(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    script = f'set -- $SSH_CONNECTION; echo same; test "$3" = {N2} && echo other; true'
    out = dsh(fan_cluster, env, tmp_path, "-b", "-w", ALL, "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    div = "-" * 16
    assert out.stdout.decode() == (
        f"{div}\n127.0.0.[50,52]\n{div}\nsame\n{div}\n{N2}\n{div}\nsame\nother\n"
    )


def test_ctrl_c_reaches_every_remote_command(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    # A sleep of a length no other process has: its command line is the marker.
    length = f"30.{os.getpid()}{time.monotonic_ns() % 10**6}"
    proc = subprocess.Popen(
        dsh_argv(fan_cluster, "-w", ALL, "sh", "-c", f"echo started; sleep {length}"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=env,
        stdin=subprocess.DEVNULL, preexec_fn=default_signals,
    )  # fmt: skip

    def running() -> int:
        found = subprocess.run(["pgrep", "-f", f"^sleep {length}$"], capture_output=True, text=True)
        return len(found.stdout.split())

    try:
        wait_for(lambda: running() == 3, 30, "three remote sleeps")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == -signal.SIGINT  # as single-node dsh: it dies of it
        wait_for(lambda: running() == 0, 10, "every remote sleep gone")
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


ECHO_ARGS = (
    "import os, sys; sys.stdout.buffer.write(repr([os.fsencode(a) for a in sys.argv[1:]]).encode())"
)


def test_arguments_arrive_byte_for_byte(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    args = ["a b", "'", '"', "$HOME", "$(id)", "`id`", ";", "*", "\n", "x\ny", "\\", "ü€😀",
            os.fsdecode(b"\xff\xfe"), ""]  # fmt: skip
    out = dsh(fan_cluster, env, tmp_path, "-w", ALL, PY, "-c", ECHO_ARGS, *args)
    assert out.returncode == 0, out.stderr
    expected = repr([os.fsencode(a) for a in args]).encode()
    assert sorted(out.stdout.splitlines()) == sorted(os.fsencode(n) + b": " + expected for n in UP)


def test_bad_node_sets_are_one_line_and_exit_2(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    for bad in ["127.0.0.[50-", "node[3-1]", "@nosuchgroup"]:
        out = dsh(fan_cluster, env, tmp_path, "-w", bad, "true")
        assert out.returncode == 2, out.stderr
        assert out.stderr.decode().count("\n") == 1 and "node set" in out.stderr.decode()


def test_a_closed_output_ends_every_remote_command(
    fan_cluster: FanCluster, env: dict[str, str], tmp_path: Path
) -> None:
    """`dsh -a cmd | head -1`: the remote commands get SIGPIPE, dsh dies of it."""
    length = f"0.{os.getpid()}{time.monotonic_ns() % 10**6}"
    script = f"while :; do echo y; sleep {length}; done"
    proc = subprocess.Popen(dsh_argv(fan_cluster, "-w", ALL, "sh", "-c", script),
                            stdout=subprocess.PIPE, cwd=tmp_path, env=env,
                            stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().endswith(b": y\n")
        proc.stdout.close()
        assert proc.wait(30) == -signal.SIGPIPE
        wait_for(
            lambda: subprocess.run(["pgrep", "-f", f"^sh -c {script}"]).returncode == 1,
            10, "every remote loop gone",
        )  # fmt: skip
    finally:
        proc.kill()
        proc.wait()

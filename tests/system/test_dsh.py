"""dsh against real sshd servers and real dshd daemons on loopback addresses.

The session cluster (support.ssh_cluster.SshCluster) drains the local node, so every
run goes to 127.0.0.21 or 127.0.0.22 over SSH unless a test says otherwise.
Every test that runs dsh runs once per path (support.ssh_cluster.PATHS): --direct, the
mux with an exec channel per command, the mux with the node's executor.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.dshd import ClusterFactory, pid_alive
from support.paths import DSH, PY, WAITFILE
from support.ssh_cluster import LOCAL, R1, R2, SshCluster, default_signals
from support.waiting import wait_for


class DshRun(Protocol):
    """The ``dsh`` fixture: dsh's arguments in, the finished run out."""

    def __call__(
        self,
        *args: str,
        input: bytes | None = ...,
        cwd: Path = ...,
        extra_env: dict[str, str] | None = ...,
        timeout: float = ...,
        dsh_args: list[str] | None = ...,
    ) -> subprocess.CompletedProcess[bytes]: ...


@pytest.fixture
def dsh(ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]) -> DshRun:
    """Run dsh as a user would, in tmp_path, with its own backoff state."""
    env = dsh_env

    def run(*args: str, input: bytes | None = b"", cwd: Path = tmp_path,
            extra_env: dict[str, str] | None = None, timeout: float = 60,
            dsh_args: list[str] | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
        e = {**env, "PWD": str(cwd), **(extra_env or {})}
        return subprocess.run(
            [PY, DSH, *(ssh_cluster.dsh_args() if dsh_args is None else dsh_args), *args],
            input=input, capture_output=True, cwd=cwd, env=e, timeout=timeout,
        )  # fmt: skip

    return run


def no_sync_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".dsh-sync.")]


# -- exit status and output ---------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 2, 255])
def test_exit_status_is_the_remote_commands(dsh: DshRun, code: int) -> None:
    out = dsh("-v", "sh", "-c", f"exit {code}")
    assert out.returncode == code, out.stderr
    assert out.stderr.decode().startswith("dsh: running on 127.0.0.2")


def test_killed_by_signal_gives_128_plus_n(dsh: DshRun) -> None:
    out = dsh("sh", "-c", "kill -KILL $$")
    assert out.returncode == 128 + signal.SIGKILL, out.stderr


def test_stdout_and_stderr_are_separate_and_byte_exact(dsh: DshRun, tmp_path: Path) -> None:
    blob = bytes(range(256)) * 64 + b"\r\n\x00no newline at end"
    (tmp_path / "blob").write_bytes(blob)
    out = dsh("sh", "-c", "cat blob; printf 'to stderr\\0\\377' >&2")
    assert out.returncode == 0
    assert out.stdout == blob
    assert out.stderr == b"to stderr\x00\xff"


def test_command_not_found_is_127_like_a_shell(dsh: DshRun) -> None:
    out = dsh("no-such-command-dsh-test", "arg")
    assert out.returncode == 127
    assert b"dsh: no-such-command-dsh-test: No such file or directory" in out.stderr


def test_runs_in_the_current_directory_with_umask_and_locale(dsh: DshRun, tmp_path: Path) -> None:
    work = tmp_path / "a dir with spaces"
    work.mkdir()
    out = dsh("sh", "-c", 'pwd; umask; echo "$LANG|$LC_TIME|$MYVAR|$NOTFORWARDED"', cwd=work,
              extra_env={"LANG": "C.UTF-8", "LC_TIME": "C", "MYVAR": "x y",
                         "DSH_ENV": "MYVAR", "NOTFORWARDED": "secret"})  # fmt: skip
    lines = out.stdout.decode().splitlines()
    assert lines[0] == str(work)
    current = os.umask(0)
    os.umask(current)
    assert lines[1] == f"{current:04o}"
    assert lines[2] == "C.UTF-8|C|x y|"


def test_umask_is_the_callers(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    env = dsh_env
    out = subprocess.run(
        ["sh", "-c", 'umask 027; exec "$@"', "sh", PY, DSH, *ssh_cluster.dsh_args(),
         "sh", "-c", "umask; touch f; ls -l f"],
        capture_output=True, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    lines = out.stdout.decode().splitlines()
    assert lines[0] == "0027", out.stderr
    assert lines[1].startswith("-rw-r-----")


def test_logical_pwd_is_kept_through_a_symlink(dsh: DshRun, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    out = dsh("sh", "-c", "pwd", cwd=tmp_path / "link")
    assert out.stdout.decode().strip() == str(tmp_path / "link")


def test_output_is_streamed_not_buffered(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    env = dsh_env
    proc = subprocess.Popen(
        [PY, DSH, *ssh_cluster.dsh_args(), "sh", "-c", "echo first; sleep 3; echo second"],
        stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"first\n"
        assert proc.poll() is None  # the line came while the command still ran
        assert proc.stdout.readline() == b"second\n"
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]


def test_100_mb_of_output_in_bounded_memory(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    # A child python runs dsh and reports dsh's peak RSS (its only child).
    probe = (
        "import resource, subprocess, sys\n"
        "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)\n"
        "n = 0\n"
        "while chunk := p.stdout.read(1 << 20):\n"
        "    n += len(chunk)\n"
        "print(p.wait(), n, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    env = dsh_env
    out = subprocess.run(
        [PY, "-c", probe, PY, DSH, *ssh_cluster.dsh_args(), "head", "-c", "100000000",
         "/dev/zero"],
        capture_output=True, cwd=tmp_path, env=env, timeout=300,
    )  # fmt: skip
    status, count, max_rss_kib = map(int, out.stdout.split())
    print(f"100 MB through dsh: peak RSS {max_rss_kib / 1024:.0f} MiB")
    assert (status, count) == (0, 100_000_000), out.stderr
    assert max_rss_kib < 80 * 1024  # far below the 100 MB that buffering would need


# -- stdin ---------------------------------------------------------------------------


def test_stdin_10_mb_binary_is_forwarded(dsh: DshRun) -> None:
    data = os.urandom(10 * 1024 * 1024)
    out = dsh("sha256sum", input=data, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_n_never_reads_stdin(dsh: DshRun) -> None:
    out = dsh("-n", "wc", "-c", input=b"x" * 1000)
    assert out.stdout.strip() == b"0"


def test_terminal_stdin_is_not_read(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    controller, terminal = os.openpty()
    env = dsh_env
    try:
        os.write(controller, b"typed on the terminal\n")
        out = subprocess.run(
            [PY, DSH, *ssh_cluster.dsh_args(), "wc", "-c"],
            stdin=terminal, capture_output=True, cwd=tmp_path, env=env, timeout=60,
        )  # fmt: skip
        assert out.stdout.strip() == b"0", out.stderr
    finally:
        os.close(controller)
        os.close(terminal)


def test_t_gives_a_remote_terminal(dsh: DshRun) -> None:
    out = dsh("-t", "sh", "-c", "test -t 0 && test -t 1 && echo tty")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"tty"


# -- quoting -------------------------------------------------------------------------

ECHO_ARGS = (
    "import os, sys; sys.stdout.buffer.write(repr([os.fsencode(a) for a in sys.argv[1:]]).encode())"
)

argument = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
            max_size=20),
    st.sampled_from(["", " ", "'", '"', "$HOME", "`id`", "$(id)", ";", "&&", "*", "?", "~",
                     "\n", "\\", "a b", "ü€😀", "-c", "--", "|", ">", "<", "#", "!", "%s"]),
    st.binary(max_size=8).filter(lambda b: b"\x00" not in b).map(os.fsdecode),
)  # fmt: skip


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(args=st.lists(argument, max_size=6))
def test_arguments_arrive_byte_for_byte(dsh: DshRun, args: list[str]) -> None:
    out = dsh(PY, "-c", ECHO_ARGS, *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == repr([os.fsencode(a) for a in args])


def test_glob_and_variables_are_not_expanded_remotely(dsh: DshRun, tmp_path: Path) -> None:
    (tmp_path / "file1").write_text("")
    out = dsh("echo", "*", "$HOME", "$(echo hi)", "a;b")
    assert out.stdout == b"* $HOME $(echo hi) a;b\n"


# -- failures, retries and fallback --------------------------------------------------


def test_daemon_unreachable_runs_locally_and_says_so(dsh: DshRun, ssh_cluster: SshCluster) -> None:
    unused = ["-H", "127.0.0.1:1", "--status-port", "1",
              "--ssh-config", str(ssh_cluster.ssh_config)]  # fmt: skip
    out = dsh("sh", "-c", "echo ran; exit 4", dsh_args=unused)
    assert out.returncode == 4
    assert out.stdout == b"ran\n"
    assert out.stderr.decode().count("\n") == 1
    assert "cannot reach dshd at 127.0.0.1:1" in out.stderr.decode()
    assert "running locally" in out.stderr.decode()
    assert dsh("-q", "true", dsh_args=unused).stderr == b""
    strict = dsh("--no-fallback", "true", dsh_args=unused)
    assert strict.returncode == 255
    assert "not running locally (--no-fallback)" in strict.stderr.decode()


def test_best_node_is_self_runs_locally_without_ssh(
    tmp_path: Path, make_cluster: ClusterFactory, dsh_env: dict[str, str]
) -> None:
    cluster = make_cluster(["127.0.0.40"])  # a one-node cluster: the best node is us
    cluster.start()
    env = dsh_env
    out = subprocess.run(
        [PY, DSH, "-v", "-H", f"127.0.0.40:{cluster.port + 1}", "--status-port",
         str(cluster.port), "--ssh-config", "/nonexistent", "sh", "-c", "echo $$; exit 7"],
        capture_output=True, cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert out.returncode == 7
    assert out.stderr == b"dsh: running on 127.0.0.40 (local)\n"
    assert no_sync_files(tmp_path)


def test_retry_on_another_node_when_sshd_is_down(
    dsh: DshRun, ssh_cluster: SshCluster, tmp_path: Path
) -> None:
    ssh_cluster.sshd[R1].stop()
    try:
        # Until the daemon names R1 once (its load is sampled, so R2 may win a
        # few times first); every run must succeed on R2 all the same.
        seen = []
        for _ in range(15):
            out = dsh("-v", "sh", "-c", "echo ok")
            assert out.returncode == 0 and out.stdout == b"ok\n", out.stderr
            assert f"running on {R2}" in out.stderr.decode()
            assert no_sync_files(tmp_path)
            seen.append(out.stderr.decode())
            if f"node {R1}: cannot connect" in seen[-1]:
                break
        assert f"node {R1}: cannot connect" in seen[-1], seen
        assert "(is sshd running there?); trying another node" in seen[-1]
        assert (tmp_path / "run" / "dsh" / "backoff" / R1).exists()
        # R1 is now backed off: even when the daemon names it, dsh goes to R2
        # without trying it again.
        for _ in range(4):
            out = dsh("-v", "true")
            assert out.returncode == 0
            assert out.stderr.decode() == f"dsh: running on {R2}\n"
    finally:
        ssh_cluster.sshd[R1].start()


def test_a_failing_command_does_not_count_against_its_node(dsh: DshRun, tmp_path: Path) -> None:
    for _ in range(3):
        assert dsh("false").returncode == 1
    assert not (tmp_path / "run" / "dsh" / "backoff").exists() or not list(
        (tmp_path / "run" / "dsh" / "backoff").iterdir()
    )


def test_all_nodes_failing_falls_back_to_local(
    dsh: DshRun, ssh_cluster: SshCluster, tmp_path: Path
) -> None:
    for server in ssh_cluster.sshd.values():
        server.stop()
    try:
        out = dsh("sh", "-c", "echo local")
        assert out.returncode == 0 and out.stdout == b"local\n"
        assert "running locally" in out.stderr.decode().splitlines()[-1]
        assert no_sync_files(tmp_path)
        strict = dsh("--no-fallback", "true")
        assert strict.returncode == 255
    finally:
        for server in ssh_cluster.sshd.values():
            server.start()


def test_unknown_and_changed_host_keys_are_refused(
    dsh: DshRun, ssh_cluster: SshCluster, tmp_path: Path
) -> None:
    config = ssh_cluster.ssh_config.read_text()
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    unknown = tmp_path / "unknown_config"
    unknown.write_text(config.replace(str(ssh_cluster.keys.known_hosts), str(empty)))
    args = ["-H", f"{LOCAL}:{ssh_cluster.dshd.port + 1}", "--status-port",
            str(ssh_cluster.dshd.port), "--ssh-config", str(unknown)]  # fmt: skip
    out = dsh("--no-fallback", "--backoff", "0", "true", dsh_args=args)
    assert out.returncode == 255
    assert "is unknown" in out.stderr.decode() and "refusing to connect" in out.stderr.decode()
    # A known_hosts whose keys are someone else's: a changed host key.
    other = subprocess.run(["ssh-keygen", "-t", "ed25519", "-N", "", "-q", "-f",
                            str(tmp_path / "otherkey")], check=True)  # fmt: skip
    del other
    pub = (tmp_path / "otherkey.pub").read_text().split()[:2]
    wrong = tmp_path / "wrong_known_hosts"
    port = ssh_cluster.ssh_port
    wrong.write_text("".join(f"[{a}]:{port} {pub[0]} {pub[1]}\n" for a in (R1, R2)))
    changed = tmp_path / "changed_config"
    changed.write_text(config.replace(str(ssh_cluster.keys.known_hosts), str(wrong)))
    args[-1] = str(changed)
    out = dsh("--no-fallback", "--backoff", "0", "true", dsh_args=args)
    assert out.returncode == 255
    assert "has CHANGED" in out.stderr.decode()


# -- signals -------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_reaches_the_remote_command_and_its_children(
    ssh_cluster: SshCluster, tmp_path: Path, sig: signal.Signals, dsh_env: dict[str, str]
) -> None:
    env = dsh_env
    # The remote shell records its PID and a background child's, then waits.
    script = "sleep 300 & echo $! > child.pid; echo $$ > shell.pid; wait"
    proc = subprocess.Popen(
        [PY, DSH, *ssh_cluster.dsh_args(), "sh", "-c", script],
        stdin=subprocess.DEVNULL, cwd=tmp_path, env=env, preexec_fn=default_signals,
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "shell.pid").read_text().strip(), 30, "remote started")
        shell = int((tmp_path / "shell.pid").read_text())
        child = int((tmp_path / "child.pid").read_text())
        assert pid_alive(shell) and pid_alive(child)
        proc.send_signal(sig)
        assert proc.wait(30) == -sig  # dsh dies of it, as the command did (shell: 128+N)
        wait_for(lambda: not pid_alive(shell) and not pid_alive(child), 10, "remote gone")
        assert no_sync_files(tmp_path)
    finally:
        proc.kill()
        proc.wait()


def test_killed_dsh_leaves_nothing_running_remotely(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    env = dsh_env
    proc = subprocess.Popen(
        [PY, DSH, *ssh_cluster.dsh_args(), "sh", "-c", "echo $$ > shell.pid; sleep 300"],
        stdin=subprocess.DEVNULL, cwd=tmp_path, env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: (tmp_path / "shell.pid").read_text().strip(), 30, "remote started")
        shell = int((tmp_path / "shell.pid").read_text())
        proc.kill()  # no chance to relay anything: the channel just closes
        proc.wait()
        wait_for(lambda: not pid_alive(shell), 15, "remote command gone after dsh died")
    finally:
        proc.kill()
        proc.wait()


# -- the sync-file protocol ----------------------------------------------------------


def test_sync_file_exists_remotely_before_the_command_and_is_gone_after(
    dsh: DshRun, tmp_path: Path
) -> None:
    out = dsh("sh", "-c", "ls -a")
    names = out.stdout.decode().split()
    sync = [n for n in names if n.startswith(".dsh-sync.")]
    assert len(sync) == 1, names
    assert sync[0].count(".") >= 4  # .dsh-sync.HOST.PID.RANDOM
    assert no_sync_files(tmp_path)
    assert (
        no_sync_files(tmp_path)
        and dsh("--no-sync", "sh", "-c", "ls -a").stdout.decode().count(".dsh-sync.") == 0
    )


def test_no_sync_file_is_left_after_failures(dsh: DshRun, tmp_path: Path) -> None:
    assert dsh("sh", "-c", "exit 3").returncode == 3
    assert dsh("no-such-command-dsh-test").returncode == 127
    assert no_sync_files(tmp_path)


def test_waitfile_script(tmp_path: Path) -> None:
    waitfile = WAITFILE
    target = tmp_path / "later"
    out = subprocess.run([waitfile, str(target), "0.2"], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr == f"waitfile: {target} did not appear within 0.2s\n"
    proc = subprocess.Popen([waitfile, str(target), "10"])
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.1)  # it keeps waiting: a while with no file is what is tested
    target.write_text("")
    assert proc.wait(10) == 0
    assert subprocess.run([waitfile], capture_output=True).returncode == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace for sshd needs root")
def test_directory_missing_on_the_node(
    tmp_path: Path, make_cluster: ClusterFactory, dsh_env: dict[str, str]
) -> None:
    """A node where the project directory is not mounted: clear error, no sync file."""
    from support.sshd import Sshd, common_free_port, make_client_keys, write_ssh_config

    shared = tmp_path / "shared"  # "NFS": mounted here, not on the node
    project = shared / "project"
    project.mkdir(parents=True)
    keys = make_client_keys(tmp_path / "keys")
    node = "127.0.0.41"
    server = Sshd(node, common_free_port([node]), tmp_path / "sshd", keys)
    # sshd sees an empty tmpfs over "shared": the project does not exist there.
    server.prefix = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                     f'mount -t tmpfs none "{shared}" && exec "$@"', "sh"]  # fmt: skip
    config = write_ssh_config(tmp_path / "ssh_config", [server], keys)
    cluster = make_cluster(["127.0.0.42 1 1 drain", node])
    try:
        server.start()
        cluster.start()
        wait_for(cluster.all_up, 10, "cluster up")
        env = {**dsh_env, "PWD": str(project)}
        args = [PY, DSH, "-H", f"127.0.0.42:{cluster.port + 1}", "--status-port",
                str(cluster.port), "--ssh-config", str(config)]  # fmt: skip
        out = subprocess.run([*args, "--no-fallback", "true"], capture_output=True, cwd=project,
                             env=env, stdin=subprocess.DEVNULL)  # fmt: skip
        assert out.returncode == 255
        err = out.stderr.decode()
        assert f"node {node}: cannot enter {project}: No such file or directory" in err
        assert no_sync_files(project)
        # Not a transport failure: the node is not backed off.
        assert not (tmp_path / "run" / "dsh" / "backoff" / node).exists()
        out = subprocess.run([*args, "sh", "-c", "echo here"], capture_output=True, cwd=project,
                             env=env, stdin=subprocess.DEVNULL)  # fmt: skip
        assert out.returncode == 0 and out.stdout == b"here\n"
        assert "running locally" in out.stderr.decode()
        assert no_sync_files(project)
    finally:
        server.stop()


# -- the daemon's answers through dsh ------------------------------------------------


def test_dry_run_slots_and_status(dsh: DshRun) -> None:
    out = dsh("--dry-run", "anything")
    assert out.stdout.decode().strip() in (R1, R2)
    slots = dsh("--slots")
    cpus = os.cpu_count()
    assert cpus is not None
    assert int(slots.stdout) == 2 * cpus  # R1 and R2; LOCAL is drained
    status = dsh("--status").stdout.decode()
    assert status.startswith("# name") and f"# self {LOCAL}" in status


# -- a real build --------------------------------------------------------------------

MAIN_C = '#include <stdio.h>\n{decls}\nint main(void) {{ long t = 0; {calls} printf("%ld\\n", t); return 0; }}\n'  # noqa: E501


def test_make_j4_with_dsh_gcc_matches_a_local_build(
    ssh_cluster: SshCluster, tmp_path: Path, dsh_env: dict[str, str]
) -> None:
    n = 8
    for i in range(n):
        (tmp_path / f"f{i}.c").write_text(f"long f{i}(void) {{ return {i} * {i} + 1; }}\n")
    decls = "".join(f"long f{i}(void);" for i in range(n))
    calls = "".join(f"t += f{i}();" for i in range(n))
    (tmp_path / "main.c").write_text(MAIN_C.format(decls=decls, calls=calls))
    objs = " ".join(f"f{i}.o" for i in range(n))
    (tmp_path / "Makefile").write_text(
        f"prog: main.o {objs}\n\t$(CC) -o $@ $^\n%.o: %.c\n\t$(CC) -O2 -c $< -o $@\n"
        f"clean:\n\trm -f prog *.o\n"
    )
    env = dsh_env
    dsh_cc = " ".join([PY, DSH, *ssh_cluster.dsh_args(), "gcc"])
    remote = subprocess.run(["make", "-j4", f"CC={dsh_cc}"], cwd=tmp_path, env=env,
                            capture_output=True, stdin=subprocess.DEVNULL)  # fmt: skip
    assert remote.returncode == 0, remote.stderr
    expected = str(sum(i * i + 1 for i in range(n))) + "\n"
    assert subprocess.run(["./prog"], cwd=tmp_path, capture_output=True).stdout == expected.encode()
    built = {p.name: p.read_bytes() for p in tmp_path.glob("*.o")}
    subprocess.run(["make", "clean"], cwd=tmp_path, check=True, capture_output=True)
    local = subprocess.run(["make", "-j4", "CC=gcc"], cwd=tmp_path, capture_output=True)
    assert local.returncode == 0
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.o")} == built
    assert no_sync_files(tmp_path)

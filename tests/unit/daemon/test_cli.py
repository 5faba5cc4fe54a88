"""dshd's main(argv) in this process: the flags and files it refuses before it binds
anything, each with exit status 2 (1 for a control request) and one line on stderr.

The subprocess tests in tests/system check the real ``dshd`` script and what
needs a running daemon; these check the argument and config handling.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cluster_files import BAD_CLUSTER_FILES

from dsh import __version__
from dsh.daemon import cli
from dsh.daemon.keys import load_keys
from dsh.errors import ConfigError

A = "127.0.0.11"


@pytest.fixture(autouse=True)
def daemon_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No cluster or key file of this machine's (DSH_KEY_FILE names one that is not
    there), and the 'dsh' logger main() sets up put back afterwards."""
    monkeypatch.delenv("DSH_CLUSTER", raising=False)
    monkeypatch.setenv("DSH_KEY_FILE", str(tmp_path / "no-such-key"))
    logger = logging.getLogger("dsh")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def one_line(err: str) -> str:
    assert err.count("\n") == 1, err
    return err.rstrip("\n")


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr() == (f"dshd {__version__}\n", "")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--interval", "0"], "argument --interval: 0 must be positive"),
        (["--maxloops", "-1"], "argument --maxloops: -1 must be positive"),
        (["-t", "70000"], "argument -t: 70000 is not a port number"),
        (["--score", "fastest"], "argument --score: invalid choice: 'fastest'"),
    ],
)
def test_bad_flags_exit_2_with_argparses_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == cli.EXIT_CONFIG == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("usage: dshd ")
    assert err.splitlines()[-1].startswith(f"dshd: error: {message}")


@pytest.mark.parametrize(("content", "message"), BAD_CLUSTER_FILES)
def test_bad_cluster_file_stops_start_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    (tmp_path / "cluster").write_text(content)
    assert cli.main(["-f", str(tmp_path / "cluster"), "--name", A]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert one_line(err).startswith(f"dshd: {tmp_path / message}")


def test_missing_cluster_file_and_env_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DSH_CLUSTER", str(tmp_path / "nope"))
    assert cli.main([]) == 2
    err = one_line(capsys.readouterr().err)
    assert err == f"dshd: {tmp_path / 'nope'}: cannot read: No such file or directory"


def test_no_matching_entry_lists_what_was_tried(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cluster").write_text("198.51.100.1\n198.51.100.2\n")  # TEST-NET-2
    assert cli.main(["-f", str(tmp_path / "cluster")]) == 2
    err = one_line(capsys.readouterr().err)
    assert err.startswith("dshd: no cluster entry matches this machine; tried addresses")
    assert "127.0.0.1" in err and "--name" in err


def test_a_name_not_in_the_cluster_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cluster").write_text(f"{A}\n")
    assert cli.main(["-f", str(tmp_path / "cluster"), "--name", "127.0.0.12"]) == 2
    err = one_line(capsys.readouterr().err)
    assert err == f"dshd: --name 127.0.0.12: not in {tmp_path / 'cluster'}"


def test_bad_allow_is_a_config_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cluster").write_text(f"{A}\n")
    argv = ["-f", str(tmp_path / "cluster"), "--name", A, "--no-key", "--allow", "10.0.0.0/33"]
    assert cli.main(argv) == 2
    err = one_line(capsys.readouterr().err)
    assert err == "dshd: --allow 10.0.0.0/33: not a CIDR, 'loopback' or 'members'"


def test_gen_key_writes_a_private_file_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    assert cli.main(["--gen-key", str(key)]) == 0
    assert capsys.readouterr().out == f"dshd: new key in {key}; copy it to every node (mode 0600)\n"
    assert key.stat().st_mode & 0o777 == 0o600
    assert len(load_keys(str(key))) == 1
    before = key.read_bytes()
    assert cli.main(["--gen-key", str(key)]) == 2
    assert "exists; not overwriting" in one_line(capsys.readouterr().err)
    assert key.read_bytes() == before


def test_a_key_file_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    assert cli.main(["--gen-key", str(key)]) == 0
    key.chmod(0o644)
    (tmp_path / "cluster").write_text(f"{A}\n")
    assert cli.main(["-f", str(tmp_path / "cluster"), "--name", A, "--key-file", str(key)]) == 2
    err = one_line(capsys.readouterr().err)
    assert err == f"dshd: key file {key} is accessible by others (mode 0644); run: chmod 600 {key}"


def test_the_key_file_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "env.key"
    key.write_text("not a key\n")
    key.chmod(0o600)
    monkeypatch.setenv("DSH_KEY_FILE", str(key))
    (tmp_path / "cluster").write_text(f"{A}\n")
    assert cli.main(["-f", str(tmp_path / "cluster"), "--name", A]) == 2
    assert "env.key:1: not a key" in one_line(capsys.readouterr().err)
    # --no-key: unauthenticated even though a default key file exists
    assert cli.config_from_args(cli.build_parser().parse_args(["--no-key"])).key_file is None


def test_drain_without_a_daemon_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control = tmp_path / "none.sock"
    assert cli.main(["--drain", "--control", str(control)]) == cli.EXIT_FAILURE == 1
    err = one_line(capsys.readouterr().err)
    assert err == f"dshd: cannot reach the local daemon at {control}: No such file or directory"
    assert not os.path.exists(control)


def test_the_default_config_file_is_looked_for_at_each_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without --config, /etc/dsh/dshd.conf is read when it exists: also when
    # it was made after dshd started (SIGHUP reads it then).
    from dsh.daemon.conf import DshdConf
    from dsh.daemon.config import DaemonConfig

    default = tmp_path / "dshd.conf"
    monkeypatch.setattr(cli, "DEFAULT_CONFIG", str(default))
    config = DaemonConfig()
    assert cli.read_conf(config) == DshdConf.defaults()
    default.write_text("[sensor:Users]\n")
    assert list(cli.read_conf(config).sensors) == ["Users"]


def test_membership_flags_reach_the_config() -> None:
    args = cli.build_parser().parse_args(
        ["--fanout-above", "100", "--fanout", "3", "--maxloops", "4"]
    )
    config = cli.config_from_args(args)
    assert (config.fanout_above, config.fanout, config.maxloops) == (100, 3, 4)
    assert config.suspect_after == pytest.approx(3 * 1.5 * 1.1)
    default = cli.config_from_args(cli.build_parser().parse_args([]))
    assert default.suspect_after == pytest.approx(3.3)


def test_with_discovery_a_node_need_not_be_listed(tmp_path: Path) -> None:
    from dsh.core.cluster import Discovery
    from dsh.daemon.config import DaemonConfig

    found = (Discovery("broadcast", "10.251.1.255"),)
    config = DaemonConfig(name="lonely")
    assert cli.identify(config, [], found) == ("lonely", {})
    with pytest.raises(ConfigError, match="--name lonely: not in"):
        cli.identify(config, [], ())
    # without --name: its address on the broadcast's subnet, else another of its own
    name, _ = cli.identify(DaemonConfig(), [], found)
    assert name

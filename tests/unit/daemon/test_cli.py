"""dshd's command line in-process: config errors exit 2 with one line on stderr.

Every case fails before the daemon binds a socket, so nothing here needs the
loopback addresses or ports of the system tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsh import __version__
from dsh.daemon.cli import EXIT_CONFIG, EXIT_FAILURE, main


@pytest.fixture(autouse=True)
def _restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """main() points the "dsh" logger at stderr (capsys's, here); undo that after."""
    monkeypatch.delenv("DSH_CLUSTER", raising=False)
    monkeypatch.delenv("DSH_KEY_FILE", raising=False)
    logger = logging.getLogger("dsh")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


def _cluster(tmp_path: Path, text: str) -> str:
    path = tmp_path / "cluster"
    path.write_text(text)
    return str(path)


def _stderr_line(capsys: pytest.CaptureFixture[str]) -> str:
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("127.0.0.1\n127.0.0.2 fast\n", 2, "loadscale 'fast' is not a number"),
        ("# comment\n\nbad_name!\n", 3, "is not a host name or IP address"),
        ("127.0.0.1\n127.0.0.1\n", 2, "duplicate node '127.0.0.1' (first on line 1)"),
        ("127.0.0.1 1 1 1\n", 1, "unexpected '1'"),
    ],
)
def test_a_broken_cluster_file_is_one_line_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, what: str
) -> None:
    path = _cluster(tmp_path, text)
    assert main(["-f", path, "--no-key"]) == EXIT_CONFIG
    message = _stderr_line(capsys)
    assert message.startswith(f"dshd: {path}:{line}: "), message
    assert what in message


def test_an_unreadable_or_empty_cluster_file_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing")
    assert main(["-f", missing, "--no-key"]) == EXIT_CONFIG
    assert _stderr_line(capsys) == f"dshd: {missing}: cannot read: No such file or directory"
    empty = _cluster(tmp_path, "# nobody\n")
    assert main(["-f", empty, "--no-key"]) == EXIT_CONFIG
    assert _stderr_line(capsys) == f"dshd: {empty}: no nodes defined"


@pytest.mark.parametrize(
    "argv",
    [
        ["-t", "0"],
        ["-r", "65536"],
        ["-u", "http"],
        ["--interval", "0"],
        ["--interval", "-1.5"],
        ["--maxloops", "0"],
        ["--maxloops", "2.5"],
        ["--replay-window", "0"],
        ["--extraload", "lots"],
        ["--score", "fastest"],
        ["--no-such-flag"],
    ],
)
def test_a_bad_flag_value_exits_2_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # argparse exits by itself (SystemExit), before main() could return.
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == EXIT_CONFIG
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("usage: dshd ")
    assert err.splitlines()[-1].startswith("dshd: error: ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--allow", "everyone"], "dshd: --allow everyone: not a CIDR, 'loopback' or 'members'"),
        (["--name", "ghost"], "dshd: --name ghost: not in {cluster}"),
    ],
)
def test_a_bad_setting_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    # IP addresses: identify() resolves every name, and these need no DNS.
    cluster = _cluster(tmp_path, "127.0.0.1\n127.0.0.2\n")
    assert main(["-f", cluster, "--no-key", *argv]) == EXIT_CONFIG
    assert _stderr_line(capsys) == message.format(cluster=cluster)


def test_a_key_file_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "key"
    key.write_text("00" * 32 + "\n")
    os.chmod(key, 0o644)
    cluster = _cluster(tmp_path, "127.0.0.1\n")
    assert main(["-f", cluster, "--key-file", str(key)]) == EXIT_CONFIG
    assert _stderr_line(capsys) == (
        f"dshd: key file {key} is accessible by others (mode 0644); run: chmod 600 {key}"
    )


def test_gen_key_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "key"
    assert main(["--gen-key", str(key)]) == 0
    assert capsys.readouterr().out.startswith(f"dshd: new key in {key};")
    assert (key.stat().st_mode & 0o777) == 0o600
    assert main(["--gen-key", str(key)]) == EXIT_CONFIG
    assert _stderr_line(capsys) == f"dshd: {key} exists; not overwriting a key"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr() == (f"dshd {__version__}\n", "")


def test_drain_without_a_daemon_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dshd.sock"
    assert main(["--drain", "--control", str(path)]) == EXIT_FAILURE
    assert _stderr_line(capsys) == (
        f"dshd: cannot reach the local daemon at {path}: No such file or directory"
    )

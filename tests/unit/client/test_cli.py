"""dsh's main(argv) in this process: --version, usage errors, and what it says and
returns when no daemon answers, without starting a process.

No process and nothing listening: the daemon these runs ask is 127.0.0.1:1,
where a connection is refused at once, and the mux is looked for in a runtime
directory of the test's own. The subprocess tests in tests/system check the
real ``dsh`` script; these check the argument and config handling behind it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from dsh import __version__
from dsh.client import cli
from dsh.client.backend import RELAYED
from dsh.errors import EXIT_FAILED, EXIT_USAGE

USAGE = "usage: dsh [OPTIONS] COMMAND [ARGS...]\n"
NO_DAEMON = ["-H", "127.0.0.1:1", "--status-port", "1"]
REFUSED = "cannot reach dshd at 127.0.0.1:1: Connection refused"


@pytest.fixture(autouse=True)
def dsh_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No DSH_* variable of the caller's, a runtime directory of the test's own, and
    the signal handlers main() installs put back afterwards."""
    for name in list(os.environ):
        if name.startswith("DSH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    saved = {sig: signal.getsignal(sig) for sig in RELAYED}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr() == (f"dsh {__version__}\n", "")


def test_help_is_usage_options_and_environment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith(USAGE) and "DSH_DAEMON" in out and "--dry-run" in out
    assert err == ""


@pytest.mark.parametrize("argv", [[], ["-v"], ["--"], ["-v", "--"]])
def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert cli.main(argv) == EXIT_USAGE == 2
    assert capsys.readouterr() == ("", USAGE + "dsh: no command given\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--attempts", "zz", "true"], "argument --attempts: invalid int value: 'zz'"),
        (["--sync-timeout=soon", "true"], "argument --sync-timeout: invalid float value: 'soon'"),
        (["--frobnicate", "true"], "unrecognized arguments: --frobnicate"),
        (["-H"], "argument -H: expected one argument"),
    ],
)
def test_bad_options_exit_2_with_argparses_message(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr() == ("", f"{USAGE}dsh: error: {message}\n")


def test_dry_run_never_runs_the_command_even_without_a_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "created"
    assert cli.main([*NO_DAEMON, "--dry-run", "touch", str(target)]) == 0
    out, err = capsys.readouterr()
    assert out == "local\n"
    assert err == f"dsh: {REFUSED}; would run locally\n"
    assert not target.exists()


def test_no_fallback_without_a_daemon_fails_and_says_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main([*NO_DAEMON, "--no-fallback", "true"]) == EXIT_FAILED == 255
    assert capsys.readouterr() == ("", f"dsh: {REFUSED}; not running locally (--no-fallback)\n")


def test_slots_without_a_daemon_count_the_local_cpus(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*NO_DAEMON, "--slots"]) == 0
    assert capsys.readouterr() == (f"{os.cpu_count()}\n", f"dsh: {REFUSED}; counting local CPUs\n")
    assert cli.main([*NO_DAEMON, "-q", "--slots"]) == 0
    assert capsys.readouterr() == (f"{os.cpu_count()}\n", "")


def test_status_without_a_daemon_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([*NO_DAEMON, "--status"]) == 255
    assert capsys.readouterr() == ("", f"dsh: {REFUSED}\n")


def test_mux_stop_without_a_mux(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--mux-stop"]) == 0
    assert capsys.readouterr() == ("", "dsh: no mux is running\n")
    assert (tmp_path / "run" / "dsh").stat().st_mode & 0o777 == 0o700


def test_the_environment_names_the_daemon(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DSH_DAEMON", "127.0.0.1:1")
    monkeypatch.setenv("DSH_STATUS_PORT", "1")
    assert cli.main(["--dry-run", "true"]) == 0
    assert capsys.readouterr() == ("local\n", f"dsh: {REFUSED}; would run locally\n")

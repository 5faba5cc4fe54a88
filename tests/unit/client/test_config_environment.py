"""client/config.py: the command line over the environment over the defaults,
and bad environment values as one line, exit 2 (main called in-process)."""

from __future__ import annotations

import pytest

from dsh.client import cli
from dsh.client.cli import parse_quick
from dsh.client.config import ClientConfig, config_from
from dsh.errors import EXIT_USAGE, ConfigError


def config(argv: list[str], env: dict[str, str]) -> ClientConfig:
    args = parse_quick([*argv, "true"])
    assert args is not None
    return config_from(args, env)


def test_defaults_without_environment() -> None:
    c = config([], {})
    d = ClientConfig()
    assert (c.daemon_host, c.best_port, c.status_port) == (d.daemon_host, 8282, 8181)
    assert (c.direct, c.executor, c.mux_idle, c.forward_env) == (False, True, 60.0, ())


def test_environment_is_read() -> None:
    env = {
        "DSH_DAEMON": "[::1]:9000", "DSH_STATUS_PORT": "9001", "DSH_SSH_CONFIG": "/x/cfg",
        "DSH_REMOTE_PYTHON": "/opt/py", "DSH_DIRECT": "1", "DSH_EXECUTOR": "0",
        "DSH_MUX_IDLE": "2.5", "DSH_ENV": "CFLAGS  PATH",
    }  # fmt: skip
    c = config([], env)
    assert (c.daemon_host, c.best_port, c.status_port) == ("::1", 9000, 9001)
    assert (c.ssh_config, c.remote_python, c.direct, c.executor) == (
        "/x/cfg",
        "/opt/py",
        True,
        False,
    )
    assert (c.mux_idle, c.forward_env) == (2.5, ("CFLAGS", "PATH"))


def test_the_command_line_wins() -> None:
    c = config(["-H", "h:1", "--status-port", "2", "--ssh-config", "c"],
               {"DSH_DAEMON": "x:9", "DSH_STATUS_PORT": "9", "DSH_SSH_CONFIG": "y"})  # fmt: skip
    assert (c.daemon_host, c.best_port, c.status_port, c.ssh_config) == ("h", 1, 2, "c")


@pytest.mark.parametrize(
    ("name", "value"),
    [("DSH_STATUS_PORT", "abc"), ("DSH_STATUS_PORT", "0"), ("DSH_STATUS_PORT", "70000"),
     ("DSH_MUX_IDLE", "soon"), ("DSH_MUX_IDLE", "-1"), ("DSH_MUX_IDLE", "nan"),
     ("DSH_MUX_IDLE", "inf")],
)  # fmt: skip
def test_a_bad_value_is_a_config_error(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}='{value}'"):
        config([], {name: value})


def test_main_says_one_line_and_exits_2(monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("DSH_STATUS_PORT", "abc")
    assert cli.main(["--status"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err == "dsh: DSH_STATUS_PORT='abc' is not a port number (1-65535)\n"

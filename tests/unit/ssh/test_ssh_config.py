"""What dsh reads from an ssh config for liveness: ServerAlive* as OpenSSH reads them,
its time values included, and one clear line for a value it cannot read."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsh.errors import NodeFailure
from dsh.ssh import connect as ssh


def test_alive_settings_come_from_the_ssh_config(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text("Host quiet\n    ServerAliveInterval 0\n"
                      "Host slow\n    ServerAliveInterval 30\n    ServerAliveCountMax 5\n"
                      "Host minutes\n    ServerAliveInterval 1m30s\n"
                      "Host broken\n    ServerAliveInterval soon\n"
                      "Host endless\n    ServerAliveInterval inf\n"
                      "Host many\n    ServerAliveCountMax lots\n")  # fmt: skip
    default = ssh.target_for("other", str(config), 10.0)
    assert (default.alive_interval, default.alive_count) == (15.0, 3)  # on by default
    assert ssh.target_for("quiet", str(config), 10.0).alive_interval == 0  # off, as in OpenSSH
    slow = ssh.target_for("slow", str(config), 10.0)
    assert (slow.alive_interval, slow.alive_count) == (30.0, 5)
    assert ssh.target_for("minutes", str(config), 10.0).alive_interval == 90  # as OpenSSH reads it
    for host, word in (("broken", "soon"), ("endless", "inf"), ("many", "lots")):
        with pytest.raises(NodeFailure, match=f"'{word}' is not") as failed:
            ssh.target_for(host, str(config), 10.0)
        assert "\n" not in str(failed.value)


@pytest.mark.parametrize(("text", "value"), [
    ("90", 90.0), ("0", 0.0), ("0.5", 0.5), ("1m30s", 90.0), ("2H", 7200.0), ("1w", 604800.0),
    ("", None), ("soon", None), ("1.5m", None), ("-1", None), ("nan", None), ("inf", None),
    ("1m 30s", None), ("30x", None), ("99999999w", None),
])  # fmt: skip
def test_ssh_time_values_read_as_openssh_reads_them(text: str, value: float | None) -> None:
    assert ssh.seconds(text) == value

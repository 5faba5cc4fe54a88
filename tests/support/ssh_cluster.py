"""The cluster dsh's system tests run on: dshd plus real sshd on loopback addresses,
and the ways dsh reaches a node."""

from __future__ import annotations

import signal
from pathlib import Path

from .dshd import Cluster
from .sshd import Sshd, common_free_port, make_client_keys, write_ssh_config
from .waiting import wait_for

LOCAL, R1, R2 = "127.0.0.20", "127.0.0.21", "127.0.0.22"

# Every dsh test runs on each path: dsh's own connection (--direct), the mux
# with one exec channel per command, and the mux with the node's executor.
PATHS = ("direct", "channel", "executor")
PATH_ENV: dict[str, dict[str, str]] = {
    "direct": {"DSH_DIRECT": "1"},
    "channel": {"DSH_EXECUTOR": "0"},
    "executor": {},
}


class SshCluster:
    """dshd on LOCAL (drained: never chosen, so every run goes remote unless a
    test says otherwise) and on R1, R2, each of which also runs a real sshd."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.keys = make_client_keys(directory / "keys")
        self.ssh_port = common_free_port([R1, R2])
        self.sshd: dict[str, Sshd] = {}
        for address in (R1, R2):
            node_dir = directory / f"sshd-{address}"
            node_dir.mkdir()
            self.sshd[address] = Sshd(address, self.ssh_port, node_dir, self.keys)
        self.ssh_config = write_ssh_config(
            directory / "ssh_config", list(self.sshd.values()), self.keys
        )
        dshd_dir = directory / "dshd"
        dshd_dir.mkdir()
        self.dshd = Cluster(dshd_dir, [f"{LOCAL} 1.0 1.0 drain", R1, R2], interval=0.2)

    def start(self) -> None:
        for server in self.sshd.values():
            server.start()
        self.dshd.start()
        wait_for(self.dshd.all_up, 10, "dsh test cluster up")

    def stop(self) -> None:
        self.dshd.stop()
        for server in self.sshd.values():
            server.stop()

    def dsh_args(self) -> list[str]:
        port = self.dshd.port
        return ["-H", f"{LOCAL}:{port + 1}", "--status-port", str(port),
                "--ssh-config", str(self.ssh_config)]  # fmt: skip


def default_signals() -> None:
    """preexec_fn for a process a test will send SIGINT or SIGHUP: pytest may run
    with SIGINT ignored (started with & by a script, as CI can be) or SIGHUP
    ignored (under nohup), and dsh, like any command, leaves a signal ignored
    at its start ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)

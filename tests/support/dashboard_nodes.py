"""What the dashboard system tests share: real dshd nodes that run every
default sensor each second, a best-node answer naming each node, and what
``dshd --list-sensors`` says is unavailable on this machine."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping

from dsh.daemon.conf import DEFAULT_SENSORS

from .dshd import Node
from .paths import DSHD, PY


def run_dshd(*args: str) -> str:
    """``dshd ARGS``'s output; it must succeed."""
    done = subprocess.run([PY, str(DSHD), *args], capture_output=True, text=True, timeout=20,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def unavailable_sensors() -> dict[str, str]:
    """Sensor -> why not, as ``dshd --list-sensors`` says on this machine."""
    said = run_dshd("--list-sensors")
    found = re.findall(r"^(\w+)  \((available|unavailable: .*)\)$", said, re.M)
    assert found, f"dshd --list-sensors lists no sensors:\n{said}"
    return {name: state.partition(": ")[2] for name, state in found if state != "available"}


def configure(node: Node, extra: str = "") -> None:
    """Every default sensor (what dshd runs without a config file) each second,
    DiskUsage on two paths (the panels show several); ``extra`` appended."""
    options = {"DiskUsage": "path = /\npath = /tmp\n"}
    conf = node.cluster.directory / f"{node.name}.conf"
    conf.write_text(
        "".join(f"[sensor:{n}]\ntime_interval = 1\n{options.get(n, '')}" for n in DEFAULT_SENSORS)
        + extra
    )
    node.extra_args += ["--config", str(conf)]


def place_a_job_on_each(nodes: Mapping[str, Node]) -> None:
    """A best-node answer naming each of two nodes: the other one drained, ask it."""
    a, b = nodes
    for chosen, asked in ((a, b), (b, a)):
        control = nodes[asked].control
        assert run_dshd("--drain", "--control", control).strip() == "ok drained"
        assert nodes[asked].best() == chosen
        assert run_dshd("--undrain", "--control", control).strip() == "ok undrained"

"""How the suite is spread over pytest-xdist's workers (setup.cfg: ``-n 2``).

The system tests on loopback share fixed addresses and ports (127.0.0.11...,
the session's sshd cluster), so they are one unit of work, run one after
another on one worker. The unit tests go to the other, one by one, and so
do the network-namespace modules, each a unit of its own: each has its own
namespaces and subnet (and sweep() leaves a live worker's alone), so they
share nothing with the rest. Among them are the two minutes at 30 % loss
(test_membership_loss.py, mostly waiting), which would otherwise add their
time to everything else's.

xdist's own ``xdist_group`` marks do not work with pytest 9 (the group is
put into ``item._nodeid``, which pytest 9 no longer reads), hence a
scheduler of our own that groups by path.
"""

from __future__ import annotations

from typing import Any

import pytest
from xdist.scheduler import LoadScopeScheduling

SYSTEM = "tests/system/"
# Network namespaces (tests/support/netns.py), each module a subnet of its own
ALONGSIDE = (
    "tests/system/test_membership.py",  # 10.252.0.0/24
    "tests/system/test_membership_loss.py",  # 10.253.0.0/24
    "tests/system/test_netns.py",  # 10.251.0.0/24
)


class SystemTestsTogether(LoadScopeScheduling):  # type: ignore[misc]  # untyped
    """Load scheduling, with the system tests on loopback in one scope, each
    module of ALONGSIDE in one of its own and every unit test its own."""

    def _split_scope(self, nodeid: str) -> str:
        if nodeid.startswith(ALONGSIDE):
            return nodeid.split("::")[0]
        if nodeid.startswith(SYSTEM):
            return SYSTEM
        return nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> SystemTestsTogether:
    return SystemTestsTogether(config, log)

"""Which cluster entry is this machine: by address first, else by host name, else an error."""

from __future__ import annotations

import pytest

from dsh.core.cluster import parse_cluster
from dsh.daemon.whoami import find_self, local_addresses
from dsh.errors import ConfigError

SPECS = parse_cluster(
    """\
newton.foo.bar 1.0 1.0
galileo.foo.bar 2.0 2.0
Kepler.Foo.Bar. 2.0
"""
)
RESOLVED = {
    "newton.foo.bar": ("10.0.0.1", "fd00::1"),
    "galileo.foo.bar": ("10.0.0.2", "fd00::2"),
    "kepler.foo.bar": ("10.0.0.3",),
}
LOCAL = {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        ({"10.0.0.2"}, "galileo.foo.bar"),
        ({"127.0.0.1", "::1", "fd00::1"}, "newton.foo.bar"),  # any one of its addresses
        ({"10.0.0.3", "192.168.1.9"}, "Kepler.Foo.Bar."),
    ],
)
def test_by_address(local: set[str], expected: str) -> None:
    # the host name matches no entry: the address alone decides
    assert find_self(SPECS, RESOLVED, local, ["somewhere-else"]).name == expected


@pytest.mark.parametrize(
    ("hostnames", "expected"),
    [
        (["galileo.foo.bar"], "galileo.foo.bar"),
        (["GALILEO.FOO.BAR"], "galileo.foo.bar"),
        (["galileo.foo.bar."], "galileo.foo.bar"),
        (["kepler", "kepler.foo.bar"], "Kepler.Foo.Bar."),  # gethostname(), getfqdn()
        (["", "newton.foo.bar"], "newton.foo.bar"),
    ],
)
def test_by_host_name(hostnames: list[str], expected: str) -> None:
    # nothing resolves to a local address (a cluster file of names the DNS lacks)
    assert find_self(SPECS, {}, LOCAL, hostnames).name == expected
    assert find_self(SPECS, RESOLVED, LOCAL, hostnames).name == expected


def test_no_match_lists_what_was_tried() -> None:
    with pytest.raises(ConfigError) as info:
        find_self(SPECS, RESOLVED, {"127.0.0.1", "192.168.1.9", "::1"}, ["tycho", "tycho.lan"])
    message = str(info.value)
    for tried in ("127.0.0.1", "192.168.1.9", "::1", "tycho", "tycho.lan"):
        assert tried in message
    assert "--name" in message


def test_several_matches_by_address() -> None:
    resolved = dict(RESOLVED, **{"kepler.foo.bar": ("10.0.0.1",)})  # same address as newton
    with pytest.raises(ConfigError) as info:
        find_self(SPECS, resolved, {"10.0.0.1"}, [])
    message = str(info.value)
    assert "newton.foo.bar" in message and "Kepler.Foo.Bar." in message
    assert "galileo" not in message
    assert "--name" in message


def test_several_matches_by_name() -> None:
    specs = parse_cluster("newton\nnewton.foo.bar\ngalileo.foo.bar\n")
    with pytest.raises(ConfigError) as info:
        find_self(specs, {}, LOCAL, ["newton", "newton.foo.bar"])
    assert "newton, newton.foo.bar" in str(info.value)


def test_local_addresses_include_loopback() -> None:
    found = local_addresses()
    assert isinstance(found, set)
    assert "127.0.0.1" in found

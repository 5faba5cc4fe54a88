"""--allow rules: who the daemon's TCP ports answer."""

from __future__ import annotations

import pytest

from dsh.core.access import allowed, parse_allow
from dsh.errors import ConfigError


def test_allow_rules() -> None:
    rules = parse_allow(("loopback", "members", "10.1.0.0/16", "2001:db8::/32"))
    members = {"192.0.2.7"}.__contains__
    assert allowed("127.0.0.1", rules, members) and allowed("::1", rules, members)
    assert allowed("192.0.2.7", rules, members) and not allowed("192.0.2.8", rules, members)
    assert allowed("10.1.200.3", rules, members) and not allowed("10.2.0.1", rules, members)
    assert allowed("::ffff:10.1.0.9", rules, members)
    assert allowed("2001:db8::5", rules, members) and not allowed("2001:db9::5", rules, members)
    only = parse_allow(("10.0.0.1",))
    assert not allowed("127.0.0.1", only, members) and allowed("10.0.0.1", only, members)
    assert not allowed("not-an-ip", rules, members)
    with pytest.raises(ConfigError, match=r"--allow 300\.1\.1\.1"):
        parse_allow(("300.1.1.1",))

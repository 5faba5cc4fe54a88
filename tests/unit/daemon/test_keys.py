"""The cluster key file: made private, never overwritten, read strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsh.daemon.keys import generate_key_file, load_keys
from dsh.errors import ConfigError

K1, K2 = bytes(range(32)), bytes(range(1, 33))


def test_key_file_generation_permissions_and_format(tmp_path: Path) -> None:
    path = tmp_path / "key"
    generate_key_file(str(path))
    assert path.stat().st_mode & 0o777 == 0o600
    (key,) = load_keys(str(path))
    assert len(key) == 32
    with pytest.raises(ConfigError, match="exists"):
        generate_key_file(str(path))
    path.write_text(f"# rotation\n{K2.hex()}\n\n{K1.hex()}  # old\n")
    assert load_keys(str(path)) == [K2, K1]
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=r"accessible by others \(mode 0640\); run: chmod 600"):
        load_keys(str(path))
    path.chmod(0o600)
    path.write_text("abcd\n")
    with pytest.raises(ConfigError, match=r"key:1: not a key \(expected 64 hex digits\)"):
        load_keys(str(path))
    path.write_text("# empty\n")
    with pytest.raises(ConfigError, match="no key"):
        load_keys(str(path))
    with pytest.raises(ConfigError, match="cannot read key file"):
        load_keys(str(tmp_path / "missing"))

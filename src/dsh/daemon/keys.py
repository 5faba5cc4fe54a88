"""Cluster key files: generate them, and read them the way ssh reads private keys.

A key file holds one or more keys, one per line, as 64 hex digits (32 random
bytes); ``#`` starts a comment. The first key is the one this node sends
with; every key is accepted. That is what makes rotation seamless: a new key
is first added as a second line everywhere, then moved to the first line
everywhere, then the old one removed (README.md, "Security").

A file that other users can read or write is refused, as ssh refuses such a
private key: anyone who has the key can speak for any node.
"""

from __future__ import annotations

import os
import secrets
import stat

from ..errors import ConfigError

KEY_BYTES = 32


def generate_key_file(path: str) -> None:
    """Write a new key file with mode 0600; never overwrite an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} exists; not overwriting a key") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write("# dsh cluster key: copy to every node (mode 0600), see README.md\n")
        f.write(secrets.token_hex(KEY_BYTES) + "\n")


def load_keys(path: str) -> list[bytes]:
    """The keys in ``path``, first = sending key; ConfigError if unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(f"cannot read key file {path}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="ascii", errors="replace") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"key file {path} is accessible by others (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}"
            )
        text = f.read()
    keys = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            key = bytes.fromhex(line)
        except ValueError:
            key = b""
        if len(key) != KEY_BYTES:
            raise ConfigError(f"{path}:{lineno}: not a key (expected {KEY_BYTES * 2} hex digits)")
        keys.append(key)
    if not keys:
        raise ConfigError(f"{path}: no key in file")
    return keys

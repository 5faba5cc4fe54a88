"""Sealing gossip datagrams with the cluster key (ChaCha20-Poly1305). No I/O.

A sealed datagram wraps a whole plain one (wire.py) and encrypts it, so that
nobody without the key can forge, alter or read a node's report::

    magic    2s  as wire.MAGIC
    version  B   1 (SEALED_VERSION: the envelope's, not the datagram's inside)
    type     B   MessageType.SEALED
    key id   4s  first 4 bytes of SHA-256(key): picks the key to try
    nonce    12s random, from the caller (never reused in practice: 96 bits)
    sealed   *   ChaCha20-Poly1305(plain datagram), 16-byte tag at the end

The envelope's version is its own and stays 1 while the plain datagram
inside moves on (wire.VERSION 2): a daemon of the previous release opens the
version-1 datagram a new one seals for it (gossip.py sends each peer the
version it speaks), which it could not if the envelope said 2.

The first 20 bytes are authenticated as associated data. Replay is not this
module's business: the sealed plain datagram carries the sender's sequence
and send time, which gossip.py checks.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ..errors import AuthError
from .wire import MAGIC, MessageType

SEALED_VERSION = 1  # the envelope's layout; never wire.VERSION (see above)
_SEALED_START = MAGIC + bytes([SEALED_VERSION])
_HEADER = struct.Struct("!2sBB4s12s")
NONCE_BYTES = 12
TAG_BYTES = 16
HEADER_BYTES = _HEADER.size  # with TAG_BYTES, what sealing adds to a datagram: 36 bytes


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:4]


def is_sealed(data: bytes) -> bool:
    return (
        len(data) >= 4
        and data[:3] == MAGIC + bytes([SEALED_VERSION])
        and data[3] == MessageType.SEALED
    )


class Sealer:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._send_id = key_id(keys[0])
        self._send = ChaCha20Poly1305(keys[0])
        self._accept = {key_id(k): ChaCha20Poly1305(k) for k in keys}

    def seal(self, plain: bytes, nonce: bytes) -> bytes:
        header = _HEADER.pack(MAGIC, SEALED_VERSION, MessageType.SEALED, self._send_id, nonce)
        return header + self._send.encrypt(nonce, plain, header)

    def open(self, data: bytes) -> bytes:
        """The plain datagram inside, or AuthError."""
        if not is_sealed(data):
            raise AuthError("not sealed")
        if len(data) < _HEADER.size + TAG_BYTES:
            raise AuthError("short sealed datagram")
        _magic, _version, _type, kid, nonce = _HEADER.unpack_from(data)
        cipher = self._accept.get(kid)
        if cipher is None:
            raise AuthError("unknown key")
        try:
            return cipher.decrypt(nonce, data[_HEADER.size :], data[: _HEADER.size])
        except InvalidTag:
            raise AuthError("authentication failed") from None

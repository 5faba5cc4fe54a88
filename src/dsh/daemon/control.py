"""The Unix control socket: ``dshd --drain`` and ``--undrain``, both ends.

The protocol is one line each way: the client sends ``drain`` or ``undrain``,
the daemon answers ``ok drained``/``ok undrained`` or ``error: WHY``. Only
root and the daemon's own user may ask (the kernel's SO_PEERCRED says who
asks), so the socket is mode 0600 and owned by ``--user`` when there is one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import socket
import struct
from collections.abc import Callable

from ..core.gossip import GossipNode
from ..errors import DaemonUnreachable, DshError
from .config import DaemonConfig

log = logging.getLogger(__name__)

COMMANDS = ("drain", "undrain")
PROBE_TIMEOUT = 1.0  # seconds: a live dshd answers a connect at once; a stale socket refuses
REQUEST_TIMEOUT = 5.0  # seconds the client waits for the daemon's one-line answer


class ControlSocket:
    """The daemon's end; ``announce`` tells the peers of a change at once."""

    def __init__(
        self, config: DaemonConfig, node: GossipNode, announce: Callable[[], None]
    ) -> None:
        self.config = config
        self.node = node
        self.announce = announce

    async def listen(self) -> asyncio.Server | None:
        """The server on ``config.control`` (None if there is no path); errors are DshErrors."""
        path = self.config.control
        if not path:
            return None
        # A socket file left by a dshd that died is replaced; one that answers is not.
        with contextlib.suppress(OSError):
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), PROBE_TIMEOUT)
            writer.close()
            raise DshError(f"another dshd answers on {path}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        try:
            server = await asyncio.start_unix_server(self._handle, path)
            os.chmod(path, 0o600)
            if self.config.user and os.geteuid() == 0:
                # The user the daemon will run as may drain it too (and root).
                entry = pwd.getpwnam(self.config.user)
                os.chown(path, entry.pw_uid, entry.pw_gid)
        except OSError as exc:
            raise DshError(f"cannot create control socket {path}: {exc.strerror}") from None
        return server

    def remove(self) -> None:
        """At shutdown: the next dshd must not find a socket that nobody answers."""
        if self.config.control:
            with contextlib.suppress(OSError):
                os.unlink(self.config.control)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _pid, uid, _gid = struct.unpack("3i", creds)
            if uid not in (0, os.geteuid()):
                writer.write(b"error: permission denied\n")
                return
            line = await asyncio.wait_for(reader.readline(), self.config.client_timeout)
            command = line.decode("ascii", "replace").strip()
            if command in COMMANDS:
                self.node.drained = command == "drain"
                log.info("node %sed by uid %d", command, uid)
                self.announce()  # tell the peers now, not at the next interval
                writer.write(f"ok {command}ed\n".encode())
            else:
                writer.write(b"error: unknown command\n")
        except (OSError, TimeoutError) as exc:
            log.debug("control client: %s", exc)
        finally:
            writer.close()


def request(path: str, command: str) -> str:
    """The client's end: send ``command``, return the daemon's ``ok ...`` answer.

    DaemonUnreachable if no daemon answers on ``path``, DshError if it refuses.
    """
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(REQUEST_TIMEOUT)
            sock.connect(path)
            sock.sendall(command.encode() + b"\n")
            reply = sock.makefile("rb").readline().decode(errors="replace").strip()
    except OSError as exc:
        raise DaemonUnreachable(
            f"cannot reach the local daemon at {path}: {exc.strerror or exc}"
        ) from None
    if not reply.startswith("ok"):
        raise DshError(f"{command}: {reply or 'no answer'}")
    return reply

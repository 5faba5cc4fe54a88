"""The TCP ports: the full status and the best node, to whoever may ask.

Rules of this file: no client can hold the loop. A client that may not ask
(``--allow``) or that comes beyond ``max_clients`` is aborted before any work;
the answer is computed at connect time and written at once, since the client
never sends anything; only a client that does not take its answer waits, for
at most ``client_timeout``. Each outcome is a counter in the status dump.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping

from .. import __version__
from ..core.access import allowed, parse_allow
from ..core.gossip import GossipNode
from ..core.membership import MONITORS, backstop, suspicion_timeout, t_min
from ..core.status import format_status
from ..errors import DshError
from .config import DaemonConfig

# A deep queue: under a connection flood a well-behaved client's SYN waits its
# turn instead of being dropped. Not a config field: the kernel caps it at
# net.core.somaxconn, and that sysctl is the knob an operator turns.
LISTEN_BACKLOG = 4096

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def listen_on(addresses: tuple[str, ...], port: int, handler: Handler,
                    limit: int = 2**16) -> list[asyncio.Server]:  # fmt: skip
    """``handler`` on ``port`` at each address (all addresses if none): dshd's TCP
    servers, the HTTP port's too; an address that cannot be bound is a DshError."""
    servers: list[asyncio.Server] = []
    hosts: list[str | None] = list(addresses) or [None]
    for host in hosts:
        try:
            server = await asyncio.start_server(
                handler, host, port, limit=limit, reuse_address=True, backlog=LISTEN_BACKLOG
            )
        except OSError as exc:
            for done in servers:
                done.close()
            raise DshError(f"cannot listen on {host or '*'}:{port}/tcp: {exc.strerror}") from None
        servers.append(server)
    return servers


def denied(writer: asyncio.StreamWriter, allowed: Callable[[str], bool],
           counters: MutableMapping[str, int]) -> bool:  # fmt: skip
    """A client that ``--allow`` does not let ask: aborted before any work, and
    counted. The first check of every TCP server of dshd's."""
    peer = writer.get_extra_info("peername")
    if peer and allowed(str(peer[0])):
        return False
    counters["denied"] += 1
    writer.transport.abort()
    return True


class TcpPorts:
    """The status and best-node servers and their counters."""

    def __init__(self, config: DaemonConfig, node: GossipNode) -> None:
        self.config = config
        self.node = node
        self._allow = parse_allow(config.allow)
        # Clients by outcome, and "none": best-node answers that named no node (NONE).
        self.counters = Counter({"served": 0, "denied": 0, "busy": 0, "timeout": 0, "none": 0})
        # Where the best-node answers went: the jobs each node was given (nodes only:
        # a NONE placed no job, and the dashboards show these keys as nodes).
        self.best_answers: Counter[str] = Counter()
        # More '#' lines of the status footer (the sensors', the exporters').
        self.footers: list[Callable[[], list[str]]] = []
        self._clients = 0

    async def listen(self) -> list[asyncio.Server]:
        """Both ports on every ``--listen`` address (all if none); errors are DshErrors."""
        servers = []
        for port, answer in (
            (self.config.status_port, self.status_text),
            (self.config.best_port, self.best_text),
        ):
            servers += await listen_on(self.config.listen, port, self._handler(answer))
        return servers

    def status_text(self) -> str:
        now = time.monotonic()
        c = self.config
        return format_status(
            self.node.status_rows(now),
            [
                f"self {self.node.name}",
                f"dshd {__version__} score={c.score} interval={c.interval:g}"
                f" maxloops={c.maxloops} extraload={c.extraload:g}",
                self.membership_line(now),
                *(line for footer in self.footers for line in footer()),
            ],
            {
                "datagrams": dict(self.node.counters),
                "membership": dict(self.node.events),
                "tcp": dict(self.counters),
            },
        )

    def membership_line(self, now: float) -> str:
        """The membership's regime and timeouts now (README: Membership)."""
        node = self.node
        n = node.table.live_count()
        mode = "full mesh" if node.full_mesh() else f"fanout {node.fanout} + {MONITORS} monitors"
        return (f"membership {n} live of {len(node.table)}, {mode} (above {node.fanout_above}),"
                f" suspect after {node.suspect_after:.1f}s, down after"
                f" {t_min(n, node.interval):.1f}-{suspicion_timeout(n, 0, node.interval):.1f}s"
                f" more (heard only: {backstop(n, node.interval, node.suspect_after):.1f}s),"
                f" health {node.health}")  # fmt: skip

    def best_text(self) -> str:
        best = self.node.best(time.monotonic())
        if best is None:
            self.counters["none"] += 1
            return "NONE\n"
        self.best_answers[best] += 1
        return best + "\n"

    def allowed(self, address: str) -> bool:
        return allowed(address, self._allow, lambda a: self.node.member_at(a) is not None)

    def _handler(self, answer: Callable[[], str]) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if denied(writer, self.allowed, self.counters):
                return
            if self._clients >= self.config.max_clients:
                self.counters["busy"] += 1
                writer.transport.abort()
                return
            self._clients += 1
            try:
                # The answer usually fits the socket buffer, so a client that
                # never reads costs nothing.
                writer.write(answer().encode())
                writer.write_eof()
                if writer.transport.get_write_buffer_size():
                    # Only a client whose socket buffer is full waits here (and
                    # holds a slot); wait_for would make every client yield.
                    await asyncio.wait_for(writer.drain(), self.config.client_timeout)
                self.counters["served"] += 1
            except (OSError, TimeoutError):
                self.counters["timeout"] += 1
                writer.transport.abort()
            finally:
                self._clients -= 1
                writer.close()

        return handle

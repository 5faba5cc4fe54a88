"""The TCP ports: the full status and the best node, to whoever may ask.

Rules of this file: no client can hold the loop. A client that may not ask
(``--allow``) or that comes beyond ``max_clients`` is aborted before any work;
the answer is computed at connect time and written at once, since the client
never sends anything; only a client that does not take its answer waits, for
at most ``client_timeout``. Each outcome is a counter in the status dump.

Above the full-mesh threshold a best-node answer first asks the best few
candidates for their load now (core/bids.py): the client's answer waits for
their bids, at most ASK_TIMEOUT (50 ms), while the loop goes on.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping

from .. import __version__
from ..core.access import allowed, parse_allow
from ..core.bids import ASK_AGAIN_AFTER, ASK_TIMEOUT, Question
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
Send = Callable[[list[tuple[bytes, str]]], None]
# How best-node questions ended (the status dump, dsh_best_node_questions_total).
QUESTION_OUTCOMES = ("all_bids", "some_bids", "no_bids")


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

    def __init__(self, config: DaemonConfig, node: GossipNode, send: Send | None = None) -> None:
        """``send``: how datagrams go out (the gossip socket); without it the
        best-node port answers from the reports alone, asking no one."""
        self.config = config
        self.node = node
        self._send = send
        self.questions = Counter({k: 0 for k in QUESTION_OUTCOMES})
        self._asking: dict[int, tuple[Question, asyncio.Future[None]]] = {}
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

        async def status() -> str:
            return self.status_text()

        for port, answer in (
            (self.config.status_port, status),
            (self.config.best_port, self.best_answer),
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
                "questions": dict(self.questions),
                "bids": dict(self.node.bids),
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
        """The answer from the reports alone, at once."""
        return self._named(self.node.best(time.monotonic()))

    async def best_answer(self) -> str:
        """The best-node port's answer: asking first where the node asks (bids.py)."""
        question = None
        if self._send is not None:
            question = self.node.ask(time.monotonic(), time.time_ns() // 10**6)
        if question is None:
            return self.best_text()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._asking[question.nonce] = (question, waiter)
        assert self._send is not None
        self._send(question.datagrams)
        try:
            try:
                await asyncio.wait_for(asyncio.shield(waiter), ASK_AGAIN_AFTER)
            except TimeoutError:
                self._send(question.again())
                await asyncio.wait_for(waiter, ASK_TIMEOUT - ASK_AGAIN_AFTER)
        except TimeoutError:
            pass  # a bid lost twice, or a node too busy to answer: the others decide
        finally:
            self._asking.pop(question.nonce, None)
        self.questions["all_bids" if question.complete
                       else "some_bids" if question.bids else "no_bids"] += 1  # fmt: skip
        best, claim = self.node.answer(question, time.monotonic(), time.time_ns() // 10**6)
        self._send(claim)
        return self._named(best)

    def bids_in(self) -> None:
        """After datagrams came in: wake the answers whose last bid came."""
        for question, waiter in self._asking.values():
            if question.complete and not waiter.done():
                waiter.set_result(None)

    def _named(self, best: str | None) -> str:
        if best is None:
            self.counters["none"] += 1
            return "NONE\n"
        self.best_answers[best] += 1
        return best + "\n"

    def allowed(self, address: str) -> bool:
        return allowed(address, self._allow, lambda a: self.node.member_at(a) is not None)

    def _handler(self, answer: Callable[[], Awaitable[str]]) -> Handler:
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
                writer.write((await answer()).encode())
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

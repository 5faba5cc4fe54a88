"""The TCP ports in-process: real sockets on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from support.gossip_node import PEER, SELF, make_node

from dsh.core.gossip import GossipNode, Sample
from dsh.core.score import GIB
from dsh.core.wire import Ask, Usage, decode_message
from dsh.daemon.config import DaemonConfig
from dsh.daemon.ports import TcpPorts


async def _ask(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        return await reader.read()
    except ConnectionResetError:  # an aborted connection
        return b""
    finally:
        writer.close()


def _with_ports(
    config: DaemonConfig, scenario: Callable[[TcpPorts, int, int], Awaitable[None]]
) -> None:
    async def run() -> None:
        ports = TcpPorts(config, make_node())
        servers = await ports.listen()
        try:
            status, best = (s.sockets[0].getsockname()[1] for s in servers)
            await scenario(ports, status, best)
        finally:
            for server in servers:
                server.close()
            for server in servers:
                await server.wait_closed()

    asyncio.run(run())


LOCAL = DaemonConfig(listen=("127.0.0.1",), status_port=0, best_port=0)


def test_status_and_best_are_answered_at_connect_time() -> None:
    async def scenario(ports: TcpPorts, status: int, best: int) -> None:
        assert await _ask(best) == b"NONE\n"  # nothing sampled yet
        text = (await _ask(status)).decode()
        assert f"# self {SELF}\n" in text
        assert "# tcp served=1 denied=0 busy=0 timeout=0 none=1\n" in text
        assert ports.counters["served"] == 2
        # a NONE placed no job: not a node of best_answers (the dashboards' nodes)
        assert ports.best_answers == {}

    _with_ports(LOCAL, scenario)


def test_a_client_that_may_not_ask_is_closed_and_counted() -> None:
    config = DaemonConfig(listen=("127.0.0.1",), status_port=0, best_port=0, allow=("10.0.0.0/8",))

    async def scenario(ports: TcpPorts, status: int, best: int) -> None:
        assert await _ask(status) == b""
        assert await _ask(best) == b""
        assert ports.counters == {"served": 0, "denied": 2, "busy": 0, "timeout": 0,
                                  "none": 0}  # fmt: skip

    _with_ports(config, scenario)


def test_a_client_beyond_the_limit_is_closed_and_counted() -> None:
    config = DaemonConfig(listen=("127.0.0.1",), status_port=0, best_port=0, max_clients=0)

    async def scenario(ports: TcpPorts, status: int, best: int) -> None:
        assert await _ask(best) == b""
        assert ports.counters == {"served": 0, "denied": 0, "busy": 1, "timeout": 0,
                                  "none": 0}  # fmt: skip

    _with_ports(config, scenario)


def test_members_and_cidrs_may_ask() -> None:
    ports = TcpPorts(DaemonConfig(allow=("members", "192.0.2.0/24")), make_node())
    assert ports.allowed(PEER) and ports.allowed("192.0.2.7")
    assert ports.allowed("::ffff:127.0.0.2")  # a member, as an IPv6 socket sees it
    assert not ports.allowed("127.0.0.3") and not ports.allowed("198.51.100.1")
    assert not ports.allowed("not an address")


# -- best-node questions (core/bids.py) through the port -------------------------------

THREE = "127.0.0.1\n127.0.0.2\n127.0.0.3\n"
EPOCH_MS = 1_700_000_000_000


def _sparse_pair() -> tuple[GossipNode, GossipNode]:
    """Two nodes of three above the full-mesh threshold, each holding the other's report."""
    a, b = (make_node(THREE, name=n, seed=i) for i, n in enumerate((SELF, PEER)))
    for node in (a, b):
        node.fanout_above = 1
    idle = Sample(ncpu=4, load=0.0, load1=0.0, mem_avail=GIB, mem_total=2 * GIB,
                  usage=Usage(0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0))  # fmt: skip
    now = time.monotonic()
    for node in (a, b):
        node.tick(idle, now, EPOCH_MS)
    for node, other in ((a, b), (b, a)):
        state = node.table.me.state
        assert state is not None
        other.receive(node._encoded(state), node.name, now)
    return a, b


def test_the_best_port_asks_and_answers_once_the_bids_are_in() -> None:
    a, b = _sparse_pair()

    async def run() -> None:
        sent: list[tuple[bytes, str]] = []
        ports = TcpPorts(LOCAL, a, sent.extend)

        def deliver() -> None:  # what the gossip socket and the peer do, by hand
            for data, address in sent[:]:
                if address == PEER:
                    b.receive(data, SELF, time.monotonic())
            sent.clear()
            for data, _ in b.flush(time.monotonic(), EPOCH_MS):
                a.receive(data, PEER, time.monotonic())
            ports.bids_in()

        [server, best_server] = await ports.listen()
        try:
            port = best_server.sockets[0].getsockname()[1]
            asked = asyncio.ensure_future(_ask(port))
            while not sent:
                await asyncio.sleep(0.001)
            deliver()  # the ASK reaches the peer, its bid comes back
            assert (await asked).decode().strip() in (SELF, PEER)
            assert ports.questions == {"all_bids": 1, "some_bids": 0, "no_bids": 0}
            # woken by the bid, not by the timeout: nothing was asked again
            assert not [d for d, _ in sent if isinstance(decode_message(d), Ask)], sent
            # nobody answers: the wait ends at ASK_TIMEOUT and the reports decide
            sent.clear()
            assert (await _ask(port)).decode().strip() in (SELF, PEER)
            assert ports.questions["no_bids"] + ports.questions["some_bids"] == 1
            assert "# questions all_bids=1 " in ports.status_text()
        finally:
            for s in (server, best_server):
                s.close()

    asyncio.run(run())


def test_without_a_socket_the_best_port_asks_no_one() -> None:
    a, _ = _sparse_pair()

    async def scenario(ports: TcpPorts, status: int, best: int) -> None:
        assert (await _ask(best)).decode().strip() in (SELF, PEER)
        assert ports.questions == {"all_bids": 0, "some_bids": 0, "no_bids": 0}

    async def run() -> None:
        ports = TcpPorts(LOCAL, a)
        servers = await ports.listen()
        try:
            await scenario(ports, *(s.sockets[0].getsockname()[1] for s in servers))
        finally:
            for s in servers:
                s.close()

    asyncio.run(run())

"""The TCP ports in-process: real sockets on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from support.gossip_node import PEER, SELF, make_node

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

"""The control socket in-process: a real Unix socket in tmp_path, both ends."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from support.gossip_node import make_node

from dsh.daemon.config import DaemonConfig
from dsh.daemon.control import ControlSocket, request
from dsh.errors import DaemonUnreachable, DshError


def test_drain_and_undrain_tell_the_peers_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "dshd.sock")
    node = make_node()
    announced: list[bool] = []

    async def scenario() -> None:
        control = ControlSocket(
            DaemonConfig(control=path), node, announce=lambda: announced.append(node.drained)
        )
        server = await control.listen()
        assert server is not None
        try:
            assert os.stat(path).st_mode & 0o777 == 0o600
            assert await asyncio.to_thread(request, path, "drain") == "ok drained"
            assert node.drained and announced == [True]
            assert await asyncio.to_thread(request, path, "undrain") == "ok undrained"
            assert not node.drained and announced == [True, False]
            with pytest.raises(DshError, match=r"^frob: error: unknown command$"):
                await asyncio.to_thread(request, path, "frob")
            assert announced == [True, False]
        finally:
            server.close()
            await server.wait_closed()
            control.remove()
        assert not os.path.exists(path)

    asyncio.run(scenario())


def test_a_second_daemon_does_not_take_a_live_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "dshd.sock")
    config = DaemonConfig(control=path)

    async def scenario() -> None:
        first = ControlSocket(config, make_node(), announce=lambda: None)
        server = await first.listen()
        assert server is not None
        try:
            with pytest.raises(DshError, match="another dshd answers on"):
                await ControlSocket(config, make_node(), announce=lambda: None).listen()
        finally:
            server.close()
            await server.wait_closed()
            first.remove()

    asyncio.run(scenario())


def test_a_stale_socket_file_is_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "dshd.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)  # left behind, as by a dshd that was killed
    node = make_node()

    async def scenario() -> None:
        control = ControlSocket(DaemonConfig(control=path), node, announce=lambda: None)
        server = await control.listen()
        assert server is not None
        try:
            assert await asyncio.to_thread(request, path, "drain") == "ok drained"
        finally:
            server.close()
            await server.wait_closed()
            control.remove()

    asyncio.run(scenario())
    assert node.drained


def test_no_path_no_socket() -> None:
    control = ControlSocket(DaemonConfig(control=""), make_node(), announce=lambda: None)
    assert asyncio.run(control.listen()) is None
    control.remove()  # nothing to remove, and no error


def test_the_client_says_when_nobody_answers(tmp_path: Path) -> None:
    path = str(tmp_path / "nobody.sock")
    with pytest.raises(DaemonUnreachable, match="cannot reach the local daemon at"):
        request(path, "drain")

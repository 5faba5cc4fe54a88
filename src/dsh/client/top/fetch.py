"""``GET /api/cluster`` from a dshd: the one thing ``dsh top`` reads.

A plain HTTP/1.0 request on a socket rather than http.client: the answer is
one small JSON body that the server sends and then closes, and http.client's
imports (email, its parsers) would cost more than the rest of a ``dsh top
--once``. Everything that can go wrong is a FetchError with one line that
says what to check.
"""

from __future__ import annotations

import json
import socket
import time

MAX_ANSWER = 32 << 20  # bytes; 100 nodes' /api/cluster is about 50 kB


class FetchError(Exception):
    """The daemon is not there, or what it sent is not /api/cluster's answer."""


def where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def get(host: str, port: int, target: str, timeout: float) -> bytes:
    """The body of a 200 answer to ``GET target``, within ``timeout`` seconds in all."""
    at = where(host, port)
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            request = f"GET {target} HTTP/1.0\r\nHost: {at}\r\nAccept: application/json\r\n\r\n"
            sock.sendall(request.encode())
            chunks, size = [], 0
            while True:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_ANSWER:
                    raise FetchError(f"dshd at {at} sent more than {MAX_ANSWER >> 20} MB")
    except TimeoutError:
        raise FetchError(f"no answer from dshd at {at} within {timeout:g}s") from None
    except ConnectionRefusedError:
        raise FetchError(
            f"no answer from dshd at {at}: connection refused "
            "(is dshd running there, with its HTTP port on?)"
        ) from None
    except OSError as exc:
        raise FetchError(f"no answer from dshd at {at}: {exc.strerror or exc}") from None
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise FetchError(f"dshd at {at} did not answer in HTTP (is that its HTTP port?)")
    if parts[1] != "200":
        said = body.decode("utf-8", "replace").strip().splitlines()[:1]
        raise FetchError(f"dshd at {at} answered {status_line[len(parts[0]) + 1:]}"
                         + (f": {said[0][:200]}" if said else ""))  # fmt: skip
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        length = value.strip()
        if (
            name.strip().lower() == b"content-length"
            and length.isdigit()
            and len(body) < int(length)
        ):
            raise FetchError(f"dshd at {at} closed the connection mid-answer")
    return body


def cluster(host: str, port: int, timeout: float) -> dict[str, object]:
    """/api/cluster's answer, checked to be a JSON object with a list of nodes."""
    body = get(host, port, "/api/cluster", timeout)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise FetchError(f"dshd at {where(host, port)} answered something not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise FetchError(
            f"dshd at {where(host, port)} answered JSON without a node list "
            "(a dshd without /api/cluster?)"
        )
    return data

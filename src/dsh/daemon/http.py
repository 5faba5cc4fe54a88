"""dshd's HTTP port (``--http``, default 8383): ``GET /metrics`` for Prometheus,
the JSON API (api.py) and the live page at ``/`` (view.py).

A small HTTP/1.1 server of its own rather than a framework's: it answers a
handful of paths to GET and HEAD and nothing else, and must hold up on a port that the
whole network may reach. Rules of this file: no client can hold the loop or
more than one of ``max_clients`` slots for long.

- ``--allow`` applies as on the TCP ports; a denied client is aborted at once.
- Beyond ``max_clients`` a client gets a 503 written into its socket buffer and
  is closed (it never waits).
- The whole request head must arrive within ``client_timeout`` of the
  connection (or, on a kept-alive connection, of its first byte): a slowloris
  is closed then. It may be at most ``MAX_HEAD`` bytes (431); what does not
  parse is a 400 and the connection is closed.
- A kept-alive connection idle for ``KEEPALIVE_IDLE`` is closed, and sooner
  when every client slot is taken: the one idle longest makes room.
- Writing an answer waits at most ``client_timeout`` for a client that reads.

The parsing (``parse_head``, ``accepts_gzip``) is pure and unit-tested; each
outcome is a counter (``dsh_http_requests_total{outcome}``, the status footer).
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from .. import __version__
from .config import DaemonConfig
from .ports import denied, listen_on

log = logging.getLogger(__name__)

# Larger heads are refused (431). Prometheus sends about 300 bytes; 8 KiB is
# what many servers allow. Not a config field: nothing legitimate needs more.
MAX_HEAD = 8192
# A kept-alive connection with no new request for this long is closed. Longer
# than a usual scrape interval (15 s), so that Prometheus reuses its connection.
KEEPALIVE_IDLE = 60.0
GZIP_LEVEL = 5  # about a tenth of the size at a few ms per scrape; 9 costs more for little

OUTCOMES = ("served", "denied", "busy", "bad_request", "too_large", "not_found",
            "method_not_allowed", "timeout")  # fmt: skip
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout",
           431: "Request Header Fields Too Large", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}  # fmt: skip

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(rb"HTTP/1\.[01]")


class BadRequest(Exception):
    """The client's fault; ``status`` is the answer's."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # without the query
    version: str  # HTTP/1.0 or HTTP/1.1
    headers: dict[str, str]  # lower-case names; a repeated header's values joined by ", "
    query: str = ""  # what follows '?' in the target, undecoded

    @property
    def keep_alive(self) -> bool:
        connection = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection


def parse_head(head: bytes) -> Request:
    """A request head up to and including its blank line; BadRequest if it is not one."""
    if not head.endswith(b"\r\n\r\n"):
        raise BadRequest(400, "the head does not end in a blank line")
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise BadRequest(400, "not a request line")
    method, target, version = parts
    if not _VERSION.fullmatch(version):
        raise BadRequest(505 if version.startswith(b"HTTP/") else 400, "not HTTP/1.x")
    try:
        path = target.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400, "the target is not ASCII") from None
    if path.startswith(("http://", "https://")):  # the absolute form (a proxy's)
        path = "/" + path.split("://", 1)[1].partition("/")[2]
    if not path.startswith("/") or any(c <= " " or c == "\x7f" for c in path):
        raise BadRequest(400, "not a path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):  # also obs-fold (a leading space)
            raise BadRequest(400, "not a header line")
        try:
            text = value.strip(b" \t").decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover  (latin-1 decodes every byte)
            raise BadRequest(400, "bad header") from None
        if any(c < " " and c != "\t" for c in text):
            raise BadRequest(400, "a control character in a header")
        key = name.decode("ascii").lower()
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    if "transfer-encoding" in headers or headers.get("content-length", "0").strip() != "0":
        raise BadRequest(400, "a request body")  # GET and HEAD have none here
    path, _, query = path.partition("?")
    return Request(method.decode("ascii"), path, version.decode(), headers, query)


def _made(later: Later, gzipped: bool) -> Body:
    """In a worker thread: the body, compressed if asked."""
    body, content_type = later()
    return (gzip.compress(body, GZIP_LEVEL, mtime=0) if gzipped else body), content_type


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding value allows gzip (``gzip``, or ``*``, with q > 0)."""
    allowed: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if coding:
            allowed[coding.lower()] = q
    return allowed.get("gzip", allowed.get("*", 0.0)) > 0


def response(status: int, body: bytes, content_type: str, *, keep_alive: bool,
             gzipped: bool = False, head_only: bool = False,
             extra: tuple[tuple[str, str], ...] = ()) -> bytes:  # fmt: skip
    headers = [
        ("Server", f"dshd/{__version__}"),
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("Connection", "keep-alive" if keep_alive else "close"),
        *((("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")) if gzipped else ()),
        *extra,
    ]
    head = f"HTTP/1.1 {status} {REASONS.get(status, '')}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + (b"" if head_only else body)


# The body and its content type, made per request; BadRequest for a bad query.
# A page whose making is long (a history of 100 nodes) returns a Later instead:
# the loop copies out what it needs, and a worker thread makes the body.
Body = tuple[bytes, str]
Later = Callable[[], Body]
Page = Callable[[Request], "Body | Later"]
# Bodies made in worker threads at once; more wait their turn (a 503 after
# client_timeout). Each holds the GIL only in slices, but two are plenty on a
# node that has real work to do.
MAX_LATER = 2
# A body larger than this is compressed in a worker thread, not on the loop.
GZIP_ON_LOOP = 256 * 1024


def _error_page(status: int) -> bytes:
    return f"{status} {REASONS.get(status, '')}\n".encode()


class HttpServer:
    """The HTTP port's servers, its pages and its counters."""

    def __init__(
        self, config: DaemonConfig, allowed: Callable[[str], bool], pages: dict[str, Page]
    ) -> None:
        self.config = config
        self.allowed = allowed
        self.pages = pages
        self.counters: Counter[str] = Counter({k: 0 for k in OUTCOMES})
        self._clients: set[asyncio.StreamWriter] = set()
        self._later = asyncio.Semaphore(MAX_LATER)  # bodies made in worker threads at once
        # Kept-alive connections waiting for their next request, oldest first.
        self._idle: dict[asyncio.StreamWriter, None] = {}

    async def listen(self) -> list[asyncio.Server]:
        """The port on every ``--listen`` address (all if none); errors are DshErrors."""
        port = self.config.http_port
        if port is None:
            return []
        return await listen_on(self.config.listen, port, self._handle, limit=MAX_HEAD)

    def close(self) -> None:
        """Drop every connection still open (the listening sockets are the caller's)."""
        for writer in list(self._clients):
            writer.transport.abort()

    def footer(self) -> list[str]:
        """The status footer's line: ``http served=... denied=...`` (a counter group)."""
        return ["http " + " ".join(f"{k}={v}" for k, v in self.counters.items())]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if denied(writer, self.allowed, self.counters):
            return
        if len(self._clients) >= self.config.max_clients and self._idle:
            # Full, but some connections only wait for a next request: the one
            # idle longest makes room (its client reconnects, as HTTP allows),
            # so that idle keep-alives can never lock out a scrape.
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            self._clients.discard(oldest)
            oldest.transport.abort()
        if len(self._clients) >= self.config.max_clients:
            self.counters["busy"] += 1
            # Into the socket buffer and gone: a busy server must not wait for anyone.
            writer.write(response(503, _error_page(503), "text/plain", keep_alive=False))
            writer.transport.close()
            return
        self._clients.add(writer)
        try:
            await self._serve(reader, writer)
            writer.close()  # what is written is in the kernel's buffer: this sends a FIN
        except OSError:  # the client went away
            writer.transport.abort()
        except Exception:  # a bug here must cost one connection, never the daemon
            log.exception("http: client %s", writer.get_extra_info("peername"))
            writer.transport.abort()
        finally:
            self._clients.discard(writer)
            self._idle.pop(writer, None)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.client_timeout
        first = b""
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    head = first + await reader.readuntil(b"\r\n\r\n")
            except TimeoutError:
                self.counters["timeout"] += 1
                await self._send(writer, response(408, _error_page(408), "text/plain",
                                                  keep_alive=False))  # fmt: skip
                return
            except asyncio.LimitOverrunError:
                self.counters["too_large"] += 1
                await self._send(writer, response(431, _error_page(431), "text/plain",
                                                  keep_alive=False))  # fmt: skip
                return
            except asyncio.IncompleteReadError as exc:
                if first or exc.partial:
                    self.counters["bad_request"] += 1
                return
            try:
                request = parse_head(head)
            except BadRequest as exc:
                self.counters["bad_request"] += 1
                await self._send(writer, response(exc.status, _error_page(exc.status),
                                                  "text/plain", keep_alive=False))  # fmt: skip
                return
            if not await self._send(writer, await self._answer(request)):
                return
            if not request.keep_alive:
                return
            # Kept alive: wait for the next request's first byte; from then on
            # its head has client_timeout to arrive, as the first one had.
            self._idle[writer] = None
            try:
                async with asyncio.timeout(KEEPALIVE_IDLE):
                    first = await reader.read(1)
            except TimeoutError:
                return
            finally:
                self._idle.pop(writer, None)
            if not first:
                return
            deadline = loop.time() + self.config.client_timeout

    async def _answer(self, request: Request) -> bytes:
        keep = request.keep_alive
        head_only = request.method == "HEAD"
        if request.method not in ("GET", "HEAD"):
            self.counters["method_not_allowed"] += 1
            return response(405, _error_page(405), "text/plain", keep_alive=keep,
                            extra=(("Allow", "GET, HEAD"),))  # fmt: skip
        page = self.pages.get(request.path)
        if page is None:
            self.counters["not_found"] += 1
            return response(404, _error_page(404), "text/plain", keep_alive=keep,
                            head_only=head_only)  # fmt: skip
        gzipped = accepts_gzip(request.headers.get("accept-encoding", ""))
        try:
            made = page(request)
        except BadRequest as exc:
            self.counters["bad_request"] += 1
            return response(exc.status, f"{exc}\n".encode(), "text/plain", keep_alive=keep,
                            head_only=head_only)  # fmt: skip
        if callable(made):
            # A turn of the worker threads, waited for (three users' dsh ps at
            # once is no error), but not longer than a client gets: then a 503.
            try:
                async with asyncio.timeout(self.config.client_timeout):
                    await self._later.acquire()
            except TimeoutError:
                self.counters["busy"] += 1
                return response(503, _error_page(503), "text/plain", keep_alive=keep,
                                head_only=head_only)  # fmt: skip
            try:
                body, content_type = await asyncio.to_thread(_made, made, gzipped)
            finally:
                self._later.release()
        else:
            body, content_type = made
            if gzipped and len(body) > GZIP_ON_LOOP:
                body, _ = await asyncio.to_thread(_made, lambda: (body, ""), True)
            elif gzipped:
                body = gzip.compress(body, GZIP_LEVEL, mtime=0)
        self.counters["served"] += 1
        return response(200, body, content_type, keep_alive=keep, gzipped=gzipped,
                        head_only=head_only)  # fmt: skip

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> bool:
        """Write; wait (bounded) only if the socket buffer is full. False: the client is gone."""
        writer.write(data)
        if writer.transport.get_write_buffer_size():
            try:
                await asyncio.wait_for(writer.drain(), self.config.client_timeout)
            except TimeoutError:
                self.counters["timeout"] += 1
                writer.transport.abort()
                return False
        return not writer.transport.is_closing()

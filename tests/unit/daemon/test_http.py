"""daemon/http: the pure pieces of the HTTP port: request heads, Accept-Encoding,
and the answer's bytes."""

from __future__ import annotations

import gzip

import pytest

from dsh.daemon.http import BadRequest, accepts_gzip, parse_head, response


def test_a_prometheus_scrape() -> None:
    head = (b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8383\r\nUser-Agent: Prometheus/2.42.0\r\n"
            b"Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1\r\nAccept-Encoding: gzip\r\n"
            b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n")  # fmt: skip
    request = parse_head(head)
    assert (request.method, request.path, request.version) == ("GET", "/metrics", "HTTP/1.1")
    assert request.headers["accept-encoding"] == "gzip"
    assert request.keep_alive


def test_query_and_absolute_form_and_repeated_headers() -> None:
    request = parse_head(b"HEAD http://h:1/metrics?x=1 HTTP/1.0\r\nA: 1\r\na:  2 \r\n\r\n")
    assert (request.method, request.path) == ("HEAD", "/metrics")
    assert request.headers["a"] == "1, 2"
    assert not request.keep_alive  # HTTP/1.0 without keep-alive


@pytest.mark.parametrize(
    ("connection", "version", "keep"),
    [("", "1.1", True), ("close", "1.1", False), ("Keep-Alive", "1.0", True),
     ("foo, CLOSE", "1.1", False)],
)  # fmt: skip
def test_keep_alive(connection: str, version: str, keep: bool) -> None:
    head = f"GET / HTTP/{version}\r\nConnection: {connection}\r\n\r\n".encode()
    assert parse_head(head).keep_alive is keep


@pytest.mark.parametrize(
    "head",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
        b"GET /metrics\r\n\r\n",  # HTTP/0.9
        b"GET  /metrics HTTP/1.1\r\n\r\n",
        b"GET metrics HTTP/1.1\r\n\r\n",
        b"GET /a\x00b HTTP/1.1\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"GET / HTTP/1.1\r\n",
        b"\r\n\r\n",
    ],
)
def test_garbage_is_a_400(head: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(head)
    assert caught.value.status == 400


def test_another_version_is_a_505() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_head(b"GET / HTTP/2.0\r\n\r\n")
    assert caught.value.status == 505


@pytest.mark.parametrize(
    ("value", "gzip_ok"),
    [("gzip", True), ("", False), ("identity", False), ("deflate, gzip;q=0.5", True),
     ("gzip;q=0", False), ("*", True), ("*;q=0", False), ("gzip;q=0, *", False),
     ("GZIP", True), ("gzip;q=bad", False)],
)  # fmt: skip
def test_accepts_gzip(value: str, gzip_ok: bool) -> None:
    assert accepts_gzip(value) is gzip_ok


def test_response_bytes() -> None:
    body = gzip.compress(b"x 1\n")
    data = response(200, body, "text/plain", keep_alive=True, gzipped=True)
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    assert f"Content-Length: {len(body)}" in lines
    assert "Content-Encoding: gzip" in lines and "Connection: keep-alive" in lines
    assert gzip.decompress(rest) == b"x 1\n"
    head_only = response(405, b"no\n", "text/plain", keep_alive=False, head_only=True,
                         extra=(("Allow", "GET, HEAD"),))  # fmt: skip
    assert head_only.endswith(b"Allow: GET, HEAD\r\n\r\n")
    assert b"Content-Length: 3\r\n" in head_only and b"Connection: close" in head_only

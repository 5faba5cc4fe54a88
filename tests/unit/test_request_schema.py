"""request.py: the one command-request schema, in both of its forms."""

from __future__ import annotations

import base64
import json

import pytest

from dsh.mux import protocol as mp
from dsh.request import JOB_FIELDS, REQUEST_FIELDS, Job, Request, RequestError

ODD = [b"printf", b"%s\\n", b"a b", b"'q'", b"$HOME", b"*", b"new\nline", b"\xff\xfe"]


def request(**changes: object) -> Request:
    values: dict[str, object] = {
        "argv": ODD, "cwd": b"/tmp/d\xe9j\xe0", "umask": 0o027,
        "env": {"LANG": b"C.UTF-8", "LC_X": b"\xff"}, "sync": "/tmp/.dsh-sync.x",
        "sync_timeout": 7.5, "waitfile": "/opt/dsh/bin/waitfile", "pty": False,
    }  # fmt: skip
    values.update(changes)
    return Request(**values)


def job(**changes: object) -> Job:
    values: dict[str, object] = {
        "node": "n1", "ssh_config": "~/.ssh/config", "connect_timeout": 10.0, "start_grace": 30,
        "python": "/opt/dsh/bin/python3", "executor": True, "stdin": True,
    }  # fmt: skip
    values.update(changes)
    return Job(request(), **values)


def test_json_form_keeps_every_byte() -> None:
    r = request()
    assert Request.from_json(r.to_json()) == r
    body = json.loads(r.to_json())
    assert [base64.b64decode(a) for a in body["argv"]] == ODD  # what an old node reads


def test_mux_form_round_trips_through_the_mux_encoding() -> None:
    j = job(term="xterm-256color", columns=300, lines=80)
    kind, body = mp.MessageReader(mp.TO_MUX).feed(mp.encode(mp.REQUEST, j.to_value()))[0]
    assert kind == mp.REQUEST and Job.from_value(body) == j


def test_defaults_fill_what_is_not_given() -> None:
    r = Request(argv=[b"true"], cwd=b"/", umask=0o22)
    assert (r.env, r.sync, r.sync_timeout, r.waitfile, r.pty) == ({}, None, 10.0, "waitfile", False)
    assert Request(argv=[b"true"], cwd=b"/", umask=0).env is not r.env  # no shared default
    j = job()
    assert (j.term, j.columns, j.lines, j.start_grace) == ("vt100", 80, 24, 30.0)
    with pytest.raises(RequestError, match="'ssh_config' missing"):
        Job(r, node="n")  # what dsh always sends has no default here: ClientConfig's count


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"argv": []}, "'argv' is empty"),
        ({"argv": ["gcc"]}, "'argv' is not a list of bytes"),
        ({"cwd": "/tmp"}, "'cwd' is not bytes"),
        ({"umask": True}, "'umask' is not an integer"),
        ({"umask": 1.5}, "'umask' is not an integer"),
        ({"sync_timeout": "10"}, "'sync_timeout' is not a number"),
        ({"env": {"A": "text"}}, "'env' is not a map of text to bytes"),
        ({"pty": 1}, "'pty' is not true or false"),
        ({"colour": True}, "unknown field 'colour'"),
    ],
)
def test_a_field_that_does_not_fit_is_refused(changes: dict[str, object], error: str) -> None:
    with pytest.raises(RequestError, match=error):
        request(**changes)


def test_missing_fields_are_named() -> None:
    with pytest.raises(RequestError, match="'cwd' missing"):
        Request(argv=[b"x"], umask=0)
    with pytest.raises(RequestError, match="'node' missing"):
        Job(request())
    with pytest.raises(RequestError, match="unknown field 'self'"):
        Request(argv=[b"x"], cwd=b"/", umask=0, self=1)  # not a TypeError
    with pytest.raises(RequestError, match="unknown field 'request'"):
        Job(request(), request=request(), **{k: v for k, v in job().to_value().items()
                                              if k != "request"})  # fmt: skip
    with pytest.raises(RequestError, match="a request is not a map"):
        Job.from_value({"node": "n", "request": "argv"})


@pytest.mark.parametrize(
    "data",
    [b"", b"[]", b"{", b'{"argv": ["!!"], "cwd": "Lw==", "umask": 0}', b'"text"',
     b'{"argv": "YQ==", "cwd": "Lw==", "umask": 0}'],
)  # fmt: skip
def test_json_that_is_no_request_is_one_error(data: bytes) -> None:
    with pytest.raises(RequestError):
        Request.from_json(data)


def test_records_are_frozen_and_replace_makes_a_new_one() -> None:
    r = request()
    with pytest.raises(AttributeError, match="frozen"):
        r.umask = 0
    assert r.replace(pty=True).pty and not r.pty
    j = job()
    assert j.replace(node="n2").node == "n2" and j.node == "n1"


def test_every_field_has_a_kind_the_schema_knows() -> None:
    from dsh.request import _KINDS

    for name, kind, _default in REQUEST_FIELDS + JOB_FIELDS:
        assert kind in _KINDS, name
    names = [f[0] for f in REQUEST_FIELDS + JOB_FIELDS]
    assert len(names) == len(set(names))

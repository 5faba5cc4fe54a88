"""The command request: the one schema that dsh, the mux, the direct path and
both node-side programs (node/rexec.py, node/executor.py) write and read.

Rules of this file: standard library only, nothing imported from dsh, no
``from __future__`` and no dataclasses. It is on dsh's fast path (imported
once per compile, where ``import dataclasses`` alone costs more than a run
through the mux), and node/source.py sends its text to the node ahead of the
node-side programs, which run from that text, not from an installed copy.
``json`` and ``base64`` are imported only where the node's form is made.

Two records, each a table of fields (name, kind, default):

* ``Request``: what the node needs to run the command the way the caller
  would have: argv, directory, umask, forwarded variables, the sync file,
  whether it runs in a pseudo-terminal. It travels to the node as JSON with
  bytes in base64 (``to_json``/``from_json``): argv and paths are bytes, so
  spaces, quotes, newlines and non-UTF-8 names arrive as they were.
* ``Job``: a Request plus how to reach the node and run it there: the node,
  the ssh config, the remote interpreter, executor or channel, stdin
  forwarding, the terminal. dsh makes it; the mux (``to_value``/``from_value``,
  in mux/protocol.py's encoding) or the direct path runs it.

Decoding is strict: a missing field, a field of the wrong kind or an unknown
field is a ``RequestError``, never a guess. Adding a field with a default is
compatible; changing a kind or removing a field is a new mux protocol
VERSION (mux/protocol.py), since an old node program would misread it.
"""

TYPE_CHECKING = False  # mypy knows this name; typing is not imported at run time
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class RequestError(ValueError):
    """A request that does not fit the schema."""


def _is_bytes_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, bytes) for v in value)


def _is_bytes_dict(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, bytes) for k, v in value.items()
    )


# kind: (what it is, in words for the error; its check)
_KINDS: "dict[str, tuple[str, Callable[[object], bool]]]" = {
    "bytes": ("bytes", lambda v: isinstance(v, bytes)),
    "str": ("text", lambda v: isinstance(v, str)),
    "opt_str": ("text or null", lambda v: v is None or isinstance(v, str)),
    "int": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
    "bool": ("true or false", lambda v: isinstance(v, bool)),
    "bytes_list": ("a list of bytes", _is_bytes_list),
    "bytes_dict": ("a map of text to bytes", _is_bytes_dict),
}

_REQUIRED = object()

# The fields of a Request: (name, kind, default). Part of the protocol.
REQUEST_FIELDS: "tuple[tuple[str, str, Any], ...]" = (
    ("argv", "bytes_list", _REQUIRED),  # never empty
    ("cwd", "bytes", _REQUIRED),  # the caller's directory ($PWD when it names it)
    ("umask", "int", _REQUIRED),
    ("env", "bytes_dict", {}),  # variables to set over the node's own environment
    ("sync", "opt_str", None),  # the sync file to wait for, then remove (README: NFS)
    ("sync_timeout", "float", 10.0),  # seconds the node waits for it (dsh: --sync-timeout)
    ("waitfile", "str", "waitfile"),  # the program that waits for it (same path everywhere)
    ("pty", "bool", False),  # in sshd's pseudo-terminal (dsh -t)
)

# The fields of a Job besides its request. Part of the mux protocol.
JOB_FIELDS: "tuple[tuple[str, str, Any], ...]" = (
    # What dsh always sends (its defaults are ClientConfig's):
    ("node", "str", _REQUIRED),
    ("ssh_config", "str", _REQUIRED),  # absolute or ~: the mux runs in /
    ("connect_timeout", "float", _REQUIRED),  # seconds: TCP connect + SSH handshake + auth
    ("start_grace", "float", _REQUIRED),  # seconds beyond sync_timeout to say "started"
    ("python", "str", _REQUIRED),  # the node's interpreter for rexec.py and the executor
    ("executor", "bool", _REQUIRED),  # the resident executor, else a channel per command
    ("stdin", "bool", _REQUIRED),  # forward dsh's stdin (a pipe or a file, or with -t)
    ("term", "str", "vt100"),  # for -t: $TERM and the window size of dsh's terminal
    ("columns", "int", 80),
    ("lines", "int", 24),
)


def _fill(record: object, fields: "tuple[tuple[str, str, Any], ...]", values: "dict[str, Any]"
          ) -> None:  # fmt: skip
    unknown = set(values).difference(name for name, _kind, _default in fields)
    if unknown:
        raise RequestError(f"unknown field {sorted(unknown)[0]!r}")
    for name, kind, default in fields:
        if name in values:
            value = values[name]
        elif default is _REQUIRED:
            raise RequestError(f"field {name!r} missing")
        else:
            value = default.copy() if isinstance(default, dict) else default
        what, check = _KINDS[kind]
        if not check(value):
            raise RequestError(f"field {name!r} is not {what}")
        if kind == "float":
            value = float(value)
        object.__setattr__(record, name, value)


class Record:
    """Frozen, compared by value, its fields its ``__slots__``: the base of
    Request, Job and dsh's ClientConfig (no dataclasses on dsh's fast path)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: use replace({name}=...)")

    def as_dict(self) -> "dict[str, Any]":
        names: tuple[str, ...] = self.__slots__
        return {name: getattr(self, name) for name in names}

    def replace(self, **changes: "Any") -> "Any":
        return type(self)(**{**self.as_dict(), **changes})

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"{type(self).__name__}({fields})"


class Request(Record):
    __slots__ = tuple(name for name, _kind, _default in REQUEST_FIELDS)

    argv: list[bytes]
    cwd: bytes
    umask: int
    env: dict[str, bytes]
    sync: str | None
    sync_timeout: float
    waitfile: str
    pty: bool

    # (self positional-only: a field called "self" is an unknown field, not a TypeError)
    def __init__(self, /, **values: "Any") -> None:
        _fill(self, REQUEST_FIELDS, values)
        if not self.argv:
            raise RequestError("field 'argv' is empty")

    def to_value(self) -> "dict[str, Any]":
        return self.as_dict()

    @classmethod
    def from_value(cls, value: object) -> "Request":
        if not isinstance(value, dict):
            raise RequestError("a request is not a map")
        return cls(**value)

    # -- the node's form: JSON, bytes in base64 --------------------------------

    def to_json(self) -> bytes:
        import json
        from base64 import b64encode

        def b64(data: bytes) -> str:
            return b64encode(data).decode("ascii")

        body = self.as_dict()
        for name, kind, _default in REQUEST_FIELDS:
            if kind == "bytes":
                body[name] = b64(body[name])
            elif kind == "bytes_list":
                body[name] = [b64(v) for v in body[name]]
            elif kind == "bytes_dict":
                body[name] = {k: b64(v) for k, v in body[name].items()}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Request":
        import binascii
        import json
        from base64 import b64decode

        def b64(value: object) -> bytes:
            if not isinstance(value, str):
                raise TypeError("not base64 text")
            return b64decode(value, validate=True)

        try:
            body = json.loads(data)
            if not isinstance(body, dict):
                raise RequestError("a request is not a JSON object")
            for name, kind, _default in REQUEST_FIELDS:
                value = body.get(name)
                if value is None:
                    continue  # missing: _fill says so, or takes the default
                if kind == "bytes":
                    body[name] = b64(value)
                elif kind == "bytes_list" and isinstance(value, list):
                    body[name] = [b64(v) for v in value]
                elif kind == "bytes_dict" and isinstance(value, dict):
                    body[name] = {k: b64(v) for k, v in value.items()}
        except (ValueError, TypeError, binascii.Error) as exc:
            if isinstance(exc, RequestError):
                raise
            raise RequestError(f"not a request: {exc}") from None
        return cls(**body)


class Job(Record):
    __slots__ = (*(name for name, _kind, _default in JOB_FIELDS), "request")

    node: str
    ssh_config: str
    connect_timeout: float
    start_grace: float
    python: str
    executor: bool
    stdin: bool
    term: str
    columns: int
    lines: int
    request: Request

    def __init__(self, request: Request, /, **values: "Any") -> None:
        if not isinstance(request, Request):
            raise RequestError("field 'request' is not a request")
        _fill(self, JOB_FIELDS, values)
        object.__setattr__(self, "request", request)

    def replace(self, **changes: "Any") -> "Job":
        values = {**self.as_dict(), **changes}
        return Job(values.pop("request"), **values)

    def to_value(self) -> "dict[str, Any]":
        """The mux protocol's REQUEST body."""
        return {**self.as_dict(), "request": self.request.to_value()}

    @classmethod
    def from_value(cls, value: object) -> "Job":
        if not isinstance(value, dict):
            raise RequestError("a job is not a map")
        values = dict(value)
        request = Request.from_value(values.pop("request", None))
        return cls(request, **values)

"""The messages between dsh and its local mux: bytes in, messages out, no I/O.

Rules of this file: no imports at all (dsh imports it on its fast path, where
every millisecond counts: even ``struct`` is half of one), no I/O, every
decode failure is one ``MuxProtocolError``. Message types are part of the protocol: append only;
a change that old peers would misread bumps ``VERSION``, which is in the
socket's name, so an old mux and a new dsh never meet.

A message is a 4-byte length, a 1-byte type and a value in a small tagged
encoding (None, bool, int, float, bytes, str, list, dict with str keys;
integers as 8 bytes big-endian, floats as their shortest decimal text):
strict, so that short, trailing or unknown bytes are errors, never guesses.
dsh's stdin, stdout and stderr travel as SCM_RIGHTS with STDIO, and only
once the mux has ACCEPTED: descriptors sent to a mux that is stuck would stay
in its socket, and a pipe's reader would wait for their end as long.

    dsh                                   mux
    REQUEST Job (request.py)           ->
                                       <- ACCEPTED      (the mux owns it now)
    STDIO {} + 3 descriptors           ->
                                       <- STARTED {via}  or  FAILED {message, transport}
    SIGNAL {signum}                    ->
                                       <- EXIT {status}  or  LOST {message}

Before ACCEPTED nothing can have run: dsh may start a new mux and ask again.
After FAILED nothing ran either (dsh tries another node). After STARTED the
command is never run again anywhere. REFUSED {message} answers a peer of
another user, or a request this mux cannot take. STOP (``dsh --mux-stop``)
asks the mux to take no more commands and to exit once those it runs have
ended; it answers STOPPING {pid, running}.
"""

VERSION = 3  # 3: REQUEST carries a request.Job

# dsh -> mux
REQUEST = 1
SIGNAL = 2
STOP = 3
STDIO = 4
# mux -> dsh
ACCEPTED = 64
STARTED = 65
FAILED = 66
EXIT = 67
LOST = 68
REFUSED = 69
STOPPING = 70

TO_MUX = frozenset({REQUEST, SIGNAL, STOP, STDIO})
TO_DSH = frozenset({ACCEPTED, STARTED, FAILED, EXIT, LOST, REFUSED, STOPPING})

HEADER_SIZE = 5  # length (u32, big-endian, counting the type byte) and type (u8)
MAX_MESSAGE = 16 << 20  # argv and environment are bounded by the kernel far below
MAX_DEPTH = 8


def header(length: int, kind: int) -> bytes:
    return length.to_bytes(4, "big") + bytes((kind,))


def _u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


Value = None | bool | int | float | bytes | str | list["Value"] | dict[str, "Value"]


class MuxProtocolError(Exception):
    """Bytes that are not a well-formed message of this protocol version."""


# -- values ----------------------------------------------------------------------


def _encode(value: Value, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MuxProtocolError("value nested too deeply")
    if value is None:
        out.append(b"N")
    elif value is True:
        out.append(b"T")
    elif value is False:
        out.append(b"F")
    elif isinstance(value, int):
        try:
            out.append(b"i" + value.to_bytes(8, "big", signed=True))
        except OverflowError:
            raise MuxProtocolError("integer out of range") from None
    elif isinstance(value, float):
        text = repr(value).encode("ascii")
        out.append(b"f" + _u32(len(text)) + text)
    elif isinstance(value, bytes):
        out.append(b"b" + _u32(len(value)) + value)
    elif isinstance(value, str):
        data = value.encode("utf-8", "surrogateescape")
        out.append(b"s" + _u32(len(data)) + data)
    elif isinstance(value, list):
        out.append(b"l" + _u32(len(value)))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out.append(b"d" + _u32(len(value)))
        for key, item in value.items():
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    else:
        raise MuxProtocolError(f"cannot encode {type(value).__name__}")


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        end = self.pos + size
        if end > len(self.data):
            raise MuxProtocolError("message ends inside a value")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def length(self) -> int:
        n = int.from_bytes(self.take(4), "big")
        if n > len(self.data) - self.pos:
            raise MuxProtocolError("length beyond the end of the message")
        return n

    def value(self, depth: int) -> Value:
        if depth > MAX_DEPTH:
            raise MuxProtocolError("value nested too deeply")
        tag = self.take(1)
        if tag == b"N":
            return None
        if tag == b"T":
            return True
        if tag == b"F":
            return False
        if tag == b"i":
            return int.from_bytes(self.take(8), "big", signed=True)
        if tag == b"f":
            text = self.take(self.length())
            try:
                return float(text.decode("ascii"))
            except (UnicodeDecodeError, ValueError):
                raise MuxProtocolError(f"bad number {text!r}") from None
        if tag == b"b":
            return self.take(self.length())
        if tag == b"s":
            try:
                return self.take(self.length()).decode("utf-8", "surrogateescape")
            except UnicodeDecodeError as exc:  # pragma: no cover - surrogateescape
                raise MuxProtocolError(f"bad text: {exc}") from None
        if tag == b"l":
            return [self.value(depth + 1) for _ in range(self.length())]
        if tag == b"d":
            result: dict[str, Value] = {}
            for _ in range(self.length()):
                key = self.value(depth + 1)
                if not isinstance(key, str) or key in result:
                    raise MuxProtocolError("dict key not a string, or repeated")
                result[key] = self.value(depth + 1)
            return result
        raise MuxProtocolError(f"unknown value tag {tag!r}")


def encode_value(value: Value) -> bytes:
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def decode_value(data: bytes) -> Value:
    decoder = _Decoder(data)
    value = decoder.value(0)
    if decoder.pos != len(data):
        raise MuxProtocolError(f"{len(data) - decoder.pos} bytes after the value")
    return value


# -- messages --------------------------------------------------------------------


def encode(kind: int, body: dict[str, Value]) -> bytes:
    payload = encode_value(body)
    if len(payload) + 1 > MAX_MESSAGE:
        raise MuxProtocolError(f"message of {len(payload)} bytes (limit {MAX_MESSAGE})")
    return header(len(payload) + 1, kind) + payload


class MessageReader:
    """Bytes in, (type, body) out; rejects types this side does not take."""

    def __init__(self, accepted: frozenset[int]) -> None:
        self._accepted = accepted
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, dict[str, Value]]]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= HEADER_SIZE:
            length = int.from_bytes(self._buffer[:4], "big")
            kind = self._buffer[4]
            if kind not in self._accepted:
                raise MuxProtocolError(f"unexpected message type {kind}")
            if not 1 <= length <= MAX_MESSAGE:
                raise MuxProtocolError(f"message length {length} out of range")
            end = 4 + length
            if len(self._buffer) < end:
                break
            body = decode_value(bytes(self._buffer[HEADER_SIZE:end]))
            del self._buffer[:end]
            if not isinstance(body, dict):
                raise MuxProtocolError("message body is not a dict")
            messages.append((kind, body))
        return messages

    @property
    def pending(self) -> int:
        return len(self._buffer)


# -- typed access ----------------------------------------------------------------


def _bad(name: str, what: str) -> MuxProtocolError:
    return MuxProtocolError(f"field {name!r} missing or not {what}")


def get_str(body: dict[str, Value], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise _bad(name, "text")
    return value


def get_int(body: dict[str, Value], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _bad(name, "an integer")
    return value


def get_bool(body: dict[str, Value], name: str) -> bool:
    value = body.get(name)
    if not isinstance(value, bool):
        raise _bad(name, "true or false")
    return value

"""The dsh <-> mux protocol: messages survive any split, and what is not one is refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsh.mux import protocol as mp

values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=20)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(body=st.dictionaries(st.text(max_size=8), values, max_size=6), cut=st.integers(0, 50))
def test_mux_messages_round_trip_in_any_pieces(body: dict[str, mp.Value], cut: int) -> None:
    data = mp.encode(mp.REQUEST, body) + mp.encode(mp.SIGNAL, {"signum": 2})
    reader = mp.MessageReader(mp.TO_MUX)
    got = reader.feed(data[:cut]) + reader.feed(data[cut:])
    assert got == [(mp.REQUEST, body), (mp.SIGNAL, {"signum": 2})]
    assert reader.pending == 0


@pytest.mark.parametrize(
    "data, why",
    [
        (mp.header(2, mp.REQUEST) + b"N", "not a dict"),
        (mp.header(3, mp.REQUEST) + b"d\x00", "ends inside"),
        (mp.header(7, mp.REQUEST) + b"d\x00\x00\x00\x00NN", "after the value"),
        (mp.header(6, mp.REQUEST) + b"d\x00\x00\x00\x01", "beyond the end"),
        (mp.header(2, mp.REQUEST) + b"X", "unknown value tag"),
        (mp.header(2, mp.EXIT) + b"N", "unexpected message type"),
        (mp.header(0, mp.REQUEST), "out of range"),
        (mp.header(mp.MAX_MESSAGE + 1, mp.REQUEST), "out of range"),
        (mp.header(10, mp.REQUEST) + b"d" + b"\x00\x00\x00\x01" + b"i" + b"\x00" * 4, "ends"),
    ],
)
def test_mux_reader_rejects_what_is_not_a_message(data: bytes, why: str) -> None:
    with pytest.raises(mp.MuxProtocolError, match=why):
        mp.MessageReader(mp.TO_MUX).feed(data)


def test_mux_fields_are_typed() -> None:
    body: dict[str, mp.Value] = {"n": 3, "b": True, "s": "x", "l": [b"a"], "f": 1}
    assert mp.get_int(body, "n") == 3 and mp.get_str(body, "s") == "x" and mp.get_bool(body, "b")
    for getter, name in [(mp.get_int, "b"), (mp.get_str, "n"), (mp.get_bool, "n"),
                         (mp.get_int, "s"), (mp.get_str, "missing")]:  # fmt: skip
        with pytest.raises(mp.MuxProtocolError, match=name):
            getter(body, name)

"""Hand-built media frames are frames websockets' own server parser accepts."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from loadcaller.transports.wsframe import MaskKeys, masked_text_frame


def parse_as_server(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        return done.value
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 1, 125, 126, 300, 65535, 65536, 70000])
def test_every_length_form_round_trips(size):
    payload = bytes(i % 251 for i in range(size))
    frame = parse_as_server(masked_text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


@given(st.binary(max_size=2000))
def test_any_payload_round_trips(payload):
    assert parse_as_server(masked_text_frame(payload)).data == payload


def test_masking_keys_are_not_repeated_across_a_pool():
    keys = MaskKeys()
    drawn = [keys.next() for _ in range(3000)]  # crosses pool refills
    assert all(len(k) == 4 for k in drawn)
    assert len(set(drawn)) > 2990

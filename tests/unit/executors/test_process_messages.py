"""The process executor's reader takes whole messages out of the bytes a worker's pipe gave
(kaon.executors.process.take_messages): multiprocessing.Connection's framing, split anywhere."""

from __future__ import annotations

import os
import struct
from multiprocessing.connection import Connection

from hypothesis import given, settings
from hypothesis import strategies as st

from kaon.executors.process import take_messages


def _framed(messages: list[bytes]) -> bytes:
    """The bytes a worker's ``Connection.send_bytes`` writes for ``messages``."""
    read_fd, write_fd = os.pipe()
    sender = Connection(write_fd, readable=False)
    try:
        for message in messages:
            sender.send_bytes(message)
    finally:
        sender.close()
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    return b"".join(chunks)


@given(
    messages=st.lists(st.binary(max_size=300), max_size=8),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=6),
)
@settings(max_examples=200, deadline=None)
def test_messages_come_out_whole_and_in_order_however_the_bytes_are_split(
    messages: list[bytes], cuts: list[int]
) -> None:
    data = _framed(messages)
    points = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    buffer = bytearray()
    taken: list[bytes] = []
    start = 0
    for point in points:
        buffer += data[start:point]
        start = point
        taken += take_messages(buffer)
    assert taken == messages
    assert buffer == bytearray()


def test_a_message_read_in_part_waits_for_the_rest() -> None:
    data = _framed([b"x" * 100])
    buffer = bytearray(data[:50])
    assert take_messages(buffer) == []
    assert len(buffer) == 50  # nothing taken out
    buffer += data[50:]
    assert take_messages(buffer) == [b"x" * 100]


def test_the_long_length_header_is_understood() -> None:
    # Connection writes -1 and an 8-byte length for a message of 2 GiB or more.
    data = struct.pack("!i", -1) + struct.pack("!Q", 5) + b"hello" + struct.pack("!i", 2) + b"ok"
    buffer = bytearray(data[:7])
    assert take_messages(buffer) == []
    buffer += data[7:]
    assert take_messages(buffer) == [b"hello", b"ok"]

"""Websocket frames on the media hot path, both ways, without per-frame overhead.

websockets' ``ClientProtocol`` stays in charge of the connection (handshake,
control frames, fragments, closing, every protocol error). Two things are done
here because they happen hundreds of calls x 50 times a second:

- Sending: ``media`` messages are framed by :func:`masked_text_frame`: RFC 6455
  header, a masking key, the payload masked by websockets' own C
  ``apply_mask``. The masking keys still come from the OS's cryptographic
  source, drawn 4 KiB at a time instead of one syscall per frame (those
  syscalls were 7 % of a busy caller process).
- Receiving: :class:`ServerFrames` cuts what the agent sends into whole frames.
  A final, unmasked text or binary frame without RSV bits (every message of an
  agent that streams its speech) comes out as its payload; any other frame
  comes out whole, to be fed to websockets, which then always gets whole frames
  and so never holds part of one. websockets' generator-based parser cost about
  2.8 us per message against 0.5 us here.
"""

from __future__ import annotations

import os

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - pure-Python fallback
    from websockets.utils import apply_mask

_POOL_BYTES = 4096


class MaskKeys:
    """Unpredictable 4-byte masking keys from os.urandom, drawn in bulk."""

    __slots__ = ("_pool", "_pos")

    def __init__(self) -> None:
        self._pool = b""
        self._pos = 0

    def next(self) -> bytes:
        if self._pos >= len(self._pool):
            self._pool, self._pos = os.urandom(_POOL_BYTES), 0
        key = self._pool[self._pos : self._pos + 4]
        self._pos += 4
        return key


_KEYS = MaskKeys()


def _head(first: int, mask_bit: int, n: int) -> bytes:
    if n < 126:
        return bytes((first, mask_bit | n))
    if n < 65536:
        return bytes((first, mask_bit | 126)) + n.to_bytes(2, "big")
    return bytes((first, mask_bit | 127)) + n.to_bytes(8, "big")


def masked_text_frame(payload: bytes, keys: MaskKeys = _KEYS) -> bytes:
    """One final, masked text frame carrying ``payload`` (a client's frame)."""
    key = keys.next()
    return _head(0x81, 0x80, len(payload)) + key + apply_mask(payload, key)


def server_frame(kind: int, payload: bytes) -> bytes:
    """The frame :meth:`ServerFrames.feed` gave as (``kind``, ``payload``), TEXT or
    BINARY, for websockets after all (its length in the shortest form)."""
    return _head(0x81 if kind == TEXT else 0x82, 0, len(payload)) + payload


# What ServerFrames.feed yields: (kind, bytes)
TEXT, BINARY, OTHER = 1, 2, 0
"""TEXT/BINARY: a whole message's payload; OTHER: a raw frame (or, over ``max_size``,
everything from its header on) for websockets."""


class ServerFrames:
    """Whole frames out of the bytes a server sends, in order (sans-I/O)."""

    __slots__ = ("_need", "_tail", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._tail = bytearray()  # an incomplete frame
        self._need = 0  # bytes the tail must reach before a frame can end in it

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._tail)

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames ``data`` completes (see the module docstring); keeps the rest."""
        tail = self._tail
        if tail:
            tail += data
            if len(tail) < self._need:
                return []
            data = bytes(tail)
            tail.clear()
        out: list[tuple[int, bytes]] = []
        pos, n = 0, len(data)
        while True:
            left = n - pos
            if left < 2:
                need = 2
                break
            b0, b1 = data[pos], data[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length >= 126:  # a 16-bit or a 64-bit length follows
                head = 4 if length == 126 else 10
                if left < head:
                    need = head
                    break
                length = int.from_bytes(data[pos + 2:pos + head], "big")
            if b1 & 0x80:  # masked: a server must not (websockets says so)
                head += 4
            if length > self.max_size:  # websockets refuses it from the header
                out.append((OTHER, data[pos:]))
                return out
            end = pos + head + length
            if end > n:
                need = head + length
                break
            if b0 == 0x81 and b1 < 0x80:  # final text, unmasked, no RSV bits
                out.append((TEXT, data[pos + head:end]))
            elif b0 == 0x82 and b1 < 0x80:
                out.append((BINARY, data[pos + head:end]))
            else:
                out.append((OTHER, data[pos:end]))
            pos = end
        if pos < n:
            tail += data[pos:]
            self._need = need
        return out

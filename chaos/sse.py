"""Server-sent events, sans-I/O: split a byte stream into events and rebuild them.

LLM APIs stream completions as SSE (`data: {...}` blocks ended by a blank
line, and a final `data: [DONE]`). The SSE faults see whole events, never
half a line: `SseTransform` buffers bytes until a blank line, hands each raw
event (separator included) to `on_event`, and passes what is left at the end
to `on_end`. Events are kept as the exact bytes received, so untouched events
reach the client byte for byte.
"""

from __future__ import annotations

import re

from chaos.actions import StreamItem

_SEPARATOR = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


class SseSplitter:
    """Cut a byte stream into raw SSE events.

    Linear in the bytes fed: each feed searches only the new bytes (and the 3
    before them, where a separator may have begun). It used to search the whole
    buffer again and copy it on every chunk: an upstream's 5 MB event arriving
    in 1 KB pieces blocked the event loop, every route of the proxy, for 4 minutes.
    """

    # a separator is at most 4 bytes: one not found ended at most 3 bytes from the end
    _OVERLAP = 3

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer searched without finding a separator

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes; return the events completed by them."""
        buffer = self._buffer
        buffer += chunk
        events: list[bytes] = []
        start = 0
        pos = max(0, self._scanned - self._OVERLAP)
        while True:
            m = _SEPARATOR.search(buffer, pos)
            if m is None:
                break
            events.append(bytes(buffer[start:m.end()]))
            start = pos = m.end()
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        return events

    def rest(self) -> bytes:
        """Bytes after the last complete event (an unterminated event)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return rest


def event_data(event: bytes) -> str | None:
    """The `data` field of a raw event (lines joined by \\n), None when it has none."""
    lines = [line for line in _LINE.split(event) if line.startswith(b"data")]
    if not lines:
        return None
    parts = []
    for line in lines:
        value = line[5:] if line.startswith(b"data:") else b""
        parts.append(value[1:] if value.startswith(b" ") else value)
    return b"\n".join(parts).decode("utf-8", "replace")


def with_data(event: bytes, data: str) -> bytes:
    """The event with its data lines replaced by `data`, other fields kept."""
    newline = b"\r\n" if b"\r\n" in event else b"\n"
    kept = [line for line in _LINE.split(event) if line and not line.startswith(b"data")]
    lines = kept + [b"data: " + part.encode() for part in data.split("\n")]
    return newline.join(lines) + newline + newline


def make_event(data: str) -> bytes:
    """A new `data:` event."""
    return with_data(b"", data)


def is_done(event: bytes) -> bool:
    """Is this the OpenAI-style end marker `data: [DONE]`?"""
    data = event_data(event)
    return data is not None and data.strip() == "[DONE]"


def is_event_stream(content_type: str) -> bool:
    """Does a Content-Type announce an SSE stream?"""
    return content_type.split(";")[0].strip().lower() == "text/event-stream"


class SseTransform:
    """A StreamTransform that works event by event; subclasses override the hooks."""

    def __init__(self) -> None:
        self._splitter = SseSplitter()
        self.events = 0

    def feed(self, chunk: bytes) -> list[StreamItem]:
        """Split into events and pass each through `on_event`."""
        out: list[StreamItem] = []
        for event in self._splitter.feed(chunk):
            self.events += 1
            out += self.on_event(event)
        return out

    def end(self) -> list[StreamItem]:
        """Flush an unterminated tail, then `on_end`."""
        rest = self._splitter.rest()
        return ([rest] if rest else []) + self.on_end()

    def on_event(self, event: bytes) -> list[StreamItem]:
        """One complete event; return what to send."""
        return [event]

    def on_end(self) -> list[StreamItem]:
        """The upstream finished; return anything held back."""
        return []

"""A lightweight Twilio Media Streams target for benchmarks (not a voice agent).

It accepts streams, ignores the caller's audio, and every ``--every`` seconds
sends a ~2 s reply in one burst (so the caller's playout, VAD and marks run),
or with ``--chunk-ms N`` as N ms media messages paced in real time, as a
streaming agent (Pipecat, the reference agent) sends its speech.
websockets' sans-I/O ServerProtocol on a bare asyncio Protocol keeps its own
CPU low, so the caller process is what gets measured.

    python benchmarks/twilio_target.py --port 0   # prints READY ws://127.0.0.1:PORT/media
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json

from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from loadcaller.audio.pack import load_pack_audio

REPLY = load_pack_audio("agent_ask_number")
REPLY_B64 = base64.b64encode(REPLY).decode()


def chunks_b64(chunk_ms: int) -> list[str]:
    """The reply cut into ``chunk_ms`` media payloads (8 bytes of mu-law per ms)."""
    size = 8 * chunk_ms
    return [base64.b64encode(REPLY[i:i + size]).decode() for i in range(0, len(REPLY), size)]


class Stream(asyncio.Protocol):
    def __init__(self, every: float, chunks: list[str], chunk_s: float) -> None:
        self.ws = ServerProtocol(max_size=2**22)
        self.every = every
        self.chunks, self.chunk_s = chunks, chunk_s
        self.sid = ""
        self.tcp: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.pacer: asyncio.TimerHandle | None = None
        self.sent, self.t0 = 0, 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.tcp = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for ev in self.ws.events_received():
            if isinstance(ev, Request):
                self.ws.send_response(self.ws.accept(ev))
            elif ev.opcode is Opcode.TEXT and not self.sid and b'"start"' in ev.data[:40]:
                self.sid = json.loads(ev.data)["streamSid"]
                self.reply()
        self.flush()

    def reply(self) -> None:
        if self.ws.state is not State.OPEN:
            return
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.every, self.reply)
        if self.chunks:
            self.sent, self.t0 = 0, loop.time()
            self.pace()
            return
        self.media(REPLY_B64)
        self.mark()

    def pace(self) -> None:
        """The next chunk now, the one after at its instant (absolute: no drift)."""
        if self.ws.state is not State.OPEN or self.tcp is None:
            return
        if self.sent == len(self.chunks):
            self.mark()
            return
        self.media(self.chunks[self.sent])
        self.sent += 1
        self.pacer = asyncio.get_running_loop().call_at(self.t0 + self.sent * self.chunk_s,
                                                        self.pace)

    def media(self, payload: str) -> None:
        msg = f'{{"event":"media","streamSid":"{self.sid}","media":{{"payload":"{payload}"}}}}'
        self.ws.send_text(msg.encode())
        self.flush()

    def mark(self) -> None:
        self.ws.send_text(json.dumps({"event": "mark", "streamSid": self.sid,
                                      "mark": {"name": "r"}}).encode())
        self.flush()

    def flush(self) -> None:
        if self.tcp is None:
            return
        for data in self.ws.data_to_send():
            if data:
                self.tcp.write(data)
            elif self.tcp.can_write_eof():
                self.tcp.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.timer, self.pacer):
            if timer is not None:
                timer.cancel()
        self.tcp = None


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--chunk-ms", type=int, default=0,
                    help="send each reply as media messages of this many ms, paced in real "
                         "time (0: the whole reply in one message)")
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    chunks = chunks_b64(args.chunk_ms) if args.chunk_ms > 0 else []
    server = await loop.create_server(lambda: Stream(args.every, chunks, args.chunk_ms / 1000),
                                      "127.0.0.1", args.port, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"READY ws://127.0.0.1:{port}/media", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())

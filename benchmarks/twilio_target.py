"""A lightweight Twilio Media Streams target for benchmarks (not a voice agent).

It accepts streams, ignores the caller's audio, and every ``--every`` seconds
sends a ~2 s reply in one burst (so the caller's playout, VAD and marks run).
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
from websockets.server import ServerProtocol

from loadcaller.audio.pack import load_pack_audio

REPLY_B64 = base64.b64encode(load_pack_audio("agent_ask_number")).decode()


class Stream(asyncio.Protocol):
    def __init__(self, every: float) -> None:
        self.ws = ServerProtocol(max_size=2**22)
        self.every = every
        self.sid = ""
        self.tcp: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

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
        from websockets.protocol import State

        if self.ws.state is not State.OPEN:
            return
        msg = f'{{"event":"media","streamSid":"{self.sid}","media":{{"payload":"{REPLY_B64}"}}}}'
        self.ws.send_text(msg.encode())
        self.ws.send_text(json.dumps({"event": "mark", "streamSid": self.sid,
                                      "mark": {"name": "r"}}).encode())
        self.flush()
        self.timer = asyncio.get_running_loop().call_later(self.every, self.reply)

    def flush(self) -> None:
        if self.tcp is None:
            return
        for data in self.ws.data_to_send():
            if data:
                self.tcp.write(data)
            elif self.tcp.can_write_eof():
                self.tcp.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.tcp = None


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--every", type=float, default=5.0)
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Stream(args.every), "127.0.0.1", args.port,
                                      backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(f"READY ws://127.0.0.1:{port}/media", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())

"""An agent that neither reads nor sends: the caller's own media ends the call at max_unsent.

The guard is the transport's high-water mark (``pause_writing``), checked after every
media write. (An agent that sends, even marks, is caught on the receive path too: the
end-to-end hostile-agent test covers that one.) A real websockets server that stops
reading, with small socket buffers so that 256 KiB of unread media piles up at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from loadcaller.media.outcomes import CallOutcome
from loadcaller.transports.twilio_stream import TwilioStreamTransport, TwilioTarget

FRAME = bytes(range(160))


async def _deaf(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.recv()  # connected
        await ws.recv()  # start
        await asyncio.sleep(30)  # then reads nothing and says nothing


async def test_unread_media_ends_the_call_at_max_unsent() -> None:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited when accepted
    sock.bind(("127.0.0.1", 0))
    # a full queue stops reading; a close it does not read times out at once
    server = await serve(_deaf, sock=sock, max_queue=1, close_timeout=0.1)
    try:
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/media"
        transport = TwilioStreamTransport(TwilioTarget(url=url, max_unsent="256KiB"))
        await transport.connect()
        assert transport._tcp is not None
        transport._tcp.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        frames = 0
        while not transport.ended.done() and frames < 20_000:
            transport.send_audio(FRAME)
            frames += 1
            if frames % 50 == 0:
                await asyncio.sleep(0.001)  # the server's turn to (not) read
        end = transport.ended.result()
        assert end.outcome == CallOutcome.ERROR
        assert "agent not reading" in end.reason and "target.max_unsent" in end.reason
        # at 256 KiB unread, not at the transport's default high-water mark (64 KiB)
        assert "0.3 MiB sent to it unread (limit 0.25 MiB" in end.reason, end.reason
        await transport.hangup()
    finally:
        server.close()

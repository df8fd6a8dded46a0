"""A small Pipecat SmallWebRTC bot, deployed the way Pipecat users deploy them.

FastAPI + uvicorn on 127.0.0.1. ``POST /api/offer`` and ``PATCH /api/offer``
(trickled ICE candidates) go to Pipecat's ``SmallWebRTCRequestHandler``, as in
Pipecat's own development runner; each new peer connection runs a pipeline

    transport.input() -> VADProcessor(SileroVADAnalyzer) -> Responder -> transport.output()

over ``SmallWebRTCTransport``. The bot greets the caller when the client
connects and, whenever Silero says the user stopped speaking, pushes a fixed
spoken reply as PCM. No STT, LLM or TTS and no ICE servers: nothing here reaches
the network. The audio comes from loadcaller's bundled pack (8 kHz); Pipecat
resamples it to the pipeline rate and its WebRTC output track to 48 kHz for
the wire (Opus or PCMU, whichever the caller offered first).

    python tests/e2e/pipecat_webrtc_bot.py PORT [--log calls.jsonl] [--sample-rate 16000]

PORT 0 picks a free port. Prints ``READY http://127.0.0.1:PORT/api/offer`` once
listening. With ``--log``, one JSON line per call when it ends (its ground
truth): the pc_id (what loadcaller records as the call's ``remote_id``), the
codec negotiated, and the ``time.monotonic()`` instants of every VAD start and
stop and every reply pushed (same clock as loadcaller's results).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from fastapi import BackgroundTasks, FastAPI
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat_bot import (  # the Twilio bot's (run as a script: same directory)
    GREETING,
    REPLY,
    common_args,
    pack_pcm,
    run_main,
    run_pipeline,
)


def _codec(connection: SmallWebRTCConnection) -> str | None:
    """The audio codec the answer chose (first in the answer's audio m-line)."""
    for transceiver in connection.pc.getTransceivers():
        if transceiver.kind == "audio" and transceiver._codecs:  # aiortc keeps it private
            return str(transceiver._codecs[0].mimeType)
    return None


def build_app(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    greeting = pack_pcm(GREETING, args.max_pause_ms)
    reply = pack_pcm(REPLY, args.max_pause_ms)
    log = args.log.open("a", encoding="utf-8") if args.log else None
    handler = SmallWebRTCRequestHandler()  # no ICE servers: host candidates on loopback

    async def run_bot(connection: SmallWebRTCConnection) -> None:
        record: dict[str, Any] = {
            "pc_id": connection.pc_id,
            "codec": _codec(connection),
            "pipeline_sample_rate": args.sample_rate,
            "t_offer": time.monotonic(),
            "t_connected": None,
            "greeted": None,
            "vad_start": [],
            "vad_stop": [],
            "replies": [],
            "t_disconnected": None,
        }
        transport = SmallWebRTCTransport(
            webrtc_connection=connection,
            params=TransportParams(audio_in_enabled=True, audio_out_enabled=True),
        )
        # SileroVADAnalyzer() loads its ONNX model synchronously (~100 ms, more on a
        # busy machine): in a thread, so that other calls' audio keeps flowing.
        analyzer = await asyncio.to_thread(
            SileroVADAnalyzer, params=VADParams(stop_secs=args.vad_stop_secs))
        await run_pipeline(transport, analyzer, greeting=greeting, reply=reply,
                           record=record, rate=args.sample_rate, log=log)

    @app.post("/api/offer")
    async def offer(request: SmallWebRTCRequest,
                    background_tasks: BackgroundTasks) -> dict[str, str] | None:
        async def on_connection(connection: SmallWebRTCConnection) -> None:
            background_tasks.add_task(run_bot, connection)

        return await handler.handle_web_request(request=request,
                                                webrtc_connection_callback=on_connection)

    @app.patch("/api/offer")
    async def ice_candidate(request: SmallWebRTCPatchRequest) -> dict[str, str]:
        await handler.handle_patch_request(request)
        return {"status": "success"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(parser)
    parser.add_argument("--sample-rate", type=int, default=16000,
                        help="pipeline audio in/out rate (16000, as Pipecat's WebRTC examples "
                        "run Silero; the transport resamples from and to the wire's 48 kHz)")
    run_main(parser, build_app, "http://127.0.0.1:{port}/api/offer")


if __name__ == "__main__":
    main()

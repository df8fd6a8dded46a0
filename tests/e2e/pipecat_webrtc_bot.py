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
import json
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import BackgroundTasks, FastAPI
from loguru import logger
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams
from pipecat.frames.frames import (
    Frame,
    OutputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import (
    SmallWebRTCPatchRequest,
    SmallWebRTCRequest,
    SmallWebRTCRequestHandler,
)
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport
from pipecat.workers.runner import WorkerRunner
from pipecat_bot import PACK_RATE, pack_pcm  # the Twilio bot's audio (run as a script: same dir)

GREETING = "agent_greeting"  # "Thanks for calling Acme support. How can I help you today?"
REPLY = "agent_ask_number"  # "Sure. What is your order number?"


class Responder(FrameProcessor):
    """Says a fixed reply each time the VAD reports the user stopped speaking."""

    def __init__(self, reply: bytes, record: dict[str, Any]) -> None:
        super().__init__()
        self._reply = reply
        self._record = record

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        await self.push_frame(frame, direction)
        if direction is not FrameDirection.DOWNSTREAM:
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._record["vad_start"].append(time.monotonic())
        elif isinstance(frame, VADUserStoppedSpeakingFrame):
            self._record["vad_stop"].append(time.monotonic())
            await self.push_frame(OutputAudioRawFrame(self._reply, PACK_RATE, 1))
            self._record["replies"].append(time.monotonic())


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
        pipeline = Pipeline([transport.input(), VADProcessor(vad_analyzer=analyzer),
                             Responder(reply, record), transport.output()])
        worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=args.sample_rate,
                                  audio_out_sample_rate=args.sample_rate),
            idle_timeout_secs=60,
        )

        @transport.event_handler("on_client_connected")
        async def on_client_connected(transport: Any, client: Any) -> None:
            record["t_connected"] = time.monotonic()
            await worker.queue_frames([OutputAudioRawFrame(greeting, PACK_RATE, 1)])
            record["greeted"] = time.monotonic()

        @transport.event_handler("on_client_disconnected")
        async def on_client_disconnected(transport: Any, client: Any) -> None:
            record["t_disconnected"] = time.monotonic()
            await worker.cancel()

        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        try:
            await runner.run()
        finally:
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()

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


async def serve(args: argparse.Namespace) -> None:
    config = uvicorn.Config(
        build_app(args), host="127.0.0.1", port=args.port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)  # exits on SIGINT/SIGTERM
    task = asyncio.ensure_future(server.serve())
    for _ in range(300):  # up to 30 s to start listening
        if server.started or task.done():
            break
        await asyncio.sleep(0.1)
    if not server.started:
        task.cancel()
        raise SystemExit("pipecat_webrtc_bot: uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    print(f"READY http://127.0.0.1:{port}/api/offer", flush=True)
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--log", type=Path, help="append one JSON line per call here")
    parser.add_argument("--sample-rate", type=int, default=16000,
                        help="pipeline audio in/out rate (16000, as Pipecat's WebRTC examples "
                        "run Silero; the transport resamples from and to the wire's 48 kHz)")
    parser.add_argument("--vad-stop-secs", type=float, default=0.2,
                        help="Silero VADParams.stop_secs (Pipecat's default 0.2)")
    parser.add_argument("--max-pause-ms", type=int, default=None,
                        help="shorten pauses inside the greeting and reply to this long")
    parser.add_argument("--log-level", default="WARNING", help="loguru level for Pipecat")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()

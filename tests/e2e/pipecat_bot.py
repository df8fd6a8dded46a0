"""A small Pipecat Twilio bot, deployed the way Pipecat users deploy Twilio bots.

FastAPI + uvicorn on 127.0.0.1; Twilio Media Streams connect to ``/ws``. The
endpoint accepts the websocket and reads Twilio's first messages with Pipecat's
``parse_telephony_websocket`` (``connected``, then ``start`` with streamSid,
callSid and customParameters), then runs a pipeline

    transport.input() -> VADProcessor(SileroVADAnalyzer) -> Responder -> transport.output()

over ``FastAPIWebsocketTransport`` with ``TwilioFrameSerializer`` (auto hang-up
off: there are no Twilio credentials and nothing here may reach the network).
The bot greets the caller when the client connects and, whenever Silero says
the user stopped speaking, pushes a fixed spoken reply as PCM. No STT, LLM or
TTS: the audio comes from loadcaller's bundled pack (8 kHz; Pipecat's output
transport resamples it to the pipeline rate, the serializer back to 8 kHz).
The pipeline rate is ``--sample-rate``, or per call the Twilio custom parameter
``pipeline_sample_rate`` (read from ``start.customParameters``, as Pipecat bots
read their per-call settings).

    python tests/e2e/pipecat_bot.py PORT [--log calls.jsonl] [--sample-rate 8000]

PORT 0 picks a free port. Prints ``READY ws://127.0.0.1:PORT/ws`` once listening.
With ``--log``, one JSON line per call when it ends (its ground truth): the ids
Pipecat parsed, the customParameters, and the ``time.monotonic()`` instants of
every VAD stop and every reply pushed (same clock as loadcaller's results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
import uvicorn
from fastapi import FastAPI, WebSocket
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
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

from loadcaller.audio.g711 import ulaw_decode
from loadcaller.audio.pack import load_pack_audio

PACK_RATE = 8000  # the pack is 8 kHz mu-law
GREETING = "agent_greeting"  # "Thanks for calling Acme support. How can I help you today?"
REPLY = "agent_ask_number"  # "Sure. What is your order number?"


def pack_pcm(phrase: str, max_pause_ms: int | None = None) -> bytes:
    """A pack phrase as 16-bit little-endian PCM at 8 kHz.

    ``max_pause_ms`` shortens the quiet stretches inside the phrase (20 ms frames
    below -50 dBFS, loadcaller's end-of-speech threshold) to at most that long.
    """
    samples = np.asarray(ulaw_decode(load_pack_audio(phrase)), dtype="<i2")
    if max_pause_ms is not None:
        n = PACK_RATE // 50  # 20 ms
        frames = [samples[i:i + n] for i in range(0, len(samples), n)]
        power = [float(np.mean(f.astype(np.float64) ** 2)) for f in frames]
        quiet = [p < (32768.0**2) * 10 ** (-50 / 10) for p in power]
        keep, run = [], 0
        for frame, q in zip(frames, quiet, strict=True):
            run = run + 1 if q else 0
            if run * 20 <= max_pause_ms:
                keep.append(frame)
        samples = np.concatenate(keep)
    return samples.tobytes()


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


async def run_pipeline(transport: Any, analyzer: SileroVADAnalyzer, *, greeting: bytes,
                       reply: bytes, record: dict[str, Any], rate: int, log: IO[str] | None
                       ) -> None:
    """transport.input() -> VAD -> Responder -> transport.output(), greeting the caller
    when the client connects; the call's ``record`` is logged when the call ends."""
    pipeline = Pipeline([transport.input(), VADProcessor(vad_analyzer=analyzer),
                         Responder(reply, record), transport.output()])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=rate, audio_out_sample_rate=rate),
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


def build_app(args: argparse.Namespace) -> FastAPI:
    app = FastAPI()
    greeting = pack_pcm(GREETING, args.max_pause_ms)
    reply = pack_pcm(REPLY, args.max_pause_ms)
    log = args.log.open("a", encoding="utf-8") if args.log else None

    @app.websocket("/ws")
    async def websocket_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        t_accept = time.monotonic()
        transport_type, call_data = await parse_telephony_websocket(websocket)
        custom = dict(call_data.get("body") or {})
        rate = int(custom.get("pipeline_sample_rate", args.sample_rate))
        record: dict[str, Any] = {
            "transport_type": transport_type,
            "stream_sid": call_data["stream_id"],
            "call_sid": call_data["call_id"],
            "custom_parameters": custom,
            "pipeline_sample_rate": rate,
            "t_accept": t_accept,
            "t_connected": None,
            "greeted": None,
            "vad_start": [],
            "vad_stop": [],
            "replies": [],
            "t_disconnected": None,
        }
        serializer = TwilioFrameSerializer(
            stream_sid=call_data["stream_id"],
            call_sid=call_data["call_id"],
            params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
        )
        transport = FastAPIWebsocketTransport(
            websocket=websocket,
            params=FastAPIWebsocketParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                add_wav_header=False,
                serializer=serializer,
            ),
        )
        vad_params = VADParams(stop_secs=args.vad_stop_secs)
        if args.vad_load == "thread":
            # SileroVADAnalyzer() loads its ONNX model synchronously (~100 ms, more on a
            # busy machine): inline, that stalls every other call's audio on this loop.
            analyzer = await asyncio.to_thread(SileroVADAnalyzer, params=vad_params)
        else:
            analyzer = SileroVADAnalyzer(params=vad_params)
        await run_pipeline(transport, analyzer, greeting=greeting, reply=reply,
                           record=record, rate=rate, log=log)

    return app


async def serve_app(app: FastAPI, port: int, ready: str) -> None:
    """Serve ``app`` on 127.0.0.1:port; print ``READY`` + ``ready`` (``{port}`` filled)."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)  # exits on SIGINT/SIGTERM
    task = asyncio.ensure_future(server.serve())
    for _ in range(300):  # up to 30 s to start listening
        if server.started or task.done():
            break
        await asyncio.sleep(0.1)
    if not server.started:
        task.cancel()
        raise SystemExit(f"{sys.argv[0]}: uvicorn did not start")
    bound = server.servers[0].sockets[0].getsockname()[1]
    print("READY " + ready.format(port=bound), flush=True)
    await task


def common_args(parser: argparse.ArgumentParser) -> None:
    """The options both bots take (port, log, Silero's stop, pauses, log level)."""
    parser.add_argument("port", type=int, help="port on 127.0.0.1 (0 picks a free one)")
    parser.add_argument("--log", type=Path, help="append one JSON line per call here")
    parser.add_argument("--vad-stop-secs", type=float, default=0.2,
                        help="Silero VADParams.stop_secs (Pipecat's default 0.2)")
    parser.add_argument("--max-pause-ms", type=int, default=None,
                        help="shorten pauses inside the greeting and reply to this long")
    parser.add_argument("--log-level", default="WARNING", help="loguru level for Pipecat")


def run_main(parser: argparse.ArgumentParser, build: Any, ready: str) -> None:
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    asyncio.run(serve_app(build(args), args.port, ready))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(parser)
    parser.add_argument("--sample-rate", type=int, default=8000,
                        help="pipeline audio in/out rate (8000 as in Pipecat's Twilio "
                        "examples; 16000 makes the serializer resample); a call's "
                        "customParameters.pipeline_sample_rate overrides it")
    parser.add_argument("--vad-load", choices=("inline", "thread"), default="inline",
                        help="build SileroVADAnalyzer on the event loop, as Pipecat's examples "
                        "do (inline), or in a worker thread (thread)")
    run_main(parser, build_app, "ws://127.0.0.1:{port}/ws")


if __name__ == "__main__":
    main()

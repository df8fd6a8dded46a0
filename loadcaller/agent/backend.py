"""A mock backend API (an order-status CRM) the reference agent calls every turn.

``POST /v1/turn`` with ``{"call_sid", "turn"}`` answers, after a latency drawn
from a distribution, ``{"reply": {"id", "text"}, "order": {...}}``. The agent
reads ``reply.id``; a chaos proxy that renames or removes it makes the agent
fall back, which is the point. ``GET /healthz`` answers ``ok``.
"""

from __future__ import annotations

import asyncio
import random

from aiohttp import web

from loadcaller.agent.dist import Distribution, parse_distribution

REPLIES = (
    ("agent_ask_number", "Sure. What is your order number?"),
    ("agent_order_found", "I found your order. It ships tomorrow."),
    ("agent_delivery", "It will arrive on Thursday between nine and noon."),
    ("agent_address", "I can update that. What is the new address?"),
    ("agent_goodbye", "You're welcome. Have a great day."),
)


def make_backend_app(latency: Distribution | None = None,
                     seed: int | None = None) -> web.Application:
    """The backend as an aiohttp application."""
    dist = latency or parse_distribution("40ms")
    rng = random.Random(seed)

    async def turn(request: web.Request) -> web.Response:
        try:
            body = await request.json()
            index = int(body.get("turn", 0))
        except (ValueError, TypeError, AttributeError):
            return web.json_response({"error": "body must be JSON with a turn number"}, status=400)
        await asyncio.sleep(dist.sample(rng) / 1000.0)
        reply_id, text = REPLIES[index % len(REPLIES)]
        return web.json_response(
            {
                "reply": {"id": reply_id, "text": text},
                "order": {"id": "4572", "status": "shipped", "eta_days": 2, "items": ["lamp"]},
            }
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/v1/turn", turn)
    app.router.add_get("/healthz", healthz)
    return app


async def start_backend(host: str, port: int, latency: Distribution | None = None,
                        seed: int | None = None) -> tuple[web.AppRunner, int]:
    """Start the backend; return its runner and the bound port."""
    runner = web.AppRunner(make_backend_app(latency, seed), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    host_port = runner.addresses[0]
    return runner, int(host_port[1])

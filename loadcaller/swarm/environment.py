"""Build a Locust :class:`~locust.env.Environment` for a compiled run.

Locust shows its ``host`` in the web UI and the HTML report: it gets the target
URL with its credentials redacted (:func:`loadcaller.redact.redact_url`); the
callers dial the real one from the run spec, never from Locust.
"""

from __future__ import annotations

import argparse
from typing import Any

from locust import argument_parser
from locust.env import Environment
from locust.event import Events
from locust.runners import STATE_CLEANUP, Runner
from locust.shape import LoadTestShape

from loadcaller.compile import RunSpec
from loadcaller.redact import redact_url
from loadcaller.swarm.shapes import Shape
from loadcaller.swarm.user import VoiceUser


class ProfileShape(LoadTestShape):
    """Adapts one of :mod:`loadcaller.swarm.shapes` to Locust."""

    abstract = False

    def __init__(self, shape: Shape) -> None:
        super().__init__()
        self.shape = shape

    def tick(self) -> tuple[int, float] | None:
        return self.shape.tick(self.get_run_time())


def locust_options(spec: RunSpec, *, headless: bool, **extra: Any) -> argparse.Namespace:
    """Locust's own option namespace with its defaults, as its web UI expects."""
    parser = argument_parser.get_empty_argument_parser(add_help=False, default_config_files=[])
    argument_parser.setup_parser_arguments(parser)
    # never an empty list: configargparse would read sys.argv instead
    argv = ["--users", str(spec.plan.users)] + (["--headless"] if headless else [])
    opts = parser.parse_args(args=argv)
    opts.num_users = spec.plan.users
    opts.spawn_rate = spec.plan.spawn_rate
    opts.stop_timeout = spec.plan.stop_timeout_s
    opts.host = redact_url(spec.target.url)
    for key, value in extra.items():
        setattr(opts, key, value)
    return opts


def make_environment(spec: RunSpec, *, headless: bool, **extra: Any) -> Environment:
    """An environment whose only user class is :class:`VoiceUser`."""
    shape = getattr(spec, "shape", None)
    env = Environment(
        user_classes=[VoiceUser],
        shape_class=ProfileShape(shape) if shape is not None else None,
        events=Events(),
        host=redact_url(spec.target.url),
        stop_timeout=spec.plan.stop_timeout_s,
        parsed_options=locust_options(spec, headless=headless, **extra),
    )
    return env


def hang_up_now(runner: Runner) -> None:
    """No more grace for the calls in progress: a stop from now on hangs up at once, and
    one already waiting out ``stop_timeout`` (the duration was up, then a signal came)
    ends its users now instead of up to ``stop_timeout`` later."""
    runner.environment.stop_timeout = 0.0
    if runner.state == STATE_CLEANUP:
        runner.user_greenlets.kill(block=False)

"""The gevent <-> asyncio bridge: one uvloop loop on a native OS thread.

How this works: :class:`LoopThread` starts a native thread (the unpatched
``_thread.start_new_thread``) that runs a uvloop event loop forever. A greenlet
hands it a coroutine with :meth:`LoopThread.run` and waits on a
``gevent.event.AsyncResult``; when the coroutine ends, the loop thread hands the
outcome back with ``hub.loop.run_callback_threadsafe`` (the one supported
cross-thread wake-up of a gevent hub; ``AsyncResult.set`` from another thread
is not). If the waiting greenlet is killed (Locust stopping a user), the
coroutine is cancelled in its own loop, so a call hangs up cleanly.

Every hand-off is timed both ways (submit -> coroutine running, coroutine done
-> greenlet running again): that is the timing error the bridge adds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import gevent
import gevent.event
import gevent.monkey

from loadcaller.calls.histogram import Histogram
from loadcaller.timebase import now_ns

T = TypeVar("T")

_start_new_thread = gevent.monkey.get_original("_thread", "start_new_thread")


class LoopThread:
    """A uvloop event loop on its own native thread, driven from greenlets."""

    def __init__(self, *, name: str = "loadcaller-loop") -> None:
        self.name = name
        self.hub = gevent.get_hub()
        self.to_loop = Histogram()  # submit -> coroutine started, in the loop thread
        self.to_greenlet = Histogram()  # coroutine done -> waiting greenlet resumed
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread_id: int | None = None
        self._started = threading.Event()
        self._finished = gevent.event.AsyncResult()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the thread and wait (briefly, blocking) until its loop runs."""
        _start_new_thread(self._main, ())
        if not self._started.wait(timeout_s):
            raise RuntimeError("the event loop thread did not start")

    def _main(self) -> None:
        try:
            import uvloop

            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        self.thread_id = threading.get_ident()
        loop.call_soon(self._started.set)
        try:
            loop.run_forever()
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self.hub.loop.run_callback_threadsafe(self._finished.set, None)

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule a coroutine on the loop (from any thread); no waiting."""
        assert self.loop is not None, "start() first"
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, make: Callable[[], Awaitable[T]], timeout_s: float | None = None) -> T:
        """Run ``make()`` in the loop and wait for its result in this greenlet.

        Killing the greenlet (or the timeout) cancels the coroutine.
        """
        t_submit = now_ns()
        result: gevent.event.AsyncResult = gevent.event.AsyncResult()

        async def timed() -> T:
            self.to_loop.record_ns(now_ns() - t_submit)
            return await make()

        def done(fut: concurrent.futures.Future[T]) -> None:  # in the loop thread
            self.hub.loop.run_callback_threadsafe(_settle, result, fut, now_ns())

        fut = self.submit(timed())
        fut.add_done_callback(done)
        try:
            value, t_done = result.get(timeout=timeout_s)
        except BaseException:
            fut.cancel()
            raise
        self.to_greenlet.record_ns(now_ns() - t_done)
        return value  # type: ignore[no-any-return]

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run a plain function in the loop thread soon (thread-safe)."""
        assert self.loop is not None, "start() first"
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the loop (its tasks are cancelled) and wait for the thread to end."""
        if self.loop is None or self._finished.ready():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._finished.wait(timeout_s)


def _settle(result: gevent.event.AsyncResult, fut: concurrent.futures.Future[Any],
            t_done: int) -> None:
    """On the hub thread: pass the coroutine's outcome to the waiting greenlet."""
    if fut.cancelled():
        result.set_exception(concurrent.futures.CancelledError())
        return
    exc = fut.exception()
    if exc is not None:
        result.set_exception(exc)
    else:
        result.set((fut.result(), t_done))

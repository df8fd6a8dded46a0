"""Patch gevent before Locust is imported, the way the uvloop thread needs.

Locust's own import runs ``gevent.monkey.patch_all()``, which also turns
``threading`` and ``queue`` into greenlet versions. Our asyncio loop lives on a
native OS thread, and code running there (aiortc's ``run_in_executor``, its
``threading.Thread`` + ``queue.Queue`` pairs) would then become greenlets of a
hub that never runs in that thread: WebRTC silently sends no frames. So we set
``LOCUST_SKIP_MONKEY_PATCH=1`` and patch everything except threads and queues.
aiortc is imported here, in the main thread, before anything forks.

Two threads now share one GIL: the gevent hub (Locust, shipping, /metrics) and
the event loop (the media clock). A thread waiting for the GIL gets it only
after the holder's switch interval (5 ms by default), which would show up as
media clock lag; :data:`SWITCH_INTERVAL_S` shortens it.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys

SWITCH_INTERVAL_S = 0.0005

_done = False


def patch() -> None:
    """Patch once; call before the first ``import locust``."""
    global _done
    if _done:
        return
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"
    from gevent import monkey

    monkey.patch_all(thread=False, queue=False)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # aiortc's native extensions and module-level state belong to the main thread
    with contextlib.suppress(ImportError):
        importlib.import_module("aiortc")
    _done = True

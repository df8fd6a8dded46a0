"""JSON from a peer (an agent, its signalling server, a caller): every refusal is a
ValueError.

``json.loads`` recurses once per nesting level: a 10 kB message of nested arrays
raises RecursionError, which escaped the callers' ``except ValueError`` and ended
every call as "connection lost" with a traceback per message.
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """``json.loads``; ValueError (a JSONDecodeError, or one that says why) when the text
    is not JSON this process can read."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None

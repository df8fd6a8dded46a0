"""Faults, one per file, registered by the `type` used in YAML.

The registry is `REGISTRY` (type name -> class); `fault_class(name)` looks one
up and raises UnknownFaultType listing the known names. Importing this package
imports every fault module so that each registers itself. docs/faults.md says
how to add one.
"""

from chaos.faults import (  # noqa: F401  (imported for registration)
    bandwidth,
    empty_body,
    garbage,
    hang,
    latency,
    packet_faults,
    rate_limit,
    reset,
    schema_drift,
    sse_cut,
    sse_drop,
    sse_duplicate,
    sse_inject,
    sse_omit_done,
    sse_reorder,
    sse_stall,
    status,
    truncate,
    ws_abort,
    ws_close,
    ws_delay,
    ws_drop,
    ws_duplicate,
    ws_fragment,
    ws_handshake_delay,
    ws_handshake_reject,
    ws_pong_starvation,
    ws_reorder,
)
from chaos.faults.base import REGISTRY, Fault, HttpFault, Params, WsFault, fault_class, register

__all__ = ["REGISTRY", "Fault", "HttpFault", "Params", "WsFault", "fault_class", "register"]

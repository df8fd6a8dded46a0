"""UDP faults: one per packet model of chaos/packet.py, registered as `udp_<model>`.

The models themselves (one class each) live in chaos/packet.py so that a
caller's media path can use them without the proxy; this file only exposes
them to the registry under the YAML names udp_loss, udp_gilbert_elliott,
udp_delay, udp_reorder, udp_duplicate, udp_corrupt, udp_outage, udp_rate and
udp_preset.
"""

from __future__ import annotations

import random
from typing import ClassVar

from chaos.faults.base import Fault, Layer, register
from chaos.packet import MODELS, Impairment


class UdpFault(Fault):
    """A packet impairment on a UDP route; one model instance per session and direction."""

    layer: ClassVar[Layer] = "udp"
    model: ClassVar[str]

    def build(self, rng: random.Random) -> Impairment:
        """A fresh stateful impairment drawing from `rng`."""
        return MODELS[self.model][1](self.params, rng)


def _make(model: str) -> type[UdpFault]:
    spec_cls = MODELS[model][0]
    cls = type(f"Udp_{model}", (UdpFault,), {
        "type": f"udp_{model}", "model": model, "Params": spec_cls,
        "__doc__": f"UDP fault wrapping the `{model}` packet model.",
    })
    return register(cls)  # type: ignore[return-value]


FAULTS = {name: _make(name) for name in MODELS}

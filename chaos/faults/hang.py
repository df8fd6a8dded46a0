"""hang: hold the connection silent, then carry on (none), close (fin) or reset (rst)."""

from __future__ import annotations

from typing import ClassVar, Literal

from chaos.actions import FaultContext, Hang, RequestAction
from chaos.faults.base import HttpFault, Params, register
from chaos.units import Duration


class HangParams(Params):
    """`duration` absent: hang until the client gives up."""

    duration: Duration | None = None
    then: Literal["none", "fin", "rst"] = "none"


@register
class HangFault(HttpFault):
    """Accept the request and say nothing."""

    type = "hang"
    Params = HangParams
    magnitude_fields: ClassVar[tuple[str, ...]] = ("duration",)

    def on_request(self, ctx: FaultContext) -> RequestAction | None:
        """Hang for the configured time."""
        return Hang(self.params.duration, self.params.then)

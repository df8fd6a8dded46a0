"""Call quality: an E-model MOS estimate and the media summary of a call.

The E-model (ITU-T G.107) rates a call by a transmission rating R from 0 to
100 and maps it to a mean opinion score. This is the simplification VoIP
monitors commonly use (Cole and Rosenbluth, "Voice over IP performance
monitoring", 2001), with every default of G.107 left in place, so that

    R = 93.2 - Id - Ie_eff

- ``Id``, the delay impairment, from the one-way mouth-to-ear delay ``d`` in ms:
  ``Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)`` (H the unit step), a fit of
  G.107's delay terms at default echo loss.
- ``d`` is the effective delay: network one-way delay plus ``2 * jitter`` (a
  jitter buffer sized to twice the jitter, the usual rule) plus 10 ms of G.711
  packetisation and processing. The one-way delay is passed in (half an RTCP
  round trip where one is known); it is 0 when nothing measured it.
- ``Ie_eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)`` (G.107 7.2), with G.113
  Appendix I values for G.711: ``Ie = 0`` and ``Bpl = 25.1`` with packet loss
  concealment. We assume concealment (``plc=True``) because the far ends that
  matter (phones, gateways, speech recognisers' front ends, WebRTC stacks)
  conceal loss, and a MOS figure is read as "what a listener on a phone would
  rate"; ``plc=False`` gives G.113's 4.3, far harsher (1 % loss costs 18 R
  points instead of 3.6). ``Ppl`` is loss in percent as the listener heard it:
  lost plus late (arrived after its slot was played over).
- ``BurstR`` is the observed mean loss-run length over the run length random
  loss of the same rate would give, ``mean_run * (1 - p)`` (equal to G.107's
  ``1 / (p + q)`` for a two-state Markov loss process); samples that look less
  bursty than random are taken as random (``BurstR >= 1``).
- ``MOS = 1 + 0.035 R + R (R - 60)(100 - R) 7e-6`` for 0 < R < 100 (G.107 B.4),
  floored at 1 (the cubic dips to 0.99 for R < 6.5).

Reference points: R = 93.2 gives MOS 4.41; G.711 with concealment and no delay
or jitter gives 4.40 with no loss, 4.32 at 1 % random loss, 3.91 at 5 %.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final, TypedDict, Unpack

__all__ = [
    "BPL_G711",
    "BPL_G711_PLC",
    "R_DEFAULT",
    "MediaStats",
    "burst_ratio",
    "delay_impairment",
    "effective_delay_ms",
    "loss_impairment",
    "mos",
    "mos_from_r",
    "r_factor",
]

R_DEFAULT: Final = 93.2  # G.107 R with every parameter at its default
IE_G711: Final = 0.0  # G.113 Appendix I
BPL_G711_PLC: Final = 25.1  # G.113 Appendix I, G.711 with packet loss concealment
BPL_G711: Final = 4.3  # G.113 Appendix I, G.711 without concealment
PACKETISATION_MS: Final = 10.0


def delay_impairment(delay_ms: float) -> float:
    """Id for a mouth-to-ear delay in ms (Cole and Rosenbluth's fit of G.107)."""
    d = max(0.0, delay_ms)
    return 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)


def effective_delay_ms(delay_ms: float, jitter_ms: float) -> float:
    """Mouth-to-ear delay: one-way delay, a jitter buffer of twice the jitter, 10 ms codec."""
    return delay_ms + 2.0 * jitter_ms + PACKETISATION_MS


def loss_impairment(
    loss_ratio: float, *, burst_r: float = 1.0, ie: float = IE_G711, bpl: float = BPL_G711_PLC
) -> float:
    """Ie_eff for a loss ratio (0-1) and burst ratio (G.107 7.2)."""
    ppl = min(max(loss_ratio, 0.0), 1.0) * 100.0
    if ppl == 0.0:
        return ie
    return ie + (95.0 - ie) * ppl / (ppl / max(burst_r, 1.0) + bpl)


def r_factor(
    loss_ratio: float,
    *,
    jitter_ms: float = 0.0,
    delay_ms: float = 0.0,
    burst_r: float = 1.0,
    plc: bool = True,
) -> float:
    """The transmission rating R of a G.711 call, on G.107's scale of 0 to 100 (a peer
    whose RTP timestamps jump at random once gave a jitter of 18,608 s and R = -4,987,207)."""
    bpl = BPL_G711_PLC if plc else BPL_G711
    r = (R_DEFAULT
         - delay_impairment(effective_delay_ms(delay_ms, jitter_ms))
         - loss_impairment(loss_ratio, burst_r=burst_r, bpl=bpl))
    return min(100.0, max(0.0, r))


def mos_from_r(r: float) -> float:
    """The G.107 mapping of R to an estimated mean opinion score (1 to 4.5)."""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    # The cubic dips up to 0.01 below 1 for R < 6.5; clamping keeps MOS monotone in R.
    return max(1.0, 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6)


class Link(TypedDict, total=False):
    """What the network did besides loss (``r_factor``'s and ``mos``'s keywords)."""

    jitter_ms: float
    delay_ms: float
    burst_r: float
    plc: bool


def mos(loss_ratio: float, **link: Unpack[Link]) -> float:
    """The E-model MOS estimate of a G.711 call (see the module docstring)."""
    return mos_from_r(r_factor(loss_ratio, **link))


def burst_ratio(loss_ratio: float, lost: int, loss_runs: int) -> float:
    """BurstR from ``lost`` packets in ``loss_runs`` runs at ``loss_ratio`` (1.0 if none)."""
    if loss_runs <= 0 or lost <= 0 or loss_ratio >= 1.0:
        return 1.0
    return max(1.0, lost / loss_runs * (1.0 - loss_ratio))


@dataclass(frozen=True, slots=True)
class MediaStats:
    """One call's media, as calls.jsonl states it (``media`` object).

    ``loss_ratio`` is the network's (lost over expected); the MOS uses the loss
    the listener heard, lost plus late. ``mos`` and ``r_factor`` are None when
    no audio arrived to judge.
    """

    packets_sent: int
    octets_sent: int
    packets_received: int
    packets_expected: int
    lost: int
    late: int
    loss_ratio: float
    jitter_ms: float
    out_of_order: int
    duplicates: int
    malformed: int
    rtcp: int
    burst_ratio: float
    r_factor: float | None
    mos: float | None

    @classmethod
    def build(
        cls,
        *,
        packets_sent: int,
        octets_sent: int,
        packets_received: int,
        packets_expected: int,
        lost: int,
        late: int = 0,
        skipped: int | None = None,
        loss_bursts: int = 0,
        jitter_ms: float = 0.0,
        out_of_order: int = 0,
        duplicates: int = 0,
        malformed: int = 0,
        rtcp: int = 0,
        delay_ms: float = 0.0,
        plc: bool = True,
    ) -> MediaStats:
        """Summarise counters and compute the MOS; ``skipped`` packets in ``loss_bursts``
        runs (default: lost plus late) give the burst ratio."""
        heard_lost = lost + late
        heard_ratio = heard_lost / packets_expected if packets_expected else 0.0
        runs_of = heard_lost if skipped is None else skipped
        burst = burst_ratio(heard_ratio, runs_of, loss_bursts)
        r: float | None = None
        score: float | None = None
        if packets_received > 0:
            r = r_factor(
                heard_ratio, jitter_ms=jitter_ms, delay_ms=delay_ms, burst_r=burst, plc=plc
            )
            score = mos_from_r(r)
        return cls(
            packets_sent=packets_sent,
            octets_sent=octets_sent,
            packets_received=packets_received,
            packets_expected=packets_expected,
            lost=lost,
            late=late,
            loss_ratio=lost / packets_expected if packets_expected else 0.0,
            jitter_ms=jitter_ms,
            out_of_order=out_of_order,
            duplicates=duplicates,
            malformed=malformed,
            rtcp=rtcp,
            burst_ratio=burst,
            r_factor=r,
            mos=score,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object for calls.jsonl (ratios to 4 places, ms and scores to 3)."""
        d = asdict(self)
        d["loss_ratio"] = round(self.loss_ratio, 4)
        d["jitter_ms"] = round(self.jitter_ms, 3)
        d["burst_ratio"] = round(self.burst_ratio, 3)
        d["r_factor"] = None if self.r_factor is None else round(self.r_factor, 2)
        d["mos"] = None if self.mos is None else round(self.mos, 3)
        return d

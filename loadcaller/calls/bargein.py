"""The agent's stop reaction to a caller talking over it (sans-I/O).

How this works: a ``barge_in`` step starts speaking a while into the agent's
reply as the caller hears it. From the instant its first frame leaves
(``t_first``) a :class:`BargeInWatch` looks at the caller's ear (the
:class:`~loadcaller.calls.measure.Listener`): the agent's run of speech that
was playing then ends at the VAD's last speech frame, and the agent's audio as
heard ends one frame later. That instant minus ``t_first`` is the reaction.
Over Twilio the playout queue stands between the two, so an agent that stops
sending but forgot ``clear`` is heard until its queue runs dry: the caller's
figure, not the agent's claim.

The VAD confirms an end only after its hangover, so "never stopped" is decided
once the stop timeout plus the hangover have passed with no end at or before
the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadcaller.calls.measure import Listener
from loadcaller.media.frames import FRAME_NS
from loadcaller.media.outcomes import BargeInOutcome


@dataclass(slots=True)
class BargeInWatch:
    """One barge-in, from the first interrupting frame until the agent's stop is known."""

    reply_onset: int | None  # the onset of the reply barged into (None: no reply began)
    stop_timeout_ns: int
    settle_ns: int  # the VAD's hangover and a frame: how late an end becomes known
    t_first: int = 0  # the caller's first interrupting frame left (0: not yet)
    deadline: int = 0  # t_first + the stop timeout
    outcome: BargeInOutcome | None = None
    t_stop: int | None = None

    def started(self, t_first: int) -> None:
        """The first interrupting frame left at ``t_first``."""
        self.t_first = t_first
        self.deadline = t_first + self.stop_timeout_ns

    def poll(self, listener: Listener, now: int, *, final: bool = False) -> bool:
        """Decide at ``now`` if it can be; True once :attr:`outcome` is set.

        ``final``: the call is over, decide with what is known (``undecided`` when
        the agent's run had not visibly ended and the timeout had not passed).
        """
        if self.outcome is not None:
            return True
        if self.reply_onset is None:
            self.outcome = BargeInOutcome.NO_REPLY
            return True
        if not self.t_first:  # the caller has not begun to speak
            if final:
                self.outcome = BargeInOutcome.UNDECIDED
            return final
        onset = self.reply_onset  # the agent's run playing at t_first (a later one, if any)
        for o in listener.onsets:
            if self.reply_onset <= o <= self.t_first:
                onset = o
        end = listener.end_after(onset)
        if end is not None:
            heard_until = end + FRAME_NS
            if heard_until <= self.t_first:
                self.outcome = BargeInOutcome.NOT_SPEAKING
            elif end <= self.deadline:
                self.outcome, self.t_stop = BargeInOutcome.STOPPED, heard_until
            else:
                self.outcome = BargeInOutcome.NOT_STOPPED
            return True
        if now >= self.deadline + self.settle_ns:
            self.outcome = BargeInOutcome.NOT_STOPPED
            return True
        if final:
            self.outcome = BargeInOutcome.UNDECIDED
        return final

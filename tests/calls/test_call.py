"""The call runner on a real media clock with a fake transport: how calls end."""

from __future__ import annotations

import asyncio

from loadcaller.calls.call import Call
from loadcaller.calls.clock import MediaClock
from loadcaller.calls.scenario import CallPolicy, Dtmf, Pause, Scenario
from loadcaller.media.frames import PlayedFrame
from loadcaller.media.outcomes import CallOutcome
from loadcaller.transports.base import CallTransport


class FakeTransport(CallTransport):
    name = "fake"

    def __init__(self, *, fail_after: int | None = None) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.sent = 0
        self.digits: list[str] = []
        self.hung_up = False

    async def connect(self) -> None:
        pass

    def send_audio(self, frame: bytes) -> None:
        self.sent += 1
        if self.fail_after is not None and self.sent > self.fail_after:
            raise RuntimeError("boom")

    def heard(self, now_ns: int) -> list[PlayedFrame]:
        return []

    def send_dtmf(self, digit: str) -> None:
        self.digits.append(digit)

    async def hangup(self) -> None:
        self.hung_up = True


async def place(transport: FakeTransport, *steps: object) -> tuple[Call, MediaClock]:
    clock = MediaClock()
    clock.start()
    call = Call(call_id="c1", transport=transport, scenario=Scenario("s", steps),  # type: ignore[arg-type]
                clock=clock, policy=CallPolicy(max_call_ns=5_000_000_000))
    try:
        async with asyncio.timeout(10):
            await call.run()
    finally:
        await clock.stop()
    return call, clock


async def test_a_call_runs_its_script_on_the_clock_and_hangs_up():
    transport = FakeTransport()
    call, _ = await place(transport, Dtmf("7"), Pause(200_000_000))
    assert call.record.outcome == CallOutcome.COMPLETED
    assert transport.digits == ["7"] and transport.hung_up
    assert 8 <= transport.sent <= 14  # 200 ms of frames, 20 ms apart


async def test_an_exception_in_our_tick_ends_the_call_as_an_error_not_a_silent_hang():
    transport = FakeTransport(fail_after=3)
    call, clock = await place(transport, Pause(3_000_000_000))
    assert call.record.outcome == CallOutcome.ERROR
    assert call.record.reason == "local: RuntimeError: boom"
    assert clock.member_errors == 1 and transport.hung_up

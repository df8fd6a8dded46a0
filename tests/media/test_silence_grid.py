"""SilenceGrid: silence heard on the 20 ms grid while packets pause, never doubling late ones."""

from loadcaller.media.frames import FRAME_NS, SILENCE_FRAME, PlayedFrame, SilenceGrid

HOLD = 60_000_000


def test_nothing_before_the_grid_starts():
    assert SilenceGrid(HOLD).fill(10**12) == []


def test_frames_are_made_up_only_once_the_hold_has_passed():
    grid = SilenceGrid(HOLD, start_ns=1_000_000_000)
    # the first frame is due at t0; it is made up only after t0 + 20 ms + 60 ms
    assert grid.fill(1_000_000_000 + FRAME_NS + HOLD - 1) == []
    frames = grid.fill(1_000_000_000 + FRAME_NS + HOLD)
    assert frames == [PlayedFrame(1_000_000_000, b"")]
    # 100 ms later: five more, on the grid, none twice
    more = grid.fill(1_000_000_000 + FRAME_NS + HOLD + 100_000_000)
    assert [f.t_ns for f in more] == [1_000_000_000 + k * FRAME_NS for k in range(1, 6)]


def test_real_frames_move_the_grid_past_them():
    grid = SilenceGrid(HOLD, start_ns=1)
    grid.heard([PlayedFrame(500_000_000, b"x" * 160)])
    assert grid.grid == 500_000_000 + FRAME_NS
    assert grid.fill(500_000_000 + 2 * FRAME_NS + HOLD - 1) == []
    made_up = grid.fill(500_000_000 + 2 * FRAME_NS + HOLD)
    assert made_up == [PlayedFrame(500_000_000 + FRAME_NS, b"")]
    # an older frame (reordered) never moves the grid back
    grid.heard([PlayedFrame(100, b"x")])
    assert grid.grid == 500_000_000 + 2 * FRAME_NS


def test_the_audio_of_made_up_frames_is_the_callers_choice():
    grid = SilenceGrid(0, start_ns=1)
    assert grid.fill(1 + FRAME_NS, SILENCE_FRAME)[0].audio is SILENCE_FRAME

"""server/ratelimit.py's in-process moving windows (no Redis), driven with explicit times."""

from __future__ import annotations

from server.ratelimit import MemoryWindows


def test_moving_window_counts_remaining_and_reset() -> None:
    w = MemoryWindows()
    answers = [w.hit("device:1", 3, 60, now=1000.0 + i) for i in range(4)]
    assert [a[0] for a in answers] == [True, True, True, False]
    assert [a[1] for a in answers] == [2, 1, 0, 0]
    assert answers[3][2] == 1060.0  # the oldest hit frees its slot at 1000 + 60
    # A refused request does not take a slot: at 1060 the first hit has left the window.
    allowed, remaining, reset_at = w.hit("device:1", 3, 60, now=1060.0)
    assert (allowed, remaining, reset_at) == (True, 0, 1061.0)
    # Keys are independent.
    assert w.hit("device:2", 3, 60, now=1003.0)[0] is True


def test_idle_keys_are_swept() -> None:
    w = MemoryWindows()
    w.SWEEP_EVERY = 5
    for i in range(4):
        w.hit(f"device:{i}", 10, 60, now=0.0)
    w.hit("device:new", 10, 60, now=1000.0)  # the 5th hit sweeps the idle ones
    assert list(w._hits) == ["device:new"]


def test_a_hit_may_cost_several_units_and_never_more_than_is_left() -> None:
    w = MemoryWindows()
    assert w.hit("phone:1", 6, 60, now=0.0, cost=4)[:2] == (True, 2)
    # 3 more do not fit: refused whole, nothing counted.
    assert w.hit("phone:1", 6, 60, now=1.0, cost=3)[:2] == (False, 2)
    assert w.hit("phone:1", 6, 60, now=2.0, cost=2)[:2] == (True, 0)
    # Once the first hits leave the window, their units are free again.
    assert w.hit("phone:1", 6, 60, now=60.5, cost=4)[:2] == (True, 0)

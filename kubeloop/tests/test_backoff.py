"""The supervisor's restart policy as a pure function: time is an input."""

from __future__ import annotations

import pytest

from kubeloop.embedded.backoff import BackoffPolicy, after_exit

POLICY = BackoffPolicy(initial_s=1.0, cap_s=30.0, reset_after_s=60.0)


def test_delay_doubles_from_one_second_to_the_cap() -> None:
    assert [POLICY.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert POLICY.delay(0) == 0.0
    assert POLICY.delay(10_000) == 30.0  # no overflow after days of crashing


def test_crashes_in_a_row_back_off() -> None:
    streak, now = 0, 1000.0
    delays = []
    for _ in range(6):
        started = now
        restart = after_exit(POLICY, streak, started_at=started, exited_at=started + 0.5)
        delays.append(restart.delay_s)
        assert restart.start_at == started + 0.5 + restart.delay_s
        streak, now = restart.streak, restart.start_at
    assert delays == [1, 2, 4, 8, 16, 30]
    assert streak == 6


@pytest.mark.parametrize(("uptime", "streak", "delay"), [(59.9, 4, 8.0), (60.0, 1, 1.0)])
def test_a_component_that_stayed_up_starts_a_new_streak(
    uptime: float, streak: int, delay: float
) -> None:
    restart = after_exit(POLICY, 3, started_at=0.0, exited_at=uptime)
    assert (restart.streak, restart.delay_s) == (streak, delay)

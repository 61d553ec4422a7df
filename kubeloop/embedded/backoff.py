"""The supervisor's restart policy, a pure core: time is an input, nothing here sleeps or
reads a clock (like kubelet's CrashLoopBackOff).

A component that exits is started again after a delay: 1 s after its first crash, doubling
with each crash in a row (1, 2, 4, 8, 16 s), capped at 30 s. A component that stayed up for
60 s or longer before it exited starts a new streak: its delay is 1 s again. Kubelet uses
10 s doubling to 300 s and resets after 10 minutes; a laptop's embedded default wants a
crashed operator back within seconds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    initial_s: float = 1.0
    cap_s: float = 30.0
    reset_after_s: float = 60.0

    def delay(self, streak: int) -> float:
        """The delay before the restart that follows the `streak`-th crash in a row (1-based)."""
        if streak < 1:
            return 0.0
        # Bounded exponent: no overflow for a component that has crashed for days.
        return min(self.cap_s, self.initial_s * 2.0 ** min(streak - 1, 62))


@dataclass(frozen=True)
class Restart:
    """What to do after an exit: the new crash streak and when to start again."""

    streak: int
    delay_s: float
    start_at: float


def after_exit(policy: BackoffPolicy, streak: int, started_at: float, exited_at: float) -> Restart:
    """The component started at `started_at` exited at `exited_at` after `streak` crashes in
    a row: the next start. Long enough up (`reset_after_s`) and the streak starts over."""
    uptime = exited_at - started_at
    streak = 1 if uptime >= policy.reset_after_s else streak + 1
    delay = policy.delay(streak)
    return Restart(streak=streak, delay_s=delay, start_at=exited_at + delay)

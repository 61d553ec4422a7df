"""The Degraded test's false-alarm rate and power, simulated (seeded; the operator's own rule
judged at EVERY pass, ``tests/support/degraded_simulation.py``).

Declared: alpha = 5%: a stable version whose accuracy sits exactly at validation - margin
(the worst case the budget covers; a version at its validation figure alarms less) is called
Degraded at some pass in at most alpha of sequences. Tolerance: the count a true rate of
exactly alpha stays under with probability 99.9% (binomial quantile). Power: a version worse
than validation by 3 x margin is Degraded within the 40 passes in at least 90% of sequences.
Longer runs and more cases: ``bench/degraded_alarm.py``.
"""

from __future__ import annotations

import numpy as np

from tests.support.degraded_simulation import World, first_alarms
from tests.support.gate_simulation import binomial_upper

SEQUENCES = 400
ALPHA = 0.05


def test_at_the_boundary_the_false_alarm_rate_is_within_alpha() -> None:
    world = World(accuracy=0.78, alpha=ALPHA)  # validation 0.80 - margin 0.02
    alarms = first_alarms(world, SEQUENCES, np.random.default_rng(21))
    assert (alarms >= 0).sum() <= binomial_upper(ALPHA, SEQUENCES), alarms


def test_a_version_worse_by_three_margins_is_degraded() -> None:
    world = World(accuracy=0.74, alpha=ALPHA)
    alarms = first_alarms(world, SEQUENCES, np.random.default_rng(22))
    assert (alarms >= 0).mean() >= 0.9, alarms


def test_peeking_at_the_windows_interval_would_break_alpha() -> None:
    """The simulation can tell a bad rule: the window's fixed 95% interval read every pass
    (the rule before this one) alarms at the boundary far more often than 5%."""
    world = World(accuracy=0.78, alpha=ALPHA)
    alarms = first_alarms(world, SEQUENCES, np.random.default_rng(23), peek=True)
    assert (alarms >= 0).sum() > binomial_upper(ALPHA, SEQUENCES), alarms

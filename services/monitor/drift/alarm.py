"""Drift alarms with a declared false-alarm budget (pure: time is an input, no I/O).

A per-window test at ``pValue`` 0.05, checked every 30 s, raises a false alarm on about one
window in twenty of data that has not drifted: up to six an hour. This module turns the
windows' verdicts into an *alarm* whose false-alarm rate is declared instead:

* **Evidence windows.** Windows that overlap share rows, so their p-values are dependent and
  no run-length figure would hold. A check counts as evidence only when every row of its
  window arrived after the newest row of the last counted window, and at least the monitor's
  drift interval after that check (on-demand evaluations cannot speed the clock up). Other
  checks are still reported; they leave the alarm as it was.
* **consecutive: k.** The alarm is raised when the last ``k`` evidence windows each failed
  the per-window test; it clears on the first one that passes. With a budget as well, ``k``
  above 1 is a second condition on the CUSUM's alarm (it never fires on fewer windows).
* **expectedRunTime (sequential).** A one-sided CUSUM (Page 1954, "Continuous inspection
  schemes", Biometrika 41) on the evidence ``z = Phi^-1(1 - p)`` of each window's p-value
  (the detector's own, already corrected across features: Bonferroni's ``n * min p``)::

      S_t = min(2h, max(0, S_{t-1} + z_t - k)),   alarm when S_t >= h, clear when S_t = 0

  ``z`` is clipped to [-3, 8] (p = 1 would be -inf; p below ~6e-16 counts as 6e-16, so a
  single glitchy window adds at most 7.5). ``h`` is calibrated so that the average run length
  between false alarms, in evidence windows, is ``expectedRunTime / driftInterval``: the run
  length of the CUSUM with ``p ~ Uniform(0, 1)`` is computed by the Markov-chain
  approximation of Brook & Evans (1972, Biometrika 59(3)) on 400 states and ``h`` found by
  bisection; ``services/monitor/drift/tests/test_alarm.py`` checks it against simulated run
  lengths.

Why this holds the budget: a valid p-value is *super-uniform* under no drift
(``P(p <= a) <= a``; Bonferroni's ``n * min p`` is valid whatever the dependence between
features), so each ``z`` is stochastically at most a clipped standard normal; the CUSUM
recursion is monotone in its inputs, so with independent evidence windows the run length is
stochastically at least the calibrated one. Evidence windows are at least one drift interval
apart, so the expected time between false alarms is at least ``expectedRunTime``. What is
not covered: windows compared with one fixed, finite reference share its sampling noise (the
simulation tests draw a fresh reference per run; ``bench/drift_alarm.py`` reports both), and
data that is genuinely different from the training reference is not a false alarm.

Alibi Detect's online detectors declare the same budget differently: an expected run time
``ert`` with per-step thresholds set by bootstrap simulation from the reference so that the
false-detection probability at each step is ``1 / ert`` (``fpr = 1 / ert`` in
``alibi_detect/cd/base_online.py``; ``MMDDriftOnline``/``LSDDDriftOnline``/``CVMDriftOnline``
``_configure_thresholds``; Cobb & Van Looveren 2022, "Sequential multivariate change detection
with calibrated and memoryless false detection rates", AISTATS). They run on every served
row with their own statistic; here the monitor's existing window detectors stay and the
calibration sits on top of their p-values, so it holds for any detector that returns one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats

from contracts.monitor_config import AlarmConfig

#: Evidence bounds: z of p ~ 0.9987 and of p ~ 6e-16.
EVIDENCE_FLOOR = -3.0
EVIDENCE_CAP = 8.0
#: CUSUM reference value k: tuned to a shift of one unit in the mean evidence (Page's k = d/2).
ALLOWANCE = 0.5
#: Markov-chain states of the run-length calculation (Brook & Evans): with 400, the run
#: lengths of 20 to 500 windows came within ~1% of 4,000 simulated runs each.
CHAIN_STATES = 400
#: The fewest evidence windows a budget may mean (a shorter one would alarm on every window).
MIN_RUN_CHECKS = 2.0

RULE_WINDOW = "window"  # no alarm config: each checked window decides (the pre-alarm behaviour)
RULE_CONSECUTIVE = "consecutive"
RULE_CUSUM = "cusum"


def evidence(p_value: float) -> float:
    """``Phi^-1(1 - p)``, clipped to [EVIDENCE_FLOOR, EVIDENCE_CAP]."""
    if not math.isfinite(p_value):
        return EVIDENCE_FLOOR
    p = min(max(float(p_value), 0.0), 1.0)
    return float(np.clip(stats.norm.isf(p), EVIDENCE_FLOOR, EVIDENCE_CAP))


def _increment_cdf(x: np.ndarray, allowance: float) -> np.ndarray:
    """CDF of ``clip(Z, floor, cap) - k`` for a standard normal Z (atoms at both clips)."""
    shifted = x + allowance
    cdf = stats.norm.cdf(shifted)
    return np.where(shifted < EVIDENCE_FLOOR, 0.0, np.where(shifted >= EVIDENCE_CAP, 1.0, cdf))


def null_run_length(threshold: float, allowance: float = ALLOWANCE) -> float:
    """Average CUSUM run length (windows) to a false alarm, from S = 0, with uniform p-values.

    Brook & Evans: [0, h) cut into states of width ``w`` centred on ``j * w`` (state 0 holds
    S near 0 and the reset), ``R[i, j]`` the one-step transition probability between
    transient states, and the run lengths ``L = (I - R)^-1 1``.
    """
    if threshold <= 0:
        return 1.0
    m = CHAIN_STATES
    width = threshold / (m - 0.5)
    # The chain is Toeplitz in j - i: one CDF evaluation per offset, then indexed.
    edges = _increment_cdf((np.arange(-(m - 1), m + 1) - 0.5) * width, allowance)
    by_offset = np.diff(edges)  # P(step lands in the state `offset` away)
    steps = np.arange(m)[None, :] - np.arange(m)[:, None] + (m - 1)
    transitions = by_offset[steps]
    transitions[:, 0] = _increment_cdf((0.5 - np.arange(m)) * width, allowance)
    lengths = np.linalg.solve(np.eye(m) - transitions, np.ones(m))
    return float(lengths[0])


@lru_cache(maxsize=256)
def cusum_threshold(run_checks: float, allowance: float = ALLOWANCE) -> float:
    """The h whose null average run length is ``run_checks`` evidence windows (bisection)."""
    target = max(float(run_checks), MIN_RUN_CHECKS)
    low, high = 0.0, 1.0
    while null_run_length(high, allowance) < target:
        low, high = high, high * 2.0
    for _ in range(32):
        middle = (low + high) / 2.0
        if null_run_length(middle, allowance) < target:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True)
class AlarmRule:
    """The alarm a version's checks are held to (built from ``DriftConfig.alarm``)."""

    consecutive: int = 1
    expected_run_time_s: float | None = None
    interval_s: float = 30.0

    @classmethod
    def of(cls, config: AlarmConfig | None, interval_s: float) -> AlarmRule | None:
        if config is None:
            return None
        return cls(config.consecutive, config.expected_run_time_seconds, float(interval_s))

    @property
    def name(self) -> str:
        return RULE_CUSUM if self.expected_run_time_s is not None else RULE_CONSECUTIVE

    @property
    def run_checks(self) -> float | None:
        """The declared budget in evidence windows (one per drift interval at most)."""
        if self.expected_run_time_s is None:
            return None
        return max(self.expected_run_time_s / self.interval_s, MIN_RUN_CHECKS)

    @property
    def threshold(self) -> float | None:
        checks = self.run_checks
        return None if checks is None else cusum_threshold(round(checks, 6))


@dataclass(frozen=True)
class WindowEvidence:
    """What one check tells the alarm: the window's p-value and verdict, and its rows' span."""

    p_value: float | None
    failed: bool  # the per-window test's own verdict (pValue after correction)
    first_row_at: float | None
    last_row_at: float | None


def counts_as_evidence(
    rule: AlarmRule, previous: Mapping[str, Any], window: WindowEvidence, at: float
) -> str | None:
    """None when the window is fresh evidence; else why it is not counted."""
    if window.first_row_at is None or window.last_row_at is None:
        return "the window's rows carry no times"
    last_end = previous.get("lastWindowEnd")
    if last_end is not None and window.first_row_at <= float(last_end):
        return "the window shares rows with the last counted window"
    last_at = previous.get("lastCountedAt")
    if last_at is not None and at - float(last_at) < rule.interval_s:
        return "less than one drift interval since the last counted window"
    if rule.name == RULE_CUSUM and window.p_value is None:
        return "the detector returned no window p-value"
    return None


def next_state(
    rule: AlarmRule, previous: Mapping[str, Any], window: WindowEvidence, at: float
) -> dict[str, Any]:
    """The alarm state after one check (persisted by the monitor, served in the drift view)."""
    threshold = rule.threshold
    base = {
        **previous,
        "rule": rule.name,
        "threshold": threshold,
        "expectedRunTimeSeconds": rule.expected_run_time_s,
        "requiredConsecutive": rule.consecutive,
        "windowFailed": window.failed,
    }
    skipped = counts_as_evidence(rule, previous, window, at)
    if skipped is not None:
        return {**base, "counted": False, "notCounted": skipped, "changed": False}
    was = bool(previous.get("isDrift", False))
    consecutive = int(previous.get("consecutive", 0)) + 1 if window.failed else 0
    statistic = float(previous.get("statistic", 0.0))
    if threshold is not None:
        assert window.p_value is not None  # counts_as_evidence refused it otherwise
        z = evidence(window.p_value)
        statistic = min(2.0 * threshold, max(0.0, statistic + z - ALLOWANCE))
        base["evidence"] = z
        # consecutive 1 (the default) adds nothing to the CUSUM: a window that did not fail
        # on its own may still tip accumulated evidence over h.
        raised = statistic >= threshold and (
            rule.consecutive == 1 or consecutive >= rule.consecutive
        )
        cleared = statistic <= 0.0
    else:
        raised = consecutive >= rule.consecutive
        cleared = not window.failed
    is_drift = raised or (was and not cleared)
    changed = is_drift != was
    return {
        **base,
        "isDrift": is_drift,
        "since": at if changed or "since" not in previous else previous["since"],
        "consecutive": consecutive,
        "statistic": statistic,
        "transitions": int(previous.get("transitions", 0)) + int(changed),
        "evidenceWindows": int(previous.get("evidenceWindows", 0)) + 1,
        "lastWindowEnd": window.last_row_at,
        "lastCountedAt": at,
        "counted": True,
        "notCounted": None,
        "changed": changed,
    }


def window_p_value(result: Mapping[str, Any]) -> float | None:
    """The window's p-value for the global null "no feature drifted" from a detector result.

    Detectors correct across features themselves (Bonferroni by default: ``p_value`` is
    ``min(1, n * min p)``); an uncorrected result is corrected here, since the minimum of
    ``n`` p-values is not a p-value.
    """
    p_values = result.get("feature_p_values") or {}
    if result.get("correction") == "none" and len(p_values) > 1:
        return min(1.0, len(p_values) * min(float(p) for p in p_values.values()))
    value = result.get("p_value")
    return None if value is None else float(value)

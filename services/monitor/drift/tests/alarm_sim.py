"""Simulated drift checks for the alarm rule: the suite's short runs and bench/drift_alarm.py.

The monitor's ``ks`` detector on ``windows`` of data against a fixed reference, vectorised
over many windows at once (the detector itself costs ~9 ms a window; 10,000 windows here
take seconds). ``ks_p_values`` reproduces ``scipy.stats.ks_2samp(method="asymp")`` (the
detector's test) exactly for continuous data: the two-sided statistic is the largest gap
between the empirical CDFs, which is reached at a window point (from the right or the left),
and its p-value is ``kstwo.sf(D, round(n m / (n + m)))``; ``test_alarm.py`` checks it against
the detector. The window p-value is Bonferroni's ``min(1, d * min p)``, as the detector's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from contracts.monitor_config import AlarmConfig
from services.monitor.drift.alarm import AlarmRule, WindowEvidence, next_state

FEATURES = 10
WINDOW = 500
REFERENCE = 5000
SHIFTED_FEATURE = 3
INTERVAL_S = 30.0


def ks_p_values(reference_sorted: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Per-window, per-feature KS p-values: ``windows`` is (B, d, n) (features first, so each
    feature's rows sort contiguously), the reference (m, d) sorted per column; returns (B, d)."""
    distances = ks_distances(reference_sorted, windows)
    m, n = reference_sorted.shape[0], windows.shape[2]
    return np.clip(stats.kstwo.sf(distances, round(n * m / (n + m))), 0.0, 1.0)


def ks_distances(
    reference_sorted: np.ndarray, windows: np.ndarray, ties: bool = True
) -> np.ndarray:
    """The two-sample KS statistic per window and feature, (B, d)."""
    batch, d, n = windows.shape
    m = reference_sorted.shape[0]
    ordered = np.sort(windows, axis=2)
    rank = np.arange(1, n + 1, dtype=np.float64)[None, :]
    distances = np.empty((batch, d))
    for f in range(d):
        points = ordered[:, f, :]
        column = np.ascontiguousarray(reference_sorted[:, f], dtype=points.dtype)
        # The reference's CDF just right and just left of each window point: equal but for
        # ties, which continuous data has only where rounding makes them (``ties=False``
        # skips the second search, half the cost, for the bulk runs).
        right = np.searchsorted(column, points, side="right") / m
        left = np.searchsorted(column, points, side="left") / m if ties else right
        gaps = np.maximum(rank / n - right, left - (rank - 1) / n)
        distances[:, f] = gaps.max(axis=1)
    return distances


def window_p_values(
    rng: np.random.Generator,
    reference_sorted: np.ndarray,
    windows: int,
    shift: float = 0.0,
    rows: int = WINDOW,
    chunk: int = 500,
) -> np.ndarray:
    """Bonferroni window p-values of ``windows`` fresh windows (``shift`` sigma on one
    feature), in chunks to bound memory."""
    out = []
    d = reference_sorted.shape[1]
    for start in range(0, windows, chunk):
        size = min(chunk, windows - start)
        data = rng.standard_normal((size, d, rows), dtype=np.float32)
        data[:, SHIFTED_FEATURE, :] += shift
        # Every feature has the same sample sizes, so the smallest p-value is the largest
        # statistic's: one (costly) kstwo.sf per window instead of d.
        largest = ks_distances(reference_sorted, data, ties=False).max(axis=1)
        m = reference_sorted.shape[0]
        smallest = np.clip(stats.kstwo.sf(largest, round(rows * m / (rows + m))), 0.0, 1.0)
        out.append(np.minimum(1.0, d * smallest))
    return np.concatenate(out)


def reference(rng: np.random.Generator, rows: int = REFERENCE, d: int = FEATURES) -> np.ndarray:
    return np.sort(rng.standard_normal((rows, d)), axis=0)


@dataclass
class Replay:
    """The alarm rule run over a sequence of evidence windows one interval apart."""

    rule: AlarmRule
    state: dict[str, object] = field(default_factory=dict)
    checks: int = 0

    def feed(self, p_value: float, failed: bool) -> bool:
        """One evidence window; True when the alarm rises on it."""
        at = self.checks * self.rule.interval_s
        window = WindowEvidence(p_value, failed, at - self.rule.interval_s / 2, at)
        self.state = next_state(self.rule, self.state, window, at)
        self.checks += 1
        return bool(self.state["changed"]) and bool(self.state["isDrift"])

    def reset(self) -> None:
        """After an alarm: acted upon (a retrain), the next run starts afresh."""
        self.state = {"lastWindowEnd": self.state.get("lastWindowEnd"),
                      "lastCountedAt": self.state.get("lastCountedAt")}  # fmt: skip


def rule(
    expected_run_checks: float | None = None, consecutive: int = 1, interval_s: float = INTERVAL_S
) -> AlarmRule:
    seconds = None if expected_run_checks is None else expected_run_checks * interval_s
    config = AlarmConfig(consecutive=consecutive, expected_run_time_seconds=seconds)
    built = AlarmRule.of(config, interval_s)
    assert built is not None
    return built


def false_alarms(alarm: AlarmRule, p_values: np.ndarray, p_threshold: float) -> int:
    """Alarm onsets over a stream of null windows, restarting after each alarm."""
    replay = Replay(alarm)
    raised = 0
    for p in p_values:
        if replay.feed(float(p), bool(p < p_threshold)):
            raised += 1
            replay.reset()
    return raised


def raw_alarms(p_values: np.ndarray, p_threshold: float) -> int:
    """The per-window rule: every window whose p-value is under the threshold alarms."""
    return int(np.sum(p_values < p_threshold))


def delays(alarm: AlarmRule, streams: Iterator[np.ndarray], p_threshold: float) -> list[int | None]:
    """Windows after the shift until the alarm (1 = on the first shifted window)."""
    out: list[int | None] = []
    for stream in streams:
        replay = Replay(alarm)
        delay = None
        for index, p in enumerate(stream, start=1):
            if replay.feed(float(p), bool(p < p_threshold)):
                delay = index
                break
        out.append(delay)
    return out

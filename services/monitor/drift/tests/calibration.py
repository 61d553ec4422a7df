"""Shared synthetic data and counting for the calibration tests (seeded, deterministic).

Acceptance (issue 6): on windows drawn from the reference distribution the false-alarm rate
is at most the configured p-value; a 0.5 sigma shift in one of 10 features with windows of
500 rows is detected in at least 95% of windows.

Tolerance for the false-alarm side: with ``n`` independent windows and a true false-alarm
rate of at most ``alpha``, the number of alarms is stochastically below Binomial(n, alpha),
so it exceeds ``binom.ppf(1 - 1e-3, n, alpha)`` with probability below 0.1%. The tests assert
the count stays within that bound (the data are seeded, so the outcome is fixed; the bound
says how surprising a failure would be for a calibrated detector).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats

from services.monitor.drift import DriftDetector

N_FEATURES = 10
WINDOW = 500
SHIFTED_FEATURE = 3
SHIFT = 0.5  # in units of the feature's standard deviation
CATEGORY_CUTS = np.array([-1.5, -0.5, 0.5, 1.5])  # 5 categories of a standard normal
P_VALUE = 0.05
ALARM_SURPRISE = 1e-3

Sampler = Callable[[np.random.Generator, int, float], np.ndarray]


def numeric_sample(rng: np.random.Generator, rows: int, shift: float = 0.0) -> np.ndarray:
    """Standard normal features; ``shift`` sigma added to one of them."""
    data = rng.standard_normal((rows, N_FEATURES))
    data[:, SHIFTED_FEATURE] += shift
    return data


def categorical_sample(rng: np.random.Generator, rows: int, shift: float = 0.0) -> np.ndarray:
    """The numeric sample discretised into 5 categories: a discretised 0.5 sigma shift."""
    return np.searchsorted(CATEGORY_CUTS, numeric_sample(rng, rows, shift)).astype(float)


def mixed_sample(rng: np.random.Generator, rows: int, shift: float = 0.0) -> np.ndarray:
    """Features 0-6 numeric, 7-9 categorical; the shift lands on numeric feature 3."""
    data = numeric_sample(rng, rows, shift)
    data[:, 7:] = np.searchsorted(CATEGORY_CUTS, data[:, 7:])
    return data


def mixed_sample_categorical_shift(
    rng: np.random.Generator, rows: int, shift: float = 0.0
) -> np.ndarray:
    """As :func:`mixed_sample` but the shift lands on categorical feature 8."""
    data = rng.standard_normal((rows, N_FEATURES))
    data[:, 8] += shift
    data[:, 7:] = np.searchsorted(CATEGORY_CUTS, data[:, 7:])
    return data


MIXED_CATEGORICAL = {"f7", "f8", "f9"}
ALL_CATEGORICAL = {f"f{i}" for i in range(N_FEATURES)}


def max_false_alarms(windows: int, alpha: float = P_VALUE) -> int:
    """Most alarms a detector with false-alarm rate <= alpha shows with prob >= 1 - 1e-3."""
    return int(stats.binom.ppf(1 - ALARM_SURPRISE, windows, alpha))


def count_alarms(
    detector: DriftDetector,
    sample: Sampler,
    windows: int,
    shift: float,
    seed: int,
) -> int:
    rng = np.random.default_rng(seed)
    return sum(detector.check(sample(rng, WINDOW, shift)).is_drift for _ in range(windows))


def fitted(
    detector: DriftDetector, sample: Sampler, reference_rows: int, categorical: set[str]
) -> DriftDetector:
    reference = sample(np.random.default_rng(12345), reference_rows, 0.0)
    names = [f"f{i}" for i in range(N_FEATURES)]
    return detector.fit(reference, names, categorical)


def check_calibration(
    detector: DriftDetector,
    sample: Sampler,
    categorical: set[str],
    reference_rows: int,
    null_windows: int,
    shift_windows: int,
) -> None:
    """Fit on a reference, then: unshifted windows alarm no more often than a false-alarm rate
    <= P_VALUE allows, and a half-sigma shift in one of ten features alarms in >= 95% of them."""
    detector = fitted(detector, sample, reference_rows, categorical)

    alarms = count_alarms(detector, sample, null_windows, shift=0.0, seed=1)
    detections = count_alarms(detector, sample, shift_windows, shift=0.5, seed=2)

    name = detector.name
    assert alarms <= max_false_alarms(null_windows), (
        f"{name}: {alarms}/{null_windows} false alarms at p={P_VALUE}"
    )
    assert detections >= 0.95 * shift_windows, f"{name}: {detections}/{shift_windows} detected"

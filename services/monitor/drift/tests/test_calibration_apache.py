"""Calibration of the Apache-2.0 detector set (issue 6 acceptance); see calibration.py."""

from __future__ import annotations

import pytest

from services.monitor.drift import create_detector
from services.monitor.drift.scipy_detectors import DEFAULT_PSI_THRESHOLD
from services.monitor.drift.tests.calibration import (
    ALL_CATEGORICAL,
    MIXED_CATEGORICAL,
    P_VALUE,
    Sampler,
    categorical_sample,
    count_alarms,
    fitted,
    max_false_alarms,
    mixed_sample,
    mixed_sample_categorical_shift,
    numeric_sample,
)

NULL_WINDOWS = 200  # bound: at most max_false_alarms(200) = 21 alarms (10.5%) at alpha 0.05
SHIFT_WINDOWS = 60
REFERENCE_ROWS = 5000

FAMILIES: list[tuple[str, Sampler, set[str]]] = [
    ("ks", numeric_sample, set()),
    ("chi2", categorical_sample, ALL_CATEGORICAL),
    ("chi2", numeric_sample, set()),  # numeric features binned at reference quantiles
    ("tabular", mixed_sample, MIXED_CATEGORICAL),
    ("tabular", mixed_sample_categorical_shift, MIXED_CATEGORICAL),
    ("psi", numeric_sample, set()),
    ("psi", categorical_sample, ALL_CATEGORICAL),
]
IDS = [f"{name}-{sample.__name__}" for name, sample, _ in FAMILIES]


@pytest.mark.parametrize(("name", "sample", "categorical"), FAMILIES, ids=IDS)
def test_false_alarm_rate_is_at_most_the_p_value(
    name: str, sample: Sampler, categorical: set[str]
) -> None:
    detector = fitted(create_detector(name, p_value=P_VALUE), sample, REFERENCE_ROWS, categorical)

    alarms = count_alarms(detector, sample, NULL_WINDOWS, shift=0.0, seed=1)

    assert alarms <= max_false_alarms(NULL_WINDOWS), (
        f"{name}: {alarms}/{NULL_WINDOWS} false alarms at p={P_VALUE}"
    )


@pytest.mark.parametrize(("name", "sample", "categorical"), FAMILIES, ids=IDS)
def test_half_sigma_shift_in_one_of_ten_features_is_detected(
    name: str, sample: Sampler, categorical: set[str]
) -> None:
    detector = fitted(create_detector(name, p_value=P_VALUE), sample, REFERENCE_ROWS, categorical)

    detections = count_alarms(detector, sample, SHIFT_WINDOWS, shift=0.5, seed=2)

    assert detections >= 0.95 * SHIFT_WINDOWS, f"{name}: {detections}/{SHIFT_WINDOWS} detected"


def test_psi_default_threshold_is_the_documented_one() -> None:
    # The calibration above is what justifies this value; changing it means re-running them.
    detector = create_detector("psi")
    assert detector.threshold == DEFAULT_PSI_THRESHOLD == 0.1  # type: ignore[attr-defined]


def test_bound_catches_a_detector_without_multiple_testing_correction() -> None:
    # Without correction, 10 features at 0.05 each alarm on ~40% of null windows: the
    # false-alarm bound used above must reject that, or it checks nothing.
    windows = 50
    detector = fitted(
        create_detector("chi2", p_value=P_VALUE, correction="none"),
        categorical_sample,
        REFERENCE_ROWS,
        ALL_CATEGORICAL,
    )

    alarms = count_alarms(detector, categorical_sample, windows, shift=0.0, seed=1)

    assert alarms > max_false_alarms(windows)


# MMD (torch, batched permutations): 100 permutations; 40 null windows -> at most
# max_false_alarms(40) = 7 alarms; 40 shifted windows -> at least 38 detections.
MMD_WINDOWS = 40


@pytest.mark.slow  # imports torch: tens of seconds on a loaded 2-core machine
@pytest.mark.usefixtures("torch_single_thread")
def test_mmd_is_calibrated_and_detects_half_sigma_shift() -> None:
    detector = fitted(
        create_detector("mmd", p_value=P_VALUE, n_permutations=100),
        numeric_sample,
        1000,
        set(),
    )

    alarms = count_alarms(detector, numeric_sample, MMD_WINDOWS, shift=0.0, seed=1)
    detections = count_alarms(detector, numeric_sample, MMD_WINDOWS, shift=0.5, seed=2)

    assert alarms <= max_false_alarms(MMD_WINDOWS), f"{alarms}/{MMD_WINDOWS} false alarms"
    assert detections >= 0.95 * MMD_WINDOWS, f"{detections}/{MMD_WINDOWS} detected"

"""Apache-2.0 detector set: MMD calibration, the PSI threshold, and a check of the bound itself.

The calibration of the other families is in test_calibration.py."""

from __future__ import annotations

import pytest

from services.monitor.drift import create_detector
from services.monitor.drift.scipy_detectors import DEFAULT_PSI_THRESHOLD
from services.monitor.drift.tests.calibration import (
    ALL_CATEGORICAL,
    P_VALUE,
    categorical_sample,
    check_calibration,
    count_alarms,
    fitted,
    max_false_alarms,
    numeric_sample,
)

REFERENCE_ROWS = 5000


def test_psi_default_threshold_is_the_documented_one() -> None:
    # The calibration (test_calibration.py) justifies this value; changing it means re-running it.
    detector = create_detector("psi")
    assert detector.threshold == DEFAULT_PSI_THRESHOLD == 0.1  # type: ignore[attr-defined]


def test_bound_catches_a_detector_without_multiple_testing_correction() -> None:
    # Without correction, 10 features at 0.05 each alarm on ~40% of null windows: the
    # false-alarm bound the calibration uses must reject that, or it checks nothing.
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
    detector = create_detector("mmd", p_value=P_VALUE, n_permutations=100)
    check_calibration(detector, numeric_sample, set(), 1000, MMD_WINDOWS, MMD_WINDOWS)

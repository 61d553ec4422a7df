"""Alibi Detect detectors: MMD calibration, prediction drift, agreement with scipy, bad windows.

The calibration of the univariate ones is in test_calibration.py. Fewer windows than the scipy
set: Alibi's import alone takes tens of seconds on a loaded 2-core machine, and MMD runs a
permutation test per window.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.monitor.drift import create_detector
from services.monitor.drift.tests.calibration import (
    P_VALUE,
    check_calibration,
    numeric_sample,
)

pytestmark = pytest.mark.slow

# MMD: 20 permutations resolve p = 0 < 0.05 (a null window alarms with prob 1/21 < 0.05);
# 20 null windows -> at most max_false_alarms(20) = 5 alarms; 20 shifted windows must give
# at least 19 detections. A 500-row reference keeps the kernel matrix small.
MMD_WINDOWS = 20
MMD_REFERENCE_ROWS = 500
MMD_PERMUTATIONS = 20


@pytest.mark.usefixtures("torch_single_thread")
def test_mmd_is_calibrated_and_detects_half_sigma_shift() -> None:
    detector = create_detector("alibi-mmd", p_value=P_VALUE, n_permutations=MMD_PERMUTATIONS)
    check_calibration(detector, numeric_sample, set(), MMD_REFERENCE_ROWS, MMD_WINDOWS, MMD_WINDOWS)


def test_prediction_drift_on_scores() -> None:
    rng = np.random.default_rng(7)
    scores = 1 / (1 + np.exp(-rng.standard_normal(5000)))
    detector = create_detector("alibi-prediction", p_value=P_VALUE).fit(scores, ["score"])

    same = detector.check(1 / (1 + np.exp(-rng.standard_normal(500))))
    shifted = detector.check(1 / (1 + np.exp(-(rng.standard_normal(500) + 0.5))))

    assert not same.is_drift
    assert shifted.is_drift and shifted.drifted_features == ["score"]
    assert shifted.license.startswith("BSL")


def test_alibi_ks_and_scipy_ks_agree() -> None:
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((2000, 4))
    window = rng.standard_normal((300, 4)) + np.array([0.0, 0.3, 0.0, 0.0])
    alibi = create_detector("alibi-ks").fit(reference).check(window)
    scipy = create_detector("ks").fit(reference).check(window)

    assert alibi.is_drift == scipy.is_drift
    assert alibi.threshold == pytest.approx(scipy.threshold)
    for name, p in scipy.feature_p_values.items():
        assert alibi.feature_p_values[name] == pytest.approx(p, rel=1e-3, abs=1e-6)


def test_alibi_detectors_reject_non_finite_windows() -> None:
    from services.monitor.drift import InvalidWindowError

    rng = np.random.default_rng(4)
    reference = rng.standard_normal((500, 3))
    for name in ("alibi-ks", "alibi-tabular", "alibi-chi2"):
        detector = create_detector(name).fit(reference)
        window = rng.standard_normal((50, 3))
        window[5, 1] = np.inf
        with pytest.raises(InvalidWindowError) as caught:
            detector.check(window)
        assert caught.value.reason == "non-finite"

"""Calibration of every detector family on one table (issue 6 acceptance); see calibration.py.

The Apache-2.0 set runs 200 null windows (at most max_false_alarms(200) = 21 alarms, 10.5%, at
alpha 0.05) and 60 shifted ones. Alibi Detect runs fewer, 100 (at most 13 alarms) and 40, and
is marked slow: its import alone takes tens of seconds on a loaded 2-core machine.
"""

from __future__ import annotations

import pytest
from _pytest.mark import ParameterSet

from services.monitor.drift import create_detector
from services.monitor.drift.tests.calibration import (
    ALL_CATEGORICAL,
    MIXED_CATEGORICAL,
    P_VALUE,
    Sampler,
    categorical_sample,
    check_calibration,
    mixed_sample,
    mixed_sample_categorical_shift,
    numeric_sample,
)

REFERENCE_ROWS = 5000


def apache(name: str, sample: Sampler, categorical: set[str]) -> ParameterSet:
    return pytest.param(name, sample, categorical, 200, 60, id=f"{name}-{sample.__name__}")


def alibi(name: str, sample: Sampler, categorical: set[str]) -> ParameterSet:
    test_id = f"{name}-{sample.__name__}"
    return pytest.param(name, sample, categorical, 100, 40, id=test_id, marks=pytest.mark.slow)


FAMILIES = [
    apache("ks", numeric_sample, set()),
    apache("chi2", categorical_sample, ALL_CATEGORICAL),
    apache("chi2", numeric_sample, set()),  # numeric features binned at reference quantiles
    apache("tabular", mixed_sample, MIXED_CATEGORICAL),
    apache("tabular", mixed_sample_categorical_shift, MIXED_CATEGORICAL),
    apache("psi", numeric_sample, set()),
    apache("psi", categorical_sample, ALL_CATEGORICAL),
    alibi("alibi-ks", numeric_sample, set()),
    alibi("alibi-chi2", categorical_sample, ALL_CATEGORICAL),
    alibi("alibi-tabular", mixed_sample, MIXED_CATEGORICAL),
    alibi("alibi-tabular", mixed_sample_categorical_shift, MIXED_CATEGORICAL),
]


@pytest.mark.parametrize(
    ("name", "sample", "categorical", "null_windows", "shift_windows"), FAMILIES
)
def test_false_alarms_at_most_the_p_value_and_half_sigma_shift_detected(
    name: str, sample: Sampler, categorical: set[str], null_windows: int, shift_windows: int
) -> None:
    detector = create_detector(name, p_value=P_VALUE)
    check_calibration(detector, sample, categorical, REFERENCE_ROWS, null_windows, shift_windows)

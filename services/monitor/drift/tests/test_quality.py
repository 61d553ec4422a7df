"""Feature null-rate and training-serving skew checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from services.monitor.drift import (
    DetectorConfigError,
    InvalidWindowError,
    NullRateCheck,
    SkewCheck,
    SkewTolerance,
)


def test_null_rate_alarms_above_reference_plus_tolerance() -> None:
    reference = pd.DataFrame({"age": [1.0, None, 3.0, 4.0], "city": ["a", "b", None, None]})
    check = NullRateCheck(tolerance=0.1).fit(reference)
    window = pd.DataFrame({"age": [None, None, 1.0, 2.0], "city": ["a", None, "b", None]})

    result = check.check(window)

    assert result.reference_rates == {"age": 0.25, "city": 0.5}
    assert result.window_rates == {"age": 0.5, "city": 0.5}
    assert result.exceeded == ["age"] and result.is_alarm


def test_null_rate_within_tolerance_is_quiet_and_counts_nan_in_arrays() -> None:
    reference = np.zeros((100, 2))
    reference[:10, 0] = np.nan
    check = NullRateCheck(tolerance=0.05).fit(reference, ["x", "y"])
    window = np.zeros((100, 2))
    window[:14, 0] = np.nan

    result = check.check(window)

    assert result.window_rates["x"] == pytest.approx(0.14) and not result.is_alarm


def test_null_rate_rejects_wrong_shape_and_bad_tolerance() -> None:
    check = NullRateCheck().fit(np.zeros((10, 2)), ["x", "y"])
    with pytest.raises(InvalidWindowError) as caught:
        check.check(np.zeros((10, 3)))
    assert caught.value.reason == "shape"
    with pytest.raises(DetectorConfigError, match="1.5"):
        NullRateCheck(tolerance=1.5)


def test_skew_counts_mismatches_beyond_tolerance_per_feature() -> None:
    check = SkewCheck(
        ["price", "country"],
        categorical={"country"},
        tolerance=SkewTolerance(absolute=0.01, relative=0.0),
        max_mismatch_fraction=0.2,
    )
    served = pd.DataFrame(
        {"price": [1.0, 2.005, 3.5, None, np.inf], "country": ["DE", "FR", "FR", "IT", "ES"]}
    )
    offline = pd.DataFrame(
        {"price": [1.0, 2.0, 3.0, None, np.inf], "country": ["DE", "FR", "IT", "IT", None]}
    )

    result = check.check(served, offline)

    assert result.pairs == 5
    assert result.mismatched == {"price": 1, "country": 2}  # 3.5 vs 3.0; IT->FR, ES vs null
    assert result.skewed_features == ["country"] and result.is_skew


def test_skew_joins_served_and_offline_rows_by_entity_and_time() -> None:
    served = pd.DataFrame({"user": [1, 2, 3], "ts": [10, 10, 11], "x": [0.5, 0.7, 9.0]})
    offline = pd.DataFrame({"user": [2, 1], "ts": [10, 10], "x": [0.7, 0.4]})

    result = SkewCheck(["x"], max_mismatch_fraction=0.0).check_by_keys(
        served, offline, keys=["user", "ts"]
    )

    assert result.pairs == 2 and result.unmatched_served == 1
    assert result.mismatched == {"x": 1} and result.is_skew


def test_skew_rejects_misaligned_or_non_numeric_input() -> None:
    check = SkewCheck(["x"])
    with pytest.raises(InvalidWindowError, match="rows must pair"):
        check.check(np.zeros(3), np.zeros(4))
    with pytest.raises(InvalidWindowError) as caught:
        check.check(pd.DataFrame({"x": ["a"]}), pd.DataFrame({"x": [1.0]}))
    assert caught.value.reason == "type"
    with pytest.raises(InvalidWindowError, match="key columns"):
        check.check_by_keys(pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [1]}), ["user"])
    with pytest.raises(DetectorConfigError, match="'nope'"):
        SkewCheck(["x"], categorical={"nope"})

"""The metric core against brute-force references and hand-computed values."""

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from components.evaluate.metrics import (
    EvaluationError,
    base_rate_baseline,
    check_binary_labels,
    check_probabilities,
    expected_calibration_error,
    log_loss,
    reliability_bins,
    roc_auc,
    single_feature_baseline,
)


def brute_force_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    positives = scores[labels == 1]
    negatives = scores[labels == 0]
    wins = sum(
        1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives)
    )
    return wins / (len(positives) * len(negatives))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0])),
        min_size=2,
        max_size=40,
    )
)
def test_auc_equals_pairwise_count_with_ties(pairs: list[tuple[int, float]]) -> None:
    labels = np.array([p[0] for p in pairs], dtype=float)
    scores = np.array([p[1] for p in pairs])
    result = roc_auc(labels, scores)
    if labels.min() == labels.max():
        assert result is None
    else:
        assert result == pytest.approx(brute_force_auc(labels, scores))


def test_log_loss_matches_hand_computation() -> None:
    labels = np.array([1.0, 0.0, 1.0])
    scores = np.array([0.8, 0.3, 0.5])
    expected = -(np.log(0.8) + np.log(0.7) + np.log(0.5)) / 3
    assert log_loss(labels, scores) == pytest.approx(expected)
    # A confident mistake is large but finite (clipped).
    confident_mistake = log_loss(np.array([1.0]), np.array([0.0]))
    assert confident_mistake is not None and np.isfinite(confident_mistake)


def test_reliability_and_ece() -> None:
    labels = np.array([0, 0, 1, 1, 1, 0], dtype=float)
    scores = np.array([0.05, 0.15, 0.95, 1.0, 0.55, 0.55])
    bins = reliability_bins(labels, scores, bins=10)
    assert sum(b.count for b in bins) == 6
    assert bins[9].count == 2  # 0.95 and 1.0: the last bin includes 1.0
    assert bins[5].observed_rate == 0.5 and bins[5].mean_predicted == pytest.approx(0.55)
    expected = (0.05 + 0.15 + 0.05 + 0.0 + 2 * 0.05) / 6
    assert expected_calibration_error(bins, 6) == pytest.approx(expected)


def test_calibrated_scores_have_small_ece() -> None:
    rng = np.random.default_rng(1)
    scores = rng.random(20000)
    labels = (rng.random(20000) < scores).astype(float)
    bins = reliability_bins(labels, scores)
    calibrated_ece = expected_calibration_error(bins, 20000)
    assert calibrated_ece is not None and calibrated_ece < 0.02
    overconfident = np.clip(scores * 2 - 0.5, 0, 1)
    overconfident_ece = expected_calibration_error(reliability_bins(labels, overconfident), 20000)
    assert overconfident_ece is not None and overconfident_ece > 0.1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (pd.Series([0, 1, 2]), "not binary"),
        (pd.Series(["yes", "no"]), "dtype object"),
        (pd.Series([0.0, None]), "missing values"),
    ],
)
def test_bad_labels_name_the_column(values: pd.Series, message: str) -> None:
    with pytest.raises(EvaluationError, match=f"'clicked'.*{message}"):
        check_binary_labels(values, "clicked", "validation")


def test_boolean_labels_are_binary() -> None:
    assert check_binary_labels(pd.Series([True, False]), "y", "test").tolist() == [1.0, 0.0]


def test_scores_outside_unit_interval_are_rejected() -> None:
    with pytest.raises(EvaluationError, match=r"not probabilities.*\[-2, 3\]"):
        check_probabilities(np.array([-2.0, 3.0]), "validation")
    with pytest.raises(EvaluationError, match="NaN"):
        check_probabilities(np.array([np.nan]), "test")


def test_baselines_fit_on_train() -> None:
    rng = np.random.default_rng(0)
    signal = rng.normal(size=2000)
    noise = rng.normal(size=2000)
    labels = (rng.random(2000) < 1 / (1 + np.exp(-3 * signal))).astype(float)
    train = pd.DataFrame({"signal": signal, "noise": noise})
    train.loc[::50, "signal"] = np.nan  # missing values get their own bin
    constant = base_rate_baseline(labels)
    assert np.all(constant.score(train) == labels.mean())
    single = single_feature_baseline(train, labels, ["noise", "signal"])
    assert single is not None and single.name == "single_feature:signal"
    scores = single.score(train)
    assert np.all((scores > 0) & (scores < 1))
    single_auc = roc_auc(labels, scores)
    assert single_auc is not None and single_auc > 0.8


def test_accuracy_at_the_monitors_threshold() -> None:
    from components.evaluate.metrics import ACCURACY_THRESHOLD, accuracy, window_metrics

    labels = np.array([1.0, 0.0, 1.0, 0.0])
    scores = np.array([0.5, 0.49, 0.2, 0.9])  # right, right, wrong, wrong
    assert ACCURACY_THRESHOLD == 0.5 and accuracy(labels, scores) == 0.5
    assert window_metrics(labels, scores).value("accuracy") == 0.5
    assert accuracy(np.array([]), np.array([])) is None

"""Quality figures against scikit-learn, DeLong against the brute-force kernel, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.stats import rankdata
from scipy.stats import t as student_t
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from contracts.quality import Comparison, Interval, VersionQuality
from services.monitor.outcomes import stats


def rows(seed: int, n: int = 2_000, rounded: int | None = 2) -> tuple[np.ndarray, np.ndarray]:
    """Scores that carry signal, rounded so that ties occur, and a few exact 0s and 1s."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1.5, n) + 1.2 * (labels - 0.5))))
    if rounded is not None:
        scores = np.round(scores, rounded)
    scores[:3] = [0.0, 1.0, 0.0]
    return scores, labels


def brute_force_delong(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) straight from the definition: the O(m n) kernel psi(x, y)."""
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])
    v10, v01 = psi.mean(axis=2), psi.mean(axis=1)
    aucs = v10.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10)) / pos.shape[1] + np.atleast_2d(np.cov(v01)) / neg.shape[1]
    return aucs, cov


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rounded", [None, 2, 1])
def test_figures_match_scikit_learn(seed: int, rounded: int | None) -> None:
    scores, labels = rows(seed, rounded=rounded)
    q = stats.quality(scores, labels, threshold=0.5)
    assert q["labeled"] == labels.size and q["positives"] == int(labels.sum())
    assert q["auc"].value == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert q["log_loss"].value == pytest.approx(log_loss(labels, scores), abs=1e-9)
    assert q["brier"].value == pytest.approx(brier_score_loss(labels, scores), abs=1e-9)
    predicted = (scores >= 0.5).astype(int)
    assert q["accuracy"].value == pytest.approx(accuracy_score(labels, predicted), abs=1e-12)


def test_log_loss_clips_certain_mistakes_as_scikit_learn_does() -> None:
    labels = np.array([1, 0, 1, 0])
    scores = np.array([0.0, 1.0, 1.0, 0.0])  # two certain mistakes, two certain hits
    value = stats.quality(scores, labels)["log_loss"].value
    assert value == pytest.approx(log_loss(labels, scores), abs=1e-9)
    assert math.isfinite(value) and value > 10


def test_ece_is_the_evaluation_components_ten_bin_ece() -> None:
    from components.evaluate.metrics import expected_calibration_error, reliability_bins

    scores, labels = rows(3)
    reference = expected_calibration_error(
        reliability_bins(labels.astype(float), scores), labels.size
    )
    interval = stats.quality(scores, labels)["ece"]
    assert interval.value == pytest.approx(reference, abs=1e-12)
    assert interval.low is not None and interval.high is not None
    assert interval.low <= interval.value <= interval.high


def test_ece_interval_is_reproducible() -> None:
    scores, labels = rows(4, n=300)
    assert stats.quality(scores, labels)["ece"] == stats.quality(scores, labels)["ece"]


@pytest.mark.parametrize("seed", range(4))
def test_fast_delong_equals_the_brute_force_kernel(seed: int) -> None:
    scores, labels = rows(seed, n=600, rounded=1)  # heavy ties
    rng = np.random.default_rng(seed + 100)
    other = np.clip(scores + np.round(rng.normal(0, 0.1, scores.size), 1), 0, 1)
    both = np.vstack([scores, other])
    fitted = stats.delong(both, labels.astype(float))
    assert fitted is not None
    aucs, cov = fitted
    ref_aucs, ref_cov = brute_force_delong(both, labels)
    np.testing.assert_allclose(aucs, ref_aucs, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, ref_cov, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(aucs, [roc_auc_score(labels, s) for s in both], atol=1e-12)


def test_midranks_are_scipys_average_ranks() -> None:
    values = np.round(np.random.default_rng(0).random(5000), 2)
    np.testing.assert_array_equal(stats.midranks(values), rankdata(values))


def test_paired_comparison_is_the_difference_of_the_scikit_learn_figures() -> None:
    scores, labels = rows(5)
    rng = np.random.default_rng(5)
    cand = np.clip(scores + rng.normal(0, 0.05, scores.size), 0, 1)
    est, var, method = stats.compare_paired(cand, scores, labels, "auc")
    assert method == "delong-paired"
    assert est == pytest.approx(
        roc_auc_score(labels, cand) - roc_auc_score(labels, scores), abs=1e-9
    )
    _, cov = brute_force_delong(np.vstack([cand, scores]), labels)
    assert var == pytest.approx(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1], rel=1e-9)

    est, var, method = stats.compare_paired(cand, scores, labels, "logLoss")
    assert method == "paired-mean"
    assert est == pytest.approx(log_loss(labels, scores) - log_loss(labels, cand), abs=1e-9)
    d = stats.row_log_loss(scores, labels.astype(float)) - stats.row_log_loss(
        cand, labels.astype(float)
    )
    assert var == pytest.approx(d.var(ddof=1) / d.size, rel=1e-12)

    est, _, _ = stats.compare_paired(cand, scores, labels, "accuracy", threshold=0.4)
    expected = accuracy_score(labels, cand >= 0.4) - accuracy_score(labels, scores >= 0.4)
    assert est == pytest.approx(expected, abs=1e-12)


def test_concurrent_comparison_is_the_difference_with_independent_variances() -> None:
    sc, yc = rows(6, n=800)
    ss, ys = rows(7, n=3000)
    est, var, method = stats.compare_concurrent(sc, yc, ss, ys, "auc")
    assert method == "delong"
    assert est == pytest.approx(roc_auc_score(yc, sc) - roc_auc_score(ys, ss), abs=1e-9)
    vc = brute_force_delong(sc[None], yc)[1][0, 0]
    vs = brute_force_delong(ss[None], ys)[1][0, 0]
    assert var == pytest.approx(vc + vs, rel=1e-9)

    est, var, method = stats.compare_concurrent(sc, yc, ss, ys, "logLoss")
    assert method == "welch"
    assert est == pytest.approx(log_loss(ys, ss) - log_loss(yc, sc), abs=1e-9)
    lc = stats.row_log_loss(sc, yc.astype(float))
    ls = stats.row_log_loss(ss, ys.astype(float))
    assert var == pytest.approx(lc.var(ddof=1) / lc.size + ls.var(ddof=1) / ls.size, rel=1e-12)


def test_intervals() -> None:
    scores, labels = rows(8, n=400)
    q = stats.quality(scores, labels)
    losses = stats.row_log_loss(scores, labels.astype(float))
    low, high = student_t.interval(
        0.95, losses.size - 1, loc=losses.mean(), scale=losses.std(ddof=1) / math.sqrt(losses.size)
    )
    assert (q["log_loss"].low, q["log_loss"].high) == pytest.approx((low, high), abs=1e-12)
    # Wilson at 0 of 10: the upper bound is z^2 / (n + z^2).
    z2 = 1.959963984540054**2
    zero = stats.wilson(0, 10)
    assert (zero.value, zero.low) == (0.0, 0.0)
    assert zero.high == pytest.approx(z2 / (10 + z2), abs=1e-12)
    auc = q["auc"]
    assert auc.low is not None and auc.high is not None and auc.value is not None
    se = math.sqrt(brute_force_delong(scores[None], labels)[1][0, 0])
    assert auc.high - auc.value == pytest.approx(1.959963984540054 * se, rel=1e-9)


def test_one_class_has_no_auc_and_no_auc_comparison() -> None:
    scores = np.array([0.2, 0.7, 0.9])
    ones = np.ones(3)
    q = stats.quality(scores, ones)
    assert q["auc"] == Interval() and q["positives"] == 3
    assert q["accuracy"].value == pytest.approx(2 / 3)
    assert stats.compare_paired(scores, scores, ones, "auc") == (None, None, "delong-paired")
    assert stats.compare_concurrent(scores, ones, scores, ones, "auc")[:2] == (None, None)


def test_no_rows() -> None:
    q = stats.quality([], [])
    assert q["labeled"] == 0 and q["positives"] == 0
    assert all(q[k] == Interval() for k in ("auc", "accuracy", "log_loss", "brier", "ece"))
    assert stats.compare_paired([], [], [], "logLoss")[:2] == (None, None)
    assert stats.compare_concurrent([0.5], [1], [0.5, 0.2], [1, 0], "logLoss")[:2] == (None, None)
    one = stats.quality([0.8], [1])
    assert one["log_loss"].value is not None and one["log_loss"].low is None


@pytest.mark.parametrize(
    ("scores", "labels", "field"),
    [
        ([0.1, float("nan")], [0, 1], "scores"),
        ([0.1, float("inf")], [0, 1], "scores"),
        ([0.1, 1.2], [0, 1], "scores"),
        ([0.1, 0.2], [0, float("nan")], "labels"),
        ([0.1, 0.2], [0, 2], "labels"),
        ([0.1, 0.2], [0, 1, 1], "labels"),
    ],
)
def test_nan_and_malformed_input_is_refused_naming_the_argument(
    scores: list[float], labels: list[float], field: str
) -> None:
    with pytest.raises(stats.QualityInputError, match=field):
        stats.quality(scores, labels)
    with pytest.raises(stats.QualityInputError, match=f"candidate {field}"):
        stats.compare_paired(scores, [0.5] * len(scores), labels, "logLoss")


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(stats.QualityInputError, match="metric"):
        stats.compare_paired([0.1, 0.2], [0.1, 0.2], [0, 1], "f1")


def test_wire_models_refuse_nan_and_use_camel_case() -> None:
    with pytest.raises(ValidationError):
        Interval(value=float("nan"))
    q = stats.quality(*rows(9, n=200))
    body = VersionQuality(version="2", role="candidate", window_start=1.0, **q).model_dump(
        by_alias=True, mode="json"
    )
    assert {"logLoss", "windowStart", "labelDelayP90S"} <= body.keys()
    assert VersionQuality.model_validate(body).log_loss == q["log_loss"]
    with pytest.raises(ValidationError):
        Comparison.model_validate(
            {
                "metric": "f1",
                "candidate": "2",
                "stable": "1",
                "design": "paired",
                "n": 1,
                "nStable": 1,
                "method": "paired-mean",
                "since": 0,
            }
        )


@pytest.mark.parametrize("seed", range(3))
def test_ece_interval_agrees_with_a_row_level_poisson_bootstrap(seed: int) -> None:
    scores, labels = rows(seed, n=3000, rounded=None)
    y = labels.astype(float)
    index = np.clip(np.floor(scores * 10).astype(int), 0, 9)
    gaps = np.zeros((scores.size, 10))
    gaps[np.arange(scores.size), index] = scores - y
    weights = np.random.default_rng(seed).poisson(1.0, (2000, scores.size)).astype(float)
    row_level = np.abs(weights @ gaps).sum(axis=1) / weights.sum(axis=1)
    low, high = np.quantile(row_level, [0.025, 0.975])
    interval = stats.quality(scores, labels)["ece"]
    assert interval.low is not None and interval.high is not None
    width = high - low
    assert abs(interval.low - low) < 0.1 * width and abs(interval.high - high) < 0.1 * width

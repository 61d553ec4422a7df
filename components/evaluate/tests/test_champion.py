"""Champion/challenger: the paired bootstrap comparison's error rates on seeded simulations,
and evaluate_frames' verdict with and without a champion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from components.evaluate.impl import (
    Champion,
    Objective,
    evaluate_frames,
)
from components.evaluate.metrics import (
    BOOTSTRAP_CONFIDENCE,
    EvaluationError,
    compare,
    metric_value,
    paired_bootstrap,
    weighted_metric,
)
from components.evaluate.tests.synthetic import (
    FEATURES,
    LABEL,
    TRUE_WEIGHTS,
    labelled_frame,
    sigmoid,
)

ALPHA = 1.0 - BOOTSTRAP_CONFIDENCE
SIMULATIONS, ROWS, RESAMPLES = 200, 300, 200


def world(rng: np.random.Generator, rows: int) -> tuple[np.ndarray, np.ndarray]:
    signal = rng.normal(size=rows)
    labels = (rng.random(rows) < sigmoid(1.5 * signal)).astype(np.float64)
    return signal, labels


def noisy_model(rng: np.random.Generator, signal: np.ndarray, noise: float) -> np.ndarray:
    return sigmoid(signal + rng.normal(scale=noise, size=signal.size))


def pass_rate(metric: str, candidate_noise: float, champion_noise: float) -> float:
    rng = np.random.default_rng(2026)
    passed = 0
    for seed in range(SIMULATIONS):
        signal, labels = world(rng, ROWS)
        candidate = noisy_model(rng, signal, candidate_noise)
        champion = noisy_model(rng, signal, champion_noise)
        result = compare(
            metric, "test", labels, candidate, champion, "champion", resamples=RESAMPLES, seed=seed
        )
        passed += result.passed
    return passed / SIMULATIONS


@pytest.mark.parametrize("metric", ["auc", "logloss"])
def test_an_equal_candidate_passes_at_most_alpha_of_the_time(metric: str) -> None:
    # Same model family, same noise: no real improvement. A 95% interval above zero by chance
    # happens about 2.5% of the time (one tail); never more than alpha.
    assert pass_rate(metric, 1.0, 1.0) <= ALPHA


@pytest.mark.parametrize("metric", ["auc", "logloss"])
def test_a_clearly_better_candidate_passes(metric: str) -> None:
    assert pass_rate(metric, 0.2, 1.5) >= 0.95


def test_min_improvement_is_on_the_point_estimate() -> None:
    rng = np.random.default_rng(5)
    signal, labels = world(rng, 2000)
    candidate, champion = noisy_model(rng, signal, 0.2), noisy_model(rng, signal, 1.5)
    free = compare("auc", "test", labels, candidate, champion, "champion")
    assert free.passed and free.low is not None and free.low > 0
    assert free.improvement is not None and free.low <= free.improvement <= (free.high or 0)
    demanding = compare(
        "auc", "test", labels, candidate, champion, "champion", free.improvement + 0.01
    )
    assert not demanding.passed and "below minImprovement" in demanding.reason


def test_the_interval_is_seeded_and_paired() -> None:
    rng = np.random.default_rng(9)
    signal, labels = world(rng, 500)
    a, b = noisy_model(rng, signal, 0.5), noisy_model(rng, signal, 0.7)
    assert paired_bootstrap("auc", labels, a, b, 100, seed=3) == paired_bootstrap(
        "auc", labels, a, b, 100, seed=3
    )
    # The same model against itself: every resample's improvement is exactly zero.
    assert paired_bootstrap("ece", labels, a, a, 50) == (0.0, 0.0)
    with pytest.raises(EvaluationError, match="minImprovement"):
        compare("auc", "test", labels, a, b, "champion", -0.1)


@pytest.mark.parametrize("metric", ["auc", "logloss", "ece"])
def test_the_weighted_metric_is_the_metric_of_the_repeated_rows(metric: str) -> None:
    rng = np.random.default_rng(13)
    labels = (rng.random(400) < 0.3).astype(np.float64)
    scores = np.round(rng.random(400), 2)  # ties, which AUC counts one half
    of_weights = weighted_metric(metric, labels, scores)
    for _ in range(5):
        index = rng.integers(0, 400, size=400)
        weights = np.bincount(index, minlength=400).astype(np.float64)
        assert of_weights(weights) == pytest.approx(
            metric_value(metric, labels[index], scores[index]), abs=1e-12
        )


def splits() -> dict[str, pd.DataFrame]:
    return {
        "train": labelled_frame(800, 0),
        "validation": labelled_frame(600, 1),
        "test": labelled_frame(1500, 2),
    }


def true_model(frame: pd.DataFrame) -> np.ndarray:
    return sigmoid(frame[FEATURES].to_numpy() @ TRUE_WEIGHTS)


def weak_model(frame: pd.DataFrame) -> np.ndarray:
    return sigmoid(0.5 * frame["user__x1"].to_numpy())


def test_without_a_champion_only_the_baseline_is_compared() -> None:
    report = evaluate_frames(splits(), LABEL, FEATURES, true_model, Objective())
    assert report.vs_champion is None
    assert report.vs_baseline is not None and report.vs_baseline.passed
    assert report.vs_baseline.window == "test" and report.vs_baseline.rows == 1500
    assert report.objective.beats_champion and report.objective.passed
    assert report.flat_metrics()["vs_baseline_low"] == report.vs_baseline.low


def test_a_candidate_no_better_than_the_champion_does_not_pass() -> None:
    same = Champion(version="3", score=true_model, input_columns=FEATURES)
    report = evaluate_frames(splits(), LABEL, FEATURES, true_model, Objective(), same)
    assert report.vs_champion is not None and report.vs_champion.version == "3"
    assert report.vs_champion.improvement == 0.0 and not report.vs_champion.passed
    assert report.objective.beats_baseline and not report.objective.beats_champion
    assert not report.objective.passed
    assert "champion (version 3)" in report.objective.reason


def test_a_candidate_better_than_the_champion_passes() -> None:
    weak = Champion(version="1", score=weak_model, input_columns=["user__x1"])
    report = evaluate_frames(splits(), LABEL, FEATURES, true_model, Objective(), weak)
    assert report.vs_champion is not None and report.vs_champion.passed
    assert report.objective.passed, report.objective.reason


def test_a_champion_reading_absent_columns_is_named() -> None:
    other = Champion(version="2", score=true_model, input_columns=["user__x9"])
    with pytest.raises(EvaluationError, match=r"champion \(version 2\).*user__x9"):
        evaluate_frames(splits(), LABEL, FEATURES, true_model, Objective(), other)

"""Pure metric core: ROC AUC, log loss, calibration (ECE + reliability bins), baselines.

Everything here works on numpy arrays and has no I/O, so it is cheap to test exhaustively.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy.stats import rankdata

# Probabilities are clipped before log loss so one confident mistake is large, not infinite.
LOG_LOSS_EPSILON = 1e-15
DEFAULT_BINS = 10
# The monitor's quality figures use the same threshold (services/monitor/outcomes/stats.py).
ACCURACY_THRESHOLD = 0.5


class EvaluationError(ValueError):
    """Bad evaluation input; the message names the column, window or parameter."""


class ReliabilityBin(BaseModel):
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


class WindowMetrics(BaseModel):
    rows: int
    positives: int
    base_rate: float | None
    auc: float | None  # None when the window holds a single class (AUC is undefined)
    logloss: float | None
    ece: float | None
    reliability: list[ReliabilityBin]
    # Share of rows with (score >= ACCURACY_THRESHOLD) == label: the offline figure the MLModel
    # operator compares a served version's accuracy with (its Degraded condition).
    accuracy: float | None = None

    def value(self, metric: str) -> float | None:
        return {
            "auc": self.auc,
            "logloss": self.logloss,
            "ece": self.ece,
            "accuracy": self.accuracy,
        }[metric]


def check_binary_labels(labels: pd.Series, column: str, role: str) -> np.ndarray:
    """Labels as float64 0/1; anything else is an error naming the column and window."""
    if labels.dtype == object or isinstance(labels.dtype, pd.StringDtype):
        raise EvaluationError(
            f"label column {column!r} in {role} must be binary 0/1 or boolean, "
            f"got dtype {labels.dtype}"
        )
    if labels.isna().any():
        raise EvaluationError(
            f"label column {column!r} in {role} has {int(labels.isna().sum())} missing values"
        )
    values = labels.to_numpy(dtype=np.float64)
    unexpected = sorted(set(np.unique(values)) - {0.0, 1.0})
    if unexpected:
        raise EvaluationError(
            f"label column {column!r} in {role} is not binary: found values "
            f"{unexpected[:5]} besides 0 and 1"
        )
    return values


def check_probabilities(scores: np.ndarray, role: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(scores)):
        raise EvaluationError(f"model scores for {role} contain NaN or infinite values")
    if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
        raise EvaluationError(
            f"model scores for {role} are not probabilities: range "
            f"[{scores.min():.4g}, {scores.max():.4g}] is outside [0, 1]"
        )
    return scores


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann-Whitney form of ROC AUC (ties count one half); None with a single class."""
    positives = int(labels.sum())
    negatives = labels.size - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)  # average ranks for ties
    rank_sum = float(ranks[labels == 1.0].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def log_loss(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if labels.size == 0:
        return None
    clipped = np.clip(scores, LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON)
    losses = -(labels * np.log(clipped) + (1.0 - labels) * np.log(1.0 - clipped))
    return float(losses.mean())


def reliability_bins(
    labels: np.ndarray, scores: np.ndarray, bins: int = DEFAULT_BINS
) -> list[ReliabilityBin]:
    """Equal-width bins over [0, 1]; the last bin includes 1.0."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, bins - 1)
    result = []
    for i in range(bins):
        mask = index == i
        count = int(mask.sum())
        result.append(
            ReliabilityBin(
                lower=float(edges[i]),
                upper=float(edges[i + 1]),
                count=count,
                mean_predicted=float(scores[mask].mean()) if count else None,
                observed_rate=float(labels[mask].mean()) if count else None,
            )
        )
    return result


def expected_calibration_error(reliability: list[ReliabilityBin], rows: int) -> float | None:
    """Count-weighted mean gap between predicted probability and observed rate."""
    if rows == 0:
        return None
    gap = sum(
        b.count * abs(b.mean_predicted - b.observed_rate)
        for b in reliability
        if b.count and b.mean_predicted is not None and b.observed_rate is not None
    )
    return float(gap / rows)


def window_metrics(
    labels: np.ndarray, scores: np.ndarray, bins: int = DEFAULT_BINS
) -> WindowMetrics:
    reliability = reliability_bins(labels, scores, bins)
    rows = int(labels.size)
    return WindowMetrics(
        rows=rows,
        positives=int(labels.sum()),
        base_rate=float(labels.mean()) if rows else None,
        auc=roc_auc(labels, scores),
        logloss=log_loss(labels, scores),
        ece=expected_calibration_error(reliability, rows),
        reliability=reliability,
        accuracy=accuracy(labels, scores),
    )


def accuracy(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Share of rows classified right at ACCURACY_THRESHOLD; None without rows."""
    if labels.size == 0:
        return None
    return float(np.mean((scores >= ACCURACY_THRESHOLD) == (labels == 1.0)))


# A baseline scorer maps a window's feature frame to probabilities.
Scorer = Callable[[pd.DataFrame], np.ndarray]


@dataclass(frozen=True)
class Baseline:
    name: str
    description: str
    score: Scorer


def base_rate_baseline(train_labels: np.ndarray) -> Baseline:
    """Predict the training-set positive rate for every row (AUC 0.5, the entropy log loss)."""
    rate = float(train_labels.mean())

    def score(frame: pd.DataFrame) -> np.ndarray:
        return np.full(len(frame), rate)

    return Baseline("base_rate", f"constant training base rate {rate:.4f}", score)


@dataclass(frozen=True)
class BinnedRate:
    """Observed positive rate per training quantile bin of one feature (missing: own bin)."""

    feature: str
    edges: np.ndarray  # inner edges; np.searchsorted gives the bin
    rates: np.ndarray  # one per bin, plus the last entry for missing values

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[self.feature].to_numpy(dtype=np.float64)
        index = np.searchsorted(self.edges, values, side="right")
        index = np.where(np.isnan(values), len(self.rates) - 1, index)
        return self.rates[index]


def fit_binned_rate(
    values: np.ndarray, labels: np.ndarray, feature: str, bins: int = DEFAULT_BINS
) -> BinnedRate:
    # Laplace-smoothed towards the base rate so a tiny bin never predicts exactly 0 or 1.
    prior = float(labels.mean())
    present = ~np.isnan(values)
    quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    edges = np.unique(np.quantile(values[present], quantiles)) if present.any() else np.array([])
    index = np.searchsorted(edges, values, side="right")
    index = np.where(present, index, edges.size + 1)
    rates = np.empty(edges.size + 2)
    for i in range(edges.size + 2):
        mask = index == i
        rates[i] = (labels[mask].sum() + prior) / (mask.sum() + 1.0)
    return BinnedRate(feature=feature, edges=edges, rates=rates)


def single_feature_baseline(
    train: pd.DataFrame, train_labels: np.ndarray, features: list[str]
) -> Baseline | None:
    """The one feature whose binned training rate ranks the training rows best."""
    best: tuple[float, BinnedRate] | None = None
    for feature in features:
        values = train[feature].to_numpy(dtype=np.float64)
        if np.isnan(values).all():
            continue
        rule = fit_binned_rate(values, train_labels, feature)
        auc = roc_auc(train_labels, rule(train))
        if auc is not None and (best is None or auc > best[0]):
            best = (auc, rule)
    if best is None:
        return None
    rule = best[1]
    return Baseline(
        f"single_feature:{rule.feature}",
        f"training positive rate per quantile bin of {rule.feature}",
        rule,
    )


def better(metric: str, candidate: float, reference: float) -> bool:
    """Strictly better under the metric's goal (AUC up, log loss and ECE down)."""
    return candidate > reference if metric == "auc" else candidate < reference

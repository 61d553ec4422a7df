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


# ------------------------------------------------------------------ champion/challenger

# Paired bootstrap over the window's rows (Efron & Tibshirani, "An Introduction to the
# Bootstrap", ch. 13, percentile intervals): B resamples, seeded, so a rerun of the same
# evaluation gives the same interval. B = 1000 keeps the 2.5% / 97.5% percentiles stable to
# about the third decimal of an AUC on a few thousand rows, at well under a second per pair.
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0


def metric_value(metric: str, labels: np.ndarray, scores: np.ndarray) -> float | None:
    """One objective metric on one set of rows (None where undefined)."""
    if metric == "auc":
        return roc_auc(labels, scores)
    if metric == "logloss":
        return log_loss(labels, scores)
    if metric == "ece":
        return expected_calibration_error(reliability_bins(labels, scores), int(labels.size))
    raise EvaluationError(f"objective.metric {metric!r} is not one of auc, logloss, ece")


def weighted_metric(
    metric: str, labels: np.ndarray, scores: np.ndarray
) -> Callable[[np.ndarray], float | None]:
    """The metric of rows repeated ``weights[i]`` times, as a function of the weights, with
    the sort and binning done once: equal to ``metric_value`` on the repeated rows, but O(n)
    per bootstrap resample (bincounts) instead of a rank per resample."""
    if metric == "auc":
        # Mann-Whitney with ties counting one half, per group of equal scores.
        _, group = np.unique(scores, return_inverse=True)
        groups = int(group.max()) + 1 if group.size else 0

        def auc(weights: np.ndarray) -> float | None:
            positives = np.bincount(group, weights * labels, groups)
            negatives = np.bincount(group, weights * (1.0 - labels), groups)
            total_pos, total_neg = positives.sum(), negatives.sum()
            if total_pos == 0 or total_neg == 0:
                return None
            below = np.cumsum(negatives) - negatives
            return float((positives * (below + 0.5 * negatives)).sum() / (total_pos * total_neg))

        return auc
    if metric == "logloss":
        clipped = np.clip(scores, LOG_LOSS_EPSILON, 1.0 - LOG_LOSS_EPSILON)
        losses = -(labels * np.log(clipped) + (1.0 - labels) * np.log(1.0 - clipped))

        def logloss(weights: np.ndarray) -> float | None:
            total = weights.sum()
            return float((weights * losses).sum() / total) if total else None

        return logloss
    if metric == "ece":
        edges = np.linspace(0.0, 1.0, DEFAULT_BINS + 1)
        index = np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, DEFAULT_BINS - 1)

        def ece(weights: np.ndarray) -> float | None:
            total = weights.sum()
            if not total:
                return None
            predicted = np.bincount(index, weights * scores, DEFAULT_BINS)
            observed = np.bincount(index, weights * labels, DEFAULT_BINS)
            return float(np.abs(predicted - observed).sum() / total)

        return ece
    raise EvaluationError(f"objective.metric {metric!r} is not one of auc, logloss, ece")


def improvement(metric: str, candidate: float, reference: float) -> float:
    """Candidate minus reference, oriented so that positive means the candidate is better."""
    return candidate - reference if metric == "auc" else reference - candidate


class Comparison(BaseModel):
    """The candidate against one reference model on the same rows, with a paired interval."""

    reference: str  # contracts.mlflow_tags.CHAMPION_ALIAS or the baseline's name
    version: str | None = None  # the champion's registered version
    metric: str
    window: str
    rows: int
    candidate: float | None
    reference_value: float | None
    improvement: float | None  # oriented: positive = the candidate is better
    low: float | None
    high: float | None
    confidence: float
    resamples: int
    seed: int
    min_improvement: float
    passed: bool
    reason: str


def paired_bootstrap(
    metric: str,
    labels: np.ndarray,
    candidate: np.ndarray,
    reference: np.ndarray,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = BOOTSTRAP_CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float | None, float | None]:
    """Percentile interval of the oriented improvement, both models on the *same* resampled
    rows each time (paired: the row-to-row noise they share cancels). Resamples where the
    metric is undefined (one class drawn) are dropped; None when none is left."""
    if resamples < 1:
        raise EvaluationError(f"bootstrap resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise EvaluationError(f"bootstrap confidence must be in (0, 1), got {confidence}")
    rows = labels.size
    if rows == 0:
        return None, None
    rng = np.random.default_rng(seed)
    metric_of_candidate = weighted_metric(metric, labels, candidate)
    metric_of_reference = weighted_metric(metric, labels, reference)
    deltas = []
    for _ in range(resamples):
        # A resample as row multiplicities: the metric on labels[index] without re-sorting.
        weights = np.bincount(rng.integers(0, rows, size=rows), minlength=rows).astype(np.float64)
        a = metric_of_candidate(weights)
        b = metric_of_reference(weights)
        if a is not None and b is not None:
            deltas.append(improvement(metric, a, b))
    if not deltas:
        return None, None
    alpha = 1.0 - confidence
    low, high = np.quantile(np.asarray(deltas), [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def compare(
    metric: str,
    window: str,
    labels: np.ndarray,
    candidate: np.ndarray,
    reference: np.ndarray,
    reference_name: str,
    min_improvement: float = 0.0,
    version: str | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = BOOTSTRAP_CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> Comparison:
    """Passes when the candidate is better by at least ``min_improvement`` (point estimate)
    and the paired interval of the improvement lies above zero (excludes no improvement)."""
    if min_improvement < 0:
        raise EvaluationError(f"objective.minImprovement must be >= 0, got {min_improvement}")
    a = metric_value(metric, labels, candidate)
    b = metric_value(metric, labels, reference)
    delta = improvement(metric, a, b) if a is not None and b is not None else None
    low, high = (None, None)
    if delta is not None:
        low, high = paired_bootstrap(
            metric, labels, candidate, reference, resamples, confidence, seed
        )
    passed = delta is not None and low is not None and delta >= min_improvement and low > 0.0
    label = f"{window} {metric}"
    who = f"{reference_name} (version {version})" if version else reference_name
    if delta is None or low is None or high is None:
        reason = f"{label} is undefined on the {window} window: cannot compare with {who}"
    else:
        figures = (
            f"{label} {a:.4f} vs {who} {b:.4f}: improvement {delta:+.4f}, "
            f"{confidence:.0%} interval [{low:+.4f}, {high:+.4f}]"
        )
        if passed:
            reason = f"{figures} beats it"
        elif delta < min_improvement:
            reason = f"{figures} is below minImprovement {min_improvement}"
        else:
            reason = f"{figures} includes zero"
    return Comparison(
        reference=reference_name,
        version=version,
        metric=metric,
        window=window,
        rows=int(labels.size),
        candidate=a,
        reference_value=b,
        improvement=delta,
        low=low,
        high=high,
        confidence=confidence,
        resamples=resamples,
        seed=seed,
        min_improvement=min_improvement,
        passed=passed,
        reason=reason,
    )

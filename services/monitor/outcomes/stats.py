"""Pure quality statistics on labeled predictions: figures, 95% intervals, two-version comparisons.

numpy/scipy only, no I/O, nothing kept between calls. Inputs are the positive-class scores
(probabilities in [0, 1]) and 0/1 labels of the joined rows; anything else (NaN, infinities,
a score outside [0, 1], a label other than 0/1, arrays of different lengths) raises
:class:`QualityInputError` naming the argument, so nothing malformed becomes a figure.

Figures (each matches scikit-learn on the same rows, ``outcomes/tests/test_stats.py``):

- AUC: the Mann-Whitney form (ties count one half), as ``sklearn.metrics.roc_auc_score``;
  ``None`` with one class only. Variance by DeLong, DeLong & Clarke-Pearson (1988,
  Biometrics 44:837), computed with the fast midrank algorithm of Sun & Xu (2014, IEEE Signal
  Processing Letters 21:1389), O(n log n) instead of the O(n_pos·n_neg) kernel matrix.
- accuracy: the share of rows whose thresholded score (``score >= threshold``) equals the label.
- log loss: scores clipped to [eps, 1 − eps] with eps the float64 machine epsilon, on both
  columns, as ``sklearn.metrics.log_loss`` (1.9) does.
- Brier: mean squared gap between score and label (``brier_score_loss``).
- ECE: 10 equal-width bins over [0, 1] (the last includes 1.0), count-weighted mean
  |mean score − observed rate|: the same bins as ``components/evaluate/metrics.py``.

95% intervals: AUC: normal with the DeLong variance, clipped to [0, 1]; accuracy: Wilson score
interval; log loss and Brier: Student t on the per-row values; ECE: percentile interval of a
Poisson bootstrap of the ten per-bin sums, in its normal form (``ECE_BOOTSTRAP`` draws, fixed
seed, so a window always gets the same interval; ``_ece_interval`` says why).

Comparisons return ``(estimate, variance, method)`` with the estimate candidate − stable,
oriented so that higher is better (log loss: stable − candidate): see
:class:`contracts.quality.Comparison`.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from contracts.quality import (
    INTERVAL_LEVEL,
    METHOD_DELONG,
    METHOD_DELONG_PAIRED,
    METHOD_PAIRED_MEAN,
    METHOD_WELCH,
    METRICS,
    Interval,
)

#: float64 machine epsilon: scikit-learn's log_loss clips probabilities to [eps, 1 - eps].
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
ECE_BINS = 10
ECE_BOOTSTRAP = 2000
#: Fewer labeled rows per version than this: no variance, so no comparison (a sample
#: variance needs two rows; AUC needs two of each class).
MIN_ROWS = 2

_Z = NormalDist().inv_cdf(0.5 + INTERVAL_LEVEL / 2)


class QualityInputError(ValueError):
    """Scores or labels that cannot be judged; the message names the argument."""


# ---------------------------------------------------------------- input checks


def check_scores(scores: Any, name: str = "scores") -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise QualityInputError(f"{name}: NaN or infinite values")
    if values.size and (values.min() < 0.0 or values.max() > 1.0):
        raise QualityInputError(f"{name}: not probabilities (outside [0, 1])")
    return values


def check_labels(labels: Any, name: str = "labels") -> np.ndarray:
    values = np.asarray(labels, dtype=np.float64).reshape(-1)
    if not np.all((values == 0.0) | (values == 1.0)):
        raise QualityInputError(f"{name}: labels must be 0 or 1 (no NaN)")
    return values


def _rows(scores: Any, labels: Any, prefix: str = "") -> tuple[np.ndarray, np.ndarray]:
    s = check_scores(scores, f"{prefix}scores")
    y = check_labels(labels, f"{prefix}labels")
    if s.size != y.size:
        raise QualityInputError(f"{prefix}labels: {y.size} labels for {s.size} scores")
    return s, y


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise QualityInputError(f"metric: {metric!r} is not one of {', '.join(METRICS)}")


# ---------------------------------------------------------------- per-row figures


def row_log_loss(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-row log loss, clipped on both columns as scikit-learn does."""
    p1 = np.clip(scores, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    p0 = np.clip(1.0 - scores, LOG_LOSS_EPS, 1.0 - LOG_LOSS_EPS)
    return -(labels * np.log(p1) + (1.0 - labels) * np.log(p0))


def row_correct(scores: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    return ((scores >= threshold) == (labels == 1.0)).astype(np.float64)


# ---------------------------------------------------------------- AUC and DeLong


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (Sun & Xu's compute_midrank), O(n log n).

    numpy rather than ``scipy.stats.rankdata``: the monitor never imports SciPy unless a
    figure needs it (``services/monitor/tests/test_lazy_drift.py``).
    """
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.empty(values.size, dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first = np.flatnonzero(starts)
    last = np.append(first[1:], values.size) - 1
    ranks = np.empty(values.size)
    ranks[order] = ((first + last) / 2.0 + 1.0)[np.cumsum(starts) - 1]
    return ranks


def _rank_rows(matrix: np.ndarray) -> np.ndarray:
    return np.vstack([midranks(row) for row in matrix])


def delong(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """AUCs of k score vectors on the same rows and their DeLong covariance (k × k).

    ``scores`` is (k, n). Fast DeLong (Sun & Xu 2014): with midranks of the positives among
    themselves (tx), of the negatives among themselves (ty) and of all rows (tz), the
    structural components are V10 = (tz_pos − tx) / n_neg for each positive and
    V01 = 1 − (tz_neg − ty) / n_pos for each negative; the AUC is the mean of V10 and its
    covariance S10 / n_pos + S01 / n_neg (sample covariances). ``None`` unless there are at
    least ``MIN_ROWS`` rows of each class.
    """
    scores = np.atleast_2d(scores)
    positive = labels == 1.0
    m, n = int(positive.sum()), int((~positive).sum())
    if m < MIN_ROWS or n < MIN_ROWS:
        return None
    pos, neg = scores[:, positive], scores[:, ~positive]
    tx = _rank_rows(pos)
    ty = _rank_rows(neg)
    tz = _rank_rows(np.concatenate([pos, neg], axis=1))
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    aucs = v10.mean(axis=1)
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def auc(scores: Any, labels: Any) -> float | None:
    """ROC AUC (Mann-Whitney, ties one half); ``None`` with one class only."""
    s, y = _rows(scores, labels)
    m = int(y.sum())
    n = y.size - m
    if m == 0 or n == 0:
        return None
    ranks = midranks(s)
    return float((ranks[y == 1.0].sum() - m * (m + 1) / 2.0) / (m * n))


# ---------------------------------------------------------------- intervals


def _mean_interval(values: np.ndarray) -> Interval:
    """Mean with a Student t interval (a single row: the value, no interval)."""
    if values.size == 0:
        return Interval()
    mean = float(values.mean())
    if values.size < MIN_ROWS:
        return Interval(value=mean)
    # Imported here: SciPy takes a second to import, and a monitor without labels never needs it.
    from scipy.stats import t as student_t

    quantile = float(student_t.ppf(0.5 + INTERVAL_LEVEL / 2, values.size - 1))
    half = quantile * float(values.std(ddof=1)) / math.sqrt(values.size)
    return Interval(value=mean, low=mean - half, high=mean + half)


def wilson(successes: int, total: int) -> Interval:
    """Wilson score interval for a proportion (sound at 0 and at total, unlike Wald's)."""
    if total == 0:
        return Interval()
    p = successes / total
    z2 = _Z * _Z
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = _Z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total)) / (1 + z2 / total)
    # At 0 (or all) successes the bound is exactly 0 (or 1); rounding would leave 1e-17.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return Interval(value=p, low=low, high=high)


def _auc_interval(scores: np.ndarray, labels: np.ndarray) -> Interval:
    value = auc(scores, labels)
    if value is None:
        return Interval()
    fitted = delong(scores, labels)
    if fitted is None:
        return Interval(value=value)
    half = _Z * math.sqrt(max(float(fitted[1][0, 0]), 0.0))
    return Interval(value=value, low=max(0.0, value - half), high=min(1.0, value + half))


def _ece_bins(scores: np.ndarray) -> np.ndarray:
    edges = np.linspace(0.0, 1.0, ECE_BINS + 1)
    return np.clip(np.searchsorted(edges, scores, side="right") - 1, 0, ECE_BINS - 1)


def _bin_sums(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per ECE bin: the sum of (score − label) and the sum of its squares."""
    index = _ece_bins(scores)
    gaps = scores - labels
    return (
        np.bincount(index, weights=gaps, minlength=ECE_BINS),
        np.bincount(index, weights=gaps * gaps, minlength=ECE_BINS),
    )


def ece(scores: np.ndarray, labels: np.ndarray) -> float:
    """10-bin ECE: the sum over bins of |sum(score − label)|, over the rows."""
    return float(np.abs(_bin_sums(scores, labels)[0]).sum() / scores.size)


def _ece_interval(scores: np.ndarray, labels: np.ndarray) -> Interval:
    """Percentile interval of a bootstrap of the ten per-bin sums.

    ECE depends on the rows only through the per-bin sums S_k of (score − label). Under the
    Poisson bootstrap (each row weighted by an independent Poisson(1) count) S_k* has mean S_k
    and variance Q_k, the bin's sum of squares; the draws take S_k* ~ N(S_k, Q_k), with the row
    count held at n. O(rows + draws x 10) instead of O(rows x draws): the row-level bootstrap
    cost ~1 s per 100,000-row window; seeded, so a window always reports the same interval.
    """
    if scores.size == 0:
        return Interval()
    sums, squares = _bin_sums(scores, labels)
    value = float(np.abs(sums).sum() / scores.size)
    if scores.size < MIN_ROWS:
        return Interval(value=value)
    rng = np.random.default_rng(0)
    draws = sums + np.sqrt(squares) * rng.standard_normal((ECE_BOOTSTRAP, ECE_BINS))
    tail = (1.0 - INTERVAL_LEVEL) / 2
    low, high = np.quantile(np.abs(draws).sum(axis=1) / scores.size, [tail, 1.0 - tail])
    return Interval(value=value, low=float(low), high=float(high))


def quality(scores: Any, labels: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Every figure of one version's labeled window, each an :class:`Interval`.

    Keys: ``labeled``, ``positives`` (ints) and ``auc``, ``accuracy``, ``log_loss``,
    ``brier``, ``ece`` (the field names of :class:`contracts.quality.VersionQuality`).
    """
    s, y = _rows(scores, labels)
    correct = int(row_correct(s, y, threshold).sum())
    return {
        "labeled": int(y.size),
        "positives": int(y.sum()),
        "auc": _auc_interval(s, y),
        "accuracy": wilson(correct, int(y.size)),
        "log_loss": _mean_interval(row_log_loss(s, y)),
        "brier": _mean_interval((s - y) ** 2),
        "ece": _ece_interval(s, y),
    }


# ---------------------------------------------------------------- comparisons

Result = tuple[float | None, float | None, str]


def _row_gain(metric: str, scores: np.ndarray, labels: np.ndarray, threshold: float) -> Any:
    """Per-row figure oriented so that higher is better: correctness, or minus the log loss."""
    if metric == "accuracy":
        return row_correct(scores, labels, threshold)
    return -row_log_loss(scores, labels)


def compare_paired(
    cand_scores: Any, stable_scores: Any, labels: Any, metric: str, threshold: float = 0.5
) -> Result:
    """Candidate against stable on the SAME labeled requests (shadow).

    AUC: difference of the two AUCs, DeLong variance with the covariance term
    (var_c + var_s − 2 cov). logLoss / accuracy: mean per-request difference
    (stable's loss − candidate's; candidate correct − stable correct) and its variance
    var(d) / n.
    """
    _check_metric(metric)
    c, y = _rows(cand_scores, labels, "candidate ")
    s, _ = _rows(stable_scores, labels, "stable ")
    if metric == "auc":
        fitted = delong(np.vstack([c, s]), y)
        if fitted is None:
            return None, None, METHOD_DELONG_PAIRED
        aucs, cov = fitted
        variance = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
        return float(aucs[0] - aucs[1]), max(variance, 0.0), METHOD_DELONG_PAIRED
    if y.size < MIN_ROWS:
        return None, None, METHOD_PAIRED_MEAN
    d = _row_gain(metric, c, y, threshold) - _row_gain(metric, s, y, threshold)
    return float(d.mean()), float(d.var(ddof=1)) / y.size, METHOD_PAIRED_MEAN


def compare_concurrent(
    cand_scores: Any,
    cand_labels: Any,
    stable_scores: Any,
    stable_labels: Any,
    metric: str,
    threshold: float = 0.5,
) -> Result:
    """Candidate against stable, each on its own share of the traffic (canary).

    AUC: difference of the AUCs, variance the sum of the two DeLong variances (independent
    samples). logLoss / accuracy: difference of the means, Welch's unpooled variance
    var_c / n_c + var_s / n_s.
    """
    _check_metric(metric)
    c, yc = _rows(cand_scores, cand_labels, "candidate ")
    s, ys = _rows(stable_scores, stable_labels, "stable ")
    if metric == "auc":
        fc, fs = delong(c, yc), delong(s, ys)
        if fc is None or fs is None:
            return None, None, METHOD_DELONG
        variance = float(fc[1][0, 0] + fs[1][0, 0])
        return float(fc[0][0] - fs[0][0]), max(variance, 0.0), METHOD_DELONG
    if yc.size < MIN_ROWS or ys.size < MIN_ROWS:
        return None, None, METHOD_WELCH
    gc = _row_gain(metric, c, yc, threshold)
    gs = _row_gain(metric, s, ys, threshold)
    variance = float(gc.var(ddof=1)) / yc.size + float(gs.var(ddof=1)) / ys.size
    return float(gc.mean() - gs.mean()), variance, METHOD_WELCH

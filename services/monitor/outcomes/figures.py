"""Quality per version and candidate-against-stable comparisons from the join's windows. Pure.

The statistics are :mod:`services.monitor.outcomes.stats`; this module picks the rows: a
version's labeled window (within ``maxAgeSeconds`` of being labeled) for
:class:`~contracts.quality.VersionQuality`; for a :class:`~contracts.quality.Comparison`
the rows *served* since ``since`` (the start of the step being judged), paired by request
(the stable and shadow predictions of the same request id and row, both labeled) or
concurrent (each version's own labeled requests).
"""

from __future__ import annotations

import contextlib

import numpy as np

from contracts.quality import (
    METHOD_DELONG,
    METHOD_DELONG_PAIRED,
    METHOD_PAIRED_MEAN,
    METHOD_WELCH,
    Comparison,
    Design,
    Interval,
    Metric,
    VersionQuality,
)
from services.monitor.outcomes import stats
from services.monitor.outcomes.join import VersionRows


def version_quality(version: str, role: str, rows: VersionRows, threshold: float) -> VersionQuality:
    """Every figure of one version's window; figures stay null when the scores are no
    probabilities (a model answering class ids: only the counts are reported)."""
    base = VersionQuality(
        version=version,
        role=role,
        labeled=rows.size,
        positives=int(rows.labels.sum()),
        window_start=float(rows.served_at.min()) if rows.size else None,
        window_end=float(rows.served_at.max()) if rows.size else None,
        label_delay_p50_s=_quantile(rows.delays, 0.5),
        label_delay_p90_s=_quantile(rows.delays, 0.9),
    )
    if not rows.size:
        return base
    try:
        figures = stats.quality(rows.scores, rows.labels, threshold)
    except stats.QualityInputError:
        return base
    intervals = {k: v for k, v in figures.items() if isinstance(v, Interval)}
    return base.model_copy(update=intervals)


def _quantile(values: np.ndarray, q: float) -> float | None:
    return float(np.quantile(values, q)) if values.size else None


def compare(
    candidate: VersionRows | None,
    stable: VersionRows | None,
    *,
    metric: Metric,
    design: Design,
    candidate_version: str,
    stable_version: str,
    since: float,
    threshold: float,
) -> Comparison:
    """The label gate's comparison; estimate and variance null while labels are too few
    (or the scores are no probabilities)."""
    empty = _empty()
    cand, stab = candidate or empty, stable or empty
    if design == "paired":
        c, s, y = _pairs(cand, stab)
        n = n_stable = int(y.size)
        compute = lambda: stats.compare_paired(c, s, y, metric, threshold)  # noqa: E731
        method = METHOD_DELONG_PAIRED if metric == "auc" else METHOD_PAIRED_MEAN
    else:
        n, n_stable = cand.size, stab.size
        compute = lambda: stats.compare_concurrent(  # noqa: E731
            cand.scores, cand.labels, stab.scores, stab.labels, metric, threshold
        )
        method = METHOD_DELONG if metric == "auc" else METHOD_WELCH
    estimate: float | None = None
    variance: float | None = None
    with contextlib.suppress(stats.QualityInputError):  # scores that are no probabilities
        estimate, variance, method = compute()
    return Comparison(
        metric=metric,
        candidate=candidate_version,
        stable=stable_version,
        design=design,
        n=n,
        n_stable=n_stable,
        estimate=estimate,
        variance=variance,
        method=method,
        since=since,
    )


def _pairs(candidate: VersionRows, stable: VersionRows) -> tuple[np.ndarray, ...]:
    """Candidate and stable scores of the requests both labeled, and their label."""
    where = {key: i for i, key in enumerate(stable.request_ids)}
    ci: list[int] = []
    si: list[int] = []
    for i, key in enumerate(candidate.request_ids):
        j = where.get(key)
        if j is not None:
            ci.append(i)
            si.append(j)
    c, s = np.asarray(ci, dtype=np.intp), np.asarray(si, dtype=np.intp)
    # One label per request id (the first wins in the join), so both sides carry the same.
    return candidate.scores[c], stable.scores[s], candidate.labels[c]


def _empty() -> VersionRows:
    nothing = np.zeros(0)
    return VersionRows([], nothing, nothing, np.zeros(0, dtype=np.int64), nothing, nothing)

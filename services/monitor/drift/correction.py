"""Multiple-testing corrections across per-feature p-values (as Alibi Detect applies them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.monitor.drift.errors import DetectorConfigError
from services.monitor.drift.result import Correction

CORRECTIONS: tuple[Correction, ...] = ("bonferroni", "fdr", "none")


@dataclass(frozen=True)
class Corrected:
    """Decision after correction: which features drifted, the threshold, the window p-value."""

    drifted: np.ndarray  # bool per feature
    threshold: float
    window_p_value: float


def check_correction(correction: str) -> Correction:
    if correction not in CORRECTIONS:
        raise DetectorConfigError(
            f"unknown correction {correction!r}; use one of {', '.join(CORRECTIONS)}"
        )
    return correction  # type: ignore[return-value]


def correct(p_values: np.ndarray, alpha: float, correction: Correction) -> Corrected:
    """Apply ``correction`` at family-wise level ``alpha`` to one p-value per feature.

    Bonferroni tests each p-value against ``alpha / n``; FDR is Benjamini-Hochberg (the
    threshold is ``alpha * k / n`` for the largest ``k`` whose sorted p-value is below it);
    ``none`` tests each against ``alpha``. A feature drifted when its p-value is strictly below
    the threshold, the same rule Alibi Detect uses.
    """
    p = np.asarray(p_values, dtype=np.float64)
    n = p.size
    if correction == "bonferroni":
        threshold = alpha / n
        window_p = min(1.0, float(p.min()) * n)
    elif correction == "fdr":
        threshold, window_p = _benjamini_hochberg(p, alpha)
    else:
        threshold = alpha
        window_p = float(p.min())
    return Corrected(drifted=p < threshold, threshold=threshold, window_p_value=window_p)


def _benjamini_hochberg(p: np.ndarray, alpha: float) -> tuple[float, float]:
    n = p.size
    ranks = np.arange(1, n + 1)
    ordered = np.sort(p)
    below = ordered < alpha * ranks / n
    threshold = float(alpha * (np.nonzero(below)[0].max() + 1) / n) if below.any() else alpha / n
    # BH-adjusted p-values: the smallest is the window's p-value.
    adjusted = np.minimum.accumulate((ordered * n / ranks)[::-1])[::-1]
    return threshold, float(min(1.0, adjusted[0]))

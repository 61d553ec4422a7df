"""The Apache-2.0 detector set: scipy KS, chi-squared and PSI, corrected across features.

Selectable per MLModel for production use where Alibi Detect's Business Source License does
not allow it. The decisions follow Alibi Detect's: one test per feature, Bonferroni (or FDR)
across features, drift when any corrected p-value is below the threshold.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import stats

from services.monitor.drift.base import DriftDetector
from services.monitor.drift.binning import Binning
from services.monitor.drift.errors import DetectorConfigError
from services.monitor.drift.result import DriftResult

#: Replaces empty bins' proportions in PSI, so a bin empty on one side gives a large finite term.
PSI_EPSILON = 1e-4
#: Default PSI alarm level. The usual reading is < 0.1 stable, 0.1-0.25 moderate shift,
#: > 0.25 major shift; 0.1 keeps false alarms near zero for windows of >= 500 rows with 10
#: bins (sampling noise alone gives PSI ~ (bins - 1) * (1/n_window + 1/n_reference) ~ 0.02)
#: while a 0.5 sigma mean shift (PSI ~ 0.23) is caught (see tests/test_calibration_scipy.py).
DEFAULT_PSI_THRESHOLD = 0.1


def ks_per_feature(reference: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample KS per column: (p-values, statistics). Asymptotic p-values, as Alibi uses."""
    p = np.empty(reference.shape[1])
    d = np.empty(reference.shape[1])
    for f in range(reference.shape[1]):
        outcome = stats.ks_2samp(reference[:, f], window[:, f], method="asymp")
        d[f], p[f] = outcome.statistic, outcome.pvalue
    return p, d


def chi2_from_counts(
    reference_counts: np.ndarray, window_counts: np.ndarray
) -> tuple[float, float]:
    """Chi-squared test of homogeneity on two count vectors: (p-value, statistic).

    Bins empty on both sides carry no information and would make expected counts zero.
    """
    table = np.vstack([reference_counts, window_counts])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0, 0.0
    statistic, p_value, _, _ = stats.chi2_contingency(table)
    return float(p_value), float(statistic)


def psi(reference_counts: np.ndarray, window_counts: np.ndarray) -> float:
    """Population stability index: sum over bins of (w - r) * ln(w / r) on proportions."""
    r = np.maximum(reference_counts / reference_counts.sum(), PSI_EPSILON)
    w = np.maximum(window_counts / window_counts.sum(), PSI_EPSILON)
    return float(np.sum((w - r) * np.log(w / r)))


class KSDetector(DriftDetector):
    """Kolmogorov-Smirnov per numeric feature (scipy), Bonferroni/FDR across features."""

    name: ClassVar[str] = "ks"
    accepts_categorical: ClassVar[bool] = False

    def _fit_matrix(self, reference: np.ndarray) -> None:
        self._reference = reference

    def _check_matrix(self, window: np.ndarray) -> DriftResult:
        p, d = ks_per_feature(self._reference, window)
        return self._univariate_result(p, d, len(window))


class PredictionKSDetector(KSDetector):
    """Prediction-distribution drift: KS on the model's scores (one column per output)."""

    name: ClassVar[str] = "prediction"


class ChiSquareDetector(DriftDetector):
    """Chi-squared per feature (scipy) on reference categories; numeric features are binned
    at the reference's quantiles first. Bonferroni/FDR across features."""

    name: ClassVar[str] = "chi2"

    def __init__(self, p_value: float = 0.05, correction: str = "bonferroni", bins: int = 10):
        super().__init__(p_value, correction)
        self.bins = bins

    def _fit_matrix(self, reference: np.ndarray) -> None:
        self._binning = Binning.learn(self.schema, reference, self.bins)
        self._reference_counts = self._binning.counts(reference)

    def _check_matrix(self, window: np.ndarray) -> DriftResult:
        tests = [
            chi2_from_counts(ref, cur)
            for ref, cur in zip(self._reference_counts, self._binning.counts(window), strict=True)
        ]
        p = np.array([t[0] for t in tests])
        d = np.array([t[1] for t in tests])
        return self._univariate_result(p, d, len(window))


class TabularDetector(DriftDetector):
    """Mixed data (scipy): KS for numeric features, chi-squared for categorical ones."""

    name: ClassVar[str] = "tabular"

    def _fit_matrix(self, reference: np.ndarray) -> None:
        self._reference = reference
        self._binning = Binning.learn(self.schema, reference, bins=2)  # categorical codes only
        self._reference_counts = self._binning.counts(reference)

    def _check_matrix(self, window: np.ndarray) -> DriftResult:
        n = self.schema.n_features
        p, d = np.ones(n), np.zeros(n)
        numeric = self.schema.numeric_indices
        if numeric:
            p[numeric], d[numeric] = ks_per_feature(self._reference[:, numeric], window[:, numeric])
        window_counts = self._binning.counts(window)
        for f in self.schema.categorical_indices:
            p[f], d[f] = chi2_from_counts(self._reference_counts[f], window_counts[f])
        return self._univariate_result(p, d, len(window))


class PSIDetector(DriftDetector):
    """Population stability index per feature (reference-quantile bins); drift when any
    feature's PSI exceeds ``threshold``. No p-values: ``p_value``/``correction`` are unused."""

    name: ClassVar[str] = "psi"

    def __init__(
        self,
        p_value: float = 0.05,
        correction: str = "none",
        bins: int = 10,
        threshold: float = DEFAULT_PSI_THRESHOLD,
    ) -> None:
        super().__init__(p_value, "none")
        if threshold <= 0:
            raise DetectorConfigError(f"PSI threshold must be positive, got {threshold!r}")
        self.bins = bins
        self.threshold = float(threshold)

    def _fit_matrix(self, reference: np.ndarray) -> None:
        self._binning = Binning.learn(self.schema, reference, self.bins)
        self._reference_counts = self._binning.counts(reference)

    def _check_matrix(self, window: np.ndarray) -> DriftResult:
        names = self.feature_names
        values = [
            psi(ref, cur)
            for ref, cur in zip(self._reference_counts, self._binning.counts(window), strict=True)
        ]
        drifted = [n for n, v in zip(names, values, strict=True) if v > self.threshold]
        return DriftResult(
            detector=self.name,
            license=self.license,
            is_drift=bool(drifted),
            feature_distances=dict(zip(names, values, strict=True)),
            drifted_features=drifted,
            distance=max(values),
            threshold=self.threshold,
            threshold_kind="distance",
            correction="none",
            window_size=len(window),
            reference_size=self.reference_size,
        )

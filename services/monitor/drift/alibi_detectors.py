"""Detectors backed by Alibi Detect (``KSDrift``, ``ChiSquareDrift``, ``TabularDrift``,
``MMDDrift`` with the PyTorch backend).

Licence: Alibi Detect is distributed under the Business Source License 1.1, which allows use
only outside production. Production deployments should select the Apache-2.0 set
(``ks``, ``chi2``, ``tabular``, ``psi``, ``prediction``) in ``monitoring.drift.detector``.

Alibi Detect is imported when a detector is fitted, not when this module is imported: it
pulls in torch and transformers, which take many seconds to load.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from services.monitor.drift.base import ALIBI_BSL, DriftDetector
from services.monitor.drift.binning import Binning
from services.monitor.drift.correction import correct
from services.monitor.drift.multivariate import PermutationDetector, Standardiser, subsample
from services.monitor.drift.result import DriftResult


class _AlibiUnivariate(DriftDetector):
    """Shared glue: run an Alibi univariate detector and keep its own decision."""

    license: ClassVar[str] = ALIBI_BSL
    _detector: Any

    def _check_matrix(self, window: np.ndarray) -> DriftResult:
        data = self._detector.predict(self._transform(window), drift_type="batch")["data"]
        p = np.asarray(data["p_val"], dtype=np.float64).reshape(-1)
        d = np.asarray(data["distance"], dtype=np.float64).reshape(-1)
        # With FDR and no significant feature Alibi returns every candidate threshold.
        threshold = float(np.min(data["threshold"]))
        names = self.feature_names
        return DriftResult(
            detector=self.name,
            license=self.license,
            is_drift=bool(data["is_drift"]),
            feature_p_values={n: float(v) for n, v in zip(names, p, strict=True)},
            feature_distances={n: float(v) for n, v in zip(names, d, strict=True)},
            drifted_features=[n for n, v in zip(names, p, strict=True) if v < threshold],
            p_value=correct(p, self.p_value, self.correction).window_p_value,
            distance=float(d.max()),
            threshold=threshold,
            threshold_kind="p-value",
            configured_p_value=self.p_value,
            correction=self.correction,
            window_size=len(window),
            reference_size=self.reference_size,
        )

    def _transform(self, matrix: np.ndarray) -> np.ndarray:
        return matrix.astype(np.float32)


class AlibiKSDetector(_AlibiUnivariate):
    """Alibi Detect ``KSDrift`` on numeric features (BSL-1.1: not for production)."""

    name: ClassVar[str] = "alibi-ks"
    accepts_categorical: ClassVar[bool] = False

    def _fit_matrix(self, reference: np.ndarray) -> None:
        from alibi_detect.cd import KSDrift

        self._detector = KSDrift(
            self._transform(reference), p_val=self.p_value, correction=self.correction
        )


class AlibiPredictionDetector(AlibiKSDetector):
    """Prediction-distribution drift: Alibi ``KSDrift`` on model scores (BSL-1.1)."""

    name: ClassVar[str] = "alibi-prediction"


class AlibiChiSquareDetector(_AlibiUnivariate):
    """Alibi Detect ``ChiSquareDrift`` (BSL-1.1). Categorical features use the reference's
    categories; numeric features are binned at the reference's quantiles first."""

    name: ClassVar[str] = "alibi-chi2"

    def __init__(self, p_value: float = 0.05, correction: str = "bonferroni", bins: int = 10):
        super().__init__(p_value, correction)
        self.bins = bins

    def _fit_matrix(self, reference: np.ndarray) -> None:
        from alibi_detect.cd import ChiSquareDrift

        self._binning = Binning.learn(self.schema, reference, self.bins)
        # Categories are inferred from the reference; Alibi adds unseen window categories.
        self._detector = ChiSquareDrift(
            self._transform(reference), p_val=self.p_value, correction=self.correction
        )

    def _transform(self, matrix: np.ndarray) -> np.ndarray:
        return self._binning.codes(matrix).astype(np.float32)


class AlibiTabularDetector(_AlibiUnivariate):
    """Alibi Detect ``TabularDrift`` (BSL-1.1): KS for numeric, chi-squared for categorical."""

    name: ClassVar[str] = "alibi-tabular"

    def _fit_matrix(self, reference: np.ndarray) -> None:
        from alibi_detect.cd import TabularDrift

        categories: dict[int, int | None] = dict.fromkeys(self.schema.categorical_indices)
        self._detector = TabularDrift(
            self._transform(reference),
            p_val=self.p_value,
            correction=self.correction,
            categories_per_feature=categories,
        )


class AlibiMMDDetector(PermutationDetector):
    """Alibi Detect ``MMDDrift``, PyTorch backend (BSL-1.1): one multivariate test.

    Features are z-scored / one-hot encoded by
    :class:`~services.monitor.drift.multivariate.Standardiser`. The p-value comes from
    ``n_permutations`` permutations, in steps of ``1 / n_permutations``; the constructor
    refuses a count that cannot resolve ``p_value`` (``(n_permutations + 1) * p_value > 1``,
    the rule ``mmd`` shares). Alibi re-indexes the whole kernel matrix for every
    permutation (seconds per window on CPU); the Apache-2.0 ``mmd`` detector runs the same
    test with all permutations in one matrix product.

    Cost grows with ``(reference + window)^2`` per permutation, so a reference larger than
    ``max_reference_rows`` is replaced by a seeded random subsample of that many rows (a
    100k-row training snapshot would otherwise need a 40 GB kernel matrix).
    """

    name: ClassVar[str] = "alibi-mmd"
    license: ClassVar[str] = ALIBI_BSL
    _detector: Any

    def _fit_matrix(self, reference: np.ndarray) -> None:
        from alibi_detect.cd import MMDDrift

        reference = subsample(reference, self.max_reference_rows)
        self.reference_size = len(reference)
        self._standardiser = Standardiser.learn(self.schema, reference)
        self._detector = MMDDrift(
            self._standardiser.transform(reference),
            backend="pytorch",
            p_val=self.p_value,
            n_permutations=self.n_permutations,
            device=self.device,
        )

    def _check_matrix(self, window: np.ndarray) -> DriftResult:
        data: dict[str, Any] = self._detector.predict(self._standardiser.transform(window))["data"]
        return DriftResult(
            detector=self.name,
            license=self.license,
            is_drift=bool(data["is_drift"]),
            p_value=float(data["p_val"]),
            distance=float(data["distance"]),
            threshold=self.p_value,
            threshold_kind="p-value",
            configured_p_value=self.p_value,
            correction="none",
            window_size=len(window),
            reference_size=self.reference_size,
        )

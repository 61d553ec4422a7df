"""The detector interface: ``fit(reference, feature_names, categorical)`` then ``check(window)``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import ClassVar, Self

import numpy as np

from services.monitor.drift.correction import check_correction, correct
from services.monitor.drift.errors import DetectorConfigError, NotFittedError
from services.monitor.drift.result import DriftResult
from services.monitor.drift.schema import FeatureSchema, TableLike

APACHE = "Apache-2.0"
#: Alibi Detect is under the Business Source License 1.1: free outside production use.
ALIBI_BSL = "BSL-1.1 (Alibi Detect; free outside production use)"


class DriftDetector(ABC):
    """A two-sample drift test between a reference and windows of served data.

    Subclasses implement :meth:`_fit_matrix` and :meth:`_check_matrix` on validated float
    matrices; this base class owns validation, so every detector rejects NaN/inf and
    wrong-shape windows the same way (:class:`~services.monitor.drift.errors.InvalidWindowError`).
    """

    #: Registry name (``monitoring.drift.detector``).
    name: ClassVar[str]
    license: ClassVar[str] = APACHE
    #: Whether the detector accepts categorical features.
    accepts_categorical: ClassVar[bool] = True

    def __init__(self, p_value: float = 0.05, correction: str = "bonferroni") -> None:
        if not 0.0 < p_value < 1.0:
            raise DetectorConfigError(f"p_value must be in (0, 1), got {p_value!r}")
        self.p_value = float(p_value)
        self.correction = check_correction(correction)
        self._schema: FeatureSchema | None = None
        self.reference_size = 0
        self.reference_rows_dropped = 0

    @property
    def schema(self) -> FeatureSchema:
        if self._schema is None:
            raise NotFittedError(f"detector {self.name!r} used before fit()")
        return self._schema

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.schema.feature_names

    def fit(
        self,
        reference: TableLike,
        feature_names: Sequence[str] | None = None,
        categorical: Iterable[str] = (),
    ) -> Self:
        """Learn the reference. ``categorical`` names the features compared as categories."""
        schema = FeatureSchema.learn(reference, feature_names, categorical)
        if schema.categorical and not self.accepts_categorical:
            raise DetectorConfigError(
                f"detector {self.name!r} compares numeric features only, but "
                f"{sorted(schema.categorical)} are categorical; use a tabular detector"
            )
        matrix, dropped = schema.encode_reference(reference)
        self._schema = schema
        self.reference_size = len(matrix)
        self.reference_rows_dropped = dropped
        self._fit_matrix(matrix)
        return self

    def check(self, window: TableLike) -> DriftResult:
        """Test one window; raises ``InvalidWindowError`` for data that cannot be assessed."""
        matrix = self.schema.encode(window)
        return self._check_matrix(matrix)

    @abstractmethod
    def _fit_matrix(self, reference: np.ndarray) -> None: ...

    @abstractmethod
    def _check_matrix(self, window: np.ndarray) -> DriftResult: ...

    def _univariate_result(
        self, p_values: np.ndarray, distances: np.ndarray, window_size: int
    ) -> DriftResult:
        """Shared result shape for per-feature tests corrected across features."""
        corrected = correct(p_values, self.p_value, self.correction)
        names = self.feature_names
        return DriftResult(
            detector=self.name,
            license=self.license,
            is_drift=bool(corrected.drifted.any()),
            feature_p_values={n: float(p) for n, p in zip(names, p_values, strict=True)},
            feature_distances={n: float(d) for n, d in zip(names, distances, strict=True)},
            drifted_features=[n for n, d in zip(names, corrected.drifted, strict=True) if d],
            p_value=corrected.window_p_value,
            distance=float(np.max(distances)),
            threshold=corrected.threshold,
            threshold_kind="p-value",
            configured_p_value=self.p_value,
            correction=self.correction,
            window_size=window_size,
            reference_size=self.reference_size,
        )

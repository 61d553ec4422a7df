"""Discretise features into the reference's bins, for chi-squared and PSI.

Numeric features are cut at the reference's quantiles (equal-frequency bins, so every bin
has data in the reference); categorical features keep the reference's categories plus one
'unseen' bin, as encoded by :class:`~services.monitor.drift.schema.FeatureSchema`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.monitor.drift.errors import DetectorConfigError
from services.monitor.drift.schema import FeatureSchema


@dataclass(frozen=True)
class Binning:
    """Per feature: the inner bin edges (numeric) or ``None`` (categorical codes), and sizes."""

    edges: tuple[np.ndarray | None, ...]
    n_bins: tuple[int, ...]

    @classmethod
    def learn(cls, schema: FeatureSchema, reference: np.ndarray, bins: int) -> Binning:
        if bins < 2:
            raise DetectorConfigError(f"bins must be at least 2, got {bins!r}")
        quantiles = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        edges: list[np.ndarray | None] = []
        sizes: list[int] = []
        for index, name in enumerate(schema.feature_names):
            if name in schema.categorical:
                edges.append(None)
                sizes.append(schema.n_codes(name))
            else:
                inner = np.unique(np.quantile(reference[:, index], quantiles))
                edges.append(inner)
                sizes.append(len(inner) + 1)
        return cls(edges=tuple(edges), n_bins=tuple(sizes))

    def codes(self, matrix: np.ndarray) -> np.ndarray:
        """(n, d) integer bin index of every value."""
        columns = [
            matrix[:, index].astype(np.int64)
            if inner is None
            else np.searchsorted(inner, matrix[:, index], side="right")
            for index, inner in enumerate(self.edges)
        ]
        return np.column_stack(columns).astype(np.int64)

    def counts(self, matrix: np.ndarray) -> list[np.ndarray]:
        """Per feature, how many rows fall in each bin."""
        codes = self.codes(matrix)
        return [
            np.bincount(codes[:, index], minlength=size) for index, size in enumerate(self.n_bins)
        ]

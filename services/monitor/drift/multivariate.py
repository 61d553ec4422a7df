"""Shared preparation for multivariate (kernel) tests: one numeric scale for every feature.

Numeric features are standardised with the reference's mean and spread and categorical ones
one-hot encoded (reference categories plus 'unseen'), so a Gaussian kernel's bandwidth sees
every feature on the same scale. References larger than ``max_rows`` are subsampled (seeded):
the kernel matrix grows with the square of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from services.monitor.drift.errors import DetectorConfigError
from services.monitor.drift.schema import FeatureSchema


def check_max_rows(max_reference_rows: int) -> int:
    if max_reference_rows < 2:
        raise DetectorConfigError(
            f"max_reference_rows must be at least 2, got {max_reference_rows!r}"
        )
    return max_reference_rows


def subsample(reference: np.ndarray, max_rows: int, seed: int = 0) -> np.ndarray:
    """At most ``max_rows`` rows of the reference, drawn without replacement, order kept."""
    if len(reference) <= max_rows:
        return reference
    rows = np.random.default_rng(seed).choice(len(reference), max_rows, replace=False)
    return reference[np.sort(rows)]


@dataclass(frozen=True)
class Standardiser:
    """z-scores numeric columns and one-hot encodes categorical codes."""

    schema: FeatureSchema
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def learn(cls, schema: FeatureSchema, reference: np.ndarray) -> Standardiser:
        numeric = reference[:, schema.numeric_indices]
        spread = numeric.std(axis=0)
        return cls(schema, numeric.mean(axis=0), np.where(spread > 0, spread, 1.0))

    def transform(self, matrix: np.ndarray) -> np.ndarray:
        schema = self.schema
        blocks = [(matrix[:, schema.numeric_indices] - self.mean) / self.scale]
        for index in schema.categorical_indices:
            size = schema.n_codes(schema.feature_names[index])
            blocks.append(np.eye(size)[matrix[:, index].astype(np.int64)])
        return np.hstack(blocks).astype(np.float32)

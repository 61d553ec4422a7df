"""Shared preparation for multivariate (kernel) tests: one numeric scale for every feature,
and the sample-size rules both MMD detectors (``mmd``, ``alibi-mmd``) check at construction.

Numeric features are standardised with the reference's mean and spread and categorical ones
one-hot encoded (reference categories plus 'unseen'), so a Gaussian kernel's bandwidth sees
every feature on the same scale. References larger than ``max_rows`` are subsampled (seeded):
the kernel matrix grows with the square of the rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from services.monitor.drift.base import DriftDetector
from services.monitor.drift.errors import DetectorConfigError
from services.monitor.drift.schema import FeatureSchema


def check_max_rows(max_reference_rows: int) -> int:
    if max_reference_rows < 2:
        raise DetectorConfigError(
            f"max_reference_rows must be at least 2, got {max_reference_rows!r}"
        )
    return max_reference_rows


def min_permutations(p_value: float) -> int:
    """The fewest permutations whose test can report a p-value below ``p_value``.

    A permutation test over ``n`` permutations resolves p-values in steps of ``1/(n + 1)``:
    the smallest it can report without a false-alarm rate above ``p_value`` is
    ``1/(n + 1)`` (``mmd`` reports ``(1 + k)/(1 + n)``; Alibi reports ``k/n``, whose 0 a null
    window hits with probability ``1/(n + 1)``). So ``n`` must satisfy ``(n + 1) * p > 1``.
    """
    n = max(1, math.ceil(1 / p_value) - 1)
    while (n + 1) * p_value <= 1:
        n += 1
    return n


def check_permutation_test(n_permutations: int, p_value: float, device: str) -> None:
    """Reject a permutation count that cannot resolve ``p_value``, or an unknown device."""
    needed = min_permutations(p_value)
    if n_permutations < needed:
        raise DetectorConfigError(
            f"n_permutations={n_permutations} cannot resolve p_value={p_value}: "
            f"use at least {needed}"
        )
    if device not in ("cpu", "cuda"):
        raise DetectorConfigError(f"device must be 'cpu' or 'cuda', got {device!r}")


class PermutationDetector(DriftDetector):
    """Base of the MMD detectors: one multivariate permutation test (no per-feature
    correction) on a reference of at most ``max_reference_rows`` rows."""

    def __init__(
        self,
        p_value: float = 0.05,
        correction: str = "none",
        n_permutations: int = 100,
        device: str = "cpu",
        max_reference_rows: int = 1000,
    ) -> None:
        super().__init__(p_value, "none")
        check_permutation_test(n_permutations, p_value, device)
        self.n_permutations = n_permutations
        self.device = device
        self.max_reference_rows = check_max_rows(max_reference_rows)


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

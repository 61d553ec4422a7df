"""What a drift check returns: JSON-able pydantic models the monitor serves and persists."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Correction = Literal["bonferroni", "fdr", "none"]


class DriftResult(BaseModel):
    """Outcome of one detector on one window.

    Univariate detectors fill ``feature_p_values`` / ``feature_distances`` (one entry per
    feature); multivariate ones (MMD) fill ``p_value`` / ``distance`` only. PSI has no
    p-values: its decision compares ``feature_distances`` (the PSI) to ``threshold``.
    """

    model_config = ConfigDict(frozen=True)

    detector: str
    license: str
    is_drift: bool
    feature_p_values: dict[str, float] = Field(default_factory=dict)
    feature_distances: dict[str, float] = Field(default_factory=dict)
    drifted_features: list[str] = Field(default_factory=list)
    p_value: float | None = Field(
        default=None,
        description="Window-level p-value: the test's own (MMD) or the corrected minimum.",
    )
    distance: float | None = Field(default=None, description="MMD^2, or the largest PSI.")
    threshold: float = Field(description="What the decision compared against (after correction).")
    threshold_kind: Literal["p-value", "distance"] = "p-value"
    configured_p_value: float | None = None
    correction: Correction = "none"
    window_size: int
    reference_size: int

    def status_p_values(self) -> dict[str, float]:
        """Per-feature p-values for ``MLModel.status.drift.pValues``; MMD reports ``{"mmd": p}``."""
        if self.feature_p_values:
            return dict(self.feature_p_values)
        if self.p_value is not None:
            return {self.detector.removeprefix("alibi-"): self.p_value}
        return {}


class NullRateResult(BaseModel):
    """Per-feature null fraction of a window against the reference's, plus the tolerance."""

    model_config = ConfigDict(frozen=True)

    reference_rates: dict[str, float]
    window_rates: dict[str, float]
    tolerance: float
    exceeded: list[str]
    is_alarm: bool
    window_size: int


class SkewResult(BaseModel):
    """Training-serving skew: per feature, how many served values disagree with the offline store."""

    model_config = ConfigDict(frozen=True)

    pairs: int
    mismatch_fraction: dict[str, float]
    mismatched: dict[str, int]
    max_mismatch_fraction: float
    skewed_features: list[str]
    is_skew: bool
    unmatched_served: int = Field(
        default=0, description="Served rows with no offline row for the same entity and time."
    )

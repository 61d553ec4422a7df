"""Model quality on joined labels, and the label gate's comparison: the monitor's answers.

Written by the monitor (``services/monitor``: the quality windows of each version, computed by
``services/monitor/outcomes/stats.py``), read by the MLModel operator
(``operators/backends/monitor.py``; ``operators/mlmodel/outcome_gate.py`` judges a
:class:`Comparison`). One pydantic model serves both sides.

- ``GET /v1/models/{ns}/{name}/quality[?since=<epoch s>]`` answers a :class:`QualityReport`
  (with ``since``: each version's figures on the rows it served since then).
- ``GET /v1/models/{ns}/{name}/compare?candidate=V&stable=V&metric=auc|logLoss|accuracy
  &design=paired|concurrent&since=<epoch s>`` answers a :class:`Comparison`.

Wire format: camelCase JSON (the fields' aliases), unknown fields rejected, NaN and infinities
rejected (JSON cannot carry them; a figure that cannot be computed is ``null``). Every
:class:`Interval` is a 95% interval; docs/outcomes.md says how each one is computed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

_WIRE = ConfigDict(
    alias_generator=to_camel, populate_by_name=True, extra="forbid", allow_inf_nan=False
)

#: The primary metrics a label gate can judge (``spec.rollout.analysis.primaryMetric.name``).
Metric = Literal["auc", "logLoss", "accuracy"]
METRICS: tuple[Metric, ...] = ("auc", "logLoss", "accuracy")
#: paired: candidate and stable scored the same requests (shadow); concurrent: each scored its
#: own share of the traffic split (canary).
Design = Literal["paired", "concurrent"]
DESIGNS: tuple[Design, ...] = ("paired", "concurrent")

#: How a Comparison's variance was computed (``Comparison.method``).
METHOD_DELONG_PAIRED = "delong-paired"  # AUC, same requests: DeLong with the covariance term
METHOD_PAIRED_MEAN = "paired-mean"  # per-request difference of loss / correctness
METHOD_DELONG = "delong"  # AUC, independent samples: sum of the two DeLong variances
METHOD_WELCH = "welch"  # difference of two means, unpooled variances

#: 95%: the level of every Interval in a QualityReport.
INTERVAL_LEVEL = 0.95


class Interval(BaseModel):
    """A figure and its 95% interval; all ``None`` when it cannot be computed."""

    model_config = _WIRE

    value: float | None = None
    low: float | None = None
    high: float | None = None


class VersionQuality(BaseModel):
    """One model version's quality over its sliding window of labeled requests."""

    model_config = _WIRE

    version: str = Field(max_length=128)
    role: str = Field(max_length=32)
    labeled: int = Field(ge=0)
    positives: int = Field(ge=0)
    auc: Interval = Field(default_factory=Interval, description="None with one class only.")
    accuracy: Interval = Field(default_factory=Interval)
    log_loss: Interval = Field(default_factory=Interval)
    brier: Interval = Field(default_factory=Interval)
    ece: Interval = Field(default_factory=Interval, description="10 equal-width bins.")
    window_start: float | None = Field(default=None, description="Epoch s, oldest labeled.")
    window_end: float | None = Field(default=None, description="Epoch s, newest labeled.")
    label_delay_p50_s: float | None = Field(default=None, ge=0)
    label_delay_p90_s: float | None = Field(default=None, ge=0)


class QualityReport(BaseModel):
    """``GET /v1/models/{ns}/{name}/quality``: every version in play."""

    model_config = _WIRE

    namespace: str
    model: str
    now: float
    versions: list[VersionQuality] = Field(default_factory=list)
    orphans: int = Field(default=0, ge=0, description="Labels that never met a prediction.")
    pending_labels: int = Field(default=0, ge=0, description="Labels waiting for maturity.")


class Comparison(BaseModel):
    """``GET /v1/models/{ns}/{name}/compare``: candidate against stable on one metric.

    ``estimate`` is candidate − stable oriented so that HIGHER IS BETTER for the candidate
    (logLoss: stable − candidate). ``estimate`` and ``variance`` are ``None`` while there are
    too few labels (or one class only, for AUC).
    """

    model_config = _WIRE

    metric: Metric
    candidate: str = Field(max_length=128)
    stable: str = Field(max_length=128)
    design: Design
    n: int = Field(ge=0, description="paired: labeled pairs; concurrent: candidate's labeled.")
    n_stable: int = Field(ge=0, description="concurrent: stable's labeled (paired: = n).")
    estimate: float | None = None
    variance: float | None = Field(default=None, ge=0)
    method: str = Field(max_length=64)
    since: float

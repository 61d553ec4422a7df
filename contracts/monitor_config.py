"""The per-model monitor config: what the MLModel operator tells the monitor about one model.

Written by the MLModel operator (``operators/mlmodel/monitoring.py`` builds a
:class:`ModelConfig` every timer pass; ``operators/backends/monitor.py`` sends
:meth:`ModelConfig.to_json` as ``PUT /v1/models/{ns}/{name}/config``), read and validated by
the monitor (``services/monitor/api.py``), which stores it and applies it to the model's
windows, pairing, drift and skew checks. One pydantic model serves both sides, so a field the
operator sends is a field the monitor accepts.

Wire format: camelCase JSON (the fields' aliases), unknown fields rejected. The operator
sends the version roles, ``scoreTolerance``, ``featureNames``, ``drift``, ``references``
and ``skew`` always (``null`` where unset), ``windowSize`` and ``maxAgeSeconds`` only when a
drift window is configured, ``drift.alarm`` and ``scoreReferences`` only when set (so a monitor
that predates them still accepts the config of a model that does not use them), and never the
monitor's own tuning (``pairingTimeoutSeconds``, ``labelThreshold``): those keep the monitor's
defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from contracts.drift import (
    DEFAULT_DETECTOR,
    DEFAULT_MIN_WINDOW,
    DEFAULT_WINDOW_SIZE,
    DETECTOR_NAMES,
    DETECTORS_WITHOUT_P_VALUE,
    MAX_WINDOW_SIZE,
    MIN_WINDOW_FLOOR,
    MIN_WINDOW_SIZE,
)

_WIRE = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


#: The longest expected run time between false alarms a config may declare (ten years).
MAX_EXPECTED_RUN_TIME_S = 10 * 366 * 86400.0


class AlarmConfig(BaseModel):
    """When per-window drift checks become an alarm (``spec.monitoring.drift.alarm``).

    ``consecutive``: the last ``consecutive`` windows that count as evidence (windows that
    share no rows, at most one per drift interval) must each have failed the per-window test.
    ``expectedRunTimeSeconds``: a CUSUM on the windows' p-values whose threshold is calibrated
    so that, on data that has not drifted, the expected time to a false alarm is at least this
    long (the operator converts ``falseAlarmsPerDay`` into it). Both set: both must hold.
    """

    model_config = _WIRE

    consecutive: int = Field(default=1, ge=1, le=1000)
    expected_run_time_seconds: float | None = Field(default=None, gt=0, le=MAX_EXPECTED_RUN_TIME_S)


class DriftConfig(BaseModel):
    """Which detector watches a model's features (``spec.monitoring.drift``)."""

    model_config = _WIRE

    detector: str = Field(default=DEFAULT_DETECTOR, max_length=64)
    p_value: float = Field(default=0.05, gt=0, lt=1)
    features: list[str] = Field(
        default_factory=list, max_length=1024, description="Empty: every reference column."
    )
    min_window: int = Field(
        default=DEFAULT_MIN_WINDOW,
        ge=MIN_WINDOW_FLOOR,
        description="Fewer rows: the check is skipped.",
    )
    alarm: AlarmConfig | None = Field(
        default=None, description="None: each checked window decides on its own (pValue)."
    )

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        if value not in DETECTOR_NAMES:
            raise ValueError(f"unknown detector {value!r}; known: {', '.join(DETECTOR_NAMES)}")
        return value

    @model_validator(mode="after")
    def _sequential_needs_p_values(self) -> DriftConfig:
        sequential = self.alarm is not None and self.alarm.expected_run_time_seconds is not None
        if sequential and self.detector in DETECTORS_WITHOUT_P_VALUE:
            raise ValueError(
                f"alarm.expectedRunTimeSeconds needs a detector with p-values; "
                f"{self.detector!r} decides on a distance (use alarm.consecutive)"
            )
        return self


class SkewConfig(BaseModel):
    """Training-serving skew (``spec.monitoring.skew``): served features of an entity against
    the offline store's values for the same entity as of serving time."""

    model_config = _WIRE

    entity_key: str = Field(min_length=1, max_length=253, description="Request input: entity.")
    timestamp_key: str | None = Field(
        default=None, min_length=1, max_length=253, description="None: the receive time."
    )
    offline: str = Field(min_length=1, max_length=2048, description="Parquet file or directory.")
    offline_timestamp: str = Field(default="event_timestamp", min_length=1, max_length=253)
    columns: dict[str, str] = Field(
        min_length=1, max_length=1024, description="Model input column -> offline column."
    )
    ttl_seconds: float = Field(default=604800.0, gt=0, le=366 * 86400)
    max_mismatch_fraction: float = Field(default=0.01, ge=0, lt=1)
    max_rows: int = Field(default=1000, ge=1, le=100_000, description="Served rows kept.")
    offline_complete_until: float | None = Field(
        default=None,
        description="Epoch s up to which the offline store is complete (the FeatureView's "
        "freshness): served rows after it are not compared yet. None: compare every row.",
    )

    @field_validator("columns")
    @classmethod
    def _no_key_columns(cls, value: dict[str, str]) -> dict[str, str]:
        for model_column, offline_column in value.items():
            if not model_column or not offline_column:
                raise ValueError("column names must not be empty")
        return value

    @model_validator(mode="after")
    def _keys_are_not_features(self) -> SkewConfig:
        # The entity and time inputs are stripped from the features, so they cannot be
        # compared as features too.
        for key in (self.entity_key, self.timestamp_key):
            if key is not None and key in self.columns:
                raise ValueError(f"columns: {key!r} is the entity or timestamp key")
        return self


class OutcomesConfig(BaseModel):
    """How delayed labels (``POST .../feedback``) are joined to served predictions and kept
    (``services/monitor/outcomes/``). ``null`` in :class:`ModelConfig` means these defaults."""

    model_config = _WIRE

    label_maturity_seconds: float = Field(
        default=600.0,
        gt=0,
        le=7 * 86400,
        description="A label waits this long for its prediction (and late versions), then an"
        " unjoined one counts as an orphan.",
    )
    window_size: int = Field(
        default=5000, ge=10, le=200_000, description="Labeled requests kept per version."
    )
    max_age_seconds: float = Field(
        default=86400.0, gt=0, le=30 * 86400, description="Labeled rows older than this age out."
    )
    entity_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Request input naming the entity; labels may then join by entity + servedAt.",
    )
    served_at_tolerance_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="Entity joins: |servedAt - monitor's receive time| allowed (clock offset).",
    )
    prediction_ttl_seconds: float = Field(
        default=86400.0, gt=0, le=30 * 86400, description="Served predictions indexed this long."
    )
    max_predictions: int = Field(
        default=100_000, ge=100, le=2_000_000, description="Served requests indexed per model."
    )
    max_pending_labels: int = Field(
        default=100_000, ge=100, le=2_000_000, description="Labels waiting per model."
    )


#: The monitor's own tuning: the operator never sends these.
_MONITOR_OWN = frozenset({"pairing_timeout_seconds", "label_threshold"})
#: Sent only when the operator set them (a drift window is configured).
_SENT_WHEN_SET = frozenset({"window_size", "max_age_seconds"})


class ModelConfig(BaseModel):
    """Per-MLModel window and pairing settings (``PUT /v1/models/{ns}/{name}/config``).

    The MLModel operator derives these from ``spec.monitoring.drift.window`` and
    ``spec.rollout.shadow`` and names the versions in play so events without a role
    extension still land under the right role (stable wins when a version is named twice,
    e.g. right after a promotion; then shadow, then candidate).
    """

    model_config = _WIRE

    window_size: int = Field(
        default=DEFAULT_WINDOW_SIZE,
        ge=MIN_WINDOW_SIZE,
        le=MAX_WINDOW_SIZE,
        description="Rows per ring.",
    )
    max_age_seconds: float = Field(default=3600.0, gt=0, le=7 * 86400)
    pairing_timeout_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Wait for a response / shadow partner."
    )
    score_tolerance: float = Field(default=0.1, ge=0, description="Score gap = disagreement.")
    label_threshold: float = Field(default=0.5, description="Binary label cut on scores.")
    feature_names: list[str] = Field(default_factory=list, max_length=1024)
    stable_version: str | None = Field(default=None, max_length=128)
    candidate_version: str | None = Field(default=None, max_length=128)
    shadow_version: str | None = Field(default=None, max_length=128)
    drift: DriftConfig | None = None
    references: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Version -> URI of its training reference snapshot (parquet).",
    )
    score_references: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Version -> URI of its validation scores saved at training (parquet).",
    )
    skew: SkewConfig | None = None
    outcomes: OutcomesConfig | None = Field(
        default=None, description="Label join and quality windows; null: the defaults."
    )

    def to_json(self) -> dict[str, Any]:
        """The body the operator PUTs (see the module docstring for what it leaves out)."""
        exclude = _MONITOR_OWN | (_SENT_WHEN_SET - self.model_fields_set)
        if not self.score_references:
            exclude |= {"score_references"}
        body = self.model_dump(by_alias=True, mode="json", exclude=set(exclude))
        if self.drift is not None and self.drift.alarm is None:
            body["drift"].pop("alarm")
        if self.skew is not None:
            body["skew"] = self.skew.model_dump(by_alias=True, mode="json", exclude_none=True)
        return body

"""Settings of the monitor process and the per-model window configuration pushed over HTTP."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel


class DriftConfig(BaseModel):
    """Which detector watches a model's features (``spec.monitoring.drift``)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    detector: str = Field(default="ks", max_length=64)
    p_value: float = Field(default=0.05, gt=0, lt=1)
    features: list[str] = Field(
        default_factory=list, max_length=1024, description="Empty: every reference column."
    )
    min_window: int = Field(default=50, ge=10, description="Fewer rows: the check is skipped.")

    @field_validator("detector")
    @classmethod
    def _known_detector(cls, value: str) -> str:
        # Imported here: the registry pulls in scipy/pandas, the ingest path needs neither.
        from services.monitor.drift.registry import detector_names

        names = detector_names()
        if value not in names:
            raise ValueError(f"unknown detector {value!r}; known: {', '.join(names)}")
        return value


class SkewConfig(BaseModel):
    """Training-serving skew (``spec.monitoring.skew``): served features of an entity against
    the offline store's values for the same entity as of serving time."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

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


class ModelConfig(BaseModel):
    """Per-MLModel window and pairing settings (``PUT /v1/models/{ns}/{name}/config``).

    The MLModel operator derives these from ``spec.monitoring.drift.window`` and
    ``spec.rollout.shadow`` and names the versions in play so events without a role
    extension still land under the right role (stable wins when a version is named twice,
    e.g. right after a promotion; then shadow, then candidate).
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    window_size: int = Field(default=5000, ge=10, le=200_000, description="Rows per ring.")
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
    skew: SkewConfig | None = None


class Limits(BaseModel):
    """Hard bounds that keep one bad client from exhausting the monitor's memory."""

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = 1 << 20
    max_rows_per_event: int = 10_000
    max_features: int = 1024
    max_pending: int = 200_000
    max_versions_per_model: int = 16
    max_models: int = 1000


class MonitorSettings(BaseModel):
    """How one monitor instance runs (CLI flags map onto these)."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    ingest_port: int | None = Field(
        default=None, ge=0, le=65535, description="Optional fast CloudEvents-only listener."
    )
    data_dir: Path
    flush_interval_s: float = Field(default=0.1, gt=0, le=10)
    retention_rows: int = Field(default=200_000, ge=1000)
    max_journal_backlog: int = Field(
        default=50_000, ge=100, description="Events held in memory while SQLite is busy."
    )
    prune_interval_s: float = Field(default=10.0, gt=0)
    expiry_interval_s: float = Field(default=1.0, gt=0)
    drift_interval_s: float = Field(default=30.0, gt=0)
    mlflow_tracking_uri: str | None = Field(
        default=None, description="Where runs:/ and models:/ reference URIs are resolved."
    )
    drift_history: int = Field(default=500, ge=1, description="Evaluations kept per check.")
    limits: Limits = Field(default_factory=Limits)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "monitor.db"

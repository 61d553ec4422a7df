"""Settings of the monitor process and the per-model window configuration pushed over HTTP."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


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
    limits: Limits = Field(default_factory=Limits)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "monitor.db"

"""Settings of the monitor process. The per-model configuration pushed over HTTP is the wire
contract :mod:`contracts.monitor_config`, re-exported here for the monitor's modules."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from contracts.monitor_config import DriftConfig, ModelConfig, SkewConfig

__all__ = ["DriftConfig", "Limits", "ModelConfig", "MonitorSettings", "SkewConfig"]


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
    prediction_log: bool = Field(
        default=True, description="Persist every served call (services/monitor/predlog.py)."
    )
    prediction_log_uri: str | None = Field(
        default=None,
        description="Where the Parquet dataset goes (any fsspec URI); default <data-dir>/predictions.",
    )
    prediction_log_retention_days: int = Field(default=30, ge=1, le=36_500)
    prediction_log_compaction_interval_s: float = Field(default=30.0, gt=0, le=86_400)

    @property
    def prediction_log_location(self) -> str:
        return self.prediction_log_uri or str(self.data_dir / "predictions")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "monitor.db"

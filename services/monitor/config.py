"""Settings of the monitor process. The per-model configuration pushed over HTTP is the wire
contract :mod:`contracts.monitor_config`, re-exported here for the monitor's modules."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from contracts.auth import MONITOR_AUDIENCE
from contracts.monitor_config import DriftConfig, ModelConfig, SkewConfig
from contracts.storage import PREDICTION_LOG_DIR
from contracts.storage_root import parse_storage

__all__ = ["AuthSettings", "DriftConfig", "Limits", "ModelConfig", "MonitorSettings", "SkewConfig"]


class AuthSettings(BaseModel):
    """Who may do what (services/monitor/auth). On unless ``enabled=False`` (logged loudly).

    With neither ``token`` nor ``token_file`` the monitor makes a token and writes it to
    ``<data-dir>/token`` (0600), so an unconfigured monitor is closed, never open.
    """

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    token: SecretStr | None = Field(default=None, description="The embedded bearer token.")
    token_file: Path | None = Field(default=None, description="Read once at start (0600).")
    kubernetes: bool = Field(
        default=False, description="Other tokens: TokenReview + SubjectAccessReview."
    )
    kubeconfig: Path | None = Field(
        default=None, description="Where the API server is; None = in-cluster config."
    )
    audience: str = Field(default=MONITOR_AUDIENCE, min_length=1)
    operators: tuple[str, ...] = Field(
        default=(), description="Usernames allowed to PUT configs and trigger evaluations."
    )
    network_ingest: bool = Field(
        default=False,
        description="Accept inference events without a token (KServe's agent sends none) for "
        "configured models only; the NetworkPolicy decides who reaches the ingest port.",
    )
    cache_ttl_s: float = Field(default=10.0, ge=0, le=300)
    deny_cache_ttl_s: float = Field(default=2.0, ge=0, le=300)
    cache_entries: int = Field(default=4096, ge=1, le=1_000_000)
    feedback_rate_per_s: float = Field(default=50.0, gt=0)
    feedback_burst: float = Field(default=200.0, ge=1)


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
        description="Where the Parquet dataset goes (any fsspec URI); default "
        "<storage>/prediction-log, else <data-dir>/predictions.",
    )
    storage: str | None = Field(
        default=None,
        description="The pipelines' storage root (KUBELOOP_STORAGE, operators/backends/"
        "storage.py): the prediction log defaults to under it, where Experiments and the KFP "
        "tasks read it (a pvc:// root: the claim mounted at contracts.storage.STORAGE_MOUNT_PATH).",
    )
    prediction_log_retention_days: int = Field(default=30, ge=1, le=36_500)
    prediction_log_compaction_interval_s: float = Field(default=30.0, gt=0, le=86_400)
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @field_validator("storage")
    @classmethod
    def _storage_is_a_root(cls, value: str | None) -> str | None:
        if value:
            parse_storage(value)  # StorageError (a ValueError) names the value
        return value or None

    @property
    def prediction_log_location(self) -> str:
        if self.prediction_log_uri:
            return self.prediction_log_uri
        if self.storage:
            # The operator's own parser, so the location under the root is the one the
            # operator hands to the KFP tasks.
            return parse_storage(self.storage).data_uri(PREDICTION_LOG_DIR)
        return str(self.data_dir / "predictions")

    @property
    def db_path(self) -> Path:
        return self.data_dir / "monitor.db"

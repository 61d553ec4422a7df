"""Operator configuration: where the backends are. Read once at startup from the environment.

The same operator code runs in a cluster and on the embedded default; only these values differ
(design §4).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from contracts.storage_root import (
    Storage,
    default_storage_uri,
    parse_storage,
    shared_dir_location,
)


class OperatorConfig(BaseModel):
    state_dir: Path = Field(default=Path(".kubeloop"), description="Local runs, stores, logs.")
    pipeline_backend: str = Field(default="local", pattern="^(local|kfp)$")
    kfp_host: str | None = None
    kfp_metadata_address: str = Field(
        default="metadata-grpc-service.kubeflow:8080",
        description="host:port of KFP's ML Metadata gRPC service, where KFP v2 keeps task "
        "output parameters (the run API returns only their ids).",
    )
    mlflow_tracking_uri: str | None = None
    mlflow_artifacts_destination: str | None = Field(
        default=None,
        description="The tracking server's --artifacts-destination as KServe's storage "
        "initializer reaches it (s3://…, gs://…, pvc://<claim>/<dir>): mlflow-artifacts:/ model "
        "URIs are mapped under it (operators/backends/registry.py kserve_storage_uri).",
    )
    feast_online_store: str | None = Field(
        default=None, description="redis connection string; SQLite under state_dir if unset."
    )
    feast_registry: str | None = Field(
        default=None, description="Feast registry path or URL; under state_dir if unset."
    )
    serving_image: str | None = Field(
        default=None,
        description="Image of the Feast transformer container MLModels serving from Feast get "
        "(the kubeloop image); unset on the embedded default, which runs it from the source.",
    )
    monitor_url: str | None = None
    monitor_ingest_url: str | None = Field(
        default=None,
        description="The URL InferenceService loggers post to (the monitor's ingest port); "
        "default monitor_url.",
    )
    monitor_token_file: Path | None = Field(
        default=None,
        description="Bearer token for the monitor ($KUBELOOP_MONITOR_TOKEN_FILE): the embedded "
        "token, or a projected ServiceAccount token with the monitor's audience.",
    )
    prometheus_url: str | None = None
    istio_gateway: str | None = Field(
        default="istio-system/kubeloop-gateway",
        description="The Istio Gateway (<namespace>/<name>) MLModel VirtualServices bind "
        "besides the mesh, where traffic from outside the mesh enters; empty: the mesh only.",
    )
    namespace: str | None = Field(default=None, description="The operator's own namespace.")
    spark_master: str = "local[*]"
    duckdb_memory_budget_mb: int = Field(
        default=4096,
        gt=0,
        description="engine auto: inputs whose estimated in-memory size fits this run on DuckDB "
        "(one process), larger ones on Spark (components/engines.py).",
    )
    trainjob_image: str | None = Field(
        default=None,
        description="Image of the Kubeflow Trainer TrainJob that trains with nodes > 1 "
        "(the kubeloop image).",
    )
    shared_dir: str | None = Field(
        default=None,
        description="A directory every TrainJob node and the KFP training step mount "
        "(nodes > 1: checkpoints and the model are written there).",
    )
    storage: str | None = Field(
        default=None,
        description="Root URI of every pipeline input and output (offline store, training "
        "sets, Feast repo): file:///dir, pvc://<claim>/<dir> (mounted into every KFP task), "
        "s3://… or gs://…; file://<state_dir> if unset (contracts/storage_root.py).",
    )
    storage_secret: str | None = Field(
        default=None,
        description="s3:// and gs:// roots on KFP: the Secret (in KFP's namespace) whose "
        "credentials every task gets (contracts/storage.py names its keys; "
        "pipelines/storage.py).",
    )
    # Intervals are configurable so tests and the demo can shorten them.
    poll_interval_s: float = Field(default=10.0, gt=0)
    analysis_tick_s: float = Field(
        default=5.0,
        gt=0,
        description="How often MLModel rollouts are re-observed; each acts only once its "
        "spec.rollout.analysis.interval has passed.",
    )

    @field_validator("storage")
    @classmethod
    def _storage_is_a_root(cls, value: str | None) -> str | None:
        if value:
            parse_storage(value)  # StorageError (a ValueError) names the value
        return value or None

    @model_validator(mode="after")
    def _shared_dir_is_mounted(self) -> OperatorConfig:
        if self.shared_dir:
            shared_dir_location(self.shared_dir, self.storage_root)  # names the value
        return self

    @property
    def shared_dir_path(self) -> str:
        """The TrainJob shared directory as the training step sees it (a pvc:// URI on the
        storage root's claim: its path under the mount); empty if unset."""
        return shared_dir_location(self.shared_dir, self.storage_root) if self.shared_dir else ""

    @property
    def storage_root(self) -> Storage:
        """The configured storage root, else the embedded default: file://<state_dir>."""
        return parse_storage(self.storage or default_storage_uri(self.state_dir))

    @property
    def effective_mlflow_tracking_uri(self) -> str:
        """The configured tracking URI, else the embedded default: SQLite under state_dir."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.state_dir / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def feast_repo(self) -> str:
        """The Feast repo FeatureViews are applied to (and serving reads the online store of),
        under the storage root as the pipeline tasks see it. Feast needs a local directory: on
        an object-storage root it is a scratch directory of each process (the state
        directory's), so the registry and the online store must be shared services there
        (KUBELOOP_FEAST_REGISTRY, Redis; the KFP backend refuses an object root without a
        registry)."""
        if self.storage_root.scheme in ("s3", "gs"):
            return str(Path(self.state_dir) / "feast")
        return self.storage_root.location("feast")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> OperatorConfig:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = f"KUBELOOP_{name.upper()}"
            if key in env:
                values[name] = env[key]
        return cls.model_validate(values)

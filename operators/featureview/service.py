"""FeatureView service: the pipeline-backend calls around the pure core in `reconcile.py`.

One `reconcile` serves the change handlers and the timer (level-triggered): compute the
version, observe the pinned run, check the source, launch a pinned run, pin the next one.
Launches go through `PipelineBackend.submit`, idempotent by the deterministic run name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from components.engines import choose_engine, local_input_bytes, transpiles
from operators.api.featureview import FeatureViewSpec, FeatureViewStatus
from operators.backends.runs import PipelineBackend
from operators.config import OperatorConfig
from operators.featureview import reconcile as core
from operators.featureview.definition import LocalPaths, component_definition, is_local, local
from operators.kind import KindObject, Outcome

PIPELINE = "feature_backfill"
FeatureView = KindObject[FeatureViewSpec, FeatureViewStatus]


@dataclass
class FeatureViewBackends:
    """What the FeatureView operator talks to; built once at startup from the config."""

    pipelines: PipelineBackend
    paths: LocalPaths
    # Locations under the storage root (KUBELOOP_STORAGE), as the pipeline tasks see them.
    offline_root: str
    feast_repo: str
    feast_registry: str | None
    redis_connection_string: str | None
    spark_master: str
    memory_budget_mb: int = 4096

    @classmethod
    def from_config(cls, config: OperatorConfig, pipelines: PipelineBackend) -> FeatureViewBackends:
        storage = config.storage_root
        return cls(
            pipelines=pipelines,
            paths=LocalPaths(resolve_relative=config.pipeline_backend == "local"),
            offline_root=storage.data_uri("offline"),
            feast_repo=config.feast_repo,
            feast_registry=config.feast_registry,
            redis_connection_string=config.feast_online_store,
            spark_master=config.spark_master,
            memory_budget_mb=config.duckdb_memory_budget_mb,
        )


def offline_path(backends: FeatureViewBackends, obj: FeatureView, version: str) -> str:
    """One directory per (namespace, name, version): a new definition never mixes its rows
    with an older one's."""
    configured = obj.spec.store.offline_path if obj.spec.store else None
    root = backends.paths.task_uri(configured) if configured else str(backends.offline_root)
    return f"{root.rstrip('/')}/{obj.namespace}/{obj.name}/{version}"


def feast_store(backends: FeatureViewBackends, spec: FeatureViewSpec) -> dict[str, Any]:
    return feast_store_config(
        spec, backends.feast_repo, backends.feast_registry, backends.redis_connection_string
    )


def feast_store_config(
    spec: FeatureViewSpec,
    repo: str | Path,
    registry: str | None,
    redis_connection_string: str | None,
) -> dict[str, Any]:
    """The Feast store (FeastStoreConfig's JSON) a FeatureView is applied and materialized to;
    serving reads its online store through the same (operators/mlmodel/features.py)."""
    store = spec.store
    project = store.project if store else "kubeloop"
    online = store.online_store if store else None
    redis = (online.connection_string if online else None) or redis_connection_string
    kind = online.type if online else ("redis" if redis else "sqlite")
    config: dict[str, Any] = {
        "project": project,
        "repoPath": str(repo),
        "onlineStore": str(kind),
    }
    if registry:
        config["registryPath"] = registry
    if kind == "redis":
        config["redisConnectionString"] = redis
    return config


def backfill_engine(backends: FeatureViewBackends, spec: FeatureViewSpec) -> tuple[str, str]:
    """(engine, why) for spec.engine: auto resolves here, so status says what will run."""
    source = backends.paths.task_uri(spec.source.path)
    sql = spec.transformation.sql if spec.transformation else None
    return choose_engine(
        str(spec.engine),
        backends.spark_master,
        local_input_bytes([source]) if backends.paths.operator_sees_data else None,
        backends.memory_budget_mb,
        transpiles(sql),
    )


def run_params(
    backends: FeatureViewBackends, obj: FeatureView, status: FeatureViewStatus
) -> dict[str, Any]:
    last = status.last_backfill
    assert last is not None and status.offline_path is not None
    return {
        "feature_view": component_definition(backends.paths, obj.name, obj.spec),
        "start": last.window.start.isoformat(),
        "end": last.window.end.isoformat(),
        "offline_path": status.offline_path,
        "store": feast_store(backends, obj.spec),
        "materialize": obj.spec.online,
        "spark_master": backends.spark_master,
        # As asked: the component resolves auto the same way (components/engines.py) and, on
        # auto, lets Spark judge SQL that DuckDB rejects.
        "engine": str(obj.spec.engine),
        "memory_budget_mb": backends.memory_budget_mb,
    }


def _submit_and_observe(
    backends: FeatureViewBackends, obj: FeatureView, status: FeatureViewStatus
) -> FeatureViewStatus:
    """Submit (idempotent: an existing run is found, not relaunched) and observe the run."""
    assert status.last_backfill is not None
    try:
        ref = backends.pipelines.submit(
            PIPELINE, status.last_backfill.run, run_params(backends, obj, status)
        )
        run = backends.pipelines.get(ref)
    except Exception as error:  # a backend problem must not crash the operator
        return core.launch_failed(status, f"{type(error).__name__}: {error}"[:2000], obj.generation)
    observed = core.observe(status, run, obj.spec.online, obj.generation)
    if observed.last_backfill is not None and observed.last_backfill.engine is None:
        engine, why = backfill_engine(backends, obj.spec)
        last = observed.last_backfill.model_copy(update={"engine": f"{engine} ({why})"})
        observed = observed.model_copy(update={"last_backfill": last})
    return observed


def reconcile(
    backends: FeatureViewBackends, obj: FeatureView, now: datetime
) -> Outcome[FeatureViewStatus]:
    spec = obj.spec
    version = core.definition_version(spec)
    status = core.versioned(
        obj.status, version, offline_path(backends, obj, version), obj.generation
    )
    last = status.last_backfill
    current = last is not None and core.belongs_to(obj.name, version, last)
    if current and core.is_running(status):
        status = _submit_and_observe(backends, obj, status)
    source = backends.paths.task_uri(spec.source.path)
    sees = backends.paths.operator_sees_data
    if sees and is_local(source) and not os.path.exists(local(source)):
        return Outcome(core.source_missing(status, spec.source.path, obj.generation))
    if current and core.is_pending_launch(status):
        status = _submit_and_observe(backends, obj, status)
    following = core.next_run(obj.name, spec, status, version, now)
    if following is not None:
        status = core.pin(status, following, obj.generation)
    return Outcome(status)

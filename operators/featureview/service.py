"""FeatureView service: the pipeline-backend calls around the pure core in `reconcile.py`.

One `reconcile` serves the change handlers and the timer (level-triggered): validate, compute
the version, observe the pinned run, check the source, launch a pinned run, pin the next one.
Launches go through `PipelineBackend.submit`, idempotent by the deterministic run name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kopf

from operators.api.common import describe_validation_error
from operators.api.featureview import FeatureViewSpec, FeatureViewStatus
from operators.backends.pipelines import PipelineBackend, pipeline_backend_from_config
from operators.config import OperatorConfig
from operators.featureview import reconcile as core
from operators.status import invalid_spec

PIPELINE = "feature_backfill"


@dataclass
class FeatureViewBackends:
    """What the FeatureView operator talks to; built once at startup from the config."""

    pipelines: PipelineBackend
    offline_root: Path
    feast_repo: Path
    feast_registry: str | None
    redis_connection_string: str | None
    spark_master: str
    # On the embedded default runs execute in their own working directory, so relative paths
    # in a spec are resolved against the operator's; on a cluster they mean the pod's.
    resolve_relative_paths: bool

    @classmethod
    def from_config(
        cls, config: OperatorConfig, pipelines: PipelineBackend | None = None
    ) -> FeatureViewBackends:
        state = config.state_dir.resolve()
        return cls(
            pipelines=pipelines or pipeline_backend_from_config(config),
            offline_root=state / "offline",
            feast_repo=state / "feast",
            feast_registry=config.feast_registry,
            redis_connection_string=config.feast_online_store,
            spark_master=config.spark_master,
            resolve_relative_paths=config.pipeline_backend == "local",
        )

    def local_path(self, path: str) -> str:
        if self.resolve_relative_paths and is_local(path) and not os.path.isabs(local(path)):
            return str(Path(local(path)).resolve())
        return path


@dataclass(frozen=True)
class FeatureViewObject:
    name: str
    namespace: str
    generation: int | None
    spec: dict[str, Any]
    status: dict[str, Any]

    @classmethod
    def from_body(cls, body: kopf.Body) -> FeatureViewObject:
        return cls(
            name=str(body.meta.name),
            namespace=str(body.meta.namespace or "default"),
            generation=body.meta.get("generation"),
            spec=dict(body.spec),
            status=dict(body.get("status") or {}),
        )


@dataclass
class Outcome:
    status: FeatureViewStatus
    problem: str | None = None  # an invalid spec, worth a Warning event once


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def local(path: str) -> str:
    return urlparse(path).path if path.startswith("file:") else path


def parse_spec(spec: dict[str, Any]) -> FeatureViewSpec | str:
    from pydantic import ValidationError

    try:
        return FeatureViewSpec.model_validate(spec)
    except ValidationError as error:
        return describe_validation_error(error)


def offline_path(
    backends: FeatureViewBackends, obj: FeatureViewObject, spec: FeatureViewSpec, version: str
) -> str:
    """One directory per (namespace, name, version): a new definition never mixes its rows
    with an older one's."""
    configured = spec.store.offline_path if spec.store else None
    root = backends.local_path(configured) if configured else str(backends.offline_root)
    return f"{root.rstrip('/')}/{obj.namespace}/{obj.name}/{version}"


def component_definition(
    backends: FeatureViewBackends, name: str, spec: FeatureViewSpec
) -> dict[str, Any]:
    """The FeatureView as the backfill and Feast components take it."""
    wire = spec.to_k8s()
    source = dict(wire["source"])
    source["path"] = backends.local_path(spec.source.path)
    return {
        "name": name,
        "entities": wire["entities"],
        "source": source,
        "transformation": {
            "sql": spec.transformation.sql if spec.transformation else core.DEFAULT_SQL
        },
        "features": wire["features"],
        "ttl": spec.ttl,
    }


def feast_store(backends: FeatureViewBackends, spec: FeatureViewSpec) -> dict[str, Any]:
    store = spec.store
    project = store.project if store else "kubeloop"
    online = store.online_store if store else None
    redis = (online.connection_string if online else None) or backends.redis_connection_string
    kind = online.type if online else ("redis" if redis else "sqlite")
    config: dict[str, Any] = {
        "project": project,
        "repoPath": str(backends.feast_repo),
        "onlineStore": str(kind),
    }
    if backends.feast_registry:
        config["registryPath"] = backends.feast_registry
    if kind == "redis":
        config["redisConnectionString"] = redis
    return config


def run_params(
    backends: FeatureViewBackends,
    obj: FeatureViewObject,
    spec: FeatureViewSpec,
    status: FeatureViewStatus,
) -> dict[str, Any]:
    last = status.last_backfill
    assert last is not None and status.offline_path is not None
    return {
        "feature_view": component_definition(backends, obj.name, spec),
        "start": last.window.start.isoformat(),
        "end": last.window.end.isoformat(),
        "offline_path": status.offline_path,
        "store": feast_store(backends, spec),
        "materialize": spec.online,
        "spark_master": backends.spark_master,
    }


def _submit_and_observe(
    backends: FeatureViewBackends,
    obj: FeatureViewObject,
    spec: FeatureViewSpec,
    status: FeatureViewStatus,
) -> FeatureViewStatus:
    """Submit (idempotent: an existing run is found, not relaunched) and observe the run."""
    assert status.last_backfill is not None
    try:
        ref = backends.pipelines.submit(
            PIPELINE, status.last_backfill.run, run_params(backends, obj, spec, status)
        )
        run = backends.pipelines.get(ref)
    except Exception as error:  # a backend problem must not crash the operator
        return core.launch_failed(status, f"{type(error).__name__}: {error}"[:2000], obj.generation)
    return core.observe(status, run, spec.online, obj.generation)


def reconcile(backends: FeatureViewBackends, obj: FeatureViewObject, now: datetime) -> Outcome:
    status = FeatureViewStatus.model_validate(obj.status)
    parsed = parse_spec(obj.spec)
    if isinstance(parsed, str):
        return Outcome(invalid_spec(status, obj.generation, parsed), problem=parsed)
    spec = parsed
    version = core.definition_version(spec)
    path = offline_path(backends, obj, spec, version)
    status = core.versioned(status, version, path, obj.generation)
    last = status.last_backfill
    current = last is not None and core.belongs_to(obj.name, version, last)
    if current and core.is_running(status):
        status = _submit_and_observe(backends, obj, spec, status)
    source = backends.local_path(spec.source.path)
    if is_local(source) and not os.path.exists(local(source)):
        return Outcome(core.source_missing(status, spec.source.path, obj.generation))
    if current and core.is_pending_launch(status):
        status = _submit_and_observe(backends, obj, spec, status)
    following = core.next_run(obj.name, spec, status, version, now)
    if following is not None:
        status = core.pin(status, following, obj.generation)
    return Outcome(status)

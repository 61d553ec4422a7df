"""In-memory fakes of the backend interfaces the operator services use.

Each fake records what was asked of it, so a service test can check the outcome (status,
events) and the side effects (nothing launched twice, traffic written once) without a cluster,
KFP, MLflow or the monitor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.monitor_config import ModelConfig
from contracts.quality import Comparison, QualityReport
from operators.api.common import ResourceKind, find_condition
from operators.api.mlmodel import ModelRef
from operators.backends.monitor import (
    CompareRequest,
    ModelFigures,
    MonitorUnavailable,
    VersionDrift,
)
from operators.backends.registry import ModelVersionNotFound, ResolvedVersion
from operators.backends.runs import RunRef, RunState, RunStatus
from operators.backends.serving import Owner, TrafficTarget, isvc_name
from operators.kind import Event, KindObject, Outcome, from_body
from operators.status import merge_patch


class FakePipelines:
    """`PipelineBackend`: idempotent submits by run name; runs finish when a test says so."""

    def __init__(self) -> None:
        self.params: dict[str, Mapping[str, Any]] = {}
        self.states: dict[str, RunStatus] = {}
        self.submits: Counter[str] = Counter()  # submit calls per run name
        self.launches: Counter[str] = Counter()  # runs created per run name (never above 1)
        self.submit_error: Exception | None = None

    def submit(self, pipeline_name: str, run_name: str, params: Mapping[str, Any]) -> RunRef:
        self.submits[run_name] += 1
        if self.submit_error is not None:
            raise self.submit_error
        ref = RunRef(
            backend="fake",
            pipeline_name=pipeline_name,
            run_name=run_name,
            run_id=f"id-{run_name}",
            url=f"fake://{run_name}",
        )
        if run_name not in self.states:
            self.launches[run_name] += 1
            self.params[run_name] = dict(params)
            self.states[run_name] = RunStatus(ref=ref, state=RunState.RUNNING)
        return ref

    def get(self, ref: RunRef) -> RunStatus:
        return self.states[ref.run_name]

    def finish(
        self, run_name: str, outputs: dict[str, Any] | None = None, at: datetime | None = None
    ) -> None:
        run = self.states[run_name]
        update = {"state": RunState.SUCCEEDED, "outputs": outputs or {}, "finished_at": at}
        self.states[run_name] = run.model_copy(update=update)

    def fail(self, run_name: str, message: str, log_tail: str | None = None) -> None:
        run = self.states[run_name]
        update = {"state": RunState.FAILED, "message": message, "log_tail": log_tail}
        self.states[run_name] = run.model_copy(update=update)


class FakeFeatureViews:
    """The FeatureView reader: objects by (namespace, name); absent ones are None."""

    def __init__(self, objects: dict[tuple[str, str], dict[str, Any]] | None = None) -> None:
        self.objects = dict(objects or {})

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((namespace, name))


class FakeRegistry:
    """`ModelRegistry`: versions by number; `down` makes every call fail like a dead server."""

    def __init__(self, name: str, versions: list[str]) -> None:
        self.name = name
        self.versions = list(versions)
        self.down: Exception | None = None
        self.resolves = 0
        # (version, primary metric name) -> offline validation figure
        self.validation: dict[tuple[str, str], float] = {}
        self.validation_error: Exception | None = None  # only validation_metric fails
        self.champions: dict[str, str] = {}  # registered model -> version under @champion

    def _check(self) -> None:
        if self.down is not None:
            raise self.down

    def resolve(self, ref: ModelRef) -> ResolvedVersion:
        self.resolves += 1
        self._check()
        wanted = ref.version or (self.versions[-1] if self.versions else None)
        if wanted is None or wanted not in self.versions:
            raise ModelVersionNotFound(f"model {ref.name!r} has no version {ref.version!r}")
        return ResolvedVersion(
            name=self.name, version=wanted, storage_uri=f"fake://{wanted}", run_id=f"run-{wanted}"
        )

    def run_id_of(self, name: str, version: str) -> str | None:
        self._check()
        return f"run-{version}"

    def reference_uri(self, run_id: str | None) -> str | None:
        return None

    def validation_metric(self, name: str, version: str, metric: str) -> float | None:
        self._check()
        if self.validation_error is not None:
            raise self.validation_error
        return self.validation.get((version, metric))

    def score_reference_uri(self, run_id: str | None) -> str | None:
        return None

    def mark_champion(self, name: str, version: str) -> None:
        self._check()
        self.champions[name] = version


class FakeMonitor:
    """`MonitorClient`: fixed figures and drift checks; `down` raises MonitorUnavailable."""

    def __init__(self) -> None:
        self.down = False
        self.model_figures = ModelFigures()
        self.checks: dict[str, VersionDrift] = {}
        self.configs: list[ModelConfig] = []
        self.report: QualityReport | None = None
        # (candidate, design) -> the comparison to answer; unknown ones get an empty one
        self.comparisons: dict[tuple[str, str], Comparison] = {}
        self.compares: list[CompareRequest] = []

    def _check(self) -> None:
        if self.down:
            raise MonitorUnavailable("monitor at fake:// did not answer")

    def figures(self, namespace: str, name: str, since: datetime, until: datetime) -> ModelFigures:
        self._check()
        return self.model_figures

    def push_config(self, namespace: str, name: str, config: ModelConfig) -> None:
        self._check()
        self.configs.append(config)

    def drift(self, namespace: str, name: str) -> dict[str, VersionDrift]:
        self._check()
        return dict(self.checks)

    def quality(self, namespace: str, name: str) -> QualityReport | None:
        self._check()
        return self.report

    def compare(self, namespace: str, name: str, request: CompareRequest) -> Comparison:
        self._check()
        self.compares.append(request)
        found = self.comparisons.get((request.candidate, request.design))
        return found if found is not None else request.nothing_yet()


class FakeTraffic:
    """`TrafficBackend`: records each applied split; `conflicts` 409s come first."""

    def __init__(self, conflicts: int = 0) -> None:
        self.applied: list[TrafficTarget] = []
        self.conflicts = conflicts

    def apply(self, target: TrafficTarget) -> str | None:
        if self.conflicts:
            from kubernetes.client.rest import ApiException

            self.conflicts -= 1
            raise ApiException(status=409, reason="Conflict")
        self.applied.append(target)
        return f"http://{target.owner.name}.{target.owner.namespace}.example"


@dataclass
class FakeObjects:
    """The Kubernetes objects the MLModel service reads and writes (`KubeObjects`)."""

    isvcs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    experiments: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    feature_views: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    creates: Counter[str] = field(default_factory=Counter)
    ready: bool = True

    def ensure_isvc(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if key not in self.isvcs:
            self.creates[meta["name"]] += 1
            status = {"conditions": [{"type": "Ready", "status": str(self.ready)}]}
            self.isvcs[key] = {**body, "status": status}

    def read_isvc(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.isvcs.get((namespace, name))

    def delete_isvcs_except(self, owner: Owner, keep: set[str]) -> list[str]:
        names = {isvc_name(owner.name, v) for v in keep}
        gone = [k for k in self.isvcs if k[0] == owner.namespace and k[1] not in names]
        for key in gone:
            del self.isvcs[key]
        return [name for _, name in gone]

    def read_experiment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.experiments.get((namespace, name))

    def read_feature_view(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.feature_views.get((namespace, name))

    def annotate_experiment(self, namespace: str, name: str, key: str, value: str) -> None:
        meta = self.experiments[(namespace, name)].setdefault("metadata", {})
        meta.setdefault("annotations", {})[key] = value


class FakeObject:
    """One object, reconciled pass after pass; status is written back as the controller does
    (a merge patch of what changed), events are collected."""

    def __init__(self, kind: ResourceKind, body: dict[str, Any]) -> None:
        self.kind = kind
        self.body = body
        self.events: list[Event] = []

    def run(
        self, step: Callable[[Any, Any, datetime], Outcome[Any]], backends: Any, now: datetime
    ) -> Any:
        obj = from_body(self.kind, self.body)
        outcome = step(backends, obj, now) if isinstance(obj, KindObject) else obj.outcome()
        self.events += outcome.events
        if outcome.status is not None:
            old = dict(self.body.get("status") or {})
            self.body["status"] = apply_merge_patch(old, merge_patch(old, outcome.status.to_k8s()))
        return self.status

    @property
    def status(self) -> Any:
        return self.kind.status_model.model_validate(self.body.get("status") or {})

    def condition(self, type_: str) -> tuple[str, str] | None:
        found = find_condition(self.status.conditions, type_)
        return (str(found.status), found.reason) if found else None


def apply_merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the API server applies it."""
    result = dict(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = apply_merge_patch(result[key], value)
        else:
            result[key] = value
    return result

"""The MLModel service layer: observe registry, InferenceServices and monitor; step; apply.

Handlers call `reconcile` (create/update/resume: validate only) and `observe_and_step`
(timer: everything else). Both return
an `Outcome` — the next status and the events to post — and leave the posting and the status
patch to the Kopf shell. Backends are passed in (built once at startup).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from datetime import datetime
from typing import Any

from contracts.quality import Comparison
from operators.api.common import find_condition
from operators.api.mlmodel import MLModelSpec, MLModelStatus, ModelRef, RolloutPhase
from operators.backends.monitor import CompareRequest, ModelFigures, MonitorUnavailable
from operators.backends.prometheus import PrometheusError, RequestCountSource
from operators.backends.registry import ModelVersionNotFound, ResolvedVersion
from operators.backends.serving import (
    TrafficTarget,
    inference_service,
    isvc_name,
    isvc_ready,
)
from operators.kind import Event, EventType, Outcome
from operators.mlmodel import monitoring
from operators.mlmodel import reconcile as core
from operators.mlmodel.analysis import VersionFigures
from operators.mlmodel.backends import MLModel, ServingBackends, owner_of
from operators.mlmodel.features import transformer_container
from operators.mlmodel.rollout import Inputs, RolloutState, TickResult, tick
from operators.status import observed

log = logging.getLogger(__name__)


def _warning(reason: str, message: str) -> Event:
    return Event(EventType.WARNING, reason, message)


def _ready_reason(status: MLModelStatus) -> str | None:
    ready = find_condition(status.conditions, "Ready")
    return ready.reason if ready else None


def _resolve(
    backends: ServingBackends, obj: MLModel, spec: MLModelSpec, events: list[Event]
) -> tuple[ResolvedVersion | None, str | None]:
    """The desired version, or the not-found message (a Warning the first time only)."""
    try:
        return backends.registry.resolve(spec.model), None
    except ModelVersionNotFound as error:
        if _ready_reason(obj.status) != core.REASON_NOT_FOUND:
            events.append(_warning(core.REASON_NOT_FOUND, str(error)))
        return None, str(error)


def _transformer(
    backends: ServingBackends, obj: MLModel, spec: MLModelSpec
) -> dict[str, Any] | str | None:
    """The Feast transformer container (None: not serving from Feast), or why not yet."""
    features = spec.serving.features
    if features is None:
        return None
    if backends.feast_repo is None:
        return "serving from Feast needs the operator's Feast store (not configured)"
    view = backends.objects.read_feature_view(obj.namespace, features.feature_view)
    return transformer_container(
        features,
        view,
        obj.name,
        backends.feast_repo,
        backends.feast_registry,
        backends.feast_online_store,
        backends.serving_image,
    )


def _ensure_isvc(
    backends: ServingBackends,
    obj: MLModel,
    spec: MLModelSpec,
    version: str,
    resolved: ResolvedVersion | None,
    blocked: list[str],
) -> dict[str, Any] | None:
    """Read the version's InferenceService, creating it first if it is missing (not while
    the FeatureView it serves from cannot serve yet: ``blocked`` gets the reason)."""
    found = backends.objects.read_isvc(obj.namespace, isvc_name(obj.name, version))
    if found is not None:
        return found
    transformer = _transformer(backends, obj, spec)
    if isinstance(transformer, str):
        blocked.append(transformer)
        return None
    if resolved is None or resolved.version != version:
        resolved = backends.registry.resolve(ModelRef(name=spec.model.name, version=version))
    body = inference_service(
        owner_of(obj),
        version,
        resolved.storage_uri,
        spec.serving,
        backends.monitor_url,
        transformer,
    )
    backends.objects.ensure_isvc(body)
    return body


def _ensure_isvcs(
    backends: ServingBackends,
    obj: MLModel,
    spec: MLModelSpec,
    versions: set[str],
    resolved: ResolvedVersion | None,
    blocked: list[str],
) -> dict[str, dict[str, Any] | None]:
    return {v: _ensure_isvc(backends, obj, spec, v, resolved, blocked) for v in sorted(versions)}


def reconcile(backends: ServingBackends, obj: MLModel, now: datetime) -> Outcome[MLModelStatus]:
    """On create/update/resume: acknowledge the (valid) spec, at once.

    Everything that talks to MLflow, KServe and the monitor — and the rollout — belongs to the
    timer (`observe_and_step`), so the two handlers never write the same status fields
    concurrently and a slow registry never delays the acknowledgement.
    """
    return Outcome(core.plan_status(obj.spec, obj.status, obj.generation))


def _observe_figures(
    backends: ServingBackends,
    obj: MLModel,
    state: RolloutState,
    since: datetime | None,
    now: datetime,
) -> ModelFigures | None:
    if backends.monitor is None or state.phase not in core.ANALYSING:
        return ModelFigures()
    start = since or state.phase_started_at or now
    try:
        figures = backends.monitor.figures(obj.namespace, obj.name, start, now)
    except MonitorUnavailable as error:
        log.warning("%s/%s: %s", obj.namespace, obj.name, error)
        return None
    if backends.request_counts is None:
        return figures
    try:
        return with_mesh_counts(
            figures, backends.request_counts, obj.namespace, obj.name, state, start, now
        )
    except PrometheusError as error:
        # Like a monitor outage: no figures, no verdict this tick (never judged on 200s only).
        log.warning("%s/%s: %s", obj.namespace, obj.name, error)
        return None


def with_mesh_counts(
    figures: ModelFigures,
    source: RequestCountSource,
    namespace: str,
    name: str,
    state: RolloutState,
    since: datetime,
    now: datetime,
) -> ModelFigures:
    """The monitor's figures with each version's requests and 4xx/5xx taken from the mesh.

    KServe's agent logs only 200 responses (contracts/mesh_metrics.py), so the monitor's
    error counts are zero on a cluster whatever happens; latency stays the monitor's."""
    window_s = max(1, math.ceil((now - since).total_seconds()))
    versions = dict(figures.versions)
    wanted = set(versions) | {v for v in (state.stable_version, state.candidate_version) if v}
    for version in sorted(wanted):
        counts = source.counts(namespace, isvc_name(name, version), window_s)
        if counts is None:  # no mesh metric for it here: the monitor's figures stand
            continue
        current = versions.get(version) or VersionFigures()
        versions[version] = dataclasses.replace(
            current,
            requests=round(counts.total),
            server_errors=round(counts.server_errors),
            client_errors=round(counts.client_errors),
        )
    return dataclasses.replace(figures, versions=versions)


def compare_request(spec: MLModelSpec, state: RolloutState, now: datetime) -> CompareRequest | None:
    """What the outcome gate judges this tick: in shadow the candidate's and stable's scores
    on the same requests since the shadow started (paired); in canary the requests each
    served since the canary started (concurrent, across its steps: the sequential test stays
    valid however often it is looked at). None without a primary metric or a candidate."""
    metric = spec.primary_metric
    candidate, stable = state.candidate_version, state.stable_version
    if metric is None or candidate is None or stable is None or state.phase not in core.ANALYSING:
        return None
    return CompareRequest(
        candidate=candidate,
        stable=stable,
        metric=metric.name,
        design="paired" if state.phase == RolloutPhase.SHADOW else "concurrent",
        since=state.phase_started_at or now,
    )


def _observe_comparison(
    backends: ServingBackends, obj: MLModel, request: CompareRequest | None
) -> tuple[bool, Comparison | None]:
    """(answered, comparison): not answered when the monitor is down (no verdict then)."""
    if backends.monitor is None or request is None:
        return True, None
    try:
        return True, backends.monitor.compare(obj.namespace, obj.name, request)
    except MonitorUnavailable as error:
        log.warning("%s/%s: compare: %s", obj.namespace, obj.name, error)
        return False, None


def _inputs(
    obj: MLModel,
    state: RolloutState,
    desired: str | None,
    isvcs: dict[str, dict[str, Any] | None],
    figures: ModelFigures,
    now: datetime,
    comparison: Comparison | None = None,
) -> Inputs:
    probe = core.probe_version(state, desired)
    candidate = state.candidate_version
    return Inputs(
        now=now,
        desired_version=desired,
        candidate_ready=probe is not None and isvc_ready(isvcs.get(probe)),
        stable_ready=state.stable_version is None or isvc_ready(isvcs.get(state.stable_version)),
        candidate=figures.of(candidate),
        stable=figures.of(state.stable_version),
        paired=figures.paired.get(candidate or "", 0),
        disagreements=figures.disagreements.get(candidate or "", 0),
        paused=core.paused(obj.annotations),
        approved=core.approved(obj.annotations, candidate),
        comparison=comparison,
    )


def _apply_traffic(backends: ServingBackends, obj: MLModel, state: RolloutState) -> str | None:
    if state.stable_version is None:
        return None
    target = TrafficTarget(
        owner=owner_of(obj),
        stable_version=state.stable_version,
        candidate_version=state.candidate_version,
        traffic=state.traffic,
        assignment=obj.spec.rollout.assignment,
    )
    return backends.traffic.apply(target)


def _tick_if_due(
    backends: ServingBackends,
    obj: MLModel,
    spec: MLModelSpec,
    desired: str | None,
    isvcs: dict[str, dict[str, Any] | None],
    now: datetime,
) -> tuple[TickResult, datetime | None]:
    """Tick when a transition or an analysis is due; returns the result and the window start."""
    state = core.state_of(obj.status)
    opened = core.window_start(obj.status, state)
    if not core.analysis_due(spec, obj.status, state, desired, now):
        return TickResult(state, []), opened
    figures = _observe_figures(backends, obj, state, opened, now)
    if figures is None:  # monitor down: no verdict either way this time
        return TickResult(state, []), opened
    request = None if core.is_transition(state, desired) else compare_request(spec, state, now)
    answered, comparison = _observe_comparison(backends, obj, request)
    if not answered:
        return TickResult(state, []), opened
    inputs = _inputs(obj, state, desired, isvcs, figures, now, comparison)
    return tick(state, spec.rollout, inputs), opened


def _stable_ready(
    backends: ServingBackends,
    obj: MLModel,
    stable: str | None,
    isvcs: dict[str, dict[str, Any] | None],
) -> bool:
    if stable is None:
        return False
    found = isvcs.get(stable) or backends.objects.read_isvc(
        obj.namespace, isvc_name(obj.name, stable)
    )
    return isvc_ready(found)


def _mark_champion(backends: ServingBackends, obj: MLModel, stable: str) -> None:
    """The stable version is the registered model's champion (alias in the registry), which
    the Experiment's next candidates must beat (docs/architecture.md "Champion/challenger").
    A registry that refuses only delays that comparison; serving goes on."""
    try:
        backends.registry.mark_champion(obj.spec.model.name, stable)
    except Exception as error:
        log.warning("could not mark %s version %s as champion: %s", obj.name, stable, error)


def observe_and_step(
    backends: ServingBackends, obj: MLModel, now: datetime
) -> Outcome[MLModelStatus]:
    """One timer pass: observe, tick when due, apply traffic, clean up, compose status."""
    spec = obj.spec
    events: list[Event] = []
    resolved, missing = _resolve(backends, obj, spec, events)
    desired = resolved.version if resolved else None
    before = core.state_of(obj.status)
    blocked: list[str] = []
    needed = core.versions_needed(before, desired)
    isvcs = _ensure_isvcs(backends, obj, spec, needed, resolved, blocked)
    result, opened = _tick_if_due(backends, obj, spec, desired, isvcs, now)
    after = result.state
    if after.stable_version is not None:
        _mark_champion(backends, obj, after.stable_version)
    url = _apply_traffic(backends, obj, after)
    if after.stable_version is not None:
        backends.objects.delete_isvcs_except(owner_of(obj), core.versions_needed(after, desired))
    monitoring.push_monitor_config(backends, obj, spec, after)

    closed = core.window_closed(before, after)
    status = core.with_state(obj.status, after).model_copy(
        update={
            "analysis": core.analysis_figures(obj.status.analysis, result, closed, now, opened),
            "url": url or obj.status.url,
        }
    )
    stable_ready = _stable_ready(backends, obj, after.stable_version, isvcs)
    status = core.serving_conditions(status, stable_ready, obj.generation)
    status, watch_events = monitoring.watch(backends, obj, spec, status, now)
    if missing is not None:
        status = core.not_found(status, missing, obj.generation)
    elif blocked and not stable_ready:
        status = core.features_not_ready(status, blocked[0], obj.generation)
    elif resolved is not None and resolved.version == after.stable_version:
        status = core.with_lineage(status, resolved.version, resolved.run_id, resolved.tags)
    return Outcome(observed(status, obj.generation), events + result.events + watch_events)

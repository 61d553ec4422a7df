"""The MLModel's side of monitoring: what the monitor is told, and what its verdicts do.

Each timer pass pushes the model's config (versions in play, windows, the drift detector and
each version's training reference), reads the stable version's drift check and every
version's quality on joined labels (with the stable version's offline validation figure from
MLflow); a drift alarm or a Degraded stable version — whichever `retrain.triggers` lists —
goes through the retrain policy and, when it says so, becomes a request on the Experiment.
The pure parts live in `drift.py`, `quality.py` and `retrain_policy.py`; this module does
the I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kubernetes.client.rest import ApiException
from pydantic import ValidationError

from contracts.drift import DEFAULT_MIN_WINDOW, MAX_WINDOW_SIZE
from contracts.monitor_config import (
    MAX_EXPECTED_RUN_TIME_S,
    AlarmConfig,
    DriftConfig,
    ModelConfig,
    OutcomesConfig,
    SkewConfig,
)
from operators.api.common import ANNOTATION_RETRAIN, parse_duration
from operators.api.mlmodel import (
    Drift,
    MLModelSpec,
    MLModelStatus,
    Outcomes,
    Retrain,
    RolloutPhase,
)
from operators.backends.monitor import MonitorUnavailable, VersionDrift
from operators.mlmodel import drift as drifting
from operators.mlmodel import quality as outcomes
from operators.mlmodel import reconcile as core
from operators.mlmodel import skew as skewing
from operators.mlmodel.backends import MLModel, ServingBackends
from operators.mlmodel.retrain_policy import DriftAlarm, RetrainPolicy, decide_retrain
from operators.mlmodel.rollout import Event, RolloutState

log = logging.getLogger(__name__)


def _alarm_settings(drift: Drift) -> AlarmConfig | None:
    """`spec.monitoring.drift.alarm` for the monitor: the budget in seconds (at most what the
    monitor accepts; a longer one is the same as never in practice)."""
    if drift.alarm is None:
        return None
    seconds = drift.alarm.expected_run_time_seconds()
    return AlarmConfig(
        consecutive=drift.alarm.consecutive,
        expected_run_time_seconds=None
        if seconds is None
        else min(seconds, MAX_EXPECTED_RUN_TIME_S),
    )


def _drift_settings(drift: Drift | None) -> DriftConfig | None:
    if drift is None:
        return None
    return DriftConfig(
        detector=str(drift.detector),
        p_value=drift.p_value,
        features=list(drift.features),
        min_window=min(DEFAULT_MIN_WINDOW, drift.window.size),
        alarm=_alarm_settings(drift),
    )


def _window(drift: Drift | None) -> dict[str, Any]:
    """The drift window's size (at most what the monitor keeps) and age; none without drift:
    the monitor keeps its defaults."""
    if drift is None:
        return {}
    return {
        "window_size": min(drift.window.size, MAX_WINDOW_SIZE),
        "max_age_seconds": parse_duration(drift.window.max_age).total_seconds(),
    }


def _outcomes_settings(outcomes: Outcomes | None) -> OutcomesConfig | None:
    """`spec.monitoring.outcomes` for the monitor; None keeps the monitor's defaults."""
    if outcomes is None:
        return None
    return OutcomesConfig(
        label_maturity_seconds=parse_duration(outcomes.label_maturity).total_seconds(),
        window_size=outcomes.window.size,
        max_age_seconds=parse_duration(outcomes.window.max_age).total_seconds(),
        entity_key=outcomes.entity_key,
    )


def _references(
    backends: ServingBackends, spec: MLModelSpec, versions: list[str], scores: bool = False
) -> dict[str, str]:
    """Each version's training reference snapshot (the monitor's feature-drift baseline) or,
    with `scores`, its validation scores saved at training (the prediction-drift baseline)."""
    references = {}
    registry = backends.registry
    for version in versions:
        try:
            run_id = registry.run_id_of(spec.model.name, version)
            uri = registry.score_reference_uri(run_id) if scores else registry.reference_uri(run_id)
        except Exception as error:  # noqa: BLE001 — a registry hiccup must not stop serving
            log.warning("reference of %s v%s: %s", spec.model.name, version, error)
            continue
        if uri is not None:
            references[version] = uri
    return references


def _skew_settings(backends: ServingBackends, obj: MLModel, spec: MLModelSpec) -> SkewConfig | None:
    skew = spec.skew  # monitoring.skew, or the default of serving from Feast
    if skew is None:
        return None
    try:
        view = backends.objects.read_feature_view(obj.namespace, skew.feature_view)
    except ApiException as error:  # the API server's hiccup: no skew check this pass
        log.warning("%s/%s: skew: %s", obj.namespace, obj.name, error)
        return None
    served = spec.serving.features
    from_feast = served is not None and served.feature_view == skew.feature_view
    only = served.features if served is not None and from_feast else None
    settings = skewing.skew_settings(skew, view, only or None, from_feast)
    if isinstance(settings, str):
        log.info("%s/%s: no skew check yet: %s", obj.namespace, obj.name, settings)
        return None
    return settings


def push_monitor_config(
    backends: ServingBackends, obj: MLModel, spec: MLModelSpec, state: RolloutState
) -> None:
    if backends.monitor is None or state.stable_version is None:
        return
    analysing = state.candidate_version if state.phase in core.ANALYSING else None
    drift = spec.monitoring.drift if spec.monitoring else None
    in_play = [v for v in (state.stable_version, analysing) if v]
    try:
        config = ModelConfig(
            stable_version=state.stable_version,
            candidate_version=analysing if state.phase == RolloutPhase.CANARY else None,
            shadow_version=analysing if state.phase == RolloutPhase.SHADOW else None,
            score_tolerance=spec.rollout.shadow.tolerance,
            feature_names=list(drift.features) if drift else [],
            drift=_drift_settings(drift),
            references=_references(backends, spec, in_play) if drift else {},
            score_references=_references(backends, spec, in_play, scores=True) if drift else {},
            skew=_skew_settings(backends, obj, spec),
            outcomes=_outcomes_settings(spec.monitoring.outcomes if spec.monitoring else None),
            **_window(drift),
        )
    except ValidationError as error:  # what the monitor would refuse is not sent
        log.warning("%s/%s: monitor config invalid: %s", obj.namespace, obj.name, error)
        return
    try:
        backends.monitor.push_config(obj.namespace, obj.name, config)
    except MonitorUnavailable as error:
        log.warning("%s/%s: %s", obj.namespace, obj.name, error)


@dataclass(frozen=True)
class DriftReading:
    """The stable version's drift check; `reachable` False when the monitor did not answer."""

    reachable: bool
    check: VersionDrift | None = None


def _read_drift(
    backends: ServingBackends, obj: MLModel, spec: MLModelSpec, stable: str | None
) -> DriftReading | None:
    """None when nothing is watched here (no monitor, no drift or skew spec, nothing serving)."""
    monitoring = spec.monitoring
    drift = monitoring.drift if monitoring is not None else None
    watched = drift is not None or spec.skew is not None
    if backends.monitor is None or stable is None or not watched:
        return None
    try:
        checks = backends.monitor.drift(obj.namespace, obj.name)
    except MonitorUnavailable as error:
        log.warning("%s/%s: drift: %s", obj.namespace, obj.name, error)
        return DriftReading(reachable=False)
    return DriftReading(reachable=True, check=checks.get(stable))


def _request_retrain(
    backends: ServingBackends,
    obj: MLModel,
    retrain: Retrain,
    status: MLModelStatus,
    alarm: DriftAlarm,
    now: datetime,
) -> tuple[MLModelStatus, list[Event]]:
    """Decide on an alarm about the stable version; annotate the Experiment on a request."""
    namespace, stable = obj.namespace, status.stable_version or ""
    last = status.last_retrain
    approval, seen = drifting.retrain_approval(
        obj.annotations, last.approval_seen if last else None, now
    )
    experiment = backends.objects.read_experiment(namespace, retrain.experiment)
    if experiment is None:
        record, events = drifting.record_missing_experiment(last, namespace, retrain.experiment)
    else:
        policy = RetrainPolicy.from_spec(retrain)
        decision = decide_retrain(
            now,
            policy,
            alarm,
            history=last.history if last else [],
            outstanding=drifting.retrain_outstanding(experiment),
            approval=approval,
        )
        if decision.should_request:
            value = drifting.retrain_annotation(decision.alarm, now, namespace, obj.name, stable)
            backends.objects.annotate_experiment(
                namespace, retrain.experiment, ANNOTATION_RETRAIN, value
            )
        record, events = drifting.record_decision(last, decision, now, stable, policy.cooldown)
    record = record.model_copy(update={"approval_seen": seen})
    return status.model_copy(update={"last_retrain": record}), events


def watch_drift(
    backends: ServingBackends,
    obj: MLModel,
    spec: MLModelSpec,
    status: MLModelStatus,
) -> tuple[MLModelStatus, list[Event], DriftAlarm | None]:
    """status.drift and the Drift condition, status.skew, and the alarm when the stable
    version drifts (skew is reported, never a reason to retrain: retraining on the same
    pipeline would not fix a feature pipeline that serves other values than it trained on)."""
    stable = status.stable_version
    reading = _read_drift(backends, obj, spec, stable)
    if reading is None or not reading.reachable or stable is None:
        return status, [], None  # monitor down: the last verdict stands
    check = reading.check
    events: list[Event] = []
    if spec.skew is not None:
        status, events = skewing.with_skew(status, stable, check.skew if check else None)
    if spec.monitoring is None or spec.monitoring.drift is None:
        return status, events, None
    status, drift_events = drifting.with_drift(status, stable, check, obj.generation)
    alarm = drifting.drift_alarm(check) if check is not None and check.is_drift else None
    return status, drift_events + events, alarm


def _validation_figure(
    backends: ServingBackends, spec: MLModelSpec, status: MLModelStatus, metric: str
) -> float | None:
    """The stable version's offline figure; the last one known when the registry fails (a
    registry hiccup must neither stop serving nor turn Degraded Unknown)."""
    stable = status.stable_version or ""
    try:
        return backends.registry.validation_metric(spec.model.name, stable, metric)
    except Exception as error:  # noqa: BLE001 — a registry hiccup must not stop serving
        log.warning("validation %s of %s v%s: %s", metric, spec.model.name, stable, error)
    last = status.stable_quality
    if last is not None and last.version == stable and last.metric == metric:
        return last.validation
    return None


def watch_quality(
    backends: ServingBackends,
    obj: MLModel,
    spec: MLModelSpec,
    status: MLModelStatus,
) -> tuple[MLModelStatus, list[Event], DriftAlarm | None]:
    """status.quality, status.stableQuality, the Degraded condition and its alarm."""
    stable = status.stable_version
    if backends.monitor is None or stable is None:
        return status, [], None
    try:
        report = backends.monitor.quality(obj.namespace, obj.name)
    except MonitorUnavailable as error:
        log.warning("%s/%s: quality: %s", obj.namespace, obj.name, error)
        return status, [], None  # the last figures and verdict stand
    metric = spec.primary_metric
    name = metric.name if metric is not None else outcomes.DEFAULT_METRIC
    validation = _validation_figure(backends, spec, status, name)
    return outcomes.with_quality(status, report, metric, validation, obj.generation)


def watch(
    backends: ServingBackends,
    obj: MLModel,
    spec: MLModelSpec,
    status: MLModelStatus,
    now: datetime,
) -> tuple[MLModelStatus, list[Event]]:
    """Drift, skew and quality of this pass; one retrain decision on what `triggers` lists."""
    status, events, drift_alarm = watch_drift(backends, obj, spec, status)
    status, quality_events, degraded = watch_quality(backends, obj, spec, status)
    events += quality_events
    retrain = spec.monitoring.retrain if spec.monitoring else None
    alarm = outcomes.retrain_alarm(retrain.triggers, drift_alarm, degraded) if retrain else None
    if retrain is None or alarm is None:
        return status, events
    try:
        status, more = _request_retrain(backends, obj, retrain, status, alarm, now)
    except ApiException as error:
        # Reading or annotating the Experiment failed (RBAC, API server): ask again next pass;
        # the rollout and the monitoring status of this pass are still written.
        log.warning("%s/%s: retrain request: %s", obj.namespace, obj.name, error)
        return status, events
    return status, events + more

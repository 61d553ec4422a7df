"""Pure core of the MLModel operator: status ↔ rollout state, what is due, conditions.

No I/O here; `service.py` observes the world and calls these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from contracts import mlflow_tags as tag
from operators.api.common import ANNOTATION_APPROVE, ANNOTATION_PAUSE, parse_duration
from operators.api.mlmodel import (
    AnalysisFigures,
    Lineage,
    MLModelSpec,
    MLModelStatus,
    RetrainStatus,
    RolloutPhase,
    Traffic,
)
from operators.mlmodel.rollout import RolloutState, TickResult
from operators.status import observed, with_condition

REASON_FEATURES_NOT_READY = "FeatureViewNotReady"
REASON_NOT_FOUND = "ModelVersionNotFound"
ANALYSING = (RolloutPhase.SHADOW, RolloutPhase.CANARY)


def plan_status(spec: MLModelSpec, status: MLModelStatus, generation: int | None) -> MLModelStatus:
    """A valid spec seen for the first time: Pending until a version serves."""
    if status.phase is None:
        status = status.model_copy(update={"phase": RolloutPhase.PENDING})
    if status.stable_version is None:
        status = with_condition(
            status, "Ready", "False", "NotServing", "no model version is being served", generation
        )
    return observed(status, generation)


def state_of(status: MLModelStatus) -> RolloutState:
    """The rollout's slice of status; everything a restarted operator needs."""
    return RolloutState(
        phase=RolloutPhase(status.phase or RolloutPhase.PENDING),
        stable_version=status.stable_version,
        candidate_version=status.candidate_version,
        step_index=status.step_index,
        failed_checks=status.failed_checks or 0,
        iterations=status.iterations or 0,
        phase_started_at=status.phase_started_at,
        traffic=status.traffic or Traffic(),
        message=status.message,
    )


def with_state(status: MLModelStatus, state: RolloutState) -> MLModelStatus:
    return status.model_copy(
        update={
            "phase": state.phase,
            "stable_version": state.stable_version,
            "candidate_version": state.candidate_version,
            "step_index": state.step_index,
            "failed_checks": state.failed_checks,
            "iterations": state.iterations,
            "phase_started_at": state.phase_started_at,
            "traffic": state.traffic,
            "message": state.message,
        }
    )


def window_start(status: MLModelStatus, state: RolloutState) -> datetime | None:
    """Where the current analysis window opened: the later of the phase start and the last
    closed window (a step taken or a check failed). Inconclusive ticks keep it open, so a
    quiet 1% step accumulates requests instead of starting over every interval."""
    starts = [t for t in (state.phase_started_at, status.analysis and status.analysis.at) if t]
    return max(starts) if starts else None


def is_transition(state: RolloutState, desired: str | None) -> bool:
    """A tick that reacts to a change (new version, first version) rather than analysing."""
    if desired is None:
        return False
    if state.stable_version is None:
        return True
    return desired not in (state.stable_version, state.candidate_version) or (
        desired == state.stable_version and state.candidate_version is not None
    )


def analysis_due(
    spec: MLModelSpec,
    status: MLModelStatus,
    state: RolloutState,
    desired: str | None,
    now: datetime,
) -> bool:
    if is_transition(state, desired):
        return True
    if state.phase not in ANALYSING:
        return False
    opened = window_start(status, state)
    interval = parse_duration(spec.rollout.analysis.interval)
    return opened is None or now - opened >= interval


def probe_version(state: RolloutState, desired: str | None) -> str | None:
    """The version whose readiness gates the next tick (the first one, else the candidate)."""
    if state.stable_version is None:
        return desired
    return state.candidate_version


def versions_needed(state: RolloutState, desired: str | None) -> set[str]:
    """Versions that must have an InferenceService; every other one of this MLModel goes."""
    needed = {v for v in (state.stable_version,) if v}
    keeps_candidate = state.phase in (*ANALYSING, RolloutPhase.FAILED, RolloutPhase.PENDING)
    if state.candidate_version and keeps_candidate:
        needed.add(state.candidate_version)
    if desired and desired not in (state.stable_version, state.candidate_version):
        needed.add(desired)
    return needed


def window_closed(before: RolloutState, after: RolloutState) -> bool:
    return (
        before.phase != after.phase
        or before.step_index != after.step_index
        or before.failed_checks != after.failed_checks
        or before.candidate_version != after.candidate_version
    )


def analysis_figures(
    previous: AnalysisFigures | None,
    result: TickResult,
    closed: bool,
    now: datetime,
    opened: datetime | None,
) -> AnalysisFigures | None:
    if result.verdict is None:
        return previous
    figures = result.figures
    at = now if closed else (opened or now)

    def number(key: str) -> Any:
        return figures.get(key)

    return AnalysisFigures(
        at=at,
        outcome=str(result.verdict),
        requests=number("requests"),
        errors=number("errors"),
        error_rate=number("errorRate"),
        stable_error_rate=number("stableErrorRate"),
        latency_p99_ms=number("latencyP99Ms"),
        paired=number("paired"),
        disagreement=number("disagreement"),
        stable_latency_p99_ms=number("stableLatencyP99Ms"),
        latency_ratio=number("latencyRatio"),
        metric=number("metric"),
        labeled=number("labeled"),
        estimate=number("estimate"),
        low=number("low"),
        high=number("high"),
        message=result.state.message,
    )


def annotation_flag(annotations: dict[str, str], key: str, candidate: str | None) -> bool:
    """`"true"` (any case) or the candidate's version number turns a flag on."""
    value = (annotations.get(key) or "").strip().lower()
    return value in ("true", "yes", "1") or (candidate is not None and value == candidate)


def paused(annotations: dict[str, str]) -> bool:
    return annotation_flag(annotations, ANNOTATION_PAUSE, None)


def approved(annotations: dict[str, str], candidate: str | None) -> bool:
    return annotation_flag(annotations, ANNOTATION_APPROVE, candidate)


def serving_conditions(
    status: MLModelStatus, stable_ready: bool, generation: int | None
) -> MLModelStatus:
    """Serving follows the stable InferenceService; Ready also needs a version at all."""
    stable = status.stable_version
    if stable is None:
        status = with_condition(
            status, "Serving", "False", "NoStableVersion", "no version serves yet", generation
        )
        message = status.message or "waiting for the first version to be Ready"
        return with_condition(status, "Ready", "False", "NotServing", message, generation)
    if not stable_ready:
        message = f"InferenceService of version {stable} is not Ready"
        status = with_condition(
            status, "Serving", "False", "PredictorNotReady", message, generation
        )
        return with_condition(status, "Ready", "False", "PredictorNotReady", message, generation)
    message = f"version {stable} serves {status.traffic.stable if status.traffic else 100}%"
    status = with_condition(status, "Serving", "True", "PredictorReady", message, generation)
    return with_condition(status, "Ready", "True", str(status.phase), message, generation)


def not_found(status: MLModelStatus, message: str, generation: int | None) -> MLModelStatus:
    return with_condition(status, "Ready", "False", REASON_NOT_FOUND, message, generation)


def features_not_ready(
    status: MLModelStatus, message: str, generation: int | None
) -> MLModelStatus:
    """Serving from Feast waits for the FeatureView (its InferenceService is not created)."""
    return with_condition(status, "Ready", "False", REASON_FEATURES_NOT_READY, message, generation)


def _json_or_none(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def _feature_view_versions(text: str | None) -> dict[str, str]:
    data = _json_or_none(text)
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if v is not None}


def _data_window(text: str | None) -> str | None:
    """Compact JSON when the tag is JSON; the text as written otherwise."""
    if not text:
        return None
    data = _json_or_none(text)
    if data is None:
        return text
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _newer(version: str, than: str | None) -> bool:
    if than is None:
        return False
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return False


def lineage_of(
    version: str,
    run_id: str | None,
    tags: Mapping[str, str],
    last_retrain: RetrainStatus | None,
) -> Lineage:
    """Where a serving version came from, from its MLflow tags.

    The drift report that caused it is its own tag when the training side set one; else the
    report of the last retrain request, when this version is newer than the one that
    was serving then (it came out of, or after, that retrain).
    """
    report = tags.get(tag.DRIFT_REPORT)
    if not report and last_retrain is not None and _newer(version, last_retrain.version):
        report = last_retrain.report_url
    return Lineage(
        model_version=version,
        mlflow_run_id=run_id,
        feature_view_versions=_feature_view_versions(tags.get(tag.FEATURE_VIEW_VERSIONS)),
        data_window=_data_window(tags.get(tag.DATA_WINDOW)),
        experiment=tags.get(tag.EXPERIMENT) or None,
        trial=tags.get(tag.TRIAL) or None,
        code_version=tags.get(tag.CODE_VERSION) or None,
        drift_report=report or None,
    )


def with_lineage(
    status: MLModelStatus, version: str, run_id: str | None, tags: Mapping[str, str]
) -> MLModelStatus:
    lineage = lineage_of(version, run_id, tags, status.last_retrain)
    return status.model_copy(update={"lineage": lineage})

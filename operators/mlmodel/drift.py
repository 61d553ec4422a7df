"""Pure core of drift → retrain: the Drift condition, the alarm, the request on the Experiment.

`service.py` reads the monitor's drift check of the stable version and the Experiment named in
`spec.monitoring.retrain`; these functions turn that into status, events and the annotation
value. No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from operators.api.common import ANNOTATION_APPROVE, ANNOTATION_RETRAIN, retrain_request_id
from operators.api.mlmodel import (
    ApprovalSeen,
    DriftAlarmFigures,
    DriftStatus,
    MLModelStatus,
    RetrainStatus,
)
from operators.mlmodel.retrain_policy import DAY, Approval, DriftAlarm, RetrainDecision
from operators.mlmodel.rollout import Event, EventType
from operators.status import with_condition

if TYPE_CHECKING:  # the monitor client's parsed answer; read here, never fetched
    from operators.backends.monitor import VersionDrift

REASON_DETECTED = "DriftDetected"
REASON_CLEARED = "DriftCleared"
REASON_NO_DRIFT = "NoDrift"
REASON_NO_DATA = "NoData"
REASON_RETRAIN_REQUESTED = "RetrainRequested"
REASON_RETRAIN_DEFERRED = "RetrainDeferred"
REASON_EXPERIMENT_MISSING = "RetrainExperimentMissing"
EXPERIMENT_MISSING = "experiment-missing"
# The Experiment operator's phases after which a handled request is finished.
FINISHED_PHASES = ("Succeeded", "Failed")
DEFAULT_THRESHOLD = 0.05


# --- the Drift condition ---------------------------------------------------------------------
def drift_status(check: VersionDrift) -> DriftStatus:
    return DriftStatus(
        version=check.version,
        detector=check.detector,
        p_values=dict(check.p_values),
        is_drift=bool(check.is_drift),
        window=check.window,
        checked_at=check.checked_at,
        report_url=check.report_url,
        alarm=DriftAlarmFigures.model_validate(check.alarm) if check.alarm else None,
        prediction_baseline=check.prediction_baseline,
        prediction_baseline_note=check.prediction_baseline_note,
    )


def drifted_features(check: VersionDrift) -> list[tuple[str, float]]:
    """Features whose p-value is under the threshold, lowest p first."""
    threshold = check.threshold if check.threshold is not None else DEFAULT_THRESHOLD
    below = [(f, p) for f, p in check.p_values.items() if p < threshold]
    return sorted(below, key=lambda item: (item[1], item[0]))


def lowest_p(check: VersionDrift) -> float | None:
    candidates = [*check.p_values.values(), *([check.p_value] if check.p_value is not None else [])]
    return min(candidates, default=None)


def alarm_reason(check: VersionDrift) -> str:
    """One line naming the version, the drifted features with their p-values, the test."""
    features = drifted_features(check)
    named = ", ".join(f"{f} (p={p:.3g})" for f, p in features[:10])
    if len(features) > 10:
        named += f" and {len(features) - 10} more"
    lowest = lowest_p(check)
    what = named or (f"p={lowest:.3g}" if lowest is not None else "the model's inputs")
    test = check.detector or "drift detector"
    threshold = f" < {check.threshold:g}" if check.threshold is not None else ""
    window = f", window {check.window}" if check.window is not None else ""
    return f"drift on version {check.version}: {what} ({test}{threshold}{window})"


def drift_alarm(check: VersionDrift) -> DriftAlarm:
    return DriftAlarm(reason=alarm_reason(check), report_url=check.report_url)


def with_drift(
    status: MLModelStatus,
    stable: str,
    check: VersionDrift | None,
    generation: int | None,
) -> tuple[MLModelStatus, list[Event]]:
    """The Drift condition and `status.drift` from the stable version's check.

    Without a verdict the last `status.drift` stays (it is what was last known) and the
    condition goes Unknown. Events mark changes of the verdict only, so a check repeated
    every pass says nothing new.
    """
    if check is None or check.is_drift is None:
        message = (check.message if check else None) or (
            f"the monitor has no drift verdict for version {stable} yet"
        )
        status = with_condition(status, "Drift", "Unknown", REASON_NO_DATA, message, generation)
        return status, []
    previous = status.drift
    was_drifting = previous is not None and previous.is_drift and previous.version == stable
    events: list[Event] = []
    if check.is_drift:
        message = alarm_reason(check)
        status = with_condition(status, "Drift", "True", REASON_DETECTED, message, generation)
        if not was_drifting:
            report = f"; report: {check.report_url}" if check.report_url else ""
            events.append(Event(EventType.WARNING, REASON_DETECTED, message + report))
    else:
        lowest = lowest_p(check)
        message = f"no drift on version {check.version}" + (
            f" (lowest p={lowest:.3g})" if lowest is not None else ""
        )
        status = with_condition(status, "Drift", "False", REASON_NO_DRIFT, message, generation)
        if was_drifting:
            events.append(Event(EventType.NORMAL, REASON_CLEARED, message))
    return status.model_copy(update={"drift": drift_status(check)}), events


# --- the retrain request ---------------------------------------------------------------------
def retrain_outstanding(experiment: Mapping[str, Any]) -> bool:
    """A request the Experiment carries but has not finished: not yet picked up (its
    status.lastRetrain.requestId is another one's) or its round still running."""
    annotations = (experiment.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_RETRAIN)
    if not value or not str(value).strip():
        return False
    status = experiment.get("status") or {}
    handled = (status.get("lastRetrain") or {}).get("requestId")
    if handled != retrain_request_id(str(value)):
        return True
    return status.get("phase") not in FINISHED_PHASES


def rfc3339(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def retrain_annotation(
    alarm: DriftAlarm, now: datetime, namespace: str, name: str, version: str
) -> str:
    """The `kubeloop.io/retrain-requested` value: JSON the Experiment operator parses."""
    return json.dumps(
        {
            "reason": alarm.reason,
            "reportUrl": alarm.report_url,
            "requestedAt": rfc3339(now),
            "requestedBy": f"MLModel {namespace}/{name}",
            "version": version,
        },
        separators=(",", ":"),
    )


def _timestamp(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def retrain_approval(
    annotations: Mapping[str, str], seen: ApprovalSeen | None, now: datetime
) -> tuple[Approval | None, ApprovalSeen | None]:
    """The approve annotation as a retrain approval, and the value's first sighting.

    The annotation is shared with canary approval: a version number approves only that
    candidate and is passed on as a value that does not approve a retrain; `retrain`, `true`
    approve, given when the operator first saw the value; an RFC 3339 timestamp approves as
    of that time.
    """
    value = (annotations.get(ANNOTATION_APPROVE) or "").strip()
    if not value:
        return None, None
    if seen is None or seen.value != value:
        seen = ApprovalSeen(value=value, at=now)
    if value.isdigit() and value != "1":  # a candidate's version: canary only
        return Approval(value=f"version {value} (canary only)"), seen
    if _timestamp(value) is not None:
        return Approval(value=value), seen
    return Approval(value=value, given_at=seen.at), seen


def _action_of(decision: str | None) -> str | None:
    return decision.partition(":")[0] if decision else None


def _recent(history: list[datetime], now: datetime, keep: timedelta) -> list[datetime]:
    """Requests that still matter to cooldown and maxPerDay; the latest always stays."""
    ordered = sorted(history)
    return [t for t in ordered[:-1] if now - t < keep] + ordered[-1:]


def record_decision(
    last: RetrainStatus | None,
    decision: RetrainDecision,
    now: datetime,
    version: str,
    cooldown: timedelta,
) -> tuple[RetrainStatus, list[Event]]:
    """`status.lastRetrain` after a decision; an Event on a request or a changed decision."""
    last = last or RetrainStatus()
    if decision.should_request:
        history = _recent([*last.history, now], now, max(DAY, cooldown))
        updated = last.model_copy(
            update={
                "requested_at": now,
                "reason": decision.alarm.reason,
                "report_url": decision.alarm.report_url,
                "version": version,
                "decision": str(decision.action),
                "history": history,
            }
        )
        message = f"{decision.alarm.reason}" + (
            f"; report: {decision.alarm.report_url}" if decision.alarm.report_url else ""
        )
        return updated, [Event(EventType.NORMAL, REASON_RETRAIN_REQUESTED, message)]
    text = f"{decision.action}: {decision.reason}"
    updated = last.model_copy(update={"decision": text})
    if _action_of(last.decision) == str(decision.action):
        return updated, []
    return updated, [Event(EventType.NORMAL, REASON_RETRAIN_DEFERRED, text)]


def record_missing_experiment(
    last: RetrainStatus | None, namespace: str, experiment: str
) -> tuple[RetrainStatus, list[Event]]:
    text = f"{EXPERIMENT_MISSING}: Experiment {namespace}/{experiment} not found"
    last = last or RetrainStatus()
    updated = last.model_copy(update={"decision": text})
    if _action_of(last.decision) == EXPERIMENT_MISSING:
        return updated, []
    return updated, [Event(EventType.WARNING, REASON_EXPERIMENT_MISSING, text)]

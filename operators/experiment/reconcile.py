"""Pure core of the Experiment operator: rounds, trial bookkeeping, the verdict, retrain requests.

A *round* is one trial set over one data window: round 1 when the Experiment first appears,
one more per retrain request (annotation `kubeloop.io/retrain-requested`), whose window ends
when the request is handled, and one more when the spec was edited after the current round was
planned (metadata.generation past status.roundGeneration) and that round is done. The handled
request is remembered by the digest of the annotation's value, so a request starts exactly one
round however often it is reconciled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from operators.api.common import retrain_request_id
from operators.api.experiment import (
    DataWindow,
    ExperimentPhase,
    ExperimentSpec,
    ExperimentStatus,
    RetrainRecord,
    Trial,
    TrialState,
)
from operators.backends.runs import RunState, RunStatus, failure_message
from operators.experiment import trials as planning
from operators.status import with_condition

# Errors our components raise, named first in a failed trial's message.
COMPONENT_ERRORS = ("TrainingSetError", "EvaluationError", "RegistrationError", "DefinitionError")


class RetrainRequest(BaseModel):
    """The annotation's value: JSON {reason, reportUrl?, requestedAt?} or a plain-text reason."""

    request_id: str
    reason: str
    report_url: str | None = None
    requested_at: datetime | None = None


def parse_retrain_request(value: str | None) -> RetrainRequest | None:
    if value is None or not value.strip():
        return None
    request_id = retrain_request_id(value)
    try:
        data: Any = json.loads(value)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return RetrainRequest(request_id=request_id, reason=value.strip()[:1000])
    requested_at = None
    raw_time = data.get("requestedAt") or data.get("requested_at")
    if isinstance(raw_time, str):
        try:
            requested_at = datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
        except ValueError:
            requested_at = None
    report_url = data.get("reportUrl") or data.get("report_url")
    return RetrainRequest(
        request_id=request_id,
        reason=str(data.get("reason") or "retrain requested")[:1000],
        report_url=str(report_url) if report_url else None,
        requested_at=requested_at,
    )


def round_done(status: ExperimentStatus) -> bool:
    return status.phase in (ExperimentPhase.SUCCEEDED, ExperimentPhase.FAILED)


def is_new_request(status: ExperimentStatus, request: RetrainRequest | None) -> bool:
    if request is None:
        return False
    handled = status.last_retrain.request_id if status.last_retrain else None
    return request.request_id != handled


def spec_changed_since_round(status: ExperimentStatus, generation: int | None) -> bool:
    """The spec was edited after the current round was planned (status changes never bump
    metadata.generation). A status without roundGeneration (written before it existed) is
    taken as current: an operator upgrade must not retrain everything."""
    if generation is None or status.round_generation is None:
        return False
    return generation > status.round_generation


def needs_new_round(
    status: ExperimentStatus, generation: int | None, request: RetrainRequest | None
) -> bool:
    """Level-triggered: no round yet, a retrain request not handled yet, or a finished round
    planned for an older spec (a running round finishes first; its runs are already out)."""
    if status.round is None or is_new_request(status, request):
        return True
    return round_done(status) and spec_changed_since_round(status, generation)


def start_round(
    name: str,
    spec: ExperimentSpec,
    status: ExperimentStatus,
    generation: int | None,
    now: datetime,
    request: RetrainRequest | None = None,
) -> ExperimentStatus:
    """A fresh trial set: a retrain round on a window ending now, else (round 1, a spec edit)
    a round on all labels."""
    round_ = (status.round or 0) + 1
    update: dict[str, Any] = {
        "round": round_,
        "round_generation": generation,
        "trials": planning.plan_trials(name, round_, spec.search),
        "best": None,
        "phase": ExperimentPhase.PENDING,
        "data_window": None,
    }
    if request is not None:
        update["data_window"] = DataWindow(end=planning.round_window_end(now))
        update["last_retrain"] = RetrainRecord(
            requested_at=request.requested_at,
            reason=request.reason,
            report_url=request.report_url,
            started_at=now.replace(microsecond=0),
            round=round_,
            request_id=request.request_id,
        )
    status = status.model_copy(update=update)
    message = f"round {round_}: {len(status.trials)} trial(s) planned"
    return with_condition(status, "Trained", "Unknown", "RoundStarted", message, generation)


def trial_split(spec: ExperimentSpec, status: ExperimentStatus) -> dict[str, Any]:
    """The training pipeline's `split` input: the spec's windows, ending at the round's window
    end when it has one (retrain rounds), else just after the last label."""
    split: dict[str, Any] = {"validation": spec.split.validation, "test": spec.split.test}
    if spec.split.train_until is not None:
        split["trainUntil"] = spec.split.train_until.isoformat()
    if spec.split.train_window is not None:
        split["trainWindow"] = spec.split.train_window
    if spec.split.recency_half_life is not None:
        split["recencyHalfLife"] = spec.split.recency_half_life
    if status.data_window is not None:
        split["end"] = status.data_window.end.isoformat()
    return split


def retrain_lineage(status: ExperimentStatus) -> dict[str, str]:
    """Why this round exists, for the registered version's tags: only when the round being
    registered is the one the last retrain request started (a later spec-edit round is not)."""
    retrain = status.last_retrain
    if retrain is None or retrain.round is None or retrain.round != status.round:
        return {}
    return {
        "retrain_reason": retrain.reason or "",
        "drift_report": retrain.report_url or "",
        "retrain_requested_at": retrain.requested_at.isoformat() if retrain.requested_at else "",
    }


def lineage_window(outputs: dict[str, Any], status: ExperimentStatus) -> dict[str, Any]:
    """The data window the best trial's training set used (the training pipeline's
    `data_window` output); without it (a backend that reports no outputs), the round's window."""
    window = outputs.get("data_window")
    if isinstance(window, str) and window.strip():
        window = json.loads(window)
    if isinstance(window, dict) and window:
        return window
    return status.data_window.to_k8s() if status.data_window else {}


def replace_trial(status: ExperimentStatus, trial: Trial) -> ExperimentStatus:
    trials = [trial if t.name == trial.name else t for t in status.trials]
    return status.model_copy(update={"trials": trials})


def trial_metrics(outputs: dict[str, Any], metric: str) -> tuple[dict[str, float], list[str]]:
    """Metrics from the pipeline's evaluation report: every window's figures, plus the
    objective's value and the best baseline's under `metric` and `baseline_<metric>`."""
    report = json.loads(str(outputs.get("metrics_json") or "{}"))
    metrics: dict[str, float] = {}
    for window, figures in (report.get("windows") or {}).items():
        for key, value in (figures or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[f"{window}_{key}"] = float(value)
    objective = report.get("objective") or {}
    if isinstance(objective.get("value"), int | float):
        metrics[metric] = float(objective["value"])
    if isinstance(objective.get("baseline_value"), int | float):
        metrics[f"baseline_{metric}"] = float(objective["baseline_value"])
    return metrics, [str(c) for c in report.get("feature_columns") or []]


def observe_trial(trial: Trial, run: RunStatus, metric: str) -> Trial:
    if run.state == RunState.SUCCEEDED:
        metrics, _ = trial_metrics(run.outputs, metric)
        return trial.model_copy(
            update={
                "state": TrialState.SUCCEEDED,
                "run_url": run.url,
                "mlflow_run_id": str(run.outputs.get("mlflow_run_id") or "") or None,
                "metrics": metrics,
                **planning.trial_comparisons(
                    json.loads(str(run.outputs.get("metrics_json") or "{}"))
                ),
                "message": None,
            }
        )
    if run.state == RunState.FAILED:
        message = failure_message(run, COMPONENT_ERRORS)
        return trial.model_copy(
            update={"state": TrialState.FAILED, "run_url": run.url, "message": message[:4000]}
        )
    return trial.model_copy(update={"state": TrialState.RUNNING, "run_url": run.url})


def fail_unlaunched(status: ExperimentStatus, message: str) -> ExperimentStatus:
    """Inputs that can never train (a missing feature, a wrong label type): every trial not
    yet launched fails with the message, and no run is launched."""
    trials = [
        t.model_copy(update={"state": TrialState.FAILED, "message": message})
        if t.state == TrialState.PENDING
        else t
        for t in status.trials
    ]
    return status.model_copy(update={"trials": trials})


@dataclass(frozen=True)
class ViewFreshness:
    """What the freshness gate needs of one FeatureView the round reads."""

    name: str
    scheduled: bool  # spec.backfill.schedule: the view follows time and will catch up
    offline: datetime | None  # status.freshness.offline
    backfill_end: datetime | None  # spec.backfill.end
    last_failed: bool  # the newest backfill run failed: it will not catch up by itself


def launched_any(status: ExperimentStatus) -> bool:
    return any(t.state != TrialState.PENDING for t in status.trials)


def lagging_views(status: ExperimentStatus, views: list[ViewFreshness]) -> list[str]:
    """Why the round cannot build its training set yet: one sentence per scheduled FeatureView
    whose offline store is not complete up to the round's window end. Only rounds with a
    window end (retrain rounds: "up to now") wait, and only before their first trial is
    launched: every trial of a round trains on the same data. A view without a schedule is a
    snapshot that never moves, so waiting for it would be forever; the round uses it as is."""
    window = status.data_window
    if window is None or launched_any(status):
        return []
    lagging = []
    for view in views:
        if not view.scheduled or (view.offline is not None and view.offline >= window.end):
            continue
        fresh = view.offline.isoformat() if view.offline else "nowhere yet"
        why = f"FeatureView {view.name} is fresh up to {fresh}, the round's window ends at "
        why += f"{window.end.isoformat()}"
        if view.backfill_end is not None and view.backfill_end < window.end:
            why += (
                f"; its spec.backfill.end {view.backfill_end.isoformat()} stops it short: "
                "extend or remove it"
            )
        elif view.last_failed:
            why += "; its last backfill failed (see its Backfilled condition)"
        else:
            why += "; waiting for its scheduled backfill"
        lagging.append(why)
    return lagging


def waiting_for_features(
    status: ExperimentStatus, lagging: list[str], generation: int | None
) -> ExperimentStatus:
    """Trained=False/WaitingForFeatures: nothing is launched until every view catches up."""
    message = f"round {status.round}: " + "; ".join(lagging)
    status = status.model_copy(update={"phase": ExperimentPhase.PENDING})
    status = with_condition(status, "Trained", "False", "WaitingForFeatures", message, generation)
    if status.registered_version is None:
        status = with_condition(status, "Ready", "False", "WaitingForFeatures", message, generation)
    return status


def waiting(
    status: ExperimentStatus, reason: str, message: str, generation: int | None
) -> ExperimentStatus:
    status = status.model_copy(update={"phase": ExperimentPhase.PENDING})
    status = with_condition(status, "Trained", "Unknown", reason, message, generation)
    if status.registered_version is None:
        status = with_condition(status, "Ready", "False", reason, message, generation)
    return status


def running(status: ExperimentStatus, generation: int | None) -> ExperimentStatus:
    done = sum(1 for t in status.trials if t.state in planning.FINISHED)
    status = status.model_copy(update={"phase": ExperimentPhase.RUNNING})
    message = f"round {status.round}: {done}/{len(status.trials)} trial(s) finished"
    return with_condition(status, "Trained", "Unknown", "TrialsRunning", message, generation)


def conclude(
    spec: ExperimentSpec, status: ExperimentStatus, generation: int | None
) -> tuple[ExperimentStatus, bool, str]:
    """All trials finished: the best trial and whether it should be registered (and why)."""
    best = planning.pick_best(status.trials, spec.objective)
    status = status.model_copy(update={"best": best})
    should_register, why = planning.registration_verdict(best, spec.objective)
    if best is None:
        failed = [t for t in status.trials if t.state == TrialState.FAILED]
        detail = failed[0].message if failed and failed[0].message else why
        status = status.model_copy(update={"phase": ExperimentPhase.FAILED})
        status = with_condition(
            status, "Trained", "False", "AllTrialsFailed", detail or why, generation
        )
        status = with_condition(status, "Registered", "False", "NoBestTrial", why, generation)
        if status.registered_version is None:
            status = with_condition(status, "Ready", "False", "AllTrialsFailed", why, generation)
        return status, False, why
    status = with_condition(
        status, "Trained", "True", "TrialsFinished", f"round {status.round}: {why}", generation
    )
    return status, should_register, why


def registered(
    status: ExperimentStatus, version: str, model: str, why: str, generation: int | None
) -> ExperimentStatus:
    status = status.model_copy(
        update={"registered_version": version, "phase": ExperimentPhase.SUCCEEDED}
    )
    message = f"{model} version {version}: {why}"
    status = with_condition(status, "Registered", "True", "Registered", message, generation)
    return with_condition(status, "Ready", "True", "Registered", message, generation)


def not_registered(status: ExperimentStatus, why: str, generation: int | None) -> ExperimentStatus:
    status = status.model_copy(update={"phase": ExperimentPhase.SUCCEEDED})
    reason = planning.refusal_reason(status.best)  # ChampionNotBeaten, BaselineNotBeaten...
    status = with_condition(status, "Registered", "False", reason, why, generation)
    if status.registered_version is None:
        status = with_condition(status, "Ready", "False", reason, why, generation)
    return status


def registration_failed(
    status: ExperimentStatus, message: str, generation: int | None
) -> ExperimentStatus:
    return with_condition(status, "Registered", "False", "RegistrationFailed", message, generation)

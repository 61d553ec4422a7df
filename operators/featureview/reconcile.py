"""Pure core of the FeatureView operator: the definition version, which backfill run should
exist next, and the status that follows from what the pipeline backend reports.

A run is *pinned* (named and its window fixed, written to status) one reconcile before it is
launched: the window of an open-ended backfill ends "now", so the name must be persisted before
the launch, or an operator restarted in between would name (and launch) a different run.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime

from operators.api.featureview import BackfillRun, FeatureViewSpec, FeatureViewStatus
from operators.backends.pipelines import RunState, RunStatus
from operators.featureview.backfill import initial_window, next_incremental_window, run_name
from operators.status import observed, with_condition

DEFAULT_SQL = "SELECT * FROM source"
# Lines of a failed run's log that say what went wrong (the component's own errors first).
_ERROR_LINE = re.compile(r"\b[A-Za-z]+(Error|Exception):")
BACKFILL_ERRORS = ("BackfillError", "FeastError", "DefinitionError")
MESSAGE_TAIL_LINES = 15


def definition_version(spec: FeatureViewSpec) -> str:
    """Hash of what defines the feature values; the backfill window and schedule are excluded,
    so widening the window does not make a new version of the same features."""
    definition = spec.model_dump(
        by_alias=True, mode="json", exclude={"backfill", "online", "store"}
    )
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def floor_to_minute(moment: datetime) -> datetime:
    """An open window ends on a whole minute, so reconciles close together agree on it."""
    return moment.replace(second=0, microsecond=0)


def belongs_to(featureview: str, version: str, run: BackfillRun) -> bool:
    """Whether `run` backfills this version (its name is derived from version and window)."""
    return run.run == run_name(featureview, version, run.window)


def next_run(
    featureview: str,
    spec: FeatureViewSpec,
    status: FeatureViewStatus,
    version: str,
    now: datetime,
) -> BackfillRun | None:
    """The run to pin next: the initial window of a new version, or the next scheduled
    incremental window once the last run of this version succeeded; else None."""
    last = status.last_backfill
    if last is None or not belongs_to(featureview, version, last):
        window = initial_window(spec.backfill, floor_to_minute(now))
        if window.end <= window.start:
            return None
    elif last.state == RunState.SUCCEEDED:
        incremental = next_incremental_window(spec.backfill, last.window.end, now)
        if incremental is None:
            return None
        window = incremental
    else:
        return None
    return BackfillRun(run=run_name(featureview, version, window), window=window)


def pin(status: FeatureViewStatus, run: BackfillRun, generation: int | None) -> FeatureViewStatus:
    status = status.model_copy(update={"last_backfill": run})
    status = with_condition(
        status,
        "Backfilled",
        "Unknown",
        "BackfillPending",
        f"run {run.run} for [{run.window.start.isoformat()}, {run.window.end.isoformat()})",
        generation,
    )
    if status.freshness is None:
        status = with_condition(
            status, "Ready", "False", "BackfillPending", "no backfill has finished yet", generation
        )
    return status


def failure_message(run: RunStatus, preferred: tuple[str, ...] = BACKFILL_ERRORS) -> str:
    """What went wrong, naming the problem first: the component's error line (`preferred`
    error types first), then the run's message and the end of its log."""
    tail = run.log_tail or ""
    run_message = run.message or ""
    errors = [line.strip() for line in tail.splitlines() if _ERROR_LINE.search(line)]
    specific = [e for e in errors if any(f"{name}:" in e for name in preferred)]
    headline = (specific or errors or [run_message or f"run {run.ref.run_name} failed"])[-1]
    parts = [headline]
    if run_message and run_message not in headline:
        parts.append(f"run: {run_message[:2000]}")
    if tail:
        parts.append("log tail:\n" + "\n".join(tail.splitlines()[-MESSAGE_TAIL_LINES:]))
    return "\n".join(parts)


def observe(
    status: FeatureViewStatus,
    run: RunStatus,
    online: bool,
    generation: int | None,
) -> FeatureViewStatus:
    """The status after the backend reported on the pinned run."""
    last = status.last_backfill
    assert last is not None
    window = f"[{last.window.start.isoformat()}, {last.window.end.isoformat()})"
    if run.state == RunState.SUCCEEDED:
        rows = _int(run.outputs.get("rows"))
        last = last.model_copy(
            update={
                "run_url": run.url,
                "state": str(run.state),
                "rows": rows,
                "finished_at": run.finished_at,
                "message": None,
            }
        )
        status = status.model_copy(update={"last_backfill": last, "freshness": last.window.end})
        message = f"{rows} rows for {window} in run {last.run}"
        status = with_condition(
            status, "Backfilled", "True", "BackfillSucceeded", message, generation
        )
        if online:
            status = with_condition(
                status,
                "Materialized",
                "True",
                "Materialized",
                f"online store holds {window}",
                generation,
            )
        else:
            status = with_condition(
                status,
                "Materialized",
                "False",
                "OnlineDisabled",
                "spec.online is false",
                generation,
            )
        return with_condition(status, "Ready", "True", "BackfillSucceeded", message, generation)
    if run.state == RunState.FAILED:
        message = failure_message(run)
        last = last.model_copy(
            update={
                "run_url": run.url,
                "state": str(run.state),
                "finished_at": run.finished_at,
                "message": message[:4000],
            }
        )
        status = status.model_copy(update={"last_backfill": last})
        status = with_condition(
            status, "Backfilled", "False", "BackfillFailed", message, generation
        )
        return with_condition(
            status, "Ready", "False", "BackfillFailed", f"run {last.run} failed", generation
        )
    last = last.model_copy(update={"run_url": run.url, "state": str(run.state)})
    status = status.model_copy(update={"last_backfill": last})
    return with_condition(
        status,
        "Backfilled",
        "Unknown",
        "BackfillRunning",
        f"run {last.run} for {window}",
        generation,
    )


def source_missing(
    status: FeatureViewStatus, path: str, generation: int | None
) -> FeatureViewStatus:
    message = f"source.path {path!r} does not exist; no backfill is launched until it does"
    status = with_condition(status, "Backfilled", "False", "SourceNotFound", message, generation)
    return with_condition(status, "Ready", "False", "SourceNotFound", message, generation)


def launch_failed(
    status: FeatureViewStatus, message: str, generation: int | None
) -> FeatureViewStatus:
    status = with_condition(status, "Backfilled", "False", "LaunchFailed", message, generation)
    return with_condition(status, "Ready", "False", "LaunchFailed", message, generation)


def versioned(
    status: FeatureViewStatus, version: str, offline_path: str, generation: int | None
) -> FeatureViewStatus:
    status = status.model_copy(update={"version": version, "offline_path": offline_path})
    return observed(status, generation)


def plan_status(
    spec: FeatureViewSpec, status: FeatureViewStatus, generation: int | None
) -> FeatureViewStatus:
    """Status from the spec alone (used when no backend is at hand)."""
    status = status.model_copy(update={"version": definition_version(spec)})
    if status.last_backfill is None:
        status = with_condition(
            status, "Ready", "False", "BackfillPending", "no backfill has finished yet", generation
        )
        status = with_condition(
            status, "Backfilled", "Unknown", "BackfillPending", "not started", generation
        )
    return observed(status, generation)


def is_pending_launch(status: FeatureViewStatus) -> bool:
    last = status.last_backfill
    return last is not None and last.state is None


def is_running(status: FeatureViewStatus) -> bool:
    last = status.last_backfill
    return last is not None and last.state is not None and not RunState(last.state).finished


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return None

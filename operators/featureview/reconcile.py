"""Pure core of the FeatureView operator: the definition version, which backfill run should
exist next, and the status that follows from what the pipeline backend reports.

A run is *pinned* (named and its window fixed, written to status) one reconcile before it is
launched: the window of an open-ended backfill ends "now", so the name must be persisted before
the launch, or an operator restarted in between would name (and launch) a different run.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from operators.api.featureview import BackfillRun, FeatureViewSpec, FeatureViewStatus, Freshness
from operators.backends.runs import RunState, RunStatus, failure_message
from operators.featureview.backfill import initial_window, next_incremental_window, run_name
from operators.status import observed, with_condition

# Errors our backfill components raise, named first in a failed run's message.
BACKFILL_ERRORS = ("BackfillError", "FeastError", "DefinitionError")


def definition_version(spec: FeatureViewSpec) -> str:
    """Hash of what defines the feature values; the backfill window and schedule are excluded,
    so widening the window does not make a new version of the same features. The engine is
    excluded too: both give identical rows (components/engines.py)."""
    definition = spec.model_dump(
        by_alias=True, mode="json", exclude={"backfill", "online", "store", "engine"}
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


def observe(
    status: FeatureViewStatus,
    run: RunStatus,
    online: bool,
    generation: int | None,
) -> FeatureViewStatus:
    """The status after the backend reported on the pinned run."""
    last = status.last_backfill
    assert last is not None
    if run.state == RunState.SUCCEEDED:
        return _succeeded(status, last, run, online, generation)
    if run.state == RunState.FAILED:
        return _failed(status, last, run, generation)
    last = last.model_copy(update={"run_url": run.url, "state": str(run.state)})
    status = status.model_copy(update={"last_backfill": last})
    message = f"run {last.run} for {_window(last)}"
    return with_condition(status, "Backfilled", "Unknown", "BackfillRunning", message, generation)


def _window(run: BackfillRun) -> str:
    return f"[{run.window.start.isoformat()}, {run.window.end.isoformat()})"


def _succeeded(
    status: FeatureViewStatus,
    last: BackfillRun,
    run: RunStatus,
    online: bool,
    generation: int | None,
) -> FeatureViewStatus:
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
    status = status.model_copy(
        update={"last_backfill": last, "freshness": advanced(status.freshness, last, online)}
    )
    window = _window(last)
    message = f"{rows} rows for {window} in run {last.run}"
    status = with_condition(status, "Backfilled", "True", "BackfillSucceeded", message, generation)
    if online:
        materialized = ("True", "Materialized", f"online store holds {window}")
    else:
        materialized = ("False", "OnlineDisabled", "spec.online is false")
    status = with_condition(status, "Materialized", *materialized, generation)
    return with_condition(status, "Ready", "True", "BackfillSucceeded", message, generation)


def advanced(previous: Freshness | None, run: BackfillRun, online: bool) -> Freshness:
    """The watermarks after `run` succeeded: runs of one version cover consecutive windows, so
    its end is how far the offline store (and the online one, when materialized) is complete.
    Never moved back: a re-run of an older window leaves what later runs covered."""
    end = run.window.end
    offline = max(end, previous.offline) if previous and previous.offline else end
    online_mark = previous.online if previous else None
    if online:
        online_mark = max(end, online_mark) if online_mark else end
    return Freshness(offline=offline, online=online_mark, observed_at=run.finished_at)


def _failed(
    status: FeatureViewStatus, last: BackfillRun, run: RunStatus, generation: int | None
) -> FeatureViewStatus:
    message = failure_message(run, BACKFILL_ERRORS)
    last = last.model_copy(
        update={
            "run_url": run.url,
            "state": str(run.state),
            "finished_at": run.finished_at,
            "message": message[:4000],
        }
    )
    status = status.model_copy(update={"last_backfill": last})
    status = with_condition(status, "Backfilled", "False", "BackfillFailed", message, generation)
    return with_condition(
        status, "Ready", "False", "BackfillFailed", f"run {last.run} failed", generation
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
    update: dict[str, object] = {"version": version, "offline_path": offline_path}
    if status.version is not None and status.version != version:
        # A new definition starts an empty offline directory: the old marks say nothing of it.
        update["freshness"] = None
    return observed(status.model_copy(update=update), generation)


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

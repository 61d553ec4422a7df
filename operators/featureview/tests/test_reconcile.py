"""Pure core of the FeatureView operator: pinning, observing, status merge patches."""

from __future__ import annotations

from datetime import UTC, datetime

from operators.api.featureview import FeatureViewSpec, FeatureViewStatus
from operators.backends.runs import RunRef, RunState, RunStatus
from operators.featureview import reconcile as fv
from operators.status import merge_patch

NOW = datetime(2026, 3, 1, 12, 34, 56, tzinfo=UTC)


def fv_spec(**backfill: object) -> FeatureViewSpec:
    return FeatureViewSpec.model_validate(
        {
            "entities": [{"name": "user", "joinKey": "user_id"}],
            "source": {"path": "/data/events", "timestampField": "ts"},
            "features": [{"name": "x", "dtype": "float64"}],
            "backfill": {"start": "2026-01-01T00:00:00Z", **backfill},
        }
    )


def run_status(name: str, state: RunState, **kw: object) -> RunStatus:
    ref = RunRef(
        backend="local", pipeline_name="p", run_name=name, run_id=name, url=f"file:///{name}"
    )
    return RunStatus(ref=ref, state=state, **kw)  # type: ignore[arg-type]


def test_open_window_is_pinned_on_a_whole_minute_then_stays() -> None:
    spec = fv_spec()
    version = fv.definition_version(spec)
    first = fv.next_run("v", spec, FeatureViewStatus(), version, NOW)
    assert first is not None and first.window.end == datetime(2026, 3, 1, 12, 34, tzinfo=UTC)
    pinned = fv.pin(FeatureViewStatus(), first, 1)
    assert fv.is_pending_launch(pinned)
    # Pinned and not finished: nothing new, however late it is.
    assert fv.next_run("v", spec, pinned, version, NOW.replace(hour=23)) is None


def test_new_version_pins_a_new_run_and_schedule_adds_increments() -> None:
    spec = fv_spec(schedule="@daily")
    version = fv.definition_version(spec)
    run = fv.next_run("v", spec, FeatureViewStatus(), version, NOW)
    assert run is not None
    status = fv.pin(FeatureViewStatus(), run, 1)
    status = fv.observe(
        status, run_status(run.run, RunState.SUCCEEDED, outputs={"rows": 7}), True, 1
    )
    assert status.freshness == run.window.end and status.last_backfill.rows == 7  # type: ignore[union-attr]
    assert fv.next_run("v", spec, status, version, NOW) is None  # no daily tick passed yet
    later = fv.next_run("v", spec, status, version, datetime(2026, 3, 2, 1, tzinfo=UTC))
    assert later is not None and later.window.start == run.window.end
    assert later.window.end == datetime(2026, 3, 2, tzinfo=UTC)
    changed = fv_spec(schedule="@daily").model_copy(update={"ttl": "1d"})
    other = fv.next_run("v", changed, status, fv.definition_version(changed), NOW)
    assert other is not None and other.run != run.run


def test_failed_run_names_the_component_error_first() -> None:
    tail = "Traceback...\n  impl.BackfillError: transformation.sql output lacks declared column(s) ['b']\nERROR task failed"
    run = fv.next_run("v", fv_spec(), FeatureViewStatus(), "abc", NOW)
    assert run is not None
    status = fv.pin(FeatureViewStatus(), run, 2)
    failed = fv.observe(
        status,
        run_status(run.run, RunState.FAILED, message="RuntimeError: task failed", log_tail=tail),
        True,
        2,
    )
    backfilled = next(c for c in failed.conditions if c.type == "Backfilled")
    assert backfilled.status == "False" and backfilled.reason == "BackfillFailed"
    assert backfilled.message.splitlines()[0].endswith("lacks declared column(s) ['b']")
    assert backfilled.observed_generation == 2


def test_merge_patch_deletes_what_the_new_status_lacks() -> None:
    old = {"lastBackfill": {"run": "a", "rows": 3, "state": "SUCCEEDED"}, "version": "1"}
    new = {"lastBackfill": {"run": "b", "window": {"start": "s"}}, "version": "1"}
    assert merge_patch(old, new) == {
        "lastBackfill": {"run": "b", "rows": None, "state": None, "window": {"start": "s"}}
    }
    assert merge_patch(new, new) == {}

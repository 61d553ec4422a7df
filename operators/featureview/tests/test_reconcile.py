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
    assert status.freshness is not None and status.last_backfill is not None
    assert status.freshness.offline == status.freshness.online == run.window.end
    assert status.last_backfill.rows == 7
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


def _succeed(status: FeatureViewStatus, run: object, online: bool = True) -> FeatureViewStatus:
    finished = datetime(2026, 3, 2, 0, 5, tzinfo=UTC)
    pinned = fv.pin(status, run, 1)  # type: ignore[arg-type]
    done = run_status(pinned.last_backfill.run, RunState.SUCCEEDED, finished_at=finished)  # type: ignore[union-attr]
    return fv.observe(pinned, done, online, 1)


def test_freshness_follows_each_increment_offline_and_online() -> None:
    spec = fv_spec(schedule="@daily")
    version = fv.definition_version(spec)
    first = fv.next_run("v", spec, FeatureViewStatus(), version, NOW)
    assert first is not None
    status = _succeed(FeatureViewStatus(), first)
    increment = fv.next_run("v", spec, status, version, datetime(2026, 3, 3, 1, tzinfo=UTC))
    assert increment is not None
    # The increment is pinned and running: the marks stay where the last success left them.
    assert fv.pin(status, increment, 1).freshness == status.freshness
    after = _succeed(status, increment)
    assert after.freshness is not None
    assert after.freshness.offline == after.freshness.online == increment.window.end
    assert after.freshness.observed_at == datetime(2026, 3, 2, 0, 5, tzinfo=UTC)
    assert increment.window.end > first.window.end


def test_offline_only_view_has_no_online_mark_and_marks_never_go_back() -> None:
    spec = fv_spec(schedule="@daily")
    run = fv.next_run("v", spec, FeatureViewStatus(), fv.definition_version(spec), NOW)
    assert run is not None
    status = _succeed(FeatureViewStatus(), run, online=False)
    assert status.freshness is not None and status.freshness.online is None
    older = run.model_copy(
        update={"window": run.window.model_copy(update={"end": NOW.replace(hour=1, minute=0)})}
    )
    again = fv.advanced(status.freshness, older, online=True)
    assert again.offline == run.window.end  # not moved back
    assert again.online == older.window.end


def test_a_new_definition_resets_freshness() -> None:
    spec = fv_spec()
    version = fv.definition_version(spec)
    run = fv.next_run("v", spec, FeatureViewStatus(), version, NOW)
    assert run is not None
    status = fv.versioned(_succeed(FeatureViewStatus(), run), version, "/off/" + version, 1)
    assert status.freshness is not None  # same version: kept
    assert fv.versioned(status, "another", "/off/another", 2).freshness is None


def test_a_legacy_freshness_timestamp_is_read_as_the_offline_mark() -> None:
    status = FeatureViewStatus.model_validate({"freshness": "2026-03-01T00:00:00Z"})
    assert status.freshness is not None
    assert status.freshness.offline == datetime(2026, 3, 1, tzinfo=UTC)
    assert status.freshness.online is None

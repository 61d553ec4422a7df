"""Pure backfill planning for FeatureViews: run names and incremental windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from operators.api.featureview import Backfill, BackfillWindow
from operators.featureview.backfill import initial_window, next_incremental_window, run_name

NOW = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)


def test_backfill_run_names_depend_on_version_and_window() -> None:
    window = initial_window(Backfill(start=NOW - timedelta(days=5)), NOW)
    assert window == BackfillWindow(start=NOW - timedelta(days=5), end=NOW)
    a = run_name("fv", "abcdef012345", window)
    assert a == run_name("fv", "abcdef012345", window)
    assert a != run_name("fv", "ffffff012345", window)
    assert a != run_name(
        "fv", "abcdef012345", BackfillWindow(start=window.start, end=NOW + timedelta(hours=1))
    )


def test_incremental_windows_follow_the_cron_schedule() -> None:
    daily = Backfill(start=NOW - timedelta(days=5), schedule="0 0 * * *")
    last_end = datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
    window = next_incremental_window(daily, last_end, NOW)
    assert window == BackfillWindow(start=last_end, end=datetime(2026, 3, 10, tzinfo=UTC))
    assert next_incremental_window(daily, datetime(2026, 3, 10, tzinfo=UTC), NOW) is None
    assert next_incremental_window(Backfill(start=NOW), last_end, NOW) is None


def test_a_bounded_backfill_past_its_end_has_no_increment() -> None:
    bounded = Backfill(
        start=NOW - timedelta(days=5), end=NOW - timedelta(days=1), schedule="* * * * *"
    )
    assert next_incremental_window(bounded, NOW - timedelta(days=1), NOW) is None
    # Before its end, the increment stops at the end.
    window = next_incremental_window(bounded, NOW - timedelta(days=2), NOW)
    assert window == BackfillWindow(start=NOW - timedelta(days=2), end=NOW - timedelta(days=1))

"""Pure backfill planning for a FeatureView: which (version, window) runs should exist."""

from __future__ import annotations

import hashlib
from datetime import datetime

from croniter import croniter

from operators.api.featureview import Backfill, BackfillWindow


def run_name(featureview: str, version: str, window: BackfillWindow) -> str:
    """One run per (version, window), named so a restarted operator finds, not relaunches, it."""
    key = f"{version}|{window.start.isoformat()}|{window.end.isoformat()}"
    return f"{featureview}-{version[:8]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def initial_window(backfill: Backfill, now: datetime) -> BackfillWindow:
    return BackfillWindow(start=backfill.start, end=backfill.end or now)


def next_incremental_window(
    backfill: Backfill, last_end: datetime, now: datetime
) -> BackfillWindow | None:
    """With a cron schedule, the window from the last end to the latest tick that has passed."""
    if backfill.schedule is None or (backfill.end is not None and last_end >= backfill.end):
        return None  # nothing scheduled, or the bounded backfill is done: no ticks to walk
    ticks = croniter(backfill.schedule, last_end)
    latest: datetime | None = None
    while True:
        tick: datetime = ticks.get_next(datetime)
        if tick > now:
            break
        latest = tick
    if latest is None or latest <= last_end:
        return None
    end = min(latest, backfill.end) if backfill.end else latest
    return BackfillWindow(start=last_end, end=end) if end > last_end else None

"""The SQLite journal stays bounded by age and by row count."""

from __future__ import annotations

from pathlib import Path

from services.monitor.store import BadInputRow, EventRow, MonitorStore


def test_prune_keeps_the_newest_rows_within_age(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.db")
    rows: list[EventRow] = [
        (float(ts), "request", "ns", "m", "1", None, f"r{ts}", "m-v1", None, None, b"{}", None)
        for ts in range(100)
    ]
    store.write_batch(rows, [BadInputRow("ns", "m", "nan", 2, "x", 1.0)])
    store.write_batch([], [BadInputRow("ns", "m", "nan", 3, "y", 2.0)])
    assert store.prune(min_ts=10.0, keep_rows=1000) == 10  # older than the retention age
    assert store.prune(min_ts=0.0, keep_rows=50) == 40  # beyond the row cap
    assert [row[0] for row in store.journal(0.0)] == [float(ts) for ts in range(50, 100)]
    assert store.bad_inputs() == [BadInputRow("ns", "m", "nan", 5, "y", 2.0)]
    store.close()

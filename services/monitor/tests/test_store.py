"""The SQLite journal stays bounded by age and by row count."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from services.monitor.store import _RESTART_WAL_FRAMES, BadInputRow, EventRow, MonitorStore


def rows(count: int, size: int = 2) -> list[EventRow]:
    return [
        (
            float(ts),
            "request",
            "ns",
            "m",
            "1",
            None,
            f"r{ts}",
            "m-v1",
            None,
            None,
            b"{" + b" " * (size - 2) + b"}",
            None,
        )
        for ts in range(count)
    ]


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


def test_the_loop_connection_never_waits_for_the_write_lock(tmp_path: Path) -> None:
    store = MonitorStore(tmp_path / "monitor.db")
    called: list[sqlite3.Connection] = []
    blocker = sqlite3.connect(tmp_path / "monitor.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    assert not store.write_batch(rows(3), [], [called.append], on_loop=True)
    assert called == []  # refused before anything was written
    blocker.execute("COMMIT")
    assert store.write_batch(rows(3), [], [called.append], on_loop=True)
    assert len(called) == 1
    assert [row[6] for row in store.journal(0.0)] == ["r0", "r1", "r2"]
    blocker.close()
    store.close()


def wal_frames(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1])
    finally:
        db.close()


def test_checkpoint_starts_a_long_wal_over_unless_a_reader_needs_it(tmp_path: Path) -> None:
    path = tmp_path / "monitor.db"
    store = MonitorStore(path)
    store.write_batch(rows(10), [], on_loop=True)
    assert not store.checkpoint()  # a short WAL: copied, not started over
    # The loop's connection does not checkpoint: its WAL grows until checkpoint() runs.
    for _ in range(18):  # ~18 MB
        store.write_batch(rows(64, size=16_000), [], on_loop=True)
    # (a frame is a 4 KiB page and a 24-byte header; a checkpoint here would copy them)
    assert (tmp_path / "monitor.db-wal").stat().st_size >= _RESTART_WAL_FRAMES * (4096 + 24)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")  # a snapshot that reads pages from the WAL
    assert reader.execute("SELECT COUNT(*) FROM events").fetchone() == (1162,)
    assert not store.checkpoint()  # the reader's snapshot is still in the WAL
    reader.execute("COMMIT")
    assert store.checkpoint()
    store.write_batch(rows(1), [], on_loop=True)  # written from the WAL's start again
    assert wal_frames(path) < 10
    assert store.event_count() == 1163
    reader.close()
    store.close()

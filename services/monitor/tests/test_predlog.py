"""The prediction log: journal rows, compaction into date-partitioned Parquet, idempotency,
an interrupted compaction redone, pruning, retention, a non-local fsspec URI."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from contracts import prediction_log as contract
from services.monitor.core import MonitorCore, ServedPrediction
from services.monitor.parsing import envelope_from_binary
from services.monitor.predlog import (
    Compactor,
    PredictionLog,
    arrow_schema,
    arrow_table,
    calls_of,
    create_tables,
    decode_batches,
    expired_partitions,
    migrate_row_journal,
)
from services.monitor.store import EventRow, MonitorStore
from services.monitor.tests.events import binary_headers

DAY1 = datetime(2026, 12, 3, 23, 59, 59, tzinfo=UTC).timestamp()
DAY2 = DAY1 + 2.0  # 00:00:01 the next day (UTC)


def prediction(event_id: str, served_at: float = DAY1, **kw: object) -> ServedPrediction:
    fields: dict[str, object] = {
        "namespace": "team-a",
        "model": "churn",
        "version": "1",
        "role": "stable",
        "event_id": event_id,
        "request_id": "app-" + event_id,
        "served_at": served_at,
        "status": 200,
        "latency_ms": 7.5,
        "feature_names": ["a", "b"],
        "features": np.array([[1.0, 2.0]]),
        "entities": (),
        "scores": np.array([0.25]),
        "classes": None,
    }
    fields.update(kw)
    return ServedPrediction(**fields)  # type: ignore[arg-type]


def rows_of(table: dict) -> list[dict]:
    return [row for day in sorted(table) for row in table[day].to_pylist()]


def test_schema_is_the_contract() -> None:
    schema = arrow_schema()
    assert tuple(schema.names) == contract.column_names()
    assert schema.metadata[contract.METADATA_KEY.encode()] == contract.SCHEMA_VERSION.encode()
    assert contract.PARTITION_KEY not in schema.names  # a directory, not a column


def test_one_row_per_prediction_with_features_entities_and_classes() -> None:
    batch = prediction(
        "e1",
        features=np.array([[1.0, 2.0], [3.0, 4.0]]),
        scores=np.array([0.1, 0.9]),
        classes=np.array([0, 1]),
        entities=("u1", "u2"),
    )
    rows = rows_of(arrow_table(calls_of([batch])))
    assert [(r["row"], r["entity"], r["features"], r["score"], r["predicted_class"])
            for r in rows] == [(0, "u1", [1.0, 2.0], 0.1, 0), (1, "u2", [3.0, 4.0], 0.9, 1)]  # fmt: skip
    first = rows[0]
    assert (first["request_id"], first["event_id"], first["status"]) == ("app-e1", "e1", 200)
    assert first["feature_names"] == ["a", "b"]
    assert first["served_at"] == datetime.fromtimestamp(DAY1, UTC)


def test_unanswered_failed_and_misaligned_calls() -> None:
    unanswered = prediction("u", status=0, latency_ms=float("nan"), scores=None)
    failed = prediction("f", status=503, features=None, feature_names=None, scores=None)
    # One request row had NaN and was dropped: one feature row for two predictions.
    misaligned = prediction("m", scores=np.array([0.2, 0.3]), entities=("only-one",))
    rows = rows_of(arrow_table(calls_of([unanswered, failed, misaligned])))
    by_id = {(r["event_id"], r["row"]): r for r in rows}
    assert by_id["u", 0]["score"] is None and by_id["u", 0]["latency_ms"] is None
    assert by_id["u", 0]["features"] == [1.0, 2.0]  # the request was served, never answered
    assert by_id["f", 0]["status"] == 503 and by_id["f", 0]["features"] is None
    assert [by_id["m", i]["features"] for i in (0, 1)] == [None, None]
    assert [by_id["m", i]["entity"] for i in (0, 1)] == [None, None]
    assert [by_id["m", i]["score"] for i in (0, 1)] == [0.2, 0.3]


def test_rows_are_split_by_utc_date() -> None:
    tables = arrow_table(calls_of([prediction("a", DAY1), prediction("b", DAY2)]))
    assert sorted(tables) == ["2026-12-03", "2026-12-04"]


def test_the_core_emits_what_the_log_writes() -> None:
    """The seam: a completed call from real envelopes becomes one journal row."""
    core = MonitorCore()
    seen: list[ServedPrediction] = []
    core.prediction_sinks.append(seen.append)
    request = envelope_from_binary(
        binary_headers("request", "c1", "1", role="stable"), b'{"instances": [[1.5, 2.5]]}'
    )
    response = envelope_from_binary(
        binary_headers("response", "c1", "1", role="stable", latency_ms=3.0),
        b'{"predictions": [0.75]}',
    )
    core.ingest(request, 100.0)
    core.ingest(response, 100.5)
    (row,) = rows_of(arrow_table(calls_of(seen)))
    assert (row["event_id"], row["features"], row["score"], row["latency_ms"]) == (
        "c1", [1.5, 2.5], 0.75, 3.0,
    )  # fmt: skip


class Harness:
    """A monitor store with the prediction tables, and a log compacting from it."""

    def __init__(self, tmp_path: Path, uri: str | None = None, retention_days: int = 30) -> None:
        self.db_path = tmp_path / "monitor.db"
        self.store = MonitorStore(self.db_path)
        create_tables(self.store.db)
        self.uri = uri or str(tmp_path / "predictions")
        self.log = PredictionLog(self.uri, self.db_path, retention_days)

    def journal(self, *predictions: ServedPrediction, event_ts: float = DAY1) -> None:
        """As the service's flush does: the events and their predictions in one commit."""
        events: list[EventRow] = [(event_ts, "response", "team-a", "churn", "1", "stable", p.event_id, "churn-1",
                   200, 1.0, b"{}", None) for p in predictions]  # fmt: skip
        self.store.write_batch(events, [], [lambda db: self.log.write(db, list(predictions))])

    def dataset(self) -> list[dict]:
        dataset = ds.dataset(self.uri, format="parquet", partitioning="hive")
        return sorted(dataset.to_table().to_pylist(), key=lambda r: (r["event_id"], r["row"]))

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def harness(tmp_path: Path):
    h = Harness(tmp_path)
    yield h
    h.close()


def test_compaction_writes_partitioned_parquet_once(harness: Harness) -> None:
    harness.journal(prediction("a", DAY1), prediction("b", DAY2))
    assert harness.log.backlog == 2
    done = harness.log.compact(now=DAY2, replay_margin_s=30)
    assert (done.rows, done.predictions, done.files) == (2, 2, 2)
    assert harness.log.backlog == 0
    files = sorted(p.relative_to(harness.uri).as_posix() for p in Path(harness.uri).rglob("*"))
    assert files == [
        "date=2026-12-03", "date=2026-12-03/part-000000000001-000000000002.parquet",
        "date=2026-12-04", "date=2026-12-04/part-000000000001-000000000002.parquet",
    ]  # fmt: skip
    rows = harness.dataset()
    assert [(r["event_id"], str(r["date"])) for r in rows] == [
        ("a", "2026-12-03"), ("b", "2026-12-04"),
    ]  # fmt: skip
    one_file = pq.read_table(Path(harness.uri) / files[1])
    assert one_file.schema.metadata[contract.METADATA_KEY.encode()] == b"1.0"
    # Nothing new: nothing written.
    assert harness.log.compact(now=DAY2, replay_margin_s=30).files == 0


def test_a_replayed_call_is_not_logged_twice(harness: Harness) -> None:
    harness.journal(prediction("a"))
    harness.journal(prediction("a", status=0, scores=None))  # replay / late duplicate
    harness.log.compact(now=DAY1, replay_margin_s=30)
    harness.journal(prediction("a"))  # replayed again after its compaction
    harness.log.compact(now=DAY1, replay_margin_s=30)
    rows = harness.dataset()
    assert [(r["event_id"], r["score"]) for r in rows] == [("a", 0.25)]


def test_an_interrupted_compaction_is_redone_into_the_same_files(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness.journal(prediction("a"), prediction("b"))
    real_write = Compactor._write_file

    def crash(*args: object) -> None:
        raise OSError("killed while writing")

    monkeypatch.setattr(Compactor, "_write_file", crash)
    with pytest.raises(OSError):
        harness.log.compact(now=DAY1, replay_margin_s=30)
    # A half-written file of the interrupted pass: hidden, so readers skip it.
    hidden = Path(harness.uri) / "date=2026-12-03" / ".part-000000000001-000000000002.parquet.tmp"
    hidden.parent.mkdir(parents=True)
    hidden.write_bytes(b"PAR1 half a file")
    assert harness.dataset() == []
    harness.journal(prediction("c"))  # arrives while the monitor is down/restarting
    monkeypatch.setattr(Compactor, "_write_file", real_write)
    first = harness.log.compact(now=DAY1, replay_margin_s=30)
    assert first.rows == 2  # exactly the interrupted range (1, 2]
    second = harness.log.compact(now=DAY1, replay_margin_s=30)
    assert second.rows == 1
    assert [r["event_id"] for r in harness.dataset()] == ["a", "b", "c"]


def test_compacted_rows_are_pruned_only_once_no_replay_can_emit_them(harness: Harness) -> None:
    harness.journal(prediction("old", DAY1 - 3600), event_ts=DAY1 - 3600)
    harness.journal(prediction("new", DAY1), event_ts=DAY1)
    harness.log.compact(now=DAY1, replay_margin_s=30)
    assert journaled(harness) == ["old", "new"]  # "old"'s event is still journaled
    harness.store.prune(min_ts=DAY1 - 60, keep_rows=1000)  # the event journal moves on
    assert harness.log.compact(now=DAY1, replay_margin_s=30).pruned == 1
    assert journaled(harness) == ["new"]
    # The idempotency check covers what is still journaled: emitted again now (no replay can,
    # its event is gone), "old" would be written again.
    harness.journal(prediction("old", DAY1 - 3600))
    harness.log.compact(now=DAY1, replay_margin_s=30)
    assert [r["event_id"] for r in harness.dataset()] == ["new", "old", "old"]


def journaled(harness: Harness) -> list[str]:
    """The event ids of the calls in the journal, in journal order."""
    journal = sqlite3.connect(harness.db_path)
    try:
        columns = "format, strings, extra, numbers, features, scores, classes"
        rows = journal.execute(f"SELECT {columns} FROM prediction_batches ORDER BY seq")
        return decode_batches(rows.fetchall()).text("event_id")
    finally:
        journal.close()


def test_one_journal_row_per_commit_numbered_by_call(harness: Harness) -> None:
    harness.journal(prediction("a"), prediction("b"), prediction("c"))
    harness.journal(prediction("d"))
    journal = sqlite3.connect(harness.db_path)
    rows = journal.execute("SELECT first_call, last_call FROM prediction_batches ORDER BY seq")
    assert rows.fetchall() == [(1, 3), (4, 4)]
    journal.close()
    assert journaled(harness) == ["a", "b", "c", "d"]
    assert harness.log.backlog == 4


def test_feature_names_and_entities_across_batches(harness: Harness) -> None:
    """Each batch numbers its own name lists: decoding several re-numbers them."""
    harness.journal(prediction("a", feature_names=["x", "y"]), prediction("b"))
    harness.journal(
        prediction("c", feature_names=["p", "q"], entities=("u1",)), prediction("d")
    )  # fmt: skip
    harness.log.compact(now=DAY1, replay_margin_s=30)
    rows = harness.dataset()
    assert [(r["event_id"], r["feature_names"], r["entity"]) for r in rows] == [
        ("a", ["x", "y"], None), ("b", ["a", "b"], None),
        ("c", ["p", "q"], "u1"), ("d", ["a", "b"], None),
    ]  # fmt: skip


_ROW_JOURNAL = """
CREATE TABLE predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    event_id TEXT NOT NULL, role TEXT NOT NULL, request_id TEXT NOT NULL,
    served_at REAL NOT NULL, status INTEGER NOT NULL, latency_ms REAL,
    feature_names TEXT, feature_rows INTEGER, features BLOB, entities TEXT,
    scores BLOB, classes BLOB,
    UNIQUE (namespace, model, version, event_id)
);
INSERT INTO prediction_log_state VALUES ('watermark', 1), ('pending_hi', 3);
"""


def test_a_row_per_call_journal_is_converted_at_start(tmp_path: Path) -> None:
    """The earlier layout: "a" compacted, "b".."c" the range of an interrupted pass, "d"
    new. Nothing is lost, the files go on from the old names, "a" stays a known key."""
    harness = Harness(tmp_path)
    db = harness.store.db
    db.executescript(_ROW_JOURNAL)
    for seq, event_id in enumerate("abcd", start=1):
        db.execute(
            "INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (seq, "team-a", "churn", "1", event_id, "stable", "app-" + event_id, DAY1, 200,
             None, '["a", "b"]', 1, np.array([1.0, 2.0]).tobytes(), None,
             np.array([0.25]).tobytes(), None),
        )  # fmt: skip
    harness.log.open(db)
    assert journaled(harness) == ["a", "b", "c", "d"]
    assert harness.log.backlog == 3
    harness.journal(prediction("a"), prediction("e"))  # "a" again: a replay
    assert [harness.log.compact(now=DAY1, replay_margin_s=30).rows for _ in range(3)] == [2, 2, 0]
    names = sorted(p.name for p in Path(harness.uri).rglob("*.parquet"))
    assert names == ["part-000000000002-000000000003.parquet",  # the interrupted pass's name
                     "part-000000000004-000000000006.parquet"]  # fmt: skip
    rows = harness.dataset()
    assert [r["event_id"] for r in rows] == ["b", "c", "d", "e"]
    assert (rows[0]["features"], rows[0]["score"], rows[0]["latency_ms"]) == ([1.0, 2.0], 0.25,
                                                                              None)  # fmt: skip
    assert migrate_row_journal(db) == 0  # converted once
    harness.close()


def test_expired_partitions() -> None:
    names = ["date=2026-11-01", "date=2026-11-30", "date=2026-12-04", "date=junk", "other"]
    today = date(2026, 12, 4)
    # 5 days kept: 2026-11-30 .. 2026-12-04; names that are not dates are never touched.
    assert expired_partitions(names, today, retention_days=5) == ["date=2026-11-01"]
    assert expired_partitions(names, today, retention_days=4) == ["date=2026-11-01",
                                                                  "date=2026-11-30"]  # fmt: skip
    assert expired_partitions(names, today, retention_days=35) == []


def test_retention_deletes_old_partitions(tmp_path: Path) -> None:
    harness = Harness(tmp_path, retention_days=2)
    try:
        harness.journal(prediction("old", DAY1 - 5 * 86400), prediction("new", DAY2))
        done = harness.log.compact(now=DAY2, replay_margin_s=30)
        assert done.expired_partitions == 1
        assert [r["event_id"] for r in harness.dataset()] == ["new"]
    finally:
        harness.close()


def test_any_fsspec_uri(tmp_path: Path) -> None:
    import fsspec

    harness = Harness(tmp_path, uri="memory://kubeloop-test/predictions")
    try:
        harness.journal(prediction("a"))
        harness.log.compact(now=DAY1, replay_margin_s=30)
        fs = fsspec.filesystem("memory")
        (path,) = fs.glob("/kubeloop-test/predictions/date=2026-12-03/*.parquet")
        with fs.open(path, "rb") as handle:
            assert pq.read_table(handle).column("event_id").to_pylist() == ["a"]
        fs.rm("/kubeloop-test", recursive=True)
    finally:
        harness.close()


def test_cli_flags_map_onto_settings(tmp_path: Path) -> None:
    from services.monitor.__main__ import parse_args

    settings = parse_args(["--data-dir", str(tmp_path)])
    assert settings.prediction_log and settings.prediction_log_location == str(
        tmp_path / "predictions"
    )
    settings = parse_args(
        ["--data-dir", str(tmp_path), "--prediction-log-uri", "memory://x/p",
         "--prediction-log-retention-days", "7", "--prediction-log-compaction-interval", "5"]
    )  # fmt: skip
    assert (settings.prediction_log_location, settings.prediction_log_retention_days,
            settings.prediction_log_compaction_interval_s) == ("memory://x/p", 7, 5.0)  # fmt: skip
    assert not parse_args(["--data-dir", str(tmp_path), "--no-prediction-log"]).prediction_log


def test_an_unservable_uri_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nosuchscheme"):
        PredictionLog("nosuchscheme://bucket/p", tmp_path / "m.db", 30).check_uri()

"""The prediction log: every call the monitor records, journaled, then compacted to Parquet.

Two stages, so an acknowledged event survives a kill -9 and the Parquet files stay few:

1. **Journal** (SQLite, the monitor's own ``monitor.db``). The core emits a
   :class:`~services.monitor.core.ServedPrediction` to :meth:`PredictionLog.sink` when a call
   completes; the service drains them into the *same transaction* as the events that
   completed them (:meth:`PredictionLog.write`), so the group commit an ingest reply waits
   for makes both durable at once. Rows are idempotent on ``(namespace, model, version,
   event_id)`` (``INSERT OR IGNORE``): the journal replay after a restart re-emits every call
   it rebuilds, and a late response to an already-expired request is emitted again.
2. **Compaction** (a timer, its own thread and SQLite connection): rows ``(watermark, hi]``
   become one Parquet file per UTC date, ``<uri>/date=D/part-<watermark+1>-<hi>.parquet``.
   ``hi`` is recorded *before* any file is written and ``watermark`` advances only after all
   are, so a compaction interrupted by a crash is redone over the same range into the same
   file names: no row is lost and none is written twice.

Compacted journal rows are kept while the events that produced them can still be replayed
(``served_at`` at least the oldest journaled event minus the pairing timeout): deleting them
earlier would let a replay insert them again as new rows. Partitions older than the
retention are deleted after each compaction.

The schema is :mod:`contracts.prediction_log`. Pure parts (:func:`journal_row`,
:func:`arrow_table`, :func:`expired_partitions`) take everything they need as arguments.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts import prediction_log as contract
from services.monitor.core import ServedPrediction

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    event_id TEXT NOT NULL, role TEXT NOT NULL, request_id TEXT NOT NULL,
    served_at REAL NOT NULL, status INTEGER NOT NULL, latency_ms REAL,
    feature_names TEXT, feature_rows INTEGER, features BLOB, entities TEXT,
    scores BLOB, classes BLOB,
    UNIQUE (namespace, model, version, event_id)
);
CREATE TABLE IF NOT EXISTS prediction_log_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_INSERT = (
    "INSERT OR IGNORE INTO predictions (namespace, model, version, event_id, role, request_id,"
    " served_at, status, latency_ms, feature_names, feature_rows, features, entities, scores,"
    " classes) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_SELECT = (
    "SELECT namespace, model, version, event_id, role, request_id, served_at, status,"
    " latency_ms, feature_names, feature_rows, features, entities, scores, classes"
    " FROM predictions WHERE seq > ? AND seq <= ? ORDER BY seq"
)
_WATERMARK = "watermark"  # every row with seq <= watermark is in Parquet
_PENDING = "pending_hi"  # the range end of a compaction under way
_PRUNE_CHUNK = 20_000  # rows per delete: the write lock is never held long


JournalRow = tuple[Any, ...]


def journal_row(p: ServedPrediction) -> JournalRow:
    """The SQLite row of one served call (arrays as float64/int64 bytes)."""
    features = p.features
    return (
        p.namespace,
        p.model,
        p.version,
        p.event_id,
        p.role,
        p.request_id,
        p.served_at,
        int(p.status),
        None if p.latency_ms is None or np.isnan(p.latency_ms) else float(p.latency_ms),
        json.dumps(p.feature_names) if p.feature_names else None,
        None if features is None else int(features.shape[0]),
        None if features is None else np.ascontiguousarray(features, np.float64).tobytes(),
        json.dumps(p.entities) if p.entities else None,
        None if p.scores is None else np.ascontiguousarray(p.scores, np.float64).tobytes(),
        None if p.classes is None else np.ascontiguousarray(p.classes, np.int64).tobytes(),
    )


def create_tables(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)


def write_rows(db: sqlite3.Connection, rows: Sequence[JournalRow]) -> None:
    """Inside the caller's transaction (the event batch's)."""
    if rows:
        db.executemany(_INSERT, rows)


# ----------------------------------------------------------------------------- Parquet


def arrow_schema() -> pa.Schema:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "timestamp_us_utc": pa.timestamp("us", tz="UTC"),
        "list_string": pa.list_(pa.string()),
        "list_float64": pa.list_(pa.float64()),
    }
    fields = [pa.field(c.name, types[c.type], nullable=c.nullable) for c in contract.COLUMNS]
    return pa.schema(fields, metadata={contract.METADATA_KEY: contract.SCHEMA_VERSION})


class _Columns:
    """Column builders for one Parquet file (one date)."""

    def __init__(self) -> None:
        self.plain: dict[str, list[Any]] = {c.name: [] for c in contract.COLUMNS}
        self.feature_parts: list[np.ndarray] = []
        self.feature_lengths: list[int] = []  # -1 = null

    def add_call(self, row: JournalRow) -> None:
        (ns, model, version, event_id, role, request_id, served_at, status, latency,
         names_json, feature_rows, feature_blob, entities_json, score_blob, class_blob) = row  # fmt: skip
        scores = None if score_blob is None else np.frombuffer(score_blob, np.float64)
        classes = None if class_blob is None else np.frombuffer(class_blob, np.int64)
        features = None
        if feature_blob is not None and feature_rows:
            features = np.frombuffer(feature_blob, np.float64).reshape(feature_rows, -1)
        n = len(scores) if scores is not None else (feature_rows or 1)
        if features is not None and features.shape[0] != n:
            features = None  # NaN rows were dropped: row i would not be prediction i
        entities = json.loads(entities_json) if entities_json else None
        if entities is not None and len(entities) != n:
            entities = None
        names = json.loads(names_json) if names_json and features is not None else None
        micros = int(round(served_at * 1e6))
        plain = self.plain
        for i in range(n):
            plain["namespace"].append(ns)
            plain["model"].append(model)
            plain["version"].append(version)
            plain["role"].append(role)
            plain["event_id"].append(event_id)
            plain["request_id"].append(request_id)
            plain["row"].append(i)
            plain["served_at"].append(micros)
            plain["status"].append(status)
            plain["latency_ms"].append(latency)
            plain["entity"].append(entities[i] if entities is not None else None)
            plain["feature_names"].append(names)
            plain["score"].append(float(scores[i]) if scores is not None else None)
            cls = int(classes[i]) if classes is not None and classes[i] >= 0 else None
            plain["predicted_class"].append(cls)
        if features is None:
            self.feature_lengths.extend([-1] * n)
        else:
            self.feature_parts.append(features.reshape(-1))
            self.feature_lengths.extend([features.shape[1]] * n)

    def table(self) -> pa.Table:
        import pyarrow as pa

        schema = arrow_schema()
        lengths = np.asarray(self.feature_lengths, np.int64)
        offsets = np.concatenate([[0], np.cumsum(np.maximum(lengths, 0))]).astype(np.int32)
        values = np.concatenate(self.feature_parts) if self.feature_parts else np.zeros(0)
        features = pa.ListArray.from_arrays(
            pa.array(offsets), pa.array(values, pa.float64()), mask=pa.array(lengths < 0)
        )
        arrays = []
        for field in schema:
            if field.name == "features":
                arrays.append(features)
            elif field.name == "served_at":
                micros = pa.array(self.plain["served_at"], pa.int64())
                arrays.append(micros.cast(field.type))
            else:
                arrays.append(pa.array(self.plain[field.name], field.type))
        return pa.Table.from_arrays(arrays, schema=schema)


def utc_date(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).date().isoformat()


def arrow_table(rows: Sequence[JournalRow]) -> dict[str, pa.Table]:
    """Journal rows → one table per UTC date of ``served_at`` (the partition value)."""
    by_date: dict[str, _Columns] = {}
    for row in rows:
        day = utc_date(row[6])
        columns = by_date.get(day)
        if columns is None:
            columns = by_date[day] = _Columns()
        columns.add_call(row)
    return {day: columns.table() for day, columns in by_date.items()}


def expired_partitions(names: Sequence[str], today: date, retention_days: int) -> list[str]:
    """Partition directory names (``date=YYYY-MM-DD``) older than the retention; others kept."""
    oldest = today - timedelta(days=retention_days - 1)
    prefix = contract.PARTITION_KEY + "="
    expired = []
    for name in names:
        if not name.startswith(prefix):
            continue
        try:
            day = date.fromisoformat(name[len(prefix) :])
        except ValueError:
            continue  # not ours: never delete what we cannot read
        if day < oldest:
            expired.append(name)
    return expired


def part_name(first_seq: int, last_seq: int) -> str:
    return f"part-{first_seq:012d}-{last_seq:012d}.parquet"


# ----------------------------------------------------------------------------- the log


@dataclass
class Compaction:
    """What one compaction pass did (``/healthz`` shows the last one)."""

    rows: int = 0  # journal rows (calls) moved into Parquet
    predictions: int = 0
    files: int = 0
    seconds: float = 0.0
    pruned: int = 0
    expired_partitions: int = 0
    through_seq: int = 0
    at: float = 0.0


class PredictionLog:
    """Sink for served calls; journal writer (store thread); compactor (its own thread)."""

    def __init__(
        self,
        uri: str,
        db_path: Path,
        retention_days: int,
        max_rows_per_pass: int = 2_000_000,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.db_path = db_path
        self.retention_days = retention_days
        self.max_rows_per_pass = max_rows_per_pass
        self.pending: list[ServedPrediction] = []
        self.last = Compaction()
        self.top = 0  # highest journal seq written (store thread)
        self.failures = 0
        self._db: sqlite3.Connection | None = None

    # -- event loop ---------------------------------------------------------------------

    def sink(self, prediction: ServedPrediction) -> None:
        """A :data:`~services.monitor.core.PredictionSink`: O(1) on the event loop."""
        self.pending.append(prediction)

    def drain(self) -> list[ServedPrediction]:
        drained, self.pending = self.pending, []
        return drained

    # -- store thread (inside the event batch's transaction) ----------------------------

    def write(self, db: sqlite3.Connection, predictions: Sequence[ServedPrediction]) -> None:
        write_rows(db, [journal_row(p) for p in predictions])
        if predictions:
            (top,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM predictions").fetchone()
            self.top = int(top)

    @property
    def backlog(self) -> int:
        """Journaled calls not yet in Parquet."""
        return max(0, self.top - self.last.through_seq)

    # -- compactor thread ---------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=30000")  # the event writer holds the lock briefly
            create_tables(db)
            self._db = db
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _state(self, db: sqlite3.Connection, key: str) -> int | None:
        row = db.execute("SELECT value FROM prediction_log_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def compact(self, now: float, replay_margin_s: float) -> Compaction:
        """One pass: journal rows → Parquet, advance the watermark, prune, apply retention."""
        started = time.perf_counter()
        db = self._connection()
        result = Compaction(at=now)
        watermark = self._state(db, _WATERMARK) or 0
        pending = self._state(db, _PENDING)
        (top,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM predictions").fetchone()
        if pending is not None and pending > watermark:
            hi = pending  # an interrupted pass: redo exactly its range, into the same files
        else:
            hi = min(int(top), watermark + self.max_rows_per_pass)
        if hi > watermark:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO prediction_log_state VALUES (?, ?)", (_PENDING, hi)
                )
            rows = db.execute(_SELECT, (watermark, hi)).fetchall()
            tables = arrow_table(rows)
            for day, table in tables.items():
                self._write_file(day, part_name(watermark + 1, hi), table)
            with db:
                db.execute("BEGIN")
                db.execute(
                    "INSERT OR REPLACE INTO prediction_log_state VALUES (?, ?)", (_WATERMARK, hi)
                )
                db.execute("DELETE FROM prediction_log_state WHERE key = ?", (_PENDING,))
            result.rows = len(rows)
            result.predictions = sum(t.num_rows for t in tables.values())
            result.files = len(tables)
            watermark = hi
        result.through_seq = watermark
        result.pruned = self._prune(db, watermark, now, replay_margin_s)
        result.expired_partitions = self.apply_retention(now)
        result.seconds = round(time.perf_counter() - started, 3)
        self.top = max(self.top, int(top))
        self.last = result
        return result

    def _write_file(self, day: str, name: str, table: pa.Table) -> None:
        import pyarrow.parquet as pq
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(self.uri)
        directory = f"{root}/{contract.PARTITION_KEY}={day}"
        fs.makedirs(directory, exist_ok=True)
        final = f"{directory}/{name}"
        local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        # Object stores publish a file on close; a local file is renamed into place so a
        # reader never sees half of one.
        target = final + ".tmp" if local else final
        with fs.open(target, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        if local:
            fs.mv(target, final)

    def _prune(self, db: sqlite3.Connection, watermark: int, now: float, margin_s: float) -> int:
        """Delete compacted rows no replay can emit again."""
        row = db.execute("SELECT MIN(ts) FROM events").fetchone()
        oldest_event = row[0] if row and row[0] is not None else now
        cutoff = float(oldest_event) - margin_s
        pruned = 0
        while True:
            with db:
                deleted = db.execute(
                    "DELETE FROM predictions WHERE seq IN (SELECT seq FROM predictions"
                    " WHERE seq <= ? AND served_at < ? LIMIT ?)",
                    (watermark, cutoff, _PRUNE_CHUNK),
                ).rowcount
            pruned += deleted
            if deleted < _PRUNE_CHUNK:
                return pruned

    def apply_retention(self, now: float) -> int:
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(self.uri)
        if not fs.exists(root):
            return 0
        names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)]
        today = datetime.fromtimestamp(now, UTC).date()
        expired = expired_partitions(names, today, self.retention_days)
        for name in expired:
            fs.rm(f"{root}/{name}", recursive=True)
        return len(expired)

    def status(self) -> dict[str, Any]:
        last = self.last
        return {
            "uri": self.uri,
            "retentionDays": self.retention_days,
            "unjournaled": len(self.pending),
            "backlog": self.backlog,
            "compactionFailures": self.failures,
            "lastCompaction": {
                "at": last.at or None,
                "calls": last.rows,
                "predictions": last.predictions,
                "files": last.files,
                "seconds": last.seconds,
                "throughSeq": last.through_seq,
                "prunedJournalRows": last.pruned,
                "expiredPartitions": last.expired_partitions,
            },
        }

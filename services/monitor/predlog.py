"""The prediction log: every call the monitor records, journaled, then compacted to Parquet.

Two stages, so an acknowledged event survives a kill -9 and the Parquet files stay few:

1. **Journal** (SQLite, the monitor's own ``monitor.db``). The core emits a
   :class:`~services.monitor.core.ServedPrediction` to :meth:`PredictionLog.sink` when a call
   completes; the service drains them into the *same transaction* as the events that
   completed them (:meth:`PredictionLog.write`), so the group commit an ingest reply waits
   for makes both durable at once. Rows are idempotent on ``(namespace, model, version,
   event_id)`` (``INSERT OR IGNORE``): the journal replay after a restart re-emits every call
   it rebuilds, and a late response to an already-expired request is emitted again.
2. **Compaction** (a timer; a worker process with its own SQLite connection): rows
   ``(watermark, hi]`` become one Parquet file per UTC date, ``<uri>/date=D/part-<watermark+1>-<hi>.parquet``.
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
import math
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


def journal_row(
    p: ServedPrediction, names_cache: dict[tuple[str, ...], str] | None = None
) -> JournalRow:
    """The SQLite row of one served call (arrays as float64/int64 bytes). ``names_cache``
    keeps the JSON of feature-name lists seen before (every call of a model repeats one)."""
    features = p.features
    names = None
    if p.feature_names:
        key = tuple(p.feature_names)
        names = names_cache.get(key) if names_cache is not None else None
        if names is None:
            names = json.dumps(p.feature_names)
            if names_cache is not None and len(names_cache) < 1024:
                names_cache[key] = names
    return (
        p.namespace,
        p.model,
        p.version,
        p.event_id,
        p.role,
        p.request_id,
        p.served_at,
        int(p.status),
        None if p.latency_ms is None or math.isnan(p.latency_ms) else float(p.latency_ms),
        names,
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


def _blob_array(blobs: list[bytes | None], counts: np.ndarray, dtype: type) -> np.ndarray:
    """Per-row values from per-call blobs (a call without one contributes ``counts`` zeros)."""
    parts: list[np.ndarray] = [
        np.frombuffer(blob, dtype) if blob is not None else np.zeros(count, dtype)
        for blob, count in zip(blobs, counts.tolist(), strict=True)
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _call_table(rows: Sequence[JournalRow]) -> pa.Table:
    """One Parquet table from journal rows: call-level columns built once and repeated per
    prediction (a call is usually one prediction), arrays concatenated from their blobs."""
    import pyarrow as pa

    schema = arrow_schema()
    (ns, model, version, event_id, role, request_id, served_at, status, latency,
     names_json, feature_rows, feature_blobs, entities_json, score_blobs, class_blobs) = (
        list(column) for column in zip(*rows, strict=True)
    )  # fmt: skip
    score_counts = np.array([0 if b is None else len(b) // 8 for b in score_blobs], np.int64)
    rows_of_features = np.array([r or 0 for r in feature_rows], np.int64)
    has_scores = np.array([b is not None for b in score_blobs])
    counts = np.where(has_scores, score_counts, np.maximum(rows_of_features, 1))
    calls = np.repeat(np.arange(len(rows)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    row_index = np.arange(int(counts.sum())) - starts[calls]
    # Features line up with predictions only when the request kept one row per prediction.
    aligned = np.array([b is not None for b in feature_blobs]) & (rows_of_features == counts)
    widths = np.array(
        [len(b) // 8 // r if ok else 0 for b, r, ok in
         zip(feature_blobs, rows_of_features.tolist(), aligned.tolist(), strict=True)],
        np.int64,
    )  # fmt: skip
    values = [np.frombuffer(b, np.float64) for b, ok in zip(feature_blobs, aligned.tolist(),
                                                            strict=True) if ok]  # fmt: skip
    row_widths = np.where(aligned[calls], widths[calls], 0)
    offsets = np.concatenate([[0], np.cumsum(row_widths)]).astype(np.int32)
    features = pa.ListArray.from_arrays(
        pa.array(offsets),
        pa.array(np.concatenate(values) if values else np.zeros(0), pa.float64()),
        mask=pa.array(~aligned[calls]),
    )
    parsed: dict[str, list[str]] = {}  # the same few name lists on every call
    names = [
        (parsed.get(j) or parsed.setdefault(j, json.loads(j))) if j and ok else None
        for j, ok in zip(names_json, aligned.tolist(), strict=True)
    ]
    entity_rows: list[str | None] = []
    for text, count in zip(entities_json, counts.tolist(), strict=True):
        entities: list[str] | None = json.loads(text) if text else None
        if entities is not None and len(entities) == count:
            entity_rows.extend(entities)
        else:
            entity_rows.extend([None] * count)
    scores = _blob_array(score_blobs, np.where(has_scores, 0, counts), np.float64)
    classes = _blob_array(class_blobs, np.where([b is None for b in class_blobs], counts, 0),
                          np.int64)  # fmt: skip
    has_class = np.repeat([b is not None for b in class_blobs], counts) & (classes >= 0)
    micros = np.round(np.asarray(served_at, np.float64) * 1e6).astype(np.int64)

    def per_row(values: list[Any], type_: pa.DataType) -> pa.Array:
        return pa.array(values, type_).take(pa.array(calls))

    columns = {
        "namespace": per_row(ns, pa.string()),
        "model": per_row(model, pa.string()),
        "version": per_row(version, pa.string()),
        "role": per_row(role, pa.string()),
        "event_id": per_row(event_id, pa.string()),
        "request_id": per_row(request_id, pa.string()),
        "row": pa.array(row_index.astype(np.int32)),
        "served_at": pa.array(micros[calls]).cast(pa.timestamp("us", tz="UTC")),
        "status": pa.array(np.asarray(status, np.int32)[calls]),
        "latency_ms": per_row(latency, pa.float64()),
        "entity": pa.array(entity_rows, pa.string()),
        "feature_names": per_row(names, pa.list_(pa.string())),
        "features": features,
        "score": pa.array(scores, pa.float64(), mask=~np.repeat(has_scores, counts)),
        "predicted_class": pa.array(classes, pa.int64(), mask=~has_class),
    }
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def utc_date(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).date().isoformat()


def arrow_table(rows: Sequence[JournalRow]) -> dict[str, pa.Table]:
    """Journal rows → one table per UTC date of ``served_at`` (the partition value)."""
    by_day: dict[int, list[JournalRow]] = {}
    for row in rows:
        by_day.setdefault(int(row[6] // 86_400), []).append(row)  # UTC days since the epoch
    return {utc_date(day * 86_400.0): _call_table(day_rows) for day, day_rows in by_day.items()}


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
    through_seq: int = 0  # the watermark after the pass
    journal_top: int = 0  # the highest journal seq the pass saw
    at: float = 0.0


@dataclass(frozen=True)
class Compactor:
    """One compaction pass, self-contained (its own SQLite connection, opened per pass) so
    the service can run it in a worker process: the Arrow and Parquet work then never holds
    the ingest loop's GIL."""

    uri: str
    db_path: Path
    retention_days: int
    max_rows_per_pass: int = 2_000_000

    def run(self, now: float, replay_margin_s: float) -> Compaction:
        """Journal rows → Parquet, advance the watermark, prune, apply retention."""
        started = time.perf_counter()
        db = sqlite3.connect(self.db_path, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")  # the event writer holds the lock briefly
            create_tables(db)
            result = self._pass(db, now, replay_margin_s)
        finally:
            db.close()
        result.expired_partitions = self.apply_retention(now)
        result.seconds = round(time.perf_counter() - started, 3)
        return result

    def _pass(self, db: sqlite3.Connection, now: float, margin_s: float) -> Compaction:
        result = Compaction(at=now)
        watermark = _state(db, _WATERMARK) or 0
        pending = _state(db, _PENDING)
        (top,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM predictions").fetchone()
        result.journal_top = int(top)
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
        result.pruned = _prune(db, watermark, now, margin_s)
        return result

    def _write_file(self, day: str, name: str, table: pa.Table) -> None:
        import pyarrow.parquet as pq
        from fsspec.core import url_to_fs

        fs, root = url_to_fs(self.uri)
        directory = f"{root}/{contract.PARTITION_KEY}={day}"
        fs.makedirs(directory, exist_ok=True)
        final = f"{directory}/{name}"
        local = "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))
        # Object stores publish a file on close; a local file is written under a hidden name
        # (readers skip "."-files) and renamed into place, so a reader never sees half of one.
        target = f"{directory}/.{name}.tmp" if local else final
        with fs.open(target, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
        if local:
            fs.mv(target, final)

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


def _state(db: sqlite3.Connection, key: str) -> int | None:
    row = db.execute("SELECT value FROM prediction_log_state WHERE key = ?", (key,)).fetchone()
    return None if row is None else int(row[0])


def _prune(db: sqlite3.Connection, watermark: int, now: float, margin_s: float) -> int:
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


def warm_up(monitor_pid: int) -> None:
    """The compaction worker's initializer: exit with the monitor (a kill -9 of the monitor
    must not leave it behind), and pay the imports a pass needs (pyarrow pulls in pandas on
    its first array: ~1 s of CPU) before the first pass. The monitor passes its pid: a
    worker still starting when the monitor died has already been reparented here."""
    import os
    import threading

    def watch() -> None:
        while os.getppid() == monitor_pid:
            time.sleep(1.0)
        os._exit(0)  # reparented: the monitor is gone

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    import fsspec.core
    import pyarrow as pa
    import pyarrow.parquet  # noqa: F401

    pa.array([0.0])
    fsspec.core.url_to_fs("file:///")


class PredictionLog:
    """Sink for served calls (event loop), journal writer (store thread), and the
    :class:`Compactor` whose passes the service runs in a worker process."""

    def __init__(
        self,
        uri: str,
        db_path: Path,
        retention_days: int,
        max_rows_per_pass: int = 2_000_000,
    ) -> None:
        self.uri = uri.rstrip("/")
        self.compactor = Compactor(self.uri, db_path, retention_days, max_rows_per_pass)
        self.pending: list[ServedPrediction] = []
        self.last = Compaction()
        self.top = 0  # highest journal seq written (store thread)
        self._names: dict[tuple[str, ...], str] = {}  # store thread only
        self.failures = 0

    def check_uri(self) -> None:
        """Fail at start, not at the first compaction, on a URI no filesystem can serve
        (an unknown scheme, or one whose fsspec package is not installed)."""
        from fsspec.core import url_to_fs

        try:
            url_to_fs(self.uri)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"prediction log URI {self.uri!r}: {exc}") from exc

    # -- event loop ---------------------------------------------------------------------

    def sink(self, prediction: ServedPrediction) -> None:
        """A :data:`~services.monitor.core.PredictionSink`: O(1) on the event loop."""
        self.pending.append(prediction)

    def drain(self) -> list[ServedPrediction]:
        drained, self.pending = self.pending, []
        return drained

    # -- store thread (inside the event batch's transaction) ----------------------------

    def open(self, db: sqlite3.Connection) -> None:
        """At start, on the store thread: the tables, and where the journal's seq stands."""
        create_tables(db)
        (top,) = db.execute("SELECT COALESCE(MAX(seq), 0) FROM predictions").fetchone()
        self.top = int(top)

    def write(self, db: sqlite3.Connection, predictions: Sequence[ServedPrediction]) -> None:
        before = db.total_changes
        write_rows(db, [journal_row(p, self._names) for p in predictions])
        # Each row inserted takes the next seq (AUTOINCREMENT; ignored duplicates take none):
        # counting them spares a query per commit.
        self.top += db.total_changes - before

    @property
    def backlog(self) -> int:
        """Journaled calls not yet in Parquet."""
        return max(0, self.top - self.last.through_seq)

    # -- compaction ---------------------------------------------------------------------

    def record(self, result: Compaction) -> None:
        self.top = max(self.top, result.journal_top)
        self.last = result

    def compact(self, now: float, replay_margin_s: float) -> Compaction:
        """One pass in this process (tests, tools); the service uses a worker process."""
        result = self.compactor.run(now, replay_margin_s)
        self.record(result)
        return result

    def status(self) -> dict[str, Any]:
        last = self.last
        return {
            "uri": self.uri,
            "retentionDays": self.compactor.retention_days,
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

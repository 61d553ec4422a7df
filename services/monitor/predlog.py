"""The prediction log: every call the monitor records, journaled, then compacted to Parquet.

Two stages, so an acknowledged event survives a kill -9 and the Parquet files stay few:

1. **Journal** (SQLite, the monitor's own ``monitor.db``). The core emits a
   :class:`~services.monitor.core.ServedPrediction` to :meth:`PredictionLog.sink` when a call
   completes; the service drains them into the *same transaction* as the events that
   completed them (:meth:`PredictionLog.write`), so the group commit an ingest reply waits
   for makes both durable at once. A commit's calls are *one* row (:func:`encode_batch`:
   their strings as JSON, their numbers and arrays as float64/int64 bytes), numbered on by
   call (``first_call``..``last_call``): the ingest path does one short Python pass per call
   and one SQLite insert per commit; decoding waits for compaction.
2. **Compaction** (a timer; a worker process with its own SQLite connection): batches
   ``(watermark, hi]`` become one Parquet file per UTC date,
   ``<uri>/date=D/part-<first call>-<last call>.parquet``. ``hi`` is recorded *before* any
   file is written and ``watermark`` advances only after all are, so a compaction interrupted
   by a crash is redone over the same range into the same file names: no row is lost and
   none is written twice. Calls are idempotent on ``(namespace, model, version, event_id)``,
   and the compaction is where that is enforced (:func:`first_of_each`): the journal replay
   after a restart re-emits every call it rebuilds, and a late response to an
   already-expired request is emitted again; the first emission in journal order wins.

Compacted batches are kept while the events that produced their calls can still be replayed
(every ``served_at`` at least the oldest journaled event minus the pairing timeout): their
keys are what a re-emitted call is checked against. Partitions older than the retention
are deleted after each compaction. A journal of the earlier one-row-per-call layout is
converted at start (:func:`migrate_row_journal`).

The schema is :mod:`contracts.prediction_log`. Pure parts (:func:`encode_batch`,
:func:`decode_batches`, :func:`arrow_table`, :func:`expired_partitions`) take everything
they need as arguments.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import compress
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from contracts import prediction_log as contract
from services.monitor.core import ServedPrediction

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

# One row per group commit, not per call: a row per call cost ~13 µs of the store thread's
# SQLite work per call (15 bound columns, a unique index on four text columns, a GIL round
# trip per row) against ~2 µs to pack a commit's calls into a few arrays.
SCHEMA = """
CREATE TABLE IF NOT EXISTS prediction_batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    format INTEGER NOT NULL,
    first_call INTEGER NOT NULL, last_call INTEGER NOT NULL, served_max REAL NOT NULL,
    strings TEXT NOT NULL, extra TEXT NOT NULL, numbers BLOB NOT NULL,
    features BLOB NOT NULL, scores BLOB NOT NULL, classes BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS prediction_log_state (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
FORMAT = 1  # the batch encoding below; a reader refuses others rather than misread them
_INSERT = (
    "INSERT INTO prediction_batches (format, first_call, last_call, served_max, strings,"
    " extra, numbers, features, scores, classes) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
_COLUMNS = "format, strings, extra, numbers, features, scores, classes, first_call, last_call, seq"
_FIRST_CALL, _LAST_CALL, _SEQ = 7, 8, 9  # their places in a row of _COLUMNS
# (The one-row-per-call journal used "watermark" and "pending_hi" for row numbers.)
_WATERMARK = "batch_watermark"  # every batch with seq <= watermark is in Parquet
_THROUGH_CALL = "through_call"  # the last call number of the watermark's batch
_PENDING = "batch_pending_hi"  # the batch range end of a compaction under way
_JOURNAL_ID = "journal_id"  # random, set once: tells one journal file from another
_PRUNE_CHUNK = 2_000  # batches per delete: the write lock is never held long

#: Per call, its strings, in this order: concatenated in ``strings``, their lengths the last
#: numbers of the call.
_STRINGS = ("namespace", "model", "version", "role", "event_id", "request_id")
#: Per call, its numbers (little-endian float64, in this order, then the string lengths);
#: -1 counts mean "none" (no features, no scores, no classes, no feature names), NaN latency
#: means unknown.
_NUMBERS = ("served_at", "status", "latency_ms", "names", "feature_rows", "feature_width",
            "scores", "classes", "entities")  # fmt: skip
_WIDTH = len(_NUMBERS) + len(_STRINGS)
_F64, _I64 = np.dtype("<f8"), np.dtype("<i8")
_TEXT = attrgetter(*_STRINGS)


class Batch(NamedTuple):
    """One commit's calls as journal columns (see :func:`encode_batch`)."""

    served_max: float
    strings: str
    extra: str  # JSON {"n": feature-name lists, "e": entity keys}, "" when neither is used
    numbers: bytes
    features: bytes
    scores: bytes
    classes: bytes


def encode_batch(predictions: Sequence[ServedPrediction]) -> Batch:
    """The calls of one commit, packed: their strings concatenated (lengths among the
    numbers: nothing to escape), their numbers as one float64 matrix, their arrays' bytes
    concatenated. One short Python pass per call, the rest in C (join, struct)."""
    strings: list[str] = []
    numbers: list[float] = []
    arrays: tuple[list[bytes], list[bytes], list[bytes]] = ([], [], [])
    entities: list[str] = []
    names: dict[tuple[str, ...], int] = {}
    for p in predictions:
        text = _TEXT(p)
        strings += text
        x, s, c = p.features, p.scores, p.classes
        name_index = names.setdefault(tuple(p.feature_names), len(names)) if p.feature_names else -1
        numbers += (
            p.served_at, p.status, p.latency_ms, name_index,
            -1 if x is None else x.shape[0], -1 if x is None else x.shape[-1],
            -1 if s is None else s.shape[0], -1 if c is None else c.shape[0], len(p.entities),
        )  # fmt: skip
        numbers += map(len, text)
        if x is not None:
            arrays[0].append(x.tobytes() if x.dtype == _F64 else x.astype(_F64).tobytes())
        if s is not None:
            arrays[1].append(s.tobytes() if s.dtype == _F64 else s.astype(_F64).tobytes())
        if c is not None:
            arrays[2].append(c.tobytes() if c.dtype == _I64 else c.astype(_I64).tobytes())
        if p.entities:
            entities += p.entities
    extra = json.dumps({"n": [list(n) for n in names], "e": entities}) if names or entities else ""
    return Batch(
        max(numbers[0::_WIDTH], default=0.0),
        "".join(strings),
        extra,
        struct.pack(f"<{len(numbers)}d", *numbers),
        *(b"".join(parts) for parts in arrays),
    )


@dataclass
class Calls:
    """Journaled calls, column by column (decoded batches). Flat arrays hold every call's
    values in call order; a call's share is given by its counts (-1: none)."""

    strings: list[str]  # per call, the _STRINGS, call after call
    numbers: np.ndarray  # (calls, _WIDTH) float64
    names: list[list[str]]  # feature-name lists, indexed by the "names" number
    features: np.ndarray  # flat float64
    scores: np.ndarray  # flat float64
    classes: np.ndarray  # flat int64
    entities: list[str]

    def __len__(self) -> int:
        return len(self.numbers)

    def column(self, name: str) -> np.ndarray:
        return self.numbers[:, _NUMBERS.index(name)]

    def text(self, name: str) -> list[str]:
        return self.strings[_STRINGS.index(name) :: len(_STRINGS)]

    def counts(self, name: str) -> np.ndarray:
        """Values per call in the flat array ``name`` (0 for none)."""
        if name == "features":
            rows, width = self.column("feature_rows"), self.column("feature_width")
            return np.where(rows < 0, 0, rows * width).astype(np.int64)
        return np.maximum(self.column(name), 0).astype(np.int64)

    def keys(self) -> list[tuple[str, ...]]:
        """The idempotency key of each call: namespace, model, version, event id."""
        return _keys(self.strings)

    def select(self, keep: np.ndarray) -> Calls:
        """The calls where ``keep`` (a boolean per call) is true."""

        def flat(values: np.ndarray, name: str) -> np.ndarray:
            return values[np.repeat(keep, self.counts(name))]

        per_string = np.repeat(keep, len(_STRINGS)).tolist()
        entity_mask = np.repeat(keep, self.counts("entities")).tolist()
        return Calls(
            list(compress(self.strings, per_string)),
            self.numbers[keep],
            self.names,
            flat(self.features, "features"),
            flat(self.scores, "scores"),
            flat(self.classes, "classes"),
            list(compress(self.entities, entity_mask)),
        )


def _keys(strings: list[str]) -> list[tuple[str, ...]]:
    n = len(_STRINGS)
    return list(zip(strings[0::n], strings[1::n], strings[2::n], strings[4::n], strict=True))


def _split(text: str, numbers: np.ndarray) -> list[str]:
    """A batch's concatenated strings, cut at their lengths."""
    ends = np.cumsum(numbers[:, len(_NUMBERS) :].ravel().astype(np.int64)).tolist()
    return [text[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def decode_batches(rows: Sequence[tuple[Any, ...]]) -> Calls:
    """Journal rows (``_COLUMNS``) → one :class:`Calls`; names re-indexed across batches."""
    strings: list[str] = []
    matrices: list[np.ndarray] = []
    names: list[list[str]] = []
    entities: list[str] = []
    for format_, text, extra, numbers, *_ in rows:
        if format_ != FORMAT:
            raise ValueError(f"prediction journal batch format {format_}, this reader: {FORMAT}")
        matrix = np.frombuffer(numbers, _F64).reshape(-1, _WIDTH)
        strings += _split(text, matrix)
        if extra:
            document = json.loads(extra)
            matrix = matrix.copy()
            index = matrix[:, _NUMBERS.index("names")]
            index[index >= 0] += len(names)
            names += document["n"]
            entities += document["e"]
        matrices.append(matrix)

    def flat(column: int, dtype: np.dtype[Any]) -> np.ndarray:
        return np.frombuffer(b"".join(row[column] for row in rows), dtype)

    return Calls(
        strings,
        np.concatenate(matrices) if matrices else np.zeros((0, _WIDTH)),
        names,
        flat(4, _F64),
        flat(5, _F64),
        flat(6, _I64),
        entities,
    )


def calls_of(predictions: Sequence[ServedPrediction]) -> Calls:
    """What the journal gives back for these calls (tests, the bench)."""
    _, *columns = encode_batch(predictions)
    return decode_batches([(FORMAT, *columns)])


def create_tables(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    with db:
        db.execute(
            "INSERT OR IGNORE INTO prediction_log_state VALUES (?, abs(random()))", (_JOURNAL_ID,)
        )


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


def _rows_per_call(calls: Calls) -> np.ndarray:
    """Predictions per call: its scores, else one per request row (at least one)."""
    scores = calls.column("scores")
    return np.where(scores >= 0, scores, np.maximum(calls.column("feature_rows"), 1)).astype(
        np.int64
    )


def _feature_column(calls: Calls, counts: np.ndarray, per_call: np.ndarray) -> pa.Array:
    """Features of row i = the request's row i, only when the request kept one row per
    prediction (rows with NaN/inf are dropped at ingest); else null for the whole call."""
    import pyarrow as pa

    rows, width = calls.column("feature_rows"), calls.column("feature_width").astype(np.int64)
    aligned = (rows >= 0) & (rows == counts)
    values = calls.features[np.repeat(aligned, calls.counts("features"))]
    row_widths = np.where(aligned[per_call], width[per_call], 0)
    offsets = np.concatenate([[0], np.cumsum(row_widths)]).astype(np.int32)
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values, pa.float64()), mask=pa.array(~aligned[per_call])
    )


def _entity_column(calls: Calls, counts: np.ndarray) -> pa.Array:
    import pyarrow as pa

    total = int(counts.sum())
    if not calls.entities:
        return pa.nulls(total, pa.string())
    entity_counts = calls.counts("entities")
    starts = np.concatenate([[0], np.cumsum(entity_counts)]).tolist()
    rows: list[str | None] = []
    for i, (have, count) in enumerate(zip(entity_counts.tolist(), counts.tolist(), strict=True)):
        rows.extend(calls.entities[starts[i] : starts[i + 1]] if have == count else [None] * count)
    return pa.array(rows, pa.string())


def _call_table(calls: Calls) -> pa.Table:
    """One Parquet table: call-level columns built once and repeated per prediction (a call
    is usually one prediction), arrays from the flat values."""
    import pyarrow as pa

    counts = _rows_per_call(calls)
    per_call = np.repeat(np.arange(len(calls)), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    has_scores = calls.column("scores") >= 0
    score_rows = np.repeat(has_scores, counts)
    score = np.zeros(len(per_call))
    score[score_rows] = calls.scores
    class_ok = (calls.column("classes") >= 0) & (calls.column("classes") == counts)
    class_rows = np.repeat(class_ok, counts)
    predicted = np.full(len(per_call), -1, np.int64)
    predicted[class_rows] = calls.classes[np.repeat(class_ok, calls.counts("classes"))]
    latency = calls.column("latency_ms")
    micros = np.round(calls.column("served_at") * 1e6).astype(np.int64)
    take = pa.array(per_call)
    index = calls.column("names").astype(np.int64)
    names = pa.array([*calls.names, None], pa.list_(pa.string())).take(
        pa.array(np.where(index >= 0, index, len(calls.names))[per_call])
    )

    def per_row(values: Sequence[Any], type_: pa.DataType) -> pa.Array:
        return pa.array(values, type_).take(take)

    strings = {name: per_row(calls.text(name), pa.string()) for name in _STRINGS}
    columns = {
        **strings,
        "row": pa.array((np.arange(len(per_call)) - starts[per_call]).astype(np.int32)),
        "served_at": pa.array(micros[per_call]).cast(pa.timestamp("us", tz="UTC")),
        "status": pa.array(calls.column("status").astype(np.int32)[per_call]),
        "latency_ms": pa.array(latency[per_call], pa.float64(), mask=np.isnan(latency)[per_call]),
        "entity": _entity_column(calls, counts),
        "feature_names": names,
        "features": _feature_column(calls, counts, per_call),
        "score": pa.array(score, pa.float64(), mask=~score_rows),
        "predicted_class": pa.array(predicted, pa.int64(), mask=~(class_rows & (predicted >= 0))),
    }
    schema = arrow_schema()
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def utc_date(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).date().isoformat()


def arrow_table(calls: Calls) -> dict[str, pa.Table]:
    """Calls → one table per UTC date of ``served_at`` (the partition value)."""
    days = np.floor(calls.column("served_at") / 86_400).astype(np.int64)  # UTC days
    unique = np.unique(days).tolist()
    if len(unique) == 1:  # the usual pass: no copy
        return {utc_date(unique[0] * 86_400.0): _call_table(calls)}
    return {utc_date(day * 86_400.0): _call_table(calls.select(days == day)) for day in unique}


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

    rows: int = 0  # journaled calls moved into Parquet (duplicates dropped)
    duplicates: int = 0  # calls journaled again (a replay, a late half) and dropped
    predictions: int = 0
    files: int = 0
    seconds: float = 0.0
    pruned: int = 0  # journal batches deleted
    expired_partitions: int = 0
    through_call: int = 0  # every call numbered up to this is in Parquet
    journal_top: int = 0  # the highest call number the pass saw
    at: float = 0.0


@dataclass(frozen=True)
class Compactor:
    """One compaction pass, self-contained (its own SQLite connection, opened per pass) so
    the service can run it in a worker process: the decoding, the idempotency check and the
    Arrow and Parquet work then never hold the ingest loop's GIL."""

    uri: str
    db_path: Path
    retention_days: int
    max_rows_per_pass: int = 2_000_000  # calls

    def run(self, now: float, replay_margin_s: float) -> Compaction:
        """Journal batches → Parquet, advance the watermark, prune, apply retention."""
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
        result.through_call = _state(db, _THROUGH_CALL) or 0
        (top,) = db.execute("SELECT COALESCE(MAX(last_call), 0) FROM prediction_batches").fetchone()
        result.journal_top = max(int(top), result.through_call)
        hi = self._range_end(db, watermark, result.through_call)
        if hi > watermark:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO prediction_log_state VALUES (?, ?)", (_PENDING, hi)
                )
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM prediction_batches WHERE seq > ? AND seq <= ?"
                " ORDER BY seq", (watermark, hi),
            ).fetchall()  # fmt: skip
            journaled = decode_batches(rows)
            kept = _kept_keys(db, watermark)
            calls, duplicates = first_of_each(journaled, _union(kept))
            tables = arrow_table(calls)
            first, last = rows[0][_FIRST_CALL], rows[-1][_LAST_CALL]
            for day, table in tables.items():
                self._write_file(day, part_name(first, last), table)
            with db:
                db.execute("BEGIN")
                db.executemany(
                    "INSERT OR REPLACE INTO prediction_log_state VALUES (?, ?)",
                    [(_WATERMARK, hi), (_THROUGH_CALL, last)],
                )
                db.execute("DELETE FROM prediction_log_state WHERE key = ?", (_PENDING,))
            kept.update(_keys_by_batch(rows, journaled))  # compacted now: kept for the next
            result.rows, result.duplicates = len(calls), duplicates
            result.predictions = sum(t.num_rows for t in tables.values())
            result.files = len(tables)
            result.through_call = int(last)
            watermark = hi
        result.pruned = _prune(db, watermark, now, margin_s)
        return result

    def _range_end(self, db: sqlite3.Connection, watermark: int, through_call: int) -> int:
        """The last batch of this pass: an interrupted pass's own (redone exactly, into the
        same files), else as many batches as fit ``max_rows_per_pass`` (at least one)."""
        pending = _state(db, _PENDING)
        if pending is not None and pending > watermark:
            return pending
        (hi,) = db.execute(
            "SELECT COALESCE(MAX(seq), (SELECT MIN(seq) FROM prediction_batches WHERE seq > ?))"
            " FROM prediction_batches WHERE seq > ? AND last_call <= ?",
            (watermark, watermark, through_call + self.max_rows_per_pass),
        ).fetchone()
        return watermark if hi is None else int(hi)

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


#: Per journal (path, id), the keys of each compacted batch still kept, so a pass decodes
#: only its own batches: decoding all kept batches every pass cost ~3 µs per kept call, and
#: the default retention keeps ~100,000. Lives in the compaction worker (or the process
#: that compacts in-process); rebuilt from the journal when it does not match it.
_KEPT_KEYS: dict[tuple[str, int], dict[int, list[tuple[str, ...]]]] = {}


def _kept_keys(db: sqlite3.Connection, watermark: int) -> dict[int, list[tuple[str, ...]]]:
    """The keys of the compacted calls still journaled, per batch: a call emitted again (a
    replay after a restart, a late response to an expired request) is dropped if its key is
    among them. Batches pruned since are forgotten; only batches not cached are decoded."""
    (path,) = [row[2] for row in db.execute("PRAGMA database_list") if row[1] == "main"]
    cached = _KEPT_KEYS.setdefault((path, _state(db, _JOURNAL_ID) or 0), {})
    kept = {seq for (seq,) in db.execute(
        "SELECT seq FROM prediction_batches WHERE seq <= ?", (watermark,))}  # fmt: skip
    for seq in [seq for seq in cached if seq not in kept]:
        del cached[seq]
    missing = sorted(kept - cached.keys())
    if missing:
        cursor = db.execute(
            "SELECT seq, strings, numbers FROM prediction_batches WHERE seq >= ? AND seq <= ?",
            (missing[0], watermark),
        )
        for seq, text, numbers in cursor:
            if seq not in cached:
                matrix = np.frombuffer(numbers, _F64).reshape(-1, _WIDTH)
                cached[seq] = _keys(_split(text, matrix))
    return cached


def _union(kept: dict[int, list[tuple[str, ...]]]) -> set[tuple[str, ...]]:
    seen: set[tuple[str, ...]] = set()
    for keys in kept.values():
        seen.update(keys)
    return seen


def _keys_by_batch(
    rows: Sequence[tuple[Any, ...]], calls: Calls
) -> dict[int, list[tuple[str, ...]]]:
    """The keys of ``calls`` (decoded from ``rows``), per batch."""
    keys, out, start = calls.keys(), {}, 0
    for row in rows:
        count = len(row[3]) // (8 * _WIDTH)
        out[row[_SEQ]] = keys[start : start + count]
        start += count
    return out


def first_of_each(calls: Calls, seen: set[tuple[str, ...]]) -> tuple[Calls, int]:
    """The calls whose key is neither in ``seen`` nor earlier in ``calls`` (journal order:
    the first emission wins, as an ``INSERT OR IGNORE`` would), and how many were dropped."""
    keys = calls.keys()
    if seen.isdisjoint(keys) and len(set(keys)) == len(keys):
        seen.update(keys)
        return calls, 0  # the usual pass: nothing emitted twice
    keep = np.ones(len(calls), bool)
    for i, key in enumerate(keys):
        if key in seen:
            keep[i] = False
        else:
            seen.add(key)
    dropped = int((~keep).sum())
    return (calls.select(keep) if dropped else calls), dropped


def _prune(db: sqlite3.Connection, watermark: int, now: float, margin_s: float) -> int:
    """Delete compacted batches no replay can emit again (all their calls are older than the
    oldest journaled event, less the pairing margin)."""
    row = db.execute("SELECT MIN(ts) FROM events").fetchone()
    oldest_event = row[0] if row and row[0] is not None else now
    cutoff = float(oldest_event) - margin_s
    pruned = 0
    while True:
        with db:
            deleted = db.execute(
                "DELETE FROM prediction_batches WHERE seq IN (SELECT seq FROM"
                " prediction_batches WHERE seq <= ? AND served_max < ? LIMIT ?)",
                (watermark, cutoff, _PRUNE_CHUNK),
            ).rowcount
        pruned += deleted
        if deleted < _PRUNE_CHUNK:
            return pruned


_LEGACY_SELECT = (
    "SELECT seq, namespace, model, version, event_id, role, request_id, served_at, status,"
    " latency_ms, feature_names, feature_rows, features, entities, scores, classes"
    " FROM predictions ORDER BY seq"
)


def _legacy_call(row: tuple[Any, ...]) -> ServedPrediction:
    """A row of the one-row-per-call journal, as the call the core emitted."""
    (_, ns, model, version, event_id, role, request_id, served_at, status, latency,
     names, rows, features, entities, scores, classes) = row  # fmt: skip
    x = None if features is None else np.frombuffer(features, _F64)
    return ServedPrediction(
        ns, model, version, role, event_id, request_id, served_at, status,
        float("nan") if latency is None else latency, json.loads(names) if names else None,
        None if x is None else (x.reshape(rows, -1) if rows else np.zeros((0, 0))),
        tuple(json.loads(entities)) if entities else (),
        None if scores is None else np.frombuffer(scores, _F64),
        None if classes is None else np.frombuffer(classes, _I64),
    )  # fmt: skip


def migrate_row_journal(db: sqlite3.Connection) -> int:
    """Convert a journal of the one-row-per-call layout (table ``predictions``) into batches,
    in one transaction: the compacted rows still kept (for the idempotency check) become one
    compacted batch, the others batches numbered by their old seqs, so the Parquet file
    names go on from the old ones; an interrupted pass's range stays its own batch and is
    redone into the same files. Returns the rows converted."""
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'predictions'").fetchone()
    if exists is None:
        return 0
    with db:
        db.execute("BEGIN")
        watermark = _state(db, "watermark") or 0
        pending = max(_state(db, "pending_hi") or 0, watermark)
        rows = db.execute(_LEGACY_SELECT).fetchall()
        # (rows, first call, last call, the state key naming the batch)
        parts = [
            ([r for r in rows if r[0] <= watermark], 1, watermark, _WATERMARK),
            ([r for r in rows if watermark < r[0] <= pending], watermark + 1, pending, _PENDING),
            ([r for r in rows if r[0] > pending], pending + 1, rows[-1][0] if rows else 0, None),
        ]
        for part, first, last, key in parts:
            if not part:
                continue
            batch = encode_batch([_legacy_call(r) for r in part])
            cursor = db.execute(_INSERT, (FORMAT, first, last, *batch))
            if key is not None:
                db.execute("INSERT OR REPLACE INTO prediction_log_state VALUES (?, ?)",
                           (key, cursor.lastrowid))  # fmt: skip
        db.execute("INSERT OR REPLACE INTO prediction_log_state VALUES (?, ?)",
                   (_THROUGH_CALL, watermark))  # fmt: skip
        db.execute("DELETE FROM prediction_log_state WHERE key IN ('watermark', 'pending_hi')")
        db.execute("DROP TABLE predictions")
    log.info("prediction journal: %d rows converted to the batch layout", len(rows))
    return len(rows)


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
        self.top = 0  # the last call number journaled (written on the store thread only)
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
        """At start, on the store thread: the tables, and where the call numbers stand."""
        create_tables(db)
        migrate_row_journal(db)
        (top,) = db.execute("SELECT COALESCE(MAX(last_call), 0) FROM prediction_batches").fetchone()
        through = _state(db, _THROUGH_CALL) or 0
        self.top = max(int(top), through)
        self.last = Compaction(through_call=through, journal_top=self.top)

    def write(self, db: sqlite3.Connection, predictions: Sequence[ServedPrediction]) -> None:
        """One batch row for the commit's calls, numbered on from the last (a failed commit
        leaves a gap in the numbers, never a reuse: they name the Parquet files)."""
        if not predictions:
            return
        first = self.top + 1
        self.top += len(predictions)
        db.execute(_INSERT, (FORMAT, first, self.top, *encode_batch(predictions)))

    @property
    def backlog(self) -> int:
        """Journaled calls not yet in Parquet (duplicates a compaction will drop included)."""
        return max(0, self.top - self.last.through_call)

    # -- compaction ---------------------------------------------------------------------

    def record(self, result: Compaction) -> None:
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
                "duplicatesDropped": last.duplicates,
                "predictions": last.predictions,
                "files": last.files,
                "seconds": last.seconds,
                "throughCall": last.through_call,
                "prunedJournalBatches": last.pruned,
                "expiredPartitions": last.expired_partitions,
            },
        }

"""SQLite persistence: an event journal written in batches, plus configs, bad-input counters
and drift/alarm state. All methods are blocking and must run on the store's own thread.

Why a journal of accepted events rather than snapshots of the windows: replaying the
journal through the same core rebuilds windows, half-paired calls and shadow pairs exactly,
and a kill -9 loses only what arrived since the last batch (one flush interval).
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.monitor.outcomes.journal import LabelTables
from services.monitor.parsing import Envelope

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    namespace TEXT NOT NULL,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    role TEXT,
    event_id TEXT NOT NULL,
    isvc TEXT NOT NULL,
    status INTEGER,
    latency_ms REAL,
    data BLOB,
    correlation_id TEXT
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
CREATE TABLE IF NOT EXISTS configs (
    namespace TEXT NOT NULL, model TEXT NOT NULL, config TEXT NOT NULL,
    PRIMARY KEY (namespace, model)
);
CREATE TABLE IF NOT EXISTS bad_input (
    namespace TEXT NOT NULL, model TEXT NOT NULL, reason TEXT NOT NULL,
    count INTEGER NOT NULL, last_message TEXT NOT NULL, last_ts REAL NOT NULL,
    PRIMARY KEY (namespace, model, reason)
);
CREATE TABLE IF NOT EXISTS drift (
    namespace TEXT NOT NULL, model TEXT NOT NULL, slot TEXT NOT NULL,
    result TEXT NOT NULL, alarm_state TEXT NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (namespace, model, slot)
);
CREATE TABLE IF NOT EXISTS drift_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL, model TEXT NOT NULL, slot TEXT NOT NULL,
    checked_at REAL NOT NULL, entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drift_history_slot ON drift_history (namespace, model, slot, seq);
CREATE TABLE IF NOT EXISTS drift_reports (
    id TEXT PRIMARY KEY, namespace TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    created REAL NOT NULL, html TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS score_baselines (
    namespace TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    captured_at REAL NOT NULL, scores BLOB NOT NULL,
    PRIMARY KEY (namespace, model, version)
);
"""

#: Events per INSERT statement (12 parameters each; SQLite allows 32,766 per statement):
#: one statement steps once, where ``executemany`` steps once per row.
_ROWS_PER_INSERT = 64
_INSERT_EVENTS = (
    "INSERT INTO events (ts, kind, namespace, model, version, role, event_id,"
    " isvc, status, latency_ms, data, correlation_id) VALUES "
)
#: WAL frames (pages) past which a checkpoint also starts the WAL over (``RESTART``), and
#: how long it may wait for a reader to finish with it; writers wait while it does.
_RESTART_WAL_FRAMES = 4096
_RESTART_WAIT_MS = 20
#: How long the store thread's connection waits for another writer (sqlite3's default).
_BUSY_TIMEOUT_MS = 5000


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)  # the SQL text once per batch size, not per commit
def _insert_events(rows: int) -> str:
    return _INSERT_EVENTS + ",".join(["(?,?,?,?,?,?,?,?,?,?,?,?)"] * rows)


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    db = sqlite3.connect(
        path,
        timeout=timeout_s,
        check_same_thread=False,
        isolation_level=None,
        cached_statements=_ROWS_PER_INSERT + 64,  # an INSERT per batch size, and the rest
    )
    # NORMAL survives a killed process (the WAL is in the OS), not a power cut.
    db.execute("PRAGMA synchronous=NORMAL")
    return db


EventRow = tuple[
    float, str, str, str, str, str | None, str, str, int | None, float | None, bytes, str | None
]


@dataclass(frozen=True)
class BadInputRow:
    namespace: str
    model: str
    reason: str
    count: int
    last_message: str
    last_ts: float


def event_row(env: Envelope, ts: float) -> EventRow:
    data = env.data
    if not isinstance(data, bytes):
        # Structured mode: the payload was parsed already; json (not orjson) keeps NaN as NaN.
        data = json.dumps(data).encode()
    return (
        ts,
        env.kind,
        env.namespace,
        env.model,
        env.version,
        env.role,
        env.event_id,
        env.inference_service,
        env.status,
        env.latency_ms,
        data,
        # Stored only when it differs from the event id (the usual case is equal).
        env.correlation_id if env.correlation_id != env.event_id else None,
    )


class MonitorStore(LabelTables):
    """One SQLite file in the data dir; WAL so readers never block the batch writer. The
    label join's tables come from :class:`LabelTables` (``outcomes/journal.py``).

    Two connections. Every method runs on the store's own thread, on ``db``, except
    ``write_batch(on_loop=True)``, which the event loop calls on a connection of its own:
    the group commit, a few hundred microseconds of SQLite, is cheaper done in place than
    handed to a thread. Handed over, each commit cost the loop ~1 ms of CPU in GIL
    hand-offs (the store thread takes the GIL back after every SQLite call, and each time
    the loop must wake it and wait for it), which capped the monitor at ~13,000 events/s
    (``docs/benchmarks.md``). That connection never waits for SQLite's write lock and
    never checkpoints (a checkpoint syncs the file): ``checkpoint`` does, on the thread.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = _connect(path, timeout_s=_BUSY_TIMEOUT_MS / 1000)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self.create_label_tables()
        self._loop_db = _connect(path, timeout_s=0.0)
        self._loop_db.execute("PRAGMA wal_autocheckpoint=0")

    def close(self) -> None:
        self._loop_db.close()
        self._db.close()

    def _commit(self, sql: str, parameters: tuple[Any, ...]) -> None:
        """One statement in its own transaction."""
        with self._db:
            self._db.execute(sql, parameters)

    @property
    def db(self) -> sqlite3.Connection:
        """For writers that keep their own tables in this file (prediction log)."""
        return self._db

    def write_batch(
        self,
        events: list[EventRow],
        bad: list[BadInputRow],
        also: Sequence[Callable[[sqlite3.Connection], None]] = (),
        *,
        on_loop: bool = False,
    ) -> bool:
        """One transaction; ``also`` write their rows in it (durable with the events).

        ``on_loop``: on the event loop's connection, which does not wait for the write lock:
        False (nothing written, ``also`` not called) while another connection holds it,
        then the caller commits on the store's thread instead."""
        db = self._loop_db if on_loop else self._db
        try:
            db.execute("BEGIN IMMEDIATE")  # the write lock now, or SQLITE_BUSY at once
        except sqlite3.OperationalError as error:
            # The primary code: SQLITE_BUSY_RECOVERY and the like are busy too.
            if on_loop and error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
        with db:  # COMMIT, or ROLLBACK on an error
            for start in range(0, len(events), _ROWS_PER_INSERT):
                chunk = events[start : start + _ROWS_PER_INSERT]
                db.execute(_insert_events(len(chunk)), [value for row in chunk for value in row])
            db.executemany(
                "INSERT INTO bad_input VALUES (?,?,?,?,?,?) ON CONFLICT (namespace, model,"
                " reason) DO UPDATE SET count = count + excluded.count,"
                " last_message = excluded.last_message, last_ts = excluded.last_ts",
                [(r.namespace, r.model, r.reason, r.count, r.last_message, r.last_ts) for r in bad],
            )
            for write in also:
                write(db)
        return True

    def checkpoint(self) -> bool:
        """Copy committed WAL frames into the database file without blocking anyone
        (``PASSIVE``); past ``_RESTART_WAL_FRAMES`` also start the WAL over (``RESTART``:
        writers wait while it copies the last frames, at most ``_RESTART_WAIT_MS`` for a
        reader), so a WAL written without a pause does not grow without bound. True when
        the WAL was started over."""
        _, frames, _ = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < _RESTART_WAL_FRAMES:
            return False
        self._db.execute(f"PRAGMA busy_timeout={_RESTART_WAIT_MS}")
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        return not busy

    def journal(self, since_ts: float) -> Iterator[tuple[Any, ...]]:
        cursor = self._db.execute(
            "SELECT ts, kind, namespace, model, version, role, event_id, isvc, status,"
            " latency_ms, data, correlation_id FROM events WHERE ts >= ? ORDER BY seq",
            (since_ts,),
        )
        while rows := cursor.fetchmany(5000):
            yield from rows

    def prune(self, min_ts: float, keep_rows: int) -> int:
        with self._db:
            self._db.execute("BEGIN")
            (top,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()
            # Two range deletes (rowid, then the ts index) instead of one OR, which scans.
            deleted = self._db.execute(
                "DELETE FROM events WHERE seq <= ?", (top - keep_rows,)
            ).rowcount
            deleted += self._db.execute("DELETE FROM events WHERE ts < ?", (min_ts,)).rowcount
        return int(deleted)

    def event_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def put_config(self, namespace: str, model: str, config_json: str) -> None:
        self._commit(
            "INSERT OR REPLACE INTO configs VALUES (?,?,?)", (namespace, model, config_json)
        )

    def configs(self) -> list[tuple[str, str, str]]:
        return list(self._db.execute("SELECT namespace, model, config FROM configs"))

    def bad_inputs(self) -> list[BadInputRow]:
        return [BadInputRow(*row) for row in self._db.execute("SELECT * FROM bad_input")]

    def put_drift(
        self, namespace: str, model: str, slot: str, result: str, alarm: str, ts: float
    ) -> None:
        self._commit(
            "INSERT OR REPLACE INTO drift VALUES (?,?,?,?,?,?)",
            (namespace, model, slot, result, alarm, ts),
        )

    def drift_rows(self) -> list[tuple[str, str, str, str, str]]:
        return list(
            self._db.execute("SELECT namespace, model, slot, result, alarm_state FROM drift")
        )

    # ------------------------------------------------------------------ drift history

    def add_history(
        self, namespace: str, model: str, slot: str, checked_at: float, entry: str, keep: int
    ) -> None:
        """Append one evaluation and keep only the newest ``keep`` of that slot."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT INTO drift_history (namespace, model, slot, checked_at, entry)"
                " VALUES (?,?,?,?,?)",
                (namespace, model, slot, checked_at, entry),
            )
            self._db.execute(
                "DELETE FROM drift_history WHERE namespace = ? AND model = ? AND slot = ?"
                " AND seq <= (SELECT seq FROM drift_history WHERE namespace = ? AND model = ?"
                " AND slot = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                (namespace, model, slot, namespace, model, slot, keep),
            )

    def history_rows(self) -> list[tuple[str, str, str, str]]:
        return list(
            self._db.execute("SELECT namespace, model, slot, entry FROM drift_history ORDER BY seq")
        )

    # ------------------------------------------------------------------ reports

    def put_report(
        self, report_id: str, namespace: str, model: str, version: str, created: float, html: str
    ) -> None:
        self._commit(
            "INSERT INTO drift_reports VALUES (?,?,?,?,?,?)",
            (report_id, namespace, model, version, created, html),
        )

    def report(self, report_id: str) -> str | None:
        row = self._db.execute(
            "SELECT html FROM drift_reports WHERE id = ?", (report_id,)
        ).fetchone()
        return None if row is None else str(row[0])

    def prune_reports(self, keep: int) -> None:
        """Only the newest ``keep`` snapshots stay (alarm onsets are rare)."""
        self._commit(
            "DELETE FROM drift_reports WHERE id NOT IN"
            " (SELECT id FROM drift_reports ORDER BY created DESC LIMIT ?)",
            (keep,),
        )

    # ------------------------------------------------------------------ score baselines

    def put_baseline(
        self, namespace: str, model: str, version: str, captured_at: float, scores: bytes
    ) -> None:
        self._commit(
            "INSERT OR REPLACE INTO score_baselines VALUES (?,?,?,?,?)",
            (namespace, model, version, captured_at, scores),
        )

    def baselines(self) -> list[tuple[str, str, str, float, bytes]]:
        return list(
            self._db.execute(
                "SELECT namespace, model, version, captured_at, scores FROM score_baselines"
            )
        )

"""SQLite tables of the label join, mixed into :class:`services.monitor.store.MonitorStore`
(same file, same connection, same store thread). Blocking; run on the store's thread.

``feedback_labels`` holds every accepted label with its state (waiting → joined → done, or
orphan): its event id is the idempotency key across restarts, and open labels wait again
after one. ``feedback_rows`` holds the labeled rows of the versions' windows, so quality
figures come back after a kill -9 without needing the predictions again. A label is
committed before its ``200`` is sent (group commit, ``outcomes/service.py``), so an
acknowledged label is never lost. ``quality_history`` keeps each version's figures over
time for the report.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from services.monitor.outcomes.join import (
    Label,
    LabeledRow,
    LabelRecord,
    Record,
    RowRecord,
    StateRecord,
)

LABEL_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_labels (
    namespace TEXT NOT NULL, model TEXT NOT NULL, event_id TEXT NOT NULL,
    received_at REAL NOT NULL, request_id TEXT, entity TEXT, served_at REAL,
    row INTEGER NOT NULL, label INTEGER NOT NULL, observed_at REAL NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (namespace, model, event_id)
);
CREATE INDEX IF NOT EXISTS feedback_labels_received ON feedback_labels (received_at);
CREATE TABLE IF NOT EXISTS feedback_rows (
    namespace TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    request_id TEXT NOT NULL, row INTEGER NOT NULL, served_at REAL NOT NULL,
    score REAL NOT NULL, label INTEGER NOT NULL, role TEXT NOT NULL,
    observed_at REAL NOT NULL, labeled_at REAL NOT NULL, event_id TEXT NOT NULL,
    PRIMARY KEY (namespace, model, version, request_id, row)
);
CREATE INDEX IF NOT EXISTS feedback_rows_labeled ON feedback_rows (labeled_at);
CREATE TABLE IF NOT EXISTS quality_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace TEXT NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    taken_at REAL NOT NULL, entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS quality_history_slot ON quality_history (namespace, model, version, seq);
"""

LabelRow = tuple[str, str, Label, str]  # namespace, model, label, state
RestoredRow = tuple[str, str, str, LabeledRow]  # namespace, model, version, row


class LabelTables:
    """The methods :class:`MonitorStore` gains; ``_db`` is its connection."""

    _db: sqlite3.Connection

    def create_label_tables(self) -> None:
        self._db.executescript(LABEL_SCHEMA)

    def write_feedback(self, records: list[Record]) -> None:
        """One transaction: new labels first, then their rows and state changes."""
        labels = [
            (
                r.namespace, r.model, r.label.event_id, r.label.received_at, r.label.request_id,
                r.label.entity, r.label.served_at, r.label.row, r.label.label,
                r.label.observed_at, r.state,
            )
            for r in records
            if isinstance(r, LabelRecord)
        ]  # fmt: skip
        rows = [
            (
                r.namespace, r.model, r.version, r.row.request_id, r.row.row, r.row.served_at,
                r.row.score, r.row.label, r.row.role, r.row.observed_at, r.row.labeled_at,
                r.row.event_id,
            )
            for r in records
            if isinstance(r, RowRecord)
        ]  # fmt: skip
        states = [
            (r.state, r.namespace, r.model, r.event_id)
            for r in records
            if isinstance(r, StateRecord)
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO feedback_labels VALUES (?,?,?,?,?,?,?,?,?,?,?)", labels
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO feedback_rows VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows
            )
            self._db.executemany(
                "UPDATE feedback_labels SET state = ? WHERE namespace = ? AND model = ?"
                " AND event_id = ?",
                states,
            )

    def feedback_rows(self) -> Iterator[RestoredRow]:
        cursor = self._db.execute(
            "SELECT namespace, model, version, request_id, row, served_at, score, label, role,"
            " observed_at, labeled_at, event_id FROM feedback_rows ORDER BY labeled_at"
        )
        while batch := cursor.fetchmany(5000):
            for ns, model, version, *fields in batch:
                yield ns, model, version, LabeledRow(*fields)

    def feedback_labels(self) -> Iterator[LabelRow]:
        cursor = self._db.execute(
            "SELECT namespace, model, event_id, request_id, entity, served_at, row, label,"
            " observed_at, received_at, state FROM feedback_labels ORDER BY received_at"
        )
        while batch := cursor.fetchmany(5000):
            for ns, model, event_id, rid, entity, served, row, label, obs, rec, state in batch:
                yield ns, model, Label(event_id, rid, entity, served, row, label, obs, rec), state

    def prune_feedback(self, min_labeled_at: float, min_received_at: float, keep: int) -> int:
        """Rows labeled before ``min_labeled_at`` and labels received before
        ``min_received_at`` go; each table keeps at most its newest ``keep`` rows."""
        deleted = 0
        with self._db:
            self._db.execute("BEGIN")
            for table, column, oldest in (
                ("feedback_rows", "labeled_at", min_labeled_at),
                ("feedback_labels", "received_at", min_received_at),
            ):
                deleted += self._db.execute(
                    f"DELETE FROM {table} WHERE {column} < ?", (oldest,)
                ).rowcount
                (top,) = self._db.execute(f"SELECT COALESCE(MAX(rowid), 0) FROM {table}").fetchone()
                deleted += self._db.execute(
                    f"DELETE FROM {table} WHERE rowid <= ?", (top - keep,)
                ).rowcount
        return int(deleted)

    def add_quality(self, entries: list[tuple[str, str, str, float, str]], keep: int) -> None:
        """Append figures per (namespace, model, version); keep the newest ``keep`` of each."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO quality_history (namespace, model, version, taken_at, entry)"
                " VALUES (?,?,?,?,?)",
                entries,
            )
            for namespace, model, version, _, _ in entries:
                self._db.execute(
                    "DELETE FROM quality_history WHERE namespace = ? AND model = ?"
                    " AND version = ? AND seq <= (SELECT seq FROM quality_history"
                    " WHERE namespace = ? AND model = ? AND version = ?"
                    " ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (namespace, model, version, namespace, model, version, keep),
                )

    def quality_rows(self) -> list[tuple[str, str, str, str]]:
        return list(
            self._db.execute(
                "SELECT namespace, model, version, entry FROM quality_history ORDER BY seq"
            )
        )

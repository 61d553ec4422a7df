"""Object storage: an in-memory index in front of a durable SQLite change log.

Every write is assigned the next global resourceVersion on the event loop (so writes are
totally ordered), applied to the in-memory index, and handed to a single writer thread that
appends it to SQLite. The writer commits whatever has queued up as one transaction (group
commit), and only after that commit returns are the writes acknowledged to clients and their
watch events delivered. SQLite runs in WAL mode with synchronous=FULL: a commit fsyncs the WAL,
so an acknowledged write survives `kill -9` and also an OS crash or power loss. (NORMAL would
survive `kill -9` too, because the WAL bytes are in the page cache once written, but not a power
cut; group commit keeps FULL fast enough that we do not need that trade.)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import queue
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import gone

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    rv INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (bucket, namespace, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (
    rv INTEGER PRIMARY KEY, type TEXT NOT NULL, bucket TEXT NOT NULL,
    namespace TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped


@dataclass
class Change:
    """One committed write, as watch streams see it."""

    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    bucket: str
    obj: dict[str, Any]
    old: dict[str, Any] | None = None


@dataclass(eq=False)
class Watcher:
    """A watch stream's mailbox; the store fans committed changes of its bucket into it."""

    bucket: str
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)

    def close(self) -> None:
        self.queue.put_nowait(None)


@dataclass
class _Batch:
    statements: list[tuple[str, tuple[Any, ...]]]
    changes: list[Change]
    future: asyncio.Future[None] | None


def object_key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


class Store:
    """The single source of truth: current objects, resourceVersions and watch history."""

    def __init__(self, data_dir: Path, max_history: int = 20000) -> None:
        self.path = Path(data_dir) / "state.db"
        self.max_history = max_history
        self.buckets: dict[str, dict[ObjectKey, bytes]] = collections.defaultdict(dict)
        self.uids: dict[str, tuple[str, ObjectKey]] = {}
        self.dependents: dict[str, set[tuple[str, ObjectKey]]] = collections.defaultdict(set)
        self.deleting: set[tuple[str, ObjectKey]] = set()  # objects with a deletionTimestamp
        self.history: collections.deque[Change] = collections.deque()
        self.watchers: dict[str, set[Watcher]] = collections.defaultdict(set)
        self.current_rv = 0  # last assigned
        self.committed_rv = 0  # last durable and delivered
        self.compacted_rv = 0  # watches must start at or after this
        self._queue: queue.Queue[_Batch | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_file: IO[str] | None = None
        self._settle_waiters: list[tuple[int, asyncio.Future[None]]] = []

    # ---- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_data_dir()
        conn = self._connect()
        try:
            self._load(conn)
        finally:
            conn.close()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._writer, name="localcluster-writer", daemon=True
        )
        self._thread.start()

    def _lock_data_dir(self) -> None:
        """One server per data dir: two writers would hand out the same resourceVersions."""
        self._lock_file = open(self.path.parent / "lock", "a+")  # noqa: SIM115 - held while open
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise RuntimeError(
                f"{self.path.parent} is in use by another running localcluster"
            ) from None

    def close(self) -> None:
        if self._thread:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        for watchers in self.watchers.values():
            for watcher in watchers:
                watcher.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        return conn

    def _load(self, conn: sqlite3.Connection) -> None:
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        self.current_rv = self.committed_rv = int(meta.get("last_rv", 0))
        self.compacted_rv = int(meta.get("compacted_rv", 0))
        for bucket, namespace, name, data in conn.execute(
            "SELECT bucket, namespace, name, data FROM objects"
        ):
            self._index(bucket, (namespace, name), bytes(data), orjson.loads(data))
        rows = conn.execute(
            "SELECT rv, type, bucket, data FROM changes WHERE rv > ? ORDER BY rv",
            (self.compacted_rv,),
        ).fetchall()
        for rv, typ, bucket, data in rows:
            self.history.append(Change(rv, typ, bucket, orjson.loads(data)))

    # ---- reads -----------------------------------------------------------------------------

    def get(self, bucket: str, key: ObjectKey) -> dict[str, Any] | None:
        raw = self.buckets[bucket].get(key)
        return orjson.loads(raw) if raw is not None else None

    def keys(self, bucket: str, namespace: str | None = None) -> list[ObjectKey]:
        keys = self.buckets[bucket].keys()
        if namespace is not None:
            return sorted(k for k in keys if k[0] == namespace)
        return sorted(keys)

    def items(self, bucket: str, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        objects = self.buckets[bucket]
        for key in self.keys(bucket, namespace):
            raw = objects.get(key)
            if raw is not None:
                yield orjson.loads(raw)

    def locate_uid(self, uid: str) -> tuple[str, ObjectKey] | None:
        return self.uids.get(uid)

    def dependents_of(self, uid: str) -> list[tuple[str, ObjectKey]]:
        return sorted(self.dependents.get(uid, ()))

    def count(self, bucket: str) -> int:
        return len(self.buckets[bucket])

    # ---- writes ----------------------------------------------------------------------------

    async def commit(self, writes: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Apply (type, bucket, object) writes atomically; returns them with resourceVersions.

        Returns only once the writes are durable; their watch events go out just before.
        """
        statements: list[tuple[str, tuple[Any, ...]]] = []
        changes = []
        for typ, bucket, obj in writes:
            self.current_rv += 1
            rv = self.current_rv
            obj["metadata"]["resourceVersion"] = str(rv)
            key = object_key(obj)
            data = orjson.dumps(obj)
            old_raw = self.buckets[bucket].get(key)
            old = orjson.loads(old_raw) if old_raw is not None else None
            if typ == "DELETED":
                self._unindex(bucket, key, old)
                statements.append(
                    (
                        "DELETE FROM objects WHERE bucket=? AND namespace=? AND name=?",
                        (bucket, *key),
                    )
                )
            else:
                if old is not None:
                    self._unindex(bucket, key, old)
                self._index(bucket, key, data, obj)
                statements.append(
                    ("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?)", (bucket, *key, rv, data))
                )
            statements.append(
                ("INSERT INTO changes VALUES (?,?,?,?,?,?)", (rv, typ, bucket, *key, data))
            )
            changes.append(Change(rv, typ, bucket, obj, old))
        statements.append(("INSERT OR REPLACE INTO meta VALUES ('last_rv', ?)", (self.current_rv,)))
        assert self._loop is not None
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Batch(statements, changes, future))
        await asyncio.shield(future)
        return [c.obj for c in changes]

    def _index(self, bucket: str, key: ObjectKey, data: bytes, obj: dict[str, Any]) -> None:
        self.buckets[bucket][key] = data
        meta = obj["metadata"]
        if meta.get("uid"):
            self.uids[meta["uid"]] = (bucket, key)
        if meta.get("deletionTimestamp"):
            self.deleting.add((bucket, key))
        for ref in meta.get("ownerReferences") or []:
            if isinstance(ref, dict) and ref.get("uid"):
                self.dependents[ref["uid"]].add((bucket, key))

    def _unindex(self, bucket: str, key: ObjectKey, old: dict[str, Any] | None) -> None:
        self.buckets[bucket].pop(key, None)
        self.deleting.discard((bucket, key))
        if old is None:
            return
        meta = old["metadata"]
        self.uids.pop(meta.get("uid", ""), None)
        for ref in meta.get("ownerReferences") or []:
            if isinstance(ref, dict) and ref.get("uid") in self.dependents:
                self.dependents[ref["uid"]].discard((bucket, key))
                if not self.dependents[ref["uid"]]:
                    del self.dependents[ref["uid"]]

    # ---- the writer thread -----------------------------------------------------------------

    def _writer(self) -> None:
        conn = self._connect()
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batches = [first]
                stop = False
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    batches.append(more)
                self._write(conn, batches)
                if stop:
                    return
        finally:
            conn.close()

    def _write(self, conn: sqlite3.Connection, batches: list[_Batch]) -> None:
        error: BaseException | None = None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for batch in batches:
                for sql, args in batch.statements:
                    conn.execute(sql, args)
            conn.execute("COMMIT")
        except BaseException as exc:  # reported to every waiting writer, never swallowed
            error = exc
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone at interpreter exit
            self._loop.call_soon_threadsafe(self._committed, batches, error)

    def _committed(self, batches: list[_Batch], error: BaseException | None) -> None:
        for batch in batches:
            for change in batch.changes:
                if error is None:
                    self._publish(change)
                else:  # lost write: unblock readers; the writer gets the error
                    self.committed_rv = max(self.committed_rv, change.rv)
            if batch.future is not None and not batch.future.done():
                if error is None:
                    batch.future.set_result(None)
                else:
                    batch.future.set_exception(RuntimeError(f"storage write failed: {error}"))
        self._wake_settled()
        if len(self.history) > self.max_history:
            drop_to = self.history[len(self.history) - self.max_history // 2 - 1].rv
            self.compact(drop_to)

    async def settled(self) -> None:
        """Wait until every write assigned so far is durable (reads never show un-acked data)."""
        if self.committed_rv >= self.current_rv or self._loop is None:
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._settle_waiters.append((self.current_rv, future))
        await future

    def _wake_settled(self) -> None:
        waiting = []
        for target, future in self._settle_waiters:
            if self.committed_rv >= target:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((target, future))
        self._settle_waiters = waiting

    def _publish(self, change: Change) -> None:
        self.committed_rv = change.rv
        self.history.append(change)
        for watcher in self.watchers.get(change.bucket, ()):
            watcher.queue.put_nowait(change)

    # ---- watch history ---------------------------------------------------------------------

    def compact(self, upto: int | None = None) -> int:
        """Forget watch history up to `upto` (default: everything committed). Returns it."""
        target = self.committed_rv if upto is None else min(upto, self.committed_rv)
        if target <= self.compacted_rv:
            return self.compacted_rv
        while self.history and self.history[0].rv <= target:
            self.history.popleft()
        self.compacted_rv = target
        self._queue.put(
            _Batch(
                [
                    ("DELETE FROM changes WHERE rv <= ?", (target,)),
                    ("INSERT OR REPLACE INTO meta VALUES ('compacted_rv', ?)", (target,)),
                ],
                [],
                None,
            )
        )
        return target

    def subscribe(self, bucket: str, since: int | None) -> tuple[Watcher, list[Change]]:
        """Register a watcher; with `since`, also return the history after it (410 if gone)."""
        replay: list[Change] = []
        if since is not None:
            if since < self.compacted_rv:
                raise gone(f"too old resource version: {since} ({self.compacted_rv})")
            replay = [c for c in self.history if c.rv > since and c.bucket == bucket]
        watcher = Watcher(bucket)
        self.watchers[bucket].add(watcher)
        return watcher, replay

    def unsubscribe(self, watcher: Watcher) -> None:
        self.watchers[watcher.bucket].discard(watcher)

"""The application's streaming write to a FeatureView's online store (Feast's push).

A model served from Feast reads each entity's features from the online store at request
time, and was trained on the rows a point-in-time join saw: for a label at time ``T``, the
newest row *created* by ``T`` (``components/build_training_set``). The two agree only if the
online store holds a row from the moment it is created. A scheduled backfill alone cannot do
that: it materializes minutes late, and a busy user's features change every second. So the
traffic generator, playing the application, pushes the FeatureView's features of the events
it serves to the online store, and only then stamps the same rows' created time and appends
them to the lake (``traffic.py``: ``flush_lake``), as Feast's push sources do for streams.

The FeatureView's scheduled incremental backfill still materializes the lake to the online
store, and Feast's SQLite store overwrites whatever it holds with what it writes, newer or
not: a materialization that read the lake before the newest push would put an older row
back, and serve it until the entity's next push. So before writing, the push makes the
view's SQLite table keep the newest row per entity, whoever writes (a trigger that ignores an
update to an older event time) — what Feast's Redis store does itself.

The features are computed with the FeatureView's own SQL, transpiled and run by DuckDB as
the embedded backfill runs it (``components/spark_feature_backfill/duckdb_backfill.py``), so
a pushed value is the value the offline store gets for the same event.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from components.build_training_set.pit_duckdb import DUCKDB_TYPES, connect
from components.engines import transpile
from components.spark_feature_backfill.definition import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    FeatureViewDefinition,
    parse_feature_view,
)

if TYPE_CHECKING:  # importing it imports feast (seconds): done where the store is opened
    from components.feast_apply_materialize.feast_objects import FeastStoreConfig


class OnlinePush:
    """``push(events)``: the FeatureView's features of raw source events (each entity's
    newest), written to its Feast online store."""

    def __init__(
        self, name: str, spec: Mapping[str, Any], store: FeastStoreConfig, store_api: Any = None
    ) -> None:
        self.definition: FeatureViewDefinition = parse_feature_view({**spec, "name": name})
        if len(self.definition.entities) != 1:
            raise ValueError(f"FeatureView {name!r}: pushing needs one join key")
        self.config = store
        self._store = store_api  # a FeatureStore; opened on the first push when None
        self._sql = self._features_sql(transpile(self.definition.transformation.sql))

    def _features_sql(self, transformation: str) -> str:
        """The transformation's rows with the columns and types the offline store has."""
        d = self.definition
        entity = d.entities[0]
        columns = [
            f'CAST("{entity.join_key}" AS {DUCKDB_TYPES[entity.dtype]}) AS "{entity.join_key}"',
            f'CAST("{d.source.timestamp_field}" AS TIMESTAMPTZ) AS {EVENT_TIMESTAMP}',
            *(f'CAST("{f.name}" AS {DUCKDB_TYPES[f.dtype]}) AS "{f.name}"' for f in d.features),
        ]
        return f"SELECT {', '.join(columns)} FROM ({transformation})"

    def features(self, events: pd.DataFrame) -> pd.DataFrame:
        """The FeatureView's rows of ``events`` (raw source rows), one per event."""
        created = self.definition.source.created_timestamp_field
        if created and created not in events.columns:
            # Pushed before the lake stamps it; the SQL may still select it (not a feature).
            events = events.assign(**{created: events[self.definition.source.timestamp_field]})
        con = connect(threads=1)
        try:
            con.register("source", events)
            frame: pd.DataFrame = con.execute(self._sql).df()
        finally:
            con.close()
        return frame

    def newest(self, events: pd.DataFrame) -> pd.DataFrame:
        """Each entity's newest row of ``events`` (raw source rows)."""
        key = self.definition.entities[0].join_key
        rows = self.features(events)
        newest = rows.sort_values(EVENT_TIMESTAMP, kind="stable").drop_duplicates(key, keep="last")
        return newest.reset_index(drop=True)

    def keep_newest(self) -> None:
        """SQLite: updates to an older event time are ignored (Feast's own table, created when
        the FeatureView was applied; idempotent, so a re-created table gets it again)."""
        if self.config.online_store != "sqlite":
            return  # Feast's Redis store keeps the newer event time itself
        path = self.config.repo_config().online_store.path
        table = f"{self.config.project}_{self.definition.view_name}"
        con = sqlite3.connect(path, timeout=30)
        try:
            with con:
                con.execute(
                    f'CREATE TRIGGER IF NOT EXISTS "{table}_keep_newest" BEFORE UPDATE ON '
                    f'"{table}" WHEN NEW.event_ts < OLD.event_ts BEGIN SELECT RAISE(IGNORE); END'
                )
        finally:
            con.close()

    def __call__(self, events: pd.DataFrame) -> int:
        """Push; returns the rows written (entities). Raises what the store raises."""
        if events.empty:
            return 0
        rows = self.newest(events)
        if self._store is None:
            from components.feast_apply_materialize.feast_objects import open_store

            self._store = open_store(self.config)
        self.keep_newest()
        # Feast's online row carries a created time too; the push's is the event's own.
        written = rows.assign(**{CREATED_TIMESTAMP: rows[EVENT_TIMESTAMP]})
        self._store.write_to_online_store(self.definition.view_name, written)
        return len(written)

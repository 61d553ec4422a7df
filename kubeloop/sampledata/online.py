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
not: a materialization that read the lake before the newest push puts an older row back. So
every push writes each entity's newest pushed row again (one row per entity the traffic has
served, bounded by the world's users), which undoes such a regression at the next push.

The features are computed with the FeatureView's own SQL, transpiled and run by DuckDB as
the embedded backfill runs it (``components/spark_feature_backfill/duckdb_backfill.py``), so
a pushed value is the value the offline store gets for the same event.
"""

from __future__ import annotations

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
    """``push(events)``: the FeatureView's features of raw source events, written to its
    Feast online store (with every entity's newest pushed row). Not thread-safe: one writer
    (the traffic's lake thread)."""

    def __init__(
        self, name: str, spec: Mapping[str, Any], store: FeastStoreConfig, store_api: Any = None
    ) -> None:
        self.definition: FeatureViewDefinition = parse_feature_view({**spec, "name": name})
        if len(self.definition.entities) != 1:
            raise ValueError(f"FeatureView {name!r}: pushing needs one join key")
        self.config = store
        self._store = store_api  # a FeatureStore; opened on the first push when None
        self._latest: pd.DataFrame | None = None
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
        con = connect(threads=1)
        try:
            con.register("source", events)
            frame: pd.DataFrame = con.execute(self._sql).df()
        finally:
            con.close()
        return frame

    def newest(self, events: pd.DataFrame) -> pd.DataFrame:
        """Every entity's newest row so far, these events included (kept for the next push)."""
        key = self.definition.entities[0].join_key
        rows = self.features(events)
        combined = rows if self._latest is None else pd.concat([self._latest, rows])
        latest = combined.sort_values(EVENT_TIMESTAMP, kind="stable").drop_duplicates(
            key, keep="last"
        )
        self._latest = latest.reset_index(drop=True)
        return self._latest

    def __call__(self, events: pd.DataFrame) -> int:
        """Push; returns the rows written (entities). Raises what the store raises."""
        if events.empty:
            return 0
        rows = self.newest(events)
        if self._store is None:
            from components.feast_apply_materialize.feast_objects import open_store

            self._store = open_store(self.config)
        # Feast's online row carries a created time too; the push's is the event's own.
        written = rows.assign(**{CREATED_TIMESTAMP: rows[EVENT_TIMESTAMP]})
        self._store.write_to_online_store(self.definition.view_name, written)
        return len(written)

"""Point-in-time join in DuckDB, with exactly ``pit_spark.py``'s semantics (see ``impl.py``).

Per FeatureView: the offline rows are grouped per (entity, visibility instant) where the instant
is ``greatest(event_ts, created_ts)`` — the moment a row became both true and known — and a
running maximum over that order gives, at every instant, the visible row that Spark's
``max(struct(event_ts, created_ts, values…))`` picks: the greatest event timestamp (ties:
created timestamp, then values). The struct order is computed once per entity as a rank
(``row_number`` over event, created, values), so the running maximum compares integers. An
``ASOF LEFT JOIN`` then hands each label row the running maximum at the last instant ``<=`` its
time, and the TTL is applied to that row's event timestamp.

Two traps this avoids, each a named case in the differential tests:

* an ASOF join straight onto the feature rows (no running max) picks the latest-*visible* row,
  not the one with the greatest event time: a late row with an old event time would win;
* DuckDB orders a NULL field inside a struct as the *greatest* value, Spark as the smallest
  (https://duckdb.org/docs/stable/sql/data_types/struct#comparison-and-ordering,
  Spark ``InterpretedOrdering``: nulls first ascending). So the rank orders every field
  ``NULLS FIRST``, as Spark orders a NULL inside a struct.

Times are compared as microseconds since the epoch (what Spark's timestamps hold).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import duckdb
import pandas as pd

from components.build_training_set.spec import FeatureRequest, LabelSpec
from components.engines import duckdb_parquet
from components.spark_feature_backfill.definition import CREATED_TIMESTAMP, EVENT_TIMESTAMP

DUCKDB_TYPES: dict[str, str] = {
    "int32": "INTEGER",
    "int64": "BIGINT",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
}
_TS_US = "__kubeloop_ts_us"
_INSTANT = "__kubeloop_instant"
_E = "__kubeloop_event_us"
_C = "__kubeloop_created_us"
_RANK = "__kubeloop_rank"


def connect(memory_limit_mb: int | None = None, threads: int | None = None) -> Any:
    """An in-memory connection with UTC session time (as Spark's ``session.timeZone``)."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit_mb:
        con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def pit_join_duckdb(
    con: Any,
    labels: pd.DataFrame | str,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
) -> Any:
    """Label rows (all kept, duplicates included) with one column per requested feature.

    ``labels``: a DataFrame or a Parquet path. Returns a DuckDB relation (unordered).
    """
    if isinstance(labels, pd.DataFrame):
        con.register("__kubeloop_labels_input", labels)
        source = "__kubeloop_labels_input"
    else:
        source = duckdb_parquet(con, labels, hive_partitioning=False)
    ts = _ident(label_spec.timestamp_field)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __kubeloop_labels AS SELECT *, "
        f"epoch_us(CAST({ts} AS TIMESTAMPTZ)) AS {_TS_US} FROM {source}"
    )
    first, last = con.execute(
        f"SELECT min({_TS_US}), max({_TS_US}) FROM __kubeloop_labels"
    ).fetchone()
    current = "__kubeloop_labels"
    for index, request in enumerate(requests):
        view = f"__kubeloop_best_{index}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {view} AS {_running_best_sql(con, request, first, last)}"
        )
        joined = f"__kubeloop_joined_{index}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {joined} AS {_join_sql(current, view, request)}")
        current = joined
    return con.sql(f"SELECT * EXCLUDE ({_TS_US}) FROM {current}")


def _running_best_sql(
    con: Any, request: FeatureRequest, first: int | None, last: int | None
) -> str:
    keys = [_ident(k) for k in request.feature_view.join_keys]
    e_us = f"epoch_us(CAST({_ident(EVENT_TIMESTAMP)} AS TIMESTAMPTZ))"
    c_us = f"epoch_us(CAST({_ident(CREATED_TIMESTAMP)} AS TIMESTAMPTZ))"
    values = [
        f"CAST({_ident(feature)} AS {DUCKDB_TYPES[request.dtype_of(feature)]}) AS {_value(i)}"
        for i, feature in enumerate(request.features)
    ]
    # Pruning only (as in pit_spark): a row visible after the last label cannot be chosen, and
    # a row expired for the first label is expired for all, and so is anything older.
    where = [f"{k} IS NOT NULL" for k in keys]
    where.append(f"{_INSTANT} <= " + (str(last) if last is not None else "NULL"))
    ttl = request.feature_view.ttl
    if ttl and first is not None:
        where.append(f"{_E} > {first - _micros(ttl)}")
    path = request.offline_path.rstrip("/")
    # greatest() skips NULLs in both engines: a row without created time is visible at its event
    # time; one with neither is never visible (instant NULL fails the filter, as in Spark).
    rows = (
        f"SELECT * FROM (SELECT {', '.join(keys)}, greatest({e_us}, {c_us}) AS {_INSTANT}, "
        f"{e_us} AS {_E}, {c_us} AS {_C}, {', '.join(values)} "
        f"FROM {duckdb_parquet(con, path, hive_partitioning=False)}) WHERE {' AND '.join(where)}"
    )
    # Spark's max(struct(event, created, values...)) as a rank: within an entity, every row's
    # place in that order (NULLS FIRST, as Spark orders a NULL field inside a struct). Ranks are
    # plain integers, so the running maximum below compares one BIGINT per row instead of a
    # struct (~4x faster at 10M rows than max(struct) over the window).
    order = [f"{_E} NULLS FIRST", f"{_C} NULLS FIRST"]
    order += [f"{_value(i)} NULLS FIRST" for i in range(len(request.features))]
    ranked = (
        f"SELECT *, row_number() OVER (PARTITION BY {', '.join(keys)} "
        f"ORDER BY {', '.join(order)}) AS {_RANK} FROM ({rows})"
    )
    grouped = (
        f"SELECT {', '.join(keys)}, {_INSTANT}, max({_RANK}) AS {_RANK} FROM ranked GROUP BY ALL"
    )
    running = (
        f"SELECT {', '.join(keys)}, {_INSTANT}, max({_RANK}) OVER (PARTITION BY {', '.join(keys)} "
        f"ORDER BY {_INSTANT} ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS {_RANK} "
        f"FROM ({grouped})"
    )
    on = " AND ".join(f"b.{k} = r.{k}" for k in [*keys, _RANK])
    chosen = ", ".join(f"r.{_value(i)}" for i in range(len(request.features)))
    return (
        f"WITH ranked AS MATERIALIZED ({ranked}) "
        f"SELECT {', '.join(f'b.{k}' for k in keys)}, b.{_INSTANT}, r.{_E}, {chosen} "
        f"FROM ({running}) b JOIN ranked r ON {on}"
    )


def _join_sql(labels: str, best: str, request: FeatureRequest) -> str:
    keys = request.feature_view.join_keys
    on = " AND ".join(f"l.{_ident(k)} = r.{_ident(k)}" for k in keys)
    ttl = request.feature_view.ttl
    alive = f"r.{_E} IS NOT NULL"
    if ttl:
        alive += f" AND r.{_E} > l.{_TS_US} - {_micros(ttl)}"
    columns = [
        f"CASE WHEN {alive} THEN r.{_value(i)} END AS {_ident(column)}"
        for i, column in enumerate(request.output_columns)
    ]
    return (
        f"SELECT l.*, {', '.join(columns)} FROM {labels} l "
        f"ASOF LEFT JOIN {best} r ON {on} AND l.{_TS_US} >= r.{_INSTANT}"
    )


def _micros(duration: timedelta) -> int:
    return duration // timedelta(microseconds=1)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _value(index: int) -> str:
    return f"__kubeloop_v{index}"

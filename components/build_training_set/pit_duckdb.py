"""Point-in-time join in DuckDB, with exactly ``pit_spark.py``'s semantics (see ``impl.py``).

Per FeatureView: the offline rows are grouped per (entity, visibility instant) where the instant
is ``greatest(event_ts, created_ts)`` — the moment a row became both true and known — and a
running ``max(struct(event_ts, created_ts, values…))`` over that order gives, at every instant,
the visible row with the greatest event timestamp (ties: created timestamp, then values). An
``ASOF LEFT JOIN`` then hands each label row the running maximum at the last instant ``<=`` its
time, and the TTL is applied to that row's event timestamp.

Two traps this avoids, each a named case in the differential tests:

* an ASOF join straight onto the feature rows (no running max) picks the latest-*visible* row,
  not the one with the greatest event time: a late row with an old event time would win;
* DuckDB orders a NULL field inside a struct as the *greatest* value, Spark as the smallest
  (https://duckdb.org/docs/stable/sql/data_types/struct#comparison-and-ordering,
  Spark ``InterpretedOrdering``: nulls first ascending). So every field goes into the struct
  behind an ``IS NOT NULL`` flag: (false, NULL) sorts below (true, anything), as in Spark.

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
_ROW = "__kubeloop_row"


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
    fields = [f"en := {e_us} IS NOT NULL", f"e := {e_us}", f"cn := {c_us} IS NOT NULL"]
    fields.append(f"c := {c_us}")
    for i, feature in enumerate(request.features):
        value = f"CAST({_ident(feature)} AS {DUCKDB_TYPES[request.dtype_of(feature)]})"
        fields += [f"n{i} := {value} IS NOT NULL", f"v{i} := {value}"]
    # Pruning only (as in pit_spark): a row visible after the last label cannot be chosen, and
    # a row expired for the first label is expired for all, and so is anything older.
    where = [f"{k} IS NOT NULL" for k in keys]
    where.append("instant <= " + (str(last) if last is not None else "NULL"))
    ttl = request.feature_view.ttl
    if ttl and first is not None:
        where.append(f"best.e > {first - _micros(ttl)}")
    path = request.offline_path.rstrip("/")
    rows = (
        f"SELECT {', '.join(keys)}, greatest({e_us}, {c_us}) AS instant, "
        f"struct_pack({', '.join(fields)}) AS best "
        f"FROM {duckdb_parquet(con, path, hive_partitioning=False)} "
    )
    # greatest() skips NULLs in both engines: a row without created time is visible at its event
    # time; one with neither is never visible (instant NULL fails the filter, as in Spark).
    rows = f"SELECT * FROM ({rows}) WHERE {' AND '.join(where)}"
    grouped = f"SELECT {', '.join(keys)}, instant, max(best) AS best FROM ({rows}) GROUP BY ALL"
    return (
        f"SELECT {', '.join(keys)}, instant, max(best) OVER (PARTITION BY {', '.join(keys)} "
        f"ORDER BY instant ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS best "
        f"FROM ({grouped})"
    )


def _join_sql(labels: str, best: str, request: FeatureRequest) -> str:
    keys = request.feature_view.join_keys
    on = " AND ".join(f"l.{_ident(k)} = r.{_ident(k)}" for k in keys)
    ttl = request.feature_view.ttl
    alive = "r.best.en"
    if ttl:
        alive += f" AND r.best.e > l.{_TS_US} - {_micros(ttl)}"
    columns = [
        f"CASE WHEN {alive} THEN r.best.v{i} END AS {_ident(column)}"
        for i, column in enumerate(request.output_columns)
    ]
    return (
        f"SELECT l.*, {', '.join(columns)} FROM {labels} l "
        f"ASOF LEFT JOIN {best} r ON {on} AND l.{_TS_US} >= r.instant"
    )


def _micros(duration: timedelta) -> int:
    return duration // timedelta(microseconds=1)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

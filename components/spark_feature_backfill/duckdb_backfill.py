"""The backfill of ``impl.py`` on DuckDB: same inputs, same checks, same offline-store layout.

The transformation SQL is Spark SQL (one dialect for users, whatever engine runs it); it is
transpiled to DuckDB's dialect with sqlglot (``components.engines.transpile``). SQL that
sqlglot cannot carry over faithfully is refused with a reason naming ``spec.engine: spark``
rather than run with a different meaning.

Layout and idempotence as in ``impl.py``: ``date=YYYY-MM-DD`` directories of Parquet files
(microsecond UTC timestamps, as Spark writes them); every date the window touches is replaced,
rows of a partially covered edge day outside the window are carried over.
"""

from __future__ import annotations

import posixpath
import tempfile
import uuid
from datetime import datetime
from typing import Any

from components import uris
from components.build_training_set.pit_duckdb import DUCKDB_TYPES, connect
from components.engines import TranspileError, duckdb_parquet, transpile
from components.spark_feature_backfill.definition import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    PARTITION_COLUMN,
    FeatureViewDefinition,
    parse_feature_view,
    parse_window,
)
from components.uris import duckdb_path

_INTS = ("TINYINT", "SMALLINT", "INTEGER")
# DuckDB source types that convert to a declared dtype without losing meaning (as _COMPATIBLE
# in impl.py for Spark's types).
_COMPATIBLE: dict[str, tuple[str, ...]] = {
    "int32": _INTS,
    "int64": (*_INTS, "BIGINT"),
    "float32": ("FLOAT",),
    "float64": (*_INTS, "BIGINT", "FLOAT", "DOUBLE", "DECIMAL"),
    "string": ("VARCHAR",),
    "bool": ("BOOLEAN",),
}
_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "DATE")


def backfill_duckdb(
    feature_view: dict[str, Any] | FeatureViewDefinition,
    start: str | datetime,
    end: str | datetime,
    output_path: str,
    memory_limit_mb: int | None = None,
    con: Any = None,
) -> int:
    """Backfill ``[start, end)`` into ``output_path`` (a URI or a local path) with DuckDB;
    returns rows written."""
    from components.spark_feature_backfill.impl import (
        BackfillError,
        DuckDBSqlError,
        check_source_exists,
    )

    definition = parse_feature_view(feature_view)
    window_start, window_end = parse_window(start, end, BackfillError)
    check_source_exists(definition.source.path)
    try:
        sql = transpile(definition.transformation.sql)
    except TranspileError as err:
        raise BackfillError(str(err)) from None
    own = con is None
    con = con or connect(memory_limit_mb=memory_limit_mb)
    try:
        _source_view(con, definition, BackfillError)
        try:
            con.execute(f"CREATE OR REPLACE TEMP VIEW __kubeloop_transformed AS {sql}")
            described = con.execute("DESCRIBE __kubeloop_transformed").fetchall()
        except Exception as err:  # duckdb.Error: binder/parser errors name the column
            raise DuckDBSqlError(
                f"SQL error in transformation.sql (DuckDB, transpiled from Spark SQL): "
                f"{str(err).splitlines()[0]}; if the SQL runs on Spark, set spec.engine: spark"
            ) from None
        schema = {row[0]: str(row[1]) for row in described}
        _check_columns(schema, definition, BackfillError)
        con.execute(
            "CREATE OR REPLACE TEMP TABLE __kubeloop_rows AS "
            + _offline_rows_sql(definition, schema, window_start, window_end)
        )
        written = con.execute("SELECT count(*) FROM __kubeloop_rows").fetchone()[0]
        _carry_edge_days(con, output_path, window_start, window_end)
        _write_partitions(con, output_path)
        return int(written)
    finally:
        if own:
            con.close()


def _source_view(con: Any, definition: FeatureViewDefinition, error: type[ValueError]) -> None:
    path, fmt = definition.source.path, definition.source.format
    if fmt == "csv":
        reader = f"read_csv({_literal(duckdb_path(con, path))}, header = true)"
    else:
        # A directory as Spark reads it: every visible Parquet file below, key=value folders
        # as columns (hidden files, such as a writer's temp file, skipped as Spark does).
        reader = duckdb_parquet(con, path, hive_partitioning=uris.isdir(path))
    try:
        con.execute(f"CREATE OR REPLACE TEMP VIEW source AS SELECT * FROM {reader}")
        columns = [row[0] for row in con.execute("DESCRIBE source").fetchall()]
    except Exception as err:
        raise error(
            f"cannot read source.path {path!r} as {fmt}: {str(err).splitlines()[0]}"
        ) from None
    if definition.source.timestamp_field not in columns:
        raise error(
            f"source.timestampField {definition.source.timestamp_field!r} is not a column of "
            f"{path} (columns: {columns})"
        )


def _check_columns(
    schema: dict[str, str], definition: FeatureViewDefinition, error: type[ValueError]
) -> None:
    columns = list(schema)
    required = [*definition.join_keys, definition.source.timestamp_field, *definition.feature_names]
    missing = [c for c in required if c not in columns]
    if missing:
        raise error(
            f"transformation.sql output lacks declared column(s) {missing}; it has {columns}"
        )
    problems = []
    for feature in definition.features:
        if not _compatible(schema[feature.name], feature.dtype):
            problems.append(
                f"feature {feature.name!r} is declared {feature.dtype} but the SQL yields "
                f"{schema[feature.name]}"
            )
    for entity in definition.entities:
        if not _compatible(schema[entity.join_key], entity.dtype):
            problems.append(
                f"entity join key {entity.join_key!r} is declared {entity.value_type} "
                f"but the SQL yields {schema[entity.join_key]}"
            )
    ts_type = schema[definition.source.timestamp_field]
    if not ts_type.startswith(_TIMESTAMPS) and ts_type != "VARCHAR":
        problems.append(
            f"timestamp field {definition.source.timestamp_field!r} has type {ts_type}, "
            "not a timestamp"
        )
    if problems:
        raise error("wrong dtypes: " + "; ".join(problems))


def _compatible(actual: str, dtype: str) -> bool:
    return actual.split("(")[0] in _COMPATIBLE[dtype]


def _offline_rows_sql(
    definition: FeatureViewDefinition, schema: dict[str, str], start: datetime, end: datetime
) -> str:
    event = f"CAST({_ident(definition.source.timestamp_field)} AS TIMESTAMPTZ)"
    created_field = definition.source.created_timestamp_field
    if created_field and created_field in schema:
        created = f"coalesce(CAST({_ident(created_field)} AS TIMESTAMPTZ), {event})"
    else:
        created = event
    columns = [
        *(
            f"CAST({_ident(e.join_key)} AS {DUCKDB_TYPES[e.dtype]}) AS {_ident(e.join_key)}"
            for e in definition.entities
        ),
        f"{event} AS {EVENT_TIMESTAMP}",
        f"{created} AS {CREATED_TIMESTAMP}",
        *(
            f"CAST({_ident(f.name)} AS {DUCKDB_TYPES[f.dtype]}) AS {_ident(f.name)}"
            for f in definition.features
        ),
    ]
    rows = f"SELECT {', '.join(columns)} FROM __kubeloop_transformed"
    return (
        f"SELECT *, strftime({EVENT_TIMESTAMP}, '%Y-%m-%d') AS {PARTITION_COLUMN} "
        f"FROM ({rows}) WHERE {_in_window(start, end)}"
    )


def _carry_edge_days(con: Any, output_path: str, start: datetime, end: datetime) -> None:
    """Existing rows of partially covered edge days outside the window join the new rows."""
    edge_dates = {
        moment.strftime("%Y-%m-%d")
        for moment in (start, end)
        if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0)
    }
    fs, out = uris.filesystem(output_path)
    files = [
        duckdb_path(con, uris.as_uri(fs, f))
        for date in sorted(edge_dates)
        for f in sorted(fs.glob(posixpath.join(out, f"{PARTITION_COLUMN}={date}", "*.parquet")))
    ]
    if not files:
        return
    listed = ", ".join(_literal(f) for f in files)
    columns = [row[0] for row in con.execute("DESCRIBE __kubeloop_rows").fetchall()]
    stored = [c for c in columns if c != PARTITION_COLUMN]
    con.execute(
        f"INSERT INTO __kubeloop_rows SELECT {', '.join(_ident(c) for c in stored)}, "
        f"strftime({EVENT_TIMESTAMP}, '%Y-%m-%d') FROM read_parquet([{listed}], "
        f"hive_partitioning = false, union_by_name = true) "
        f"WHERE NOT ({_in_window(start, end)})"
    )


def _write_partitions(con: Any, output_path: str) -> None:
    """Each written date directory replaces the old one (Spark's dynamic partition overwrite).

    DuckDB writes to a hidden staging directory beside them (on the same filesystem, so each
    move is a rename where the filesystem has one)."""
    fs, out = uris.filesystem(output_path)
    fs.makedirs(out, exist_ok=True)
    staging = posixpath.join(out, f".kubeloop-staging-{uuid.uuid4().hex}")
    written = posixpath.join(staging, "rows")
    fs.makedirs(staging, exist_ok=True)
    try:
        _copy_partitions(con, fs, written)
        parts = sorted(fs.ls(written, detail=False)) if fs.exists(written) else []
        for part in parts:
            target = posixpath.join(out, posixpath.basename(part.rstrip("/")))
            if fs.exists(target):
                fs.rm(target, recursive=True)
            _move_directory(fs, part, target)
    finally:
        if fs.exists(staging):
            fs.rm(staging, recursive=True)


def _move_directory(fs: Any, source: str, target: str) -> None:
    """A local directory is renamed. An object store has no directories: its files are moved
    one by one (fsspec's recursive move also copies the directory's own key, which is not
    there)."""
    if uris.is_local(uris.as_uri(fs, source)):
        fs.mv(source, target, recursive=True)
        return
    for path in fs.find(source):
        fs.mv(path, posixpath.join(target, posixpath.relpath(path, source)))


def _copy_partitions(con: Any, fs: Any, written: str) -> None:
    """The rows as Parquet date directories under ``written``. DuckDB's partitioned COPY
    lists its target directory first, which an object store (s3://, gs://), having no
    directories, reports missing: there the files are written to a local scratch directory
    and uploaded."""
    options = f"(FORMAT parquet, PARTITION_BY ({PARTITION_COLUMN}), FILENAME_PATTERN 'part-{{i}}')"
    if uris.is_local(uris.as_uri(fs, written)):
        con.execute(f"COPY __kubeloop_rows TO {_literal(written)} {options}")
        return
    with tempfile.TemporaryDirectory(prefix="kubeloop-backfill-") as scratch:
        con.execute(f"COPY __kubeloop_rows TO {_literal(scratch + '/rows')} {options}")
        fs.put(scratch + "/rows/", written, recursive=True)


def _in_window(start: datetime, end: datetime) -> str:
    return (
        f"{EVENT_TIMESTAMP} >= TIMESTAMPTZ '{start.isoformat()}' "
        f"AND {EVENT_TIMESTAMP} < TIMESTAMPTZ '{end.isoformat()}'"
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

"""Spark backfill of one FeatureView into the offline store.

Steps: read the source (Parquet or CSV) as temp view ``source``, run the FeatureView's Spark
SQL, check the output carries the join keys, the timestamp field and every declared feature
with a compatible type, keep rows whose event timestamp is in ``[start, end)``, and write them
partitioned by UTC date (layout in ``definition.py``).

Re-running a window is idempotent: every date partition the window touches is replaced
(dynamic partition overwrite), and rows of a partially covered first/last day that lie outside
the window are carried over, so incremental windows that do not align to midnight lose nothing.

Without ``createdTimestampField`` a row is taken to be known at its event time
(``created_timestamp = event_timestamp``).

``engine`` (the FeatureView's ``spec.engine``): the same backfill runs on DuckDB
(``duckdb_backfill.py``, one process) or on Spark; ``auto`` picks DuckDB while the input fits
one node (``components/engines.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pyspark.errors import PySparkException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components import uris
from components.engines import (
    DEFAULT_MEMORY_BUDGET_MB,
    choose_engine,
    local_input_bytes,
    transpiles,
)
from components.spark_feature_backfill.definition import (
    CREATED_TIMESTAMP,
    EVENT_TIMESTAMP,
    PARTITION_COLUMN,
    FeatureViewDefinition,
    parse_feature_view,
    parse_window,
)
from components.spark_feature_backfill.session import spark_session

SPARK_TYPES: dict[str, T.DataType] = {
    "int32": T.IntegerType(),
    "int64": T.LongType(),
    "float32": T.FloatType(),
    "float64": T.DoubleType(),
    "string": T.StringType(),
    "bool": T.BooleanType(),
}
# Source Spark types that convert to a declared dtype without losing meaning.
_COMPATIBLE: dict[str, tuple[type[T.DataType], ...]] = {
    "int32": (T.ByteType, T.ShortType, T.IntegerType),
    "int64": (T.ByteType, T.ShortType, T.IntegerType, T.LongType),
    "float32": (T.FloatType,),
    "float64": (
        T.ByteType,
        T.ShortType,
        T.IntegerType,
        T.LongType,
        T.FloatType,
        T.DoubleType,
        T.DecimalType,
    ),
    "string": (T.StringType, T.VarcharType, T.CharType),
    "bool": (T.BooleanType,),
}


class BackfillError(ValueError):
    """The backfill cannot run on this input; the message names the problem."""


class DuckDBSqlError(BackfillError):
    """DuckDB rejected the transpiled SQL: the SQL is wrong, or the translation is."""


def run_backfill(
    feature_view: dict[str, Any],
    start: str | datetime,
    end: str | datetime,
    output_path: str,
    spark_master: str = "local[*]",
    spark_conf: Mapping[str, str] | None = None,
    engine: str = "auto",
    memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB,
) -> int:
    """Entry point for the KFP component: pick the engine, backfill, return rows written."""
    definition = parse_feature_view(feature_view)
    window = parse_window(start, end, BackfillError)
    check_source_exists(definition.source.path)
    # Sized when local; a remote input is not assumed to fit one node (auto picks Spark). Either
    # engine writes any URI (DuckDB through fsspec, Spark through Hadoop's filesystems).
    size = local_input_bytes([definition.source.path])
    try:
        chosen, _ = choose_engine(
            engine,
            spark_master,
            size,
            memory_budget_mb,
            transpiles(definition.transformation.sql),
        )
    except ValueError as err:
        raise BackfillError(str(err)) from None
    if chosen == "duckdb":
        from components.spark_feature_backfill.duckdb_backfill import backfill_duckdb

        try:
            return backfill_duckdb(definition, window[0], window[1], output_path, memory_budget_mb)
        except DuckDBSqlError:
            if engine != "auto":
                raise
            # auto: Spark is the reference for Spark SQL; it runs the SQL or names the error.
    session = spark_session(
        spark_master, spark_conf, app_name=f"kubeloop-backfill-{definition.name}"
    )
    return backfill(session, definition, window[0], window[1], output_path)


def backfill(
    spark: SparkSession,
    feature_view: dict[str, Any] | FeatureViewDefinition,
    start: str | datetime,
    end: str | datetime,
    output_path: str,
) -> int:
    """Backfill ``[start, end)`` of ``feature_view`` into ``output_path``; returns rows written."""
    definition = parse_feature_view(feature_view)
    window_start, window_end = parse_window(start, end, BackfillError)
    check_source_exists(definition.source.path)
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    transformed = transform(spark, definition)
    rows = offline_rows(transformed, definition, window_start, window_end)
    kept = _rows_outside_window_on_edge_days(
        spark, output_path, rows.schema, window_start, window_end
    )
    if kept is not None:
        rows = rows.unionByName(kept)
    rows = rows.persist()
    try:
        written = rows.filter(_in_window(window_start, window_end)).count()
        (
            rows.write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy(PARTITION_COLUMN)
            .parquet(uris.spark_path(output_path))
        )
    finally:
        rows.unpersist()
    return written


def transform(spark: SparkSession, definition: FeatureViewDefinition) -> DataFrame:
    """Source → ``source`` temp view → the FeatureView's SQL, with errors that name the problem."""
    source = _read_source(spark, definition)
    if definition.source.timestamp_field not in source.columns:
        raise BackfillError(
            f"source.timestampField {definition.source.timestamp_field!r} is not a column of "
            f"{definition.source.path} (columns: {source.columns})"
        )
    source.createOrReplaceTempView("source")
    try:
        result = spark.sql(definition.transformation.sql)
        columns = result.columns  # forces analysis, so SQL errors surface here
    except PySparkException as err:
        raise BackfillError(
            f"Spark SQL error in transformation.sql: {_spark_message(err)}"
        ) from None
    required = [*definition.join_keys, definition.source.timestamp_field, *definition.feature_names]
    missing = [c for c in required if c not in columns]
    if missing:
        raise BackfillError(
            f"transformation.sql output lacks declared column(s) {missing}; it has {columns}"
        )
    _check_types(result, definition)
    return result


def offline_rows(
    transformed: DataFrame,
    definition: FeatureViewDefinition,
    start: datetime,
    end: datetime,
) -> DataFrame:
    """The offline-store schema, filtered to ``[start, end)``."""
    created_field = definition.source.created_timestamp_field
    event = F.col(definition.source.timestamp_field).cast("timestamp")
    if created_field and created_field in transformed.columns:
        created = F.coalesce(F.col(created_field).cast("timestamp"), event)
    else:
        created = event
    columns = [
        *(
            F.col(e.join_key).cast(SPARK_TYPES[e.dtype]).alias(e.join_key)
            for e in definition.entities
        ),
        event.alias(EVENT_TIMESTAMP),
        created.alias(CREATED_TIMESTAMP),
        *(F.col(f.name).cast(SPARK_TYPES[f.dtype]).alias(f.name) for f in definition.features),
    ]
    out = transformed.select(*columns).filter(_in_window(start, end))
    return out.withColumn(PARTITION_COLUMN, F.date_format(F.col(EVENT_TIMESTAMP), "yyyy-MM-dd"))


def _read_source(spark: SparkSession, definition: FeatureViewDefinition) -> DataFrame:
    path, fmt = definition.source.path, definition.source.format
    try:
        if fmt == "csv":
            reader = spark.read.option("header", "true").option("inferSchema", "true")
            return reader.csv(uris.spark_path(path))
        return spark.read.parquet(uris.spark_path(path))
    except PySparkException as err:
        raise BackfillError(
            f"cannot read source.path {path!r} as {fmt}: {_spark_message(err)}"
        ) from None


def _check_types(result: DataFrame, definition: FeatureViewDefinition) -> None:
    schema = {f.name: f.dataType for f in result.schema.fields}
    problems = []
    for feature in definition.features:
        actual = schema[feature.name]
        if not isinstance(actual, _COMPATIBLE[feature.dtype]):
            problems.append(
                f"feature {feature.name!r} is declared {feature.dtype} but the SQL yields {actual.simpleString()}"
            )
    for entity in definition.entities:
        actual = schema[entity.join_key]
        if not isinstance(actual, _COMPATIBLE[entity.dtype]):
            problems.append(
                f"entity join key {entity.join_key!r} is declared {entity.value_type} "
                f"but the SQL yields {actual.simpleString()}"
            )
    ts_type = schema[definition.source.timestamp_field]
    if not isinstance(ts_type, T.TimestampType | T.TimestampNTZType | T.DateType | T.StringType):
        problems.append(
            f"timestamp field {definition.source.timestamp_field!r} has type {ts_type.simpleString()}, "
            "not a timestamp"
        )
    if problems:
        raise BackfillError("wrong dtypes: " + "; ".join(problems))


def _rows_outside_window_on_edge_days(
    spark: SparkSession,
    output_path: str,
    schema: T.StructType,
    start: datetime,
    end: datetime,
) -> DataFrame | None:
    """Existing rows of partially covered edge days that fall outside the window.

    They are materialized (local checkpoint) so the overwrite does not read what it replaces.
    """
    edge_dates = {
        moment.strftime("%Y-%m-%d")
        for moment in (start, end)
        if (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0)
    }
    if not edge_dates or not _path_exists(spark, output_path):
        return None
    existing = spark.read.schema(schema).parquet(uris.spark_path(output_path))
    kept = existing.filter(F.col(PARTITION_COLUMN).isin(sorted(edge_dates))).filter(
        ~_in_window(start, end)
    )
    return kept.select(*schema.fieldNames()).localCheckpoint(eager=True)


def _in_window(start: datetime, end: datetime) -> Column:
    event = F.col(EVENT_TIMESTAMP)
    return (event >= F.lit(start)) & (event < F.lit(end))


def _path_exists(spark: SparkSession, path: str) -> bool:
    if _fsspec_knows(path):
        return uris.isdir(path)
    try:
        spark.read.parquet(uris.spark_path(path)).schema  # noqa: B018 - raises when absent
        return True
    except PySparkException:
        return False


def check_source_exists(path: str) -> None:
    if _fsspec_knows(path) and not uris.exists(path):
        raise BackfillError(f"source.path {path!r} does not exist")


def _fsspec_knows(path: str) -> bool:
    """Whether fsspec can open ``path`` here (s3:// without s3fs installed: only Spark can)."""
    try:
        uris.filesystem(path)
    except (ImportError, ValueError):
        return False
    return True


def _spark_message(err: PySparkException) -> str:
    text = str(err).strip()
    # Spark appends the whole JVM stack trace; the first paragraph says what went wrong.
    return text.split("\n\tat ")[0].split("\nJVM stacktrace:")[0].strip()

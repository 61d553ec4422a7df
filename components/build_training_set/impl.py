"""Training set = label events + point-in-time-correct features, split by time.

Point-in-time semantics (both paths, Feast and Spark, implement exactly these):

For each label row (entity keys, timestamp ``T``) and each requested FeatureView with TTL ``ttl``:

* candidates are the view's offline rows with the same join-key values whose event timestamp
  ``e`` satisfies ``T - ttl < e <= T`` (no TTL: ``e <= T``) **and** whose created timestamp
  ``c`` satisfies ``c <= T`` — a row created after the label time did not exist yet at ``T``
  (a late-arriving row), so it is invisible however old its event timestamp is;
* the chosen row is the candidate with the greatest ``e``; ties go to the greatest ``c``
  (rows equal in both are resolved by their feature values, greatest first — a total order so
  that both paths agree);
* no candidate → every feature of that view is null for the row;
* every label row is kept, including duplicate rows with the same keys and timestamp
  (Feast's file store drops these — issue 6787 — so the Feast path works around it, see
  ``pit_feast.py``);
* feature columns are named ``<view>__<feature>``; row order and dtypes are canonical
  (``spec.py``), so the two paths can be compared with ``DataFrame.equals``.

Then the rows are split by label time only (``split.py``): train, validation, test. Random
splits are rejected.

``method`` (the Experiment's ``spec.engine``): ``duckdb`` (running max + ``ASOF JOIN`` in one
process, ``pit_duckdb.py``), ``spark`` (sort-based as-of join; a cluster), ``feast`` (Feast
``get_historical_features``; kept for comparison) or ``auto``: DuckDB while the input fits the
single-node memory budget on a local Spark master, Spark otherwise (``components/engines.py``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel
from pyspark.errors import PySparkException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from components import uris
from components.build_training_set.pit_duckdb import connect, pit_join_duckdb
from components.build_training_set.pit_feast import pit_join_feast
from components.build_training_set.pit_spark import pit_join_spark
from components.build_training_set.predlog import join_prediction_log, parse_source, served_rows
from components.build_training_set.spec import (
    FeatureRequest,
    LabelSpec,
    TrainingSetError,
    canonicalize,
    check_labels,
    parse_requests,
    sort_columns,
)
from components.build_training_set.split import (
    SplitWindows,
    TimeSplit,
    parse_split,
    resolve_windows,
    split_by_time,
    with_recency_weights,
    with_spark_recency_weights,
)
from components.engines import DEFAULT_MEMORY_BUDGET_MB, choose_engine, local_input_bytes
from components.spark_feature_backfill.session import spark_session

Method = Literal["auto", "duckdb", "feast", "spark"]
SPLITS = ("train", "validation", "test")


class TrainingSetSummary(BaseModel):
    method: Literal["duckdb", "feast", "spark", "predictionLog"]
    rows: dict[str, int]
    windows: SplitWindows
    columns: list[str]
    output_dir: str


def build_training_set(
    labels: dict[str, Any] | LabelSpec,
    feature_views: list[dict[str, Any]] | list[FeatureRequest],
    split: dict[str, Any] | TimeSplit,
    output_dir: str,
    method: Method = "auto",
    spark_master: str = "local[*]",
    spark_conf: Mapping[str, str] | None = None,
    spark: SparkSession | None = None,
    memory_budget_mb: int = DEFAULT_MEMORY_BUDGET_MB,
) -> TrainingSetSummary:
    """Join, split and write ``<output_dir>/{train,validation,test}/`` (Parquet directories).

    ``output_dir``, ``labels.source`` and each view's offline path are URIs (a plain path is
    file://), read and written through fsspec (``components/uris.py``)."""
    label_spec = labels if isinstance(labels, LabelSpec) else LabelSpec.model_validate(labels)
    if not label_spec.source:
        raise TrainingSetError("labels.source (Parquet path of the label events) is required")
    requests = parse_requests(feature_views)
    time_split = parse_split(split)
    log = parse_source(labels.get("predictionLog")) if isinstance(labels, dict) else None
    if log is not None:  # the features as served, not rebuilt (predlog.py)
        frame = uris.read_parquet(label_spec.source)
        joined = join_prediction_log(frame, label_spec, log, requests, served_rows(log))
        return _write_pandas_splits(
            joined, label_spec, requests, time_split, output_dir, "predictionLog"
        )
    chosen = _choose(method, label_spec, requests, spark_master, memory_budget_mb)
    if chosen == "duckdb":
        con = connect(memory_limit_mb=memory_budget_mb)
        try:
            joined = join_duckdb(con, label_spec.source, label_spec, requests)
        finally:
            con.close()
        return _write_pandas_splits(joined, label_spec, requests, time_split, output_dir, "duckdb")
    if chosen == "feast":
        frame = uris.read_parquet(label_spec.source)
        with tempfile.TemporaryDirectory(prefix="kubeloop-pit-") as work_dir:
            joined = join_feast(frame, label_spec, requests, work_dir)
        return _write_pandas_splits(joined, label_spec, requests, time_split, output_dir, "feast")
    session = spark or spark_session(spark_master, spark_conf, app_name="kubeloop-training-set")
    labels_df = _read_labels(session, label_spec.source)
    joined_df = join_spark(session, labels_df, label_spec, requests)
    return _write_spark_splits(joined_df, label_spec, requests, time_split, output_dir)


def join_feast(
    labels: pd.DataFrame,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
    work_dir: str | Path,
) -> pd.DataFrame:
    """Feast path, in canonical form."""
    check_labels(list(labels.columns), label_spec, requests)
    joined = pit_join_feast(labels, label_spec, requests, work_dir)
    return canonicalize(joined, list(labels.columns), label_spec, requests)


def join_duckdb(
    con: Any,
    labels: pd.DataFrame | str,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
) -> pd.DataFrame:
    """DuckDB path, in canonical form. ``labels``: a DataFrame or a Parquet URI (or path)."""
    if isinstance(labels, pd.DataFrame):
        columns = list(labels.columns)
    else:
        described = con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?)", [uris.duckdb_path(con, labels)]
        ).fetchall()
        columns = [row[0] for row in described]
    check_labels(columns, label_spec, requests)
    relation = pit_join_duckdb(con, labels, label_spec, requests)
    return canonicalize(relation.df(), columns, label_spec, requests)


def join_spark(
    spark: SparkSession,
    labels: DataFrame | pd.DataFrame,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
) -> DataFrame:
    """Spark path as a Spark DataFrame, sorted canonically (``to_canonical_pandas`` to collect)."""
    if isinstance(labels, pd.DataFrame):
        labels = spark.createDataFrame(labels)
    check_labels(labels.columns, label_spec, requests)
    joined = pit_join_spark(spark, labels, label_spec, requests)
    return joined.orderBy(*sort_columns(labels.columns, label_spec))


def to_canonical_pandas(
    joined: DataFrame,
    labels_columns: list[str],
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
) -> pd.DataFrame:
    return canonicalize(joined.toPandas(), labels_columns, label_spec, requests)


def _read_labels(spark: SparkSession, path: str) -> DataFrame:
    """Labels as a Spark DataFrame; nanosecond Parquet timestamps (pandas' default) are
    read through Arrow and truncated to microseconds, which is all Spark can represent."""
    try:
        frame = spark.read.parquet(uris.spark_path(path))
        frame.schema  # noqa: B018 - resolves the footer, where nanosecond timestamps fail
        return frame
    except PySparkException as err:
        if "PARQUET_TYPE_ILLEGAL" not in str(err):
            raise TrainingSetError(
                f"cannot read labels.source {path!r}: {str(err).splitlines()[0]}"
            ) from None
    labels = uris.read_parquet(path)
    for column in labels.columns:
        if isinstance(labels[column].dtype, pd.DatetimeTZDtype) or labels[column].dtype.kind == "M":
            labels[column] = pd.to_datetime(labels[column], utc=True).astype("datetime64[us, UTC]")
    return spark.createDataFrame(labels)


def _choose(
    method: Method,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
    spark_master: str,
    memory_budget_mb: int,
) -> Literal["duckdb", "feast", "spark"]:
    if method == "feast":
        return method
    if method not in ("auto", "duckdb", "spark"):
        raise TrainingSetError(f"engine {method!r} is not one of auto, duckdb, spark, feast")
    paths = [label_spec.source or "", *(r.offline_path for r in requests)]
    engine, _ = choose_engine(method, spark_master, local_input_bytes(paths), memory_budget_mb)
    return engine


def _write_pandas_splits(
    joined: pd.DataFrame,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
    time_split: TimeSplit,
    output_dir: str,
    method: Literal["duckdb", "feast", "predictionLog"],
) -> TrainingSetSummary:
    if joined.empty:
        raise TrainingSetError(f"labels.source {label_spec.source!r} has no rows")
    last = joined[label_spec.timestamp_field].max().to_pydatetime()
    windows = resolve_windows(time_split, last)
    rows = {}
    for name, part in split_by_time(joined, label_spec.timestamp_field, windows).items():
        if name == "train":
            part = with_recency_weights(part, label_spec.timestamp_field, windows, time_split)
        uris.write_parquet_dir(part, uris.join(output_dir, name))
        rows[name] = len(part)
    return TrainingSetSummary(
        method=method,
        rows=rows,
        windows=windows,
        columns=list(joined.columns),
        output_dir=output_dir,
    )


def _write_spark_splits(
    joined: DataFrame,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
    time_split: TimeSplit,
    output_dir: str,
) -> TrainingSetSummary:
    ts = label_spec.timestamp_field
    last_micros = joined.agg(F.max(F.unix_micros(ts))).first()
    if last_micros is None or last_micros[0] is None:
        raise TrainingSetError(f"labels.source {label_spec.source!r} has no rows")
    last = (
        datetime.fromtimestamp(0, UTC) + pd.Timedelta(microseconds=last_micros[0]).to_pytimedelta()
    )
    windows = resolve_windows(time_split, last)
    bounds = {
        "train": (windows.train_start, windows.train_until),
        "validation": (windows.validation_start, windows.test_start),
        "test": (windows.test_start, windows.end),
    }
    rows = {}
    for name, (low, high) in bounds.items():
        part = joined.filter(F.col(ts) < F.lit(high))
        if low is not None:
            part = part.filter(F.col(ts) >= F.lit(low))
        if name == "train":
            part = with_spark_recency_weights(part, ts, windows, time_split)
        part = part.persist()
        rows[name] = part.count()
        part.write.mode("overwrite").parquet(uris.spark_path(uris.join(output_dir, name)))
        part.unpersist()
    return TrainingSetSummary(
        method="spark", rows=rows, windows=windows, columns=joined.columns, output_dir=output_dir
    )

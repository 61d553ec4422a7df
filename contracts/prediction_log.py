"""The prediction log's schema: one Parquet row per served prediction, versioned.

Written by the monitor (``services/monitor/predlog.py``: every call it records is journaled
in SQLite with the events that completed it, then compacted on a timer into a date-partitioned
Parquet dataset at ``--prediction-log-uri``); read by anyone who joins outcomes or audits what
was served (pandas, Spark, DuckDB, ``pyarrow.dataset``).

Layout: ``<uri>/date=YYYY-MM-DD/part-<first seq>-<last seq>.parquet`` (hive partitioning on the
UTC date of ``served_at``; ``date`` is a partition key, not a column inside the files). The
file names are the journal sequence range they hold, so a compaction that is redone after a
crash rewrites the same files rather than adding copies.

One row per prediction: a call with n instances gives n rows (``row`` 0..n-1) sharing
``request_id``; a call that was never answered, or answered with an error, gives one row with
a null ``score``. ``features``/``entity`` of row i are the request's row i only when the
request's usable rows line up with the predictions (rows with NaN/inf are dropped from the
feature window at ingest; when that leaves fewer rows than predictions, ``features`` is null
for the whole call rather than misaligned). ``entity`` is set only for models whose monitor
config has ``skew`` (its ``entityKey`` input).

Compatibility: ``SCHEMA_VERSION`` is written into every file's key-value metadata under
``METADATA_KEY``. Adding a nullable column is a minor change (readers must tolerate it);
renaming, removing or retyping a column bumps the major number and a new ``COLUMNS`` entry
set. Readers should check the major number.
"""

from __future__ import annotations

from typing import Final, NamedTuple

SCHEMA_VERSION: Final = "1.0"
METADATA_KEY: Final = "kubeloop.prediction_log.schema_version"
PARTITION_KEY: Final = "date"  # hive partition directory: date=YYYY-MM-DD (UTC)


class Column(NamedTuple):
    """One column: name, logical type (see below), nullable, meaning.

    Types: ``string``, ``int32``, ``int64``, ``float64``, ``timestamp_us_utc`` (microseconds
    since the epoch, UTC), ``list_string``, ``list_float64``.
    """

    name: str
    type: str
    nullable: bool
    description: str


COLUMNS: Final[tuple[Column, ...]] = (
    Column("namespace", "string", False, "Kubernetes namespace of the MLModel"),
    Column("model", "string", False, "MLModel name"),
    Column("version", "string", False, "model version that served the call"),
    Column("role", "string", False, "stable | candidate | shadow"),
    Column("event_id", "string", False, "CloudEvent id of the call (idempotency key)"),
    Column(
        "request_id",
        "string",
        False,
        "the id the application knows: X-Request-Id when logged, else the CloudEvent id",
    ),
    Column("row", "int32", False, "index of the prediction within the call"),
    Column("served_at", "timestamp_us_utc", False, "when the request reached the monitor"),
    Column("status", "int32", False, "HTTP status of the call; 0 = never answered"),
    Column("latency_ms", "float64", True, "latency of the call; null when unknown"),
    Column("entity", "string", True, "entity key of the row (models with skew config)"),
    Column("feature_names", "list_string", True, "names of the served features, when named"),
    Column("features", "list_float64", True, "served feature values of the row"),
    Column("score", "float64", True, "the score served for the row; null when none"),
    Column("predicted_class", "int64", True, "class id when the model returned one"),
)


def column_names() -> tuple[str, ...]:
    return tuple(column.name for column in COLUMNS)

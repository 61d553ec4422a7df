"""Point-in-time join in Spark: one sort-based as-of pass per FeatureView, no range join.

For a FeatureView, the label rows and the feature rows are unioned and ordered per entity by
an instant: a feature row sorts at ``max(event_ts, created_ts)`` — the moment it became both
true and known — a label row at its own timestamp, feature rows before label rows on ties.
A running ``max(struct(event_ts, created_ts, values…))`` over that order gives, at every label
row, the visible feature row with the greatest event timestamp (ties: greatest created
timestamp). The TTL is then applied to that row's event timestamp: if the best visible row has
expired, every older one has too, so the answer is null. Semantics: see ``impl.py``.
"""

from __future__ import annotations

from datetime import timedelta

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from components.build_training_set.spec import FeatureRequest, LabelSpec
from components.spark_feature_backfill.definition import CREATED_TIMESTAMP, EVENT_TIMESTAMP
from components.spark_feature_backfill.impl import SPARK_TYPES
from components.uris import spark_path

_INSTANT = "__kubeloop_instant"
_KIND = "__kubeloop_kind"  # 0: feature row, 1: label row (sorts after features at equal instants)
_BEST = "__kubeloop_best"


def pit_join_spark(
    spark: SparkSession,
    labels: DataFrame,
    label_spec: LabelSpec,
    requests: list[FeatureRequest],
) -> DataFrame:
    """Label rows (all kept, duplicates included) with one column per requested feature."""
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    ts = label_spec.timestamp_field
    result = labels.withColumn(ts, F.col(ts).cast("timestamp"))
    bounds = result.agg(F.min(F.unix_micros(ts)), F.max(F.unix_micros(ts))).first()
    first_label, last_label = (bounds[0], bounds[1]) if bounds else (None, None)
    for request in requests:
        rows = _feature_rows(spark, request, first_label, last_label)
        result = _join_one_view(result, rows, ts, request)
    return result


def _feature_rows(
    spark: SparkSession, request: FeatureRequest, first_label: int | None, last_label: int | None
) -> DataFrame:
    """Offline-store rows of one view that could be visible to some label (pruned by time).

    ``first_label``/``last_label``: the labels' time range in microseconds since the epoch.
    """
    keys = request.feature_view.join_keys
    rows = spark.read.parquet(spark_path(request.offline_path))
    rows = rows.select(*keys, EVENT_TIMESTAMP, CREATED_TIMESTAMP, *request.features)
    if last_label is not None:
        instant = F.unix_micros(F.greatest(EVENT_TIMESTAMP, CREATED_TIMESTAMP))
        rows = rows.filter(instant <= F.lit(last_label))
    ttl = request.feature_view.ttl
    if first_label is not None and ttl:
        rows = rows.filter(F.unix_micros(EVENT_TIMESTAMP) > F.lit(first_label - _micros(ttl)))
    for key in keys:
        rows = rows.filter(F.col(key).isNotNull())
    return rows


def _join_one_view(
    labels: DataFrame, rows: DataFrame, ts: str, request: FeatureRequest
) -> DataFrame:
    keys = request.feature_view.join_keys
    value_fields = [f"v{i}" for i in range(len(request.features))]
    best_type = T.StructType(
        [
            T.StructField("e", T.TimestampType()),
            T.StructField("c", T.TimestampType()),
            *(
                T.StructField(v, SPARK_TYPES[request.dtype_of(f)])
                for v, f in zip(value_fields, request.features, strict=True)
            ),
        ]
    )
    label_side = (
        labels.withColumn(_INSTANT, F.col(ts))
        .withColumn(_KIND, F.lit(1))
        .withColumn(_BEST, F.lit(None).cast(best_type))
    )
    feature_side = rows.select(
        *keys,
        F.greatest(EVENT_TIMESTAMP, CREATED_TIMESTAMP).alias(_INSTANT),
        F.lit(0).alias(_KIND),
        F.struct(
            F.col(EVENT_TIMESTAMP).alias("e"),
            F.col(CREATED_TIMESTAMP).alias("c"),
            *(
                F.col(f).cast(SPARK_TYPES[request.dtype_of(f)]).alias(v)
                for v, f in zip(value_fields, request.features, strict=True)
            ),
        ).alias(_BEST),
    )
    union = label_side.unionByName(feature_side, allowMissingColumns=True)
    running = (
        Window.partitionBy(*keys)
        .orderBy(F.col(_INSTANT), F.col(_KIND))
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    joined = union.withColumn(_BEST, F.max(_BEST).over(running)).filter(F.col(_KIND) == 1)
    alive = _alive(F.col(f"{_BEST}.e"), F.col(ts), request.feature_view.ttl)
    features = [
        F.when(alive, F.col(f"{_BEST}.{v}")).alias(column)
        for v, column in zip(value_fields, request.output_columns, strict=True)
    ]
    return joined.select(*labels.columns, *features)


def _alive(event: Column, label_ts: Column, ttl: timedelta | None) -> Column:
    if not ttl:
        return event.isNotNull()
    horizon = F.unix_micros(label_ts) - F.lit(_micros(ttl))
    return event.isNotNull() & (F.unix_micros(event) > horizon)


def _micros(duration: timedelta) -> int:
    return duration // timedelta(microseconds=1)

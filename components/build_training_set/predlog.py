"""Training rows from the prediction log: the features exactly as served, joined with the
outcomes that came back for them ("log and wait").

The point-in-time join rebuilds what serving *would have* fetched; the prediction log holds
what it *did* send to the model (``contracts/prediction_log.py``: one row per prediction,
``feature_names``/``features`` as served, hive-partitioned by date). Joining the label events
to it on the request id (and the row within a multi-row call) gives training rows free of
training-serving skew by construction. Only answered predictions with their features count:
a call that failed, or whose features were not aligned with its predictions, has nothing to
train on. A request served to several versions (shadow, canary) was served the same features;
it gives one training row.

Served feature names must be training-set columns (``<view>__<feature>``, the model's
signature when it was trained on a FeatureView training set), so the later steps (hand-off,
training, evaluation) see the same columns whichever way the set was built.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from components.build_training_set.spec import FeatureRequest, LabelSpec, TrainingSetError

FEATURE_SEPARATOR = "__"  # build_training_set's `<view>__<feature>` columns


class PredictionLogSource(BaseModel):
    """The Experiment's ``labels.predictionLog``."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    path: str = Field(min_length=1, description="Root of the prediction log (Parquet by date)")
    model: str = Field(min_length=1, description="MLModel whose predictions to train on")
    namespace: str | None = None
    request_id_field: str = Field(default="request_id", alias="requestIdField")
    row_field: str | None = Field(default=None, alias="rowField")


def served_rows(source: PredictionLogSource) -> pd.DataFrame:
    """One row per (request id, row) that was answered with its features, features as columns."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    from components.uris import filesystem

    try:
        fs, path = filesystem(source.path)
        dataset = pads.dataset(path, format="parquet", partitioning="hive", filesystem=fs)
    except (FileNotFoundError, OSError) as error:
        raise TrainingSetError(f"labels.predictionLog.path {source.path!r}: {error}") from None
    condition = pc.field("model") == source.model
    if source.namespace:
        condition &= pc.field("namespace") == source.namespace
    columns = ["request_id", "row", "served_at", "feature_names", "features", "score"]
    table = dataset.to_table(columns=columns, filter=condition)
    log = table.to_pandas()
    log = log[log["score"].notna() & log["features"].notna() & log["feature_names"].notna()]
    log = log.sort_values("served_at", kind="mergesort")
    log = log.drop_duplicates(["request_id", "row"], keep="first").reset_index(drop=True)
    return _feature_columns(log)


def _feature_columns(log: pd.DataFrame) -> pd.DataFrame:
    names: list[str] = []
    for row_names in log["feature_names"]:
        names.extend(n for n in row_names if n not in names)
    values = np.full((len(log), len(names)), np.nan)
    index = {name: i for i, name in enumerate(names)}
    for i, (row_names, row_values) in enumerate(
        zip(log["feature_names"], log["features"], strict=True)
    ):
        for name, value in zip(row_names, row_values, strict=False):
            values[i, index[name]] = np.nan if value is None else value
    features = pd.DataFrame(values, columns=names)
    keys = log[["request_id", "row", "served_at"]].reset_index(drop=True)
    return pd.concat([keys, features], axis=1)


def join_prediction_log(
    labels: pd.DataFrame,
    label_spec: LabelSpec,
    source: PredictionLogSource,
    requests: list[FeatureRequest],
    served: pd.DataFrame,
) -> pd.DataFrame:
    """Label events joined to the predictions they are outcomes of; columns: the label
    columns, then the requested features (``<view>__<feature>``) as served."""
    key = source.request_id_field
    needed = [label_spec.timestamp_field, label_spec.label_field, key]
    if source.row_field:
        needed.append(source.row_field)
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise TrainingSetError(
            f"labels.predictionLog: label columns {missing} are absent from labels.source "
            f"(have {list(labels.columns)})"
        )
    wanted = [c for r in requests for c in r.output_columns]
    absent = [c for c in wanted if c not in served.columns]
    if absent:
        raise TrainingSetError(
            f"labels.predictionLog: features {absent} were not served by model "
            f"{source.model!r} (it logged {[c for c in served.columns if FEATURE_SEPARATOR in c]})"
        )
    left = labels.copy()
    left["__join_id"] = left[key].astype("string")
    left["__join_row"] = left[source.row_field].astype("int64") if source.row_field else 0
    right = served[["request_id", "row", *wanted]].rename(
        columns={"request_id": "__join_id", "row": "__join_row"}
    )
    right["__join_id"] = right["__join_id"].astype("string")
    right["__join_row"] = right["__join_row"].astype("int64")
    joined = left.merge(right, on=["__join_id", "__join_row"], how="inner")
    joined = joined.drop(columns=["__join_id", "__join_row"])
    if joined.empty:
        raise TrainingSetError(
            f"labels.predictionLog: none of the {len(labels)} label events matched a logged "
            f"prediction of model {source.model!r} by {key!r}"
        )
    joined[label_spec.timestamp_field] = pd.to_datetime(
        joined[label_spec.timestamp_field], utc=True
    ).astype("datetime64[us, UTC]")
    order = [label_spec.timestamp_field, key]
    return joined.sort_values(order, kind="mergesort").reset_index(drop=True)


def parse_source(value: Any) -> PredictionLogSource | None:
    if value is None or isinstance(value, PredictionLogSource):
        return value
    return PredictionLogSource.model_validate(value)

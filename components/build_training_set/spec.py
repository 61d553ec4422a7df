"""Inputs of the training-set build and the canonical form both join paths produce.

Canonical form (what makes the Feast path and the Spark path comparable row for row):

* columns: the label columns in their input order, then for each requested FeatureView (in
  request order) ``<view>__<feature>`` for each requested feature (in request order);
* feature dtypes: pandas nullable types (``Int32``, ``Int64``, ``Float32``, ``Float64``,
  ``string``, ``boolean``) — a missing feature is ``<NA>``;
* the label timestamp column: ``datetime64[us, UTC]``;
* rows: sorted by label timestamp, then entity keys, then the other label columns (stable),
  index reset.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from components.spark_feature_backfill.definition import (
    FeatureViewDefinition,
    parse_feature_view,
    training_column,
)

PANDAS_DTYPES: dict[str, str] = {
    "int32": "Int32",
    "int64": "Int64",
    "float32": "Float32",
    "float64": "Float64",
    "string": "string",
    "bool": "boolean",
}


class TrainingSetError(ValueError):
    """The training-set request is invalid; the message names the field."""


class LabelSpec(BaseModel):
    """Where the label events are and which columns mean what (the Experiment's ``labels``)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    source: str | None = Field(default=None, description="Parquet path of the label events")
    timestamp_field: str = Field(alias="timestampField", min_length=1)
    label_field: str = Field(alias="labelField", min_length=1)
    entity_keys: list[str] = Field(alias="entityKeys", min_length=1)


class FeatureRequest(BaseModel):
    """Features wanted from one FeatureView and where its offline store lives."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    feature_view: FeatureViewDefinition = Field(alias="featureView")
    offline_path: str = Field(alias="offlinePath", min_length=1)
    names: list[str] = Field(default_factory=list, description="empty: all features")

    @field_validator("feature_view", mode="before")
    @classmethod
    def _parse_view(cls, value: Any) -> Any:
        return parse_feature_view(value)

    @property
    def view(self) -> str:
        return self.feature_view.view_name

    @property
    def features(self) -> list[str]:
        declared = self.feature_view.feature_names
        if not self.names:
            return declared
        unknown = [n for n in self.names if n not in declared]
        if unknown:
            raise TrainingSetError(
                f"features {unknown} are not declared by FeatureView {self.feature_view.name!r} "
                f"(it has {declared})"
            )
        return list(self.names)

    @property
    def output_columns(self) -> list[str]:
        return [training_column(self.view, name) for name in self.features]

    def dtype_of(self, feature: str) -> str:
        return next(f.dtype for f in self.feature_view.features if f.name == feature)


def parse_requests(requests: list[dict[str, Any]] | list[FeatureRequest]) -> list[FeatureRequest]:
    parsed = [
        r if isinstance(r, FeatureRequest) else FeatureRequest.model_validate(r) for r in requests
    ]
    if not parsed:
        raise TrainingSetError("no feature views requested")
    views = [r.view for r in parsed]
    duplicates = sorted({v for v in views if views.count(v) > 1})
    if duplicates:
        raise TrainingSetError(f"feature views requested more than once: {duplicates}")
    return parsed


def check_labels(
    labels_columns: list[str], labels: LabelSpec, requests: list[FeatureRequest]
) -> None:
    """Every join key must be a label column; no label column may clash with a feature column."""
    needed = [labels.timestamp_field, labels.label_field, *labels.entity_keys]
    missing = [c for c in needed if c not in labels_columns]
    if missing:
        raise TrainingSetError(
            f"label columns {missing} are absent from the labels (have {labels_columns})"
        )
    for request in requests:
        absent = [k for k in request.feature_view.join_keys if k not in labels_columns]
        if absent:
            raise TrainingSetError(
                f"FeatureView {request.feature_view.name!r} joins on {absent}, absent from the labels"
            )
        clash = sorted(set(request.output_columns) & set(labels_columns))
        if clash:
            raise TrainingSetError(f"label columns {clash} clash with feature columns")


def sort_columns(labels_columns: list[str], labels: LabelSpec) -> list[str]:
    keys = [k for k in labels.entity_keys if k != labels.timestamp_field]
    rest = [c for c in labels_columns if c not in keys and c != labels.timestamp_field]
    return [labels.timestamp_field, *keys, *rest]


def canonicalize(
    frame: pd.DataFrame,
    labels_columns: list[str],
    labels: LabelSpec,
    requests: list[FeatureRequest],
) -> pd.DataFrame:
    """Put a joined frame into the canonical form (see module docstring)."""
    out = frame.copy()
    ts = labels.timestamp_field
    out[ts] = _utc_micros(out[ts])
    for request in requests:
        for feature, column in zip(request.features, request.output_columns, strict=True):
            out[column] = _nullable(out[column], PANDAS_DTYPES[request.dtype_of(feature)])
    columns = [*labels_columns, *(c for r in requests for c in r.output_columns)]
    out = out[columns]
    return out.sort_values(sort_columns(labels_columns, labels), kind="mergesort").reset_index(
        drop=True
    )


def _utc_micros(series: pd.Series) -> pd.Series:
    values = pd.to_datetime(series, utc=True)
    return values.astype("datetime64[us, UTC]")


def _nullable(series: pd.Series, dtype: str) -> pd.Series:
    if dtype == "boolean" and series.dtype == object:
        series = series.map(lambda v: v if v is None or pd.isna(v) else bool(v))
    if dtype == "string":
        return series.astype("object").where(series.notna(), None).astype("string")
    return series.astype(dtype)

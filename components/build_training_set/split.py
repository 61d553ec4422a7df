"""Time-based split of a training set: train < T1 <= validation < T2 <= test < end.

The windows come from the Experiment's ``split``: ``validation`` and ``test`` are lengths,
counted back from ``end`` (default: just after the last label); ``trainUntil`` may end the
training data earlier than the validation start (a gap), never later (that would overlap).
Random splits are not offered: with time-ordered data they leak the future into training.

``trainWindow`` slides the start of the training data: only labels in
``[trainUntil - trainWindow, trainUntil)`` are trained on. ``recencyHalfLife`` adds the
``sample_weight`` column (``contracts.training_set``) to the train split: a row ``a`` older than
``trainUntil`` weighs ``2 ** (-a / halfLife)``, scaled so the split's weights average 1 (the
loss keeps its scale, the learning rate its meaning). Both serve a retrain after a shift: the
model learns mostly from the world as it is now, not from the years before it changed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.build_training_set.spec import TrainingSetError
from components.spark_feature_backfill.definition import parse_duration
from components.validation import problems
from contracts.training_set import SAMPLE_WEIGHT_COLUMN

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_RANDOM_HINTS = ("random", "fraction", "ratio", "shuffle", "seed", "percent")


class TimeSplit(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    method: str = "time"
    train_until: datetime | None = Field(default=None, alias="trainUntil")
    validation: timedelta
    test: timedelta
    end: datetime | None = None
    train_window: timedelta | None = Field(default=None, alias="trainWindow")
    recency_half_life: timedelta | None = Field(default=None, alias="recencyHalfLife")

    @field_validator("validation", "test", "train_window", "recency_half_life", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @field_validator("train_window", "recency_half_life")
    @classmethod
    def _positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be a positive duration")
        return value

    @field_validator("train_until", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SplitWindows(BaseModel):
    """Resolved boundaries: train ``[train_start, train_until)`` (no start: everything before);
    validation ``[validation_start, test_start)``; test ``[test_start, end)``."""

    train_start: datetime | None = None
    train_until: datetime
    validation_start: datetime
    test_start: datetime
    end: datetime


def parse_split(split: dict[str, Any] | TimeSplit) -> TimeSplit:
    if isinstance(split, TimeSplit):
        return split
    hints = [k for k in split if any(h in k.lower() for h in _RANDOM_HINTS)]
    if str(split.get("method", "time")).lower() != "time" or hints:
        raise TrainingSetError(
            f"split: random splits are not offered (got {split!r}); "
            "use a time-based split: {trainUntil?, validation, test}"
        )
    try:
        return TimeSplit.model_validate(split)
    except ValidationError as err:
        raise TrainingSetError(problems(err, prefix="split.")) from None


def resolve_windows(split: TimeSplit, last_label: datetime) -> SplitWindows:
    end = split.end or (last_label + timedelta(microseconds=1))
    test_start = end - split.test
    validation_start = test_start - split.validation
    train_until = split.train_until or validation_start
    if train_until > validation_start:
        raise TrainingSetError(
            f"split.trainUntil {train_until.isoformat()} is after the validation start "
            f"{validation_start.isoformat()}: training data would overlap validation"
        )
    train_start = train_until - split.train_window if split.train_window else None
    return SplitWindows(
        train_start=train_start,
        train_until=train_until,
        validation_start=validation_start,
        test_start=test_start,
        end=end,
    )


def split_by_time(
    frame: pd.DataFrame, timestamp_field: str, windows: SplitWindows
) -> dict[str, pd.DataFrame]:
    ts = pd.to_datetime(frame[timestamp_field], utc=True)
    train = ts < pd.Timestamp(windows.train_until)
    if windows.train_start is not None:
        train &= ts >= pd.Timestamp(windows.train_start)
    masks = {
        "train": train,
        "validation": (ts >= pd.Timestamp(windows.validation_start))
        & (ts < pd.Timestamp(windows.test_start)),
        "test": (ts >= pd.Timestamp(windows.test_start)) & (ts < pd.Timestamp(windows.end)),
    }
    return {name: frame[mask].reset_index(drop=True) for name, mask in masks.items()}


def recency_weights(ages: np.ndarray, half_life: timedelta) -> np.ndarray:
    """``2 ** (-age / half_life)`` per row (ages in seconds, >= 0), scaled to mean 1."""
    if ages.size == 0:
        return np.zeros(0, dtype=np.float64)
    raw = np.exp2(-np.clip(ages, 0.0, None) / half_life.total_seconds())
    return np.asarray(raw / raw.mean(), dtype=np.float64)


def check_weight_column(columns: list[str]) -> None:
    if SAMPLE_WEIGHT_COLUMN in columns:
        raise TrainingSetError(
            f"split.recencyHalfLife: the labels already have a column {SAMPLE_WEIGHT_COLUMN!r}, "
            "the name the recency weights are written under; rename it in labels.source"
        )


def with_recency_weights(
    train: pd.DataFrame, timestamp_field: str, windows: SplitWindows, split: TimeSplit
) -> pd.DataFrame:
    """The train split with its ``sample_weight`` column when recency weighting is asked for."""
    if split.recency_half_life is None:
        return train
    check_weight_column(list(train.columns))
    ts = pd.to_datetime(train[timestamp_field], utc=True)
    ages = (pd.Timestamp(windows.train_until) - ts).dt.total_seconds().to_numpy(dtype=np.float64)
    return train.assign(**{SAMPLE_WEIGHT_COLUMN: recency_weights(ages, split.recency_half_life)})


def with_spark_recency_weights(
    train: DataFrame, timestamp_field: str, windows: SplitWindows, split: TimeSplit
) -> DataFrame:
    """The Spark path's ``with_recency_weights``: the same weights, computed in Spark."""
    if split.recency_half_life is None:
        return train
    from pyspark.sql import functions as F

    check_weight_column(train.columns)
    until = F.lit(pd.Timestamp(windows.train_until).value // 1000)  # epoch microseconds
    age = F.greatest((until - F.unix_micros(F.col(timestamp_field))) / 1e6, F.lit(0.0))
    raw = F.pow(F.lit(2.0), -age / split.recency_half_life.total_seconds())
    weighted = train.withColumn(SAMPLE_WEIGHT_COLUMN, raw)
    mean = weighted.agg(F.avg(SAMPLE_WEIGHT_COLUMN)).first()
    if mean is None or mean[0] is None:
        return weighted
    return weighted.withColumn(SAMPLE_WEIGHT_COLUMN, F.col(SAMPLE_WEIGHT_COLUMN) / F.lit(mean[0]))

"""Time-based split of a training set: train < T1 <= validation < T2 <= test < end.

The windows come from the Experiment's ``split``: ``validation`` and ``test`` are lengths,
counted back from ``end`` (default: just after the last label); ``trainUntil`` may end the
training data earlier than the validation start (a gap), never later (that would overlap).
Random splits are not offered: with time-ordered data they leak the future into training.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from components.build_training_set.spec import TrainingSetError
from components.spark_feature_backfill.definition import parse_duration
from components.validation import problems

_RANDOM_HINTS = ("random", "fraction", "ratio", "shuffle", "seed", "percent")


class TimeSplit(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)

    method: str = "time"
    train_until: datetime | None = Field(default=None, alias="trainUntil")
    validation: timedelta
    test: timedelta
    end: datetime | None = None

    @field_validator("validation", "test", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str | int | float) else value

    @field_validator("train_until", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SplitWindows(BaseModel):
    """Resolved boundaries: train ``< train_until``; validation ``[validation_start, test_start)``;
    test ``[test_start, end)``."""

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
    return SplitWindows(
        train_until=train_until, validation_start=validation_start, test_start=test_start, end=end
    )


def split_by_time(
    frame: pd.DataFrame, timestamp_field: str, windows: SplitWindows
) -> dict[str, pd.DataFrame]:
    ts = pd.to_datetime(frame[timestamp_field], utc=True)
    masks = {
        "train": ts < pd.Timestamp(windows.train_until),
        "validation": (ts >= pd.Timestamp(windows.validation_start))
        & (ts < pd.Timestamp(windows.test_start)),
        "test": (ts >= pd.Timestamp(windows.test_start)) & (ts < pd.Timestamp(windows.end)),
    }
    return {name: frame[mask].reset_index(drop=True) for name, mask in masks.items()}

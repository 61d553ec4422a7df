"""Reading and checking the training and validation tables (Parquet).

Pure checks over pandas frames: every problem is a `TrainingInputError` whose message names
the table and the column, so a failed trial tells the user what to fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from contracts.training_set import SAMPLE_WEIGHT_COLUMN


class TrainingInputError(ValueError):
    """The training input is unusable; the message names the table/column and the problem."""


@dataclass(frozen=True)
class TabularData:
    features: np.ndarray  # float32, shape (rows, n_features)
    labels: np.ndarray  # float32, shape (rows,)
    feature_columns: tuple[str, ...]
    # Per-row loss weights (the training set's recency weights); None: equal weights.
    weights: np.ndarray | None = None


def check_path(path: str | Path, role: str) -> Path:
    resolved = Path(path)
    if not str(path).strip():
        raise TrainingInputError(f"{role}: no path given")
    if not resolved.exists():
        raise TrainingInputError(f"{role}: no such file or directory: {resolved}")
    return resolved


def read_columns(path: str | Path, role: str) -> list[str]:
    """Column names from the Parquet schema, without reading the data."""
    resolved = check_path(path, role)
    try:
        return list(pq.ParquetDataset(resolved).schema.names)
    except Exception as error:
        raise TrainingInputError(f"{role}: cannot read Parquet at {resolved}: {error}") from error


def read_table(path: str | Path, role: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    resolved = check_path(path, role)
    try:
        return pd.read_parquet(resolved, columns=list(columns) if columns else None)
    except Exception as error:
        raise TrainingInputError(f"{role}: cannot read Parquet at {resolved}: {error}") from error


def resolve_feature_columns(
    columns: Sequence[str], label_column: str, requested: Sequence[str], role: str
) -> tuple[str, ...]:
    if label_column not in columns:
        raise TrainingInputError(
            f"{role}: label column {label_column!r} not found (columns: {list(columns)})"
        )
    if not requested:
        # The sample weight is how much a row counts, never something to learn from.
        chosen = tuple(c for c in columns if c not in (label_column, SAMPLE_WEIGHT_COLUMN))
        if not chosen:
            raise TrainingInputError(f"{role}: no feature columns besides {label_column!r}")
        return chosen
    missing = [column for column in requested if column not in columns]
    if missing:
        raise TrainingInputError(f"{role}: feature columns not found: {missing}")
    repeated = sorted({column for column in requested if requested.count(column) > 1})
    if repeated:
        raise TrainingInputError(f"{role}: feature columns listed more than once: {repeated}")
    if label_column in requested:
        raise TrainingInputError(f"{role}: label column {label_column!r} is also a feature")
    return tuple(requested)


def check_label(frame: pd.DataFrame, label_column: str, role: str) -> None:
    label = frame[label_column]
    if not (ptypes.is_bool_dtype(label) or ptypes.is_numeric_dtype(label)):
        raise TrainingInputError(
            f"{role}: label column {label_column!r} must be numeric 0/1 or boolean, "
            f"got dtype {label.dtype}"
        )
    if label.isna().any():
        raise TrainingInputError(
            f"{role}: label column {label_column!r} has {int(label.isna().sum())} missing values"
        )
    values = set(pd.unique(label.astype("float64")))
    if not values <= {0.0, 1.0}:
        shown = sorted(values - {0.0, 1.0})[:5]
        raise TrainingInputError(
            f"{role}: label column {label_column!r} must be binary (0/1); found values {shown}"
        )


def check_features(frame: pd.DataFrame, feature_columns: Sequence[str], role: str) -> None:
    for column in feature_columns:
        dtype = frame[column].dtype
        if not (ptypes.is_numeric_dtype(dtype) or ptypes.is_bool_dtype(dtype)):
            raise TrainingInputError(
                f"{role}: feature column {column!r} must be numeric, got dtype {dtype}"
            )


def load_tabular(
    path: str | Path, label_column: str, feature_columns: Sequence[str], role: str
) -> TabularData:
    """Read, check and convert one table; missing feature values stay NaN (imputed later)."""
    resolved_features = resolve_feature_columns(
        read_columns(path, role), label_column, feature_columns, role
    )
    weighted = SAMPLE_WEIGHT_COLUMN in read_columns(path, role)
    extra = [SAMPLE_WEIGHT_COLUMN] if weighted else []
    frame = read_table(path, role, [*resolved_features, label_column, *extra])
    if frame.empty:
        raise TrainingInputError(f"{role}: the table at {path} has no rows")
    check_label(frame, label_column, role)
    check_features(frame, resolved_features, role)
    return TabularData(
        features=row_major_features(frame, resolved_features),
        labels=frame[label_column].to_numpy(dtype=np.float32),
        feature_columns=resolved_features,
        weights=check_weights(frame, role) if weighted else None,
    )


def row_major_features(frame: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The feature columns as one float32 array, row-major, filled a column at a time.

    Row-major: a frame read from Parquet converts column-major, and gathering a batch's rows
    from that touches one cache line per value instead of one per row (the DDP bench's batch
    gathers ran ~20x slower). Filled column by column, so that beside the frame only the result
    and one column are held, not a column-major copy of every feature as well."""
    features = np.empty((len(frame), len(columns)), dtype=np.float32)
    for index, column in enumerate(columns):
        features[:, index] = frame[column].to_numpy(dtype=np.float32)
    return features


def check_weights(frame: pd.DataFrame, role: str) -> np.ndarray:
    weights = frame[SAMPLE_WEIGHT_COLUMN].to_numpy(dtype=np.float64, na_value=np.nan)
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise TrainingInputError(
            f"{role}: column {SAMPLE_WEIGHT_COLUMN!r} must hold finite weights >= 0"
        )
    return weights.astype(np.float32)


def _is_numeric_arrow(field_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(field_type)
        or pa.types.is_floating(field_type)
        or pa.types.is_boolean(field_type)
        or pa.types.is_decimal(field_type)
    )


@dataclass(frozen=True)
class TableInfo:
    feature_columns: tuple[str, ...]
    rows: int


def check_table(
    path: str | Path, label_column: str, feature_columns: Sequence[str], role: str
) -> TableInfo:
    """Check a table before any worker starts: schema, feature types, the label's values.

    Reads the schema and the label column only, so it stays cheap on large sets.
    """
    resolved = check_path(path, role)
    try:
        schema = pq.ParquetDataset(resolved).schema
    except Exception as error:
        raise TrainingInputError(f"{role}: cannot read Parquet at {resolved}: {error}") from error
    features = resolve_feature_columns(schema.names, label_column, feature_columns, role)
    for column in features:
        field_type = schema.field(column).type
        if not _is_numeric_arrow(field_type):
            raise TrainingInputError(
                f"{role}: feature column {column!r} must be numeric, got type {field_type}"
            )
    labels = read_table(resolved, role, [label_column])
    if labels.empty:
        raise TrainingInputError(f"{role}: the table at {resolved} has no rows")
    check_label(labels, label_column, role)
    return TableInfo(feature_columns=features, rows=len(labels))

"""Hand-off from ``build_training_set`` (Parquet directories on shared storage) to the steps
after it: the train/validation splits as KFP Dataset artifacts for ``train_ddp``, and the
label column, feature columns and data window that the later steps need.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from pydantic import BaseModel

# build_training_set names feature columns `<view>__<feature>`; label columns never contain it.
FEATURE_SEPARATOR = "__"


class Handoff(BaseModel):
    training_set_dir: str
    label_column: str
    feature_columns: list[str]
    data_window: dict[str, Any]


def handoff(summary: dict[str, Any], labels: dict[str, Any]) -> Handoff:
    label = labels.get("labelField") or labels.get("label_field")
    if not label:
        raise ValueError("labels.labelField is missing")
    columns = [str(c) for c in summary.get("columns", [])]
    features = [c for c in columns if FEATURE_SEPARATOR in c]
    if not features:
        raise ValueError(f"the training set has no feature columns (columns: {columns})")
    return Handoff(
        training_set_dir=str(summary["output_dir"]),
        label_column=str(label),
        feature_columns=features,
        data_window=dict(summary.get("windows", {})),
    )


def copy_split(training_set_dir: str, split: str, destination: str) -> None:
    """Copy one split's Parquet files (not Spark's _SUCCESS/.crc) into an artifact path."""
    source = Path(training_set_dir) / split
    if not source.is_dir():
        raise ValueError(f"training set split {split!r} not found at {source}")
    shutil.copytree(
        source, destination, dirs_exist_ok=True, ignore=shutil.ignore_patterns("_*", ".*")
    )

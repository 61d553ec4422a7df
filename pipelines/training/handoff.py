"""Hand-off from ``build_training_set`` (Parquet directories on shared storage) to the steps
after it: the train/validation splits as KFP Dataset artifacts for ``train_ddp``, and the
label column, feature columns and data window that the later steps need.

The data window (the registered version's ``kubeloop.io/data-window`` tag) is JSON with ISO 8601
timestamps: ``{"start", "end", "train": {"start", "end"}, "validation": {...}, "test": {...}}``;
each window is ``[start, end)``, ``start``/``train.start`` is the earliest training label
(null when the train split is empty) and ``end`` the end of the test window.
"""

from __future__ import annotations

from datetime import UTC, datetime
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


def _iso(value: Any) -> str | None:
    """ISO 8601 in UTC (`+00:00`), whatever form the summary's JSON gave the time in."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat()


def lineage_window(windows: dict[str, Any], train_start: datetime | None) -> dict[str, Any]:
    """The split boundaries of ``build_training_set``'s summary (train ``< train_until``,
    validation ``[validation_start, test_start)``, test ``[test_start, end)``) per split."""
    missing = [
        k for k in ("train_until", "validation_start", "test_start", "end") if k not in windows
    ]
    if missing:
        raise ValueError(f"training set summary: windows lack {missing} (have {sorted(windows)})")
    start = _iso(train_start)
    return {
        "start": start,
        "end": _iso(windows["end"]),
        "train": {"start": start, "end": _iso(windows["train_until"])},
        "validation": {
            "start": _iso(windows["validation_start"]),
            "end": _iso(windows["test_start"]),
        },
        "test": {"start": _iso(windows["test_start"]), "end": _iso(windows["end"])},
    }


def earliest(training_set_dir: str, split: str, timestamp_field: str) -> datetime | None:
    """The earliest ``timestamp_field`` in a split (only that column is read); None if empty."""
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    from components import uris

    source = uris.join(training_set_dir, split)
    if not uris.isdir(source):
        raise ValueError(f"training set split {split!r} not found at {source}")
    fs, path = uris.filesystem(source)
    dataset = pads.dataset(path, format="parquet", filesystem=fs)
    if timestamp_field not in dataset.schema.names:
        raise ValueError(
            f"labels.timestampField {timestamp_field!r} is not a column of the {split} split"
        )
    lowest = pc.min(dataset.to_table(columns=[timestamp_field])[timestamp_field]).as_py()
    if lowest is None:
        return None
    if not isinstance(lowest, datetime):  # a date column
        lowest = datetime(lowest.year, lowest.month, lowest.day)
    return lowest


def handoff(summary: dict[str, Any], labels: dict[str, Any]) -> Handoff:
    label = labels.get("labelField") or labels.get("label_field")
    if not label:
        raise ValueError("labels.labelField is missing")
    stamp = labels.get("timestampField") or labels.get("timestamp_field")
    if not stamp:
        raise ValueError("labels.timestampField is missing")
    columns = [str(c) for c in summary.get("columns", [])]
    features = [c for c in columns if FEATURE_SEPARATOR in c]
    if not features:
        raise ValueError(f"the training set has no feature columns (columns: {columns})")
    output_dir = str(summary["output_dir"])
    train_start = earliest(output_dir, "train", str(stamp))
    return Handoff(
        training_set_dir=output_dir,
        label_column=str(label),
        feature_columns=features,
        data_window=lineage_window(dict(summary.get("windows", {})), train_start),
    )


def copy_split(training_set_dir: str, split: str, destination: str) -> None:
    """Copy one split's Parquet files (not Spark's _SUCCESS/.crc) from the training set's URI
    into a local artifact path (what train_ddp's workers read)."""
    from components import uris
    from components.engines import visible_files

    source = uris.join(training_set_dir, split)
    if not uris.isdir(source):
        raise ValueError(f"training set split {split!r} not found at {source}")
    fs, root = uris.filesystem(source)
    for file in visible_files(source):
        relative = uris.filesystem(file)[1][len(root.rstrip("/")) + 1 :]
        target = Path(destination) / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        fs.get_file(uris.filesystem(file)[1], str(target))

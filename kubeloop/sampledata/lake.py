"""The sample data lake: where the generator writes history and the traffic appends production.

Layout, under the data folder (`kubeloop data`, `kubeloop demo`):

- ``events/date=YYYY-MM-DD/<name>.parquet`` — the FeatureView's source, partitioned by the
  event's UTC date as an application writes its data lake (Spark and pyarrow read the
  ``date=`` directories as a partition column; the FeatureView SQL selects its columns by
  name, so the extra column changes nothing). Every file of a folder must sit at the same
  depth: Spark silently reads only one level of a mixed layout.
- ``labels/<name>.parquet`` — the Experiment's labels, flat (a label job's output files).

Writers only ever add whole files: each is written under a hidden name (``.tmp-…``, which
Spark and pyarrow skip) and renamed into place, so a backfill running at the same moment
sees a file either complete or not at all. Names carry a UUID, so writers never collide.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

PARTITION_KEY = "date"
TIMESTAMP = pa.timestamp("us", tz="UTC")
# The generator's events (without the label) and labels, as every writer must write them.
EVENTS_SCHEMA = pa.schema(
    [
        ("event_timestamp", TIMESTAMP),
        ("created_timestamp", TIMESTAMP),
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("price", pa.float64()),
        ("quantity", pa.int32()),
        ("discount", pa.float64()),
        ("dwell_seconds", pa.float64()),
        ("clicks", pa.int32()),
        ("device", pa.string()),
    ]
)
LABELS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("event_timestamp", TIMESTAMP),
        ("label", pa.int32()),
    ]
)


class LakeWriteError(ValueError):
    """Rows that do not fit the lake's schema; the message names the column."""


def to_table(frame: pd.DataFrame, schema: pa.Schema, role: str) -> pa.Table:
    """The frame's schema columns, cast to the schema (microsecond UTC timestamps: Spark
    cannot read Parquet nanosecond timestamps)."""
    missing = [name for name in schema.names if name not in frame.columns]
    if missing:
        raise LakeWriteError(f"{role}: missing column(s) {missing}")
    columns = {}
    for field in schema:
        values = frame[field.name]
        if pa.types.is_timestamp(field.type):
            values = pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]")
        try:
            columns[field.name] = pa.array(values, type=field.type, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise LakeWriteError(f"{role}: column {field.name!r}: {error}") from error
    return pa.Table.from_pydict(columns, schema=schema)


def write_atomic(table: pa.Table, path: Path) -> Path:
    """Write under a hidden temporary name in the same folder, then rename into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        pq.write_table(table, temporary)
        os.replace(temporary, path)  # atomic within one file system
    finally:
        temporary.unlink(missing_ok=True)
    return path


def partition_dir(events_dir: Path, day: str) -> Path:
    return events_dir / f"{PARTITION_KEY}={day}"


def append_events(frame: pd.DataFrame, events_dir: str | Path, prefix: str) -> list[Path]:
    """Add the events as one file per UTC date partition; returns the files written."""
    if frame.empty:
        return []
    table = to_table(frame, EVENTS_SCHEMA, "events")
    days = pd.to_datetime(frame["event_timestamp"], utc=True).dt.strftime("%Y-%m-%d").to_numpy()
    written = []
    for day in sorted(set(days)):
        name = f"{prefix}-{uuid.uuid4().hex[:12]}.parquet"
        part = table.filter(pa.array(days == day))
        written.append(write_atomic(part, partition_dir(Path(events_dir), day) / name))
    return written


def append_labels(frame: pd.DataFrame, labels_dir: str | Path, prefix: str) -> Path | None:
    """Add the labels as one file; returns it (None for no rows)."""
    if frame.empty:
        return None
    table = to_table(frame, LABELS_SCHEMA, "labels")
    name = f"{prefix}-{uuid.uuid4().hex[:12]}.parquet"
    return write_atomic(table, Path(labels_dir) / name)


def clear(events_dir: Path, labels_dir: Path) -> None:
    """Remove the Parquet files a previous run wrote (history and appended production)."""
    for folder in (events_dir, labels_dir):
        for part in sorted(folder.rglob("*.parquet")):
            part.unlink()
        for sub in sorted(folder.glob(f"{PARTITION_KEY}=*"), reverse=True):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()

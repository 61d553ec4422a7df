"""The hand-off step's data window: the split boundaries per split, with the earliest label."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from pipelines.training.handoff import handoff

LABELS = {"labelField": "label", "timestampField": "event_timestamp"}


def summary(root: Path) -> dict:
    """build_training_set's summary as its component returns it (JSON, `Z` timestamps)."""
    stamps = pd.to_datetime(["2026-01-05T03:00:00Z", "2026-01-05T01:30:00Z"])
    train = pd.DataFrame({"event_timestamp": stamps, "label": [0, 1], "v__x": [0.1, 0.2]})
    for split in ("train", "validation", "test"):
        (root / split).mkdir(parents=True)
        frame = train if split == "train" else train.iloc[:0]
        frame.to_parquet(root / split / "part-00000.parquet", index=False)
    (root / "train" / "_SUCCESS").write_text("")  # Spark's marker is not Parquet
    return {
        "columns": ["event_timestamp", "label", "v__x"],
        "output_dir": str(root),
        "windows": {
            "train_until": "2026-01-06T00:00:00Z",
            "validation_start": "2026-01-06T00:00:00Z",
            "test_start": "2026-01-06T08:00:00Z",
            "end": "2026-01-06T16:00:00.000001Z",
        },
    }


def test_data_window_names_each_split_in_iso_utc(tmp_path: Path) -> None:
    result = handoff(json.loads(json.dumps(summary(tmp_path))), LABELS)
    assert result.data_window == {
        "start": "2026-01-05T01:30:00+00:00",
        "end": "2026-01-06T16:00:00.000001+00:00",
        "train": {"start": "2026-01-05T01:30:00+00:00", "end": "2026-01-06T00:00:00+00:00"},
        "validation": {"start": "2026-01-06T00:00:00+00:00", "end": "2026-01-06T08:00:00+00:00"},
        "test": {"start": "2026-01-06T08:00:00+00:00", "end": "2026-01-06T16:00:00.000001+00:00"},
    }
    for window in ("train", "validation", "test"):
        bounds = result.data_window[window]
        assert datetime.fromisoformat(bounds["start"]) < datetime.fromisoformat(bounds["end"])
        assert datetime.fromisoformat(bounds["end"]).tzinfo == UTC


def test_missing_boundaries_or_timestamp_column_are_named(tmp_path: Path) -> None:
    bad = summary(tmp_path)
    del bad["windows"]["test_start"]
    with pytest.raises(ValueError, match=r"windows lack \['test_start'\]"):
        handoff(bad, LABELS)
    with pytest.raises(ValueError, match="labels.timestampField 'ts' is not a column"):
        handoff(summary(tmp_path / "other"), {**LABELS, "timestampField": "ts"})

"""The synthetic event stream: deterministic, seasonal, shiftable, with a learnable label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kubeloop.sampledata import generate
from kubeloop.sampledata.generate import (
    GeneratorConfig,
    generate_events,
    generate_labels,
    write_dataset,
)


def test_same_seed_same_data_other_seed_other_data() -> None:
    config = GeneratorConfig(rows=5000, seed=11, days=7)
    a, b = generate_events(config), generate_events(config)
    pd.testing.assert_frame_equal(a, b)
    other = generate_events(config.model_copy(update={"seed": 12}))
    assert not a["price"].equals(other["price"])
    assert len(a) == 5000


def test_chunked_write_equals_in_memory_generation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generate, "CHUNK_ROWS", 1500)  # force several chunks
    config = GeneratorConfig(rows=5000, seed=3, days=5)
    totals = write_dataset(config, tmp_path)
    # Date partitions (the chunks are time slices, so some cross midnight): one file per
    # chunk and day, each in the folder of its events' UTC date.
    files = sorted((tmp_path / "events").glob("date=*/part-*.parquet"))
    assert {f.name for f in files} == {f"part-{i:05d}.parquet" for i in range(4)}
    assert len({f.parent.name for f in files}) == 5
    for file in files:
        days = pd.read_parquet(file)["event_timestamp"].dt.strftime("%Y-%m-%d")
        assert set(days) == {file.parent.name.removeprefix("date=")}
    events = (
        pd.read_parquet(tmp_path / "events")
        .drop(columns=["date"])
        .sort_values("event_timestamp", kind="stable")
        .reset_index(drop=True)
    )
    expected = generate_events(config).drop(columns=["label"])
    pd.testing.assert_frame_equal(
        events, expected.astype(events.dtypes.to_dict()), check_dtype=False
    )
    labels = pd.read_parquet(tmp_path / "labels")
    assert totals == {"events": 5000, "labels": len(labels)}
    assert list(labels.columns) == ["user_id", "item_id", "event_timestamp", "label"]
    pd.testing.assert_frame_equal(labels, generate_labels(config), check_dtype=False)


def test_stream_shape_seasonality_late_rows_and_label_signal() -> None:
    events = generate_events(GeneratorConfig(rows=20000, seed=5, days=14, late_fraction=0.05))
    assert events["event_timestamp"].is_monotonic_increasing
    lag = events["created_timestamp"] - events["event_timestamp"]
    assert (lag > pd.Timedelta(0)).all()
    late = (lag > pd.Timedelta(hours=1)).mean()
    assert 0.03 < late < 0.07
    hours = events["event_timestamp"].dt.hour
    assert (hours.between(18, 22)).sum() > 2 * (hours.between(3, 7)).sum()  # daily
    weekend = events["event_timestamp"].dt.weekday >= 5
    per_day = events.groupby([events["event_timestamp"].dt.date, weekend]).size()
    assert per_day.xs(True, level=1).mean() > per_day.xs(False, level=1).mean()  # weekly
    # Label depends on what the features reveal (engaged users buy more).
    engaged = events["clicks"] >= 3
    assert events.loc[engaged, "label"].mean() > events.loc[~engaged, "label"].mean() + 0.1
    assert str(events["event_timestamp"].dt.tz) == "UTC"


def test_shift_moves_numeric_columns_from_the_given_time() -> None:
    base = GeneratorConfig(rows=10000, seed=9, days=10)
    shifted = base.model_copy(
        update={
            "shift_at": pd.Timestamp("2026-01-10", tz="UTC").to_pydatetime(),
            "shift_sigma": 2.0,
        }
    )
    a, b = generate_events(base), generate_events(shifted)
    after = a["event_timestamp"] >= pd.Timestamp("2026-01-10", tz="UTC")
    np.testing.assert_allclose(b.loc[~after, "price"], a.loc[~after, "price"])
    delta = (b.loc[after, "dwell_seconds"] - a.loc[after, "dwell_seconds"]).mean()
    assert abs(delta - 2.0 * generate.SHIFTED_COLUMNS["dwell_seconds"]) < 1e-6
    assert (b["event_timestamp"] == a["event_timestamp"]).all()


def test_cli_writes_parquet(tmp_path: Path) -> None:
    generate.main(
        [
            "--rows",
            "2000",
            "--seed",
            "1",
            "--out",
            str(tmp_path),
            "--shift-at",
            "2026-01-20T00:00:00",
            "--shift-sigma",
            "1.5",
        ]
    )
    assert len(pd.read_parquet(tmp_path / "events")) == 2000
    assert len(pd.read_parquet(tmp_path / "labels")) > 0

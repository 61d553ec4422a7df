"""Training-set build end to end: time-based split, both methods write the same splits."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from components.build_training_set.impl import build_training_set
from components.build_training_set.spec import TrainingSetError
from components.build_training_set.split import (
    parse_split,
    recency_weights,
    resolve_windows,
    split_by_time,
    with_recency_weights,
)
from components.build_training_set.tests.test_pit_join import _hard_case_rows, _view, _write_offline

LABELS = {
    "timestampField": "event_timestamp",
    "labelField": "label",
    "entityKeys": ["user_id", "item_id"],
}
SPLIT = {"validation": "1h", "test": "1h", "end": "2026-01-05T12:00:00Z"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[dict]]:
    root = tmp_path_factory.mktemp("ts")
    labels, user_rows, item_rows = _hard_case_rows()
    labels.to_parquet(root / "labels.parquet", index=False)
    views = [
        {
            "featureView": _view(
                "user_stats", "user_id", [("score", "int64"), ("tag", "string")], "1h"
            ),
            "offlinePath": _write_offline(user_rows, root / "user_stats"),
        },
        {
            "featureView": _view("item_stats", "item_id", [("price", "float64")], None),
            "offlinePath": _write_offline(item_rows, root / "item_stats"),
            "names": ["price"],
        },
    ]
    return {**LABELS, "source": str(root / "labels.parquet")}, views


def test_split_windows_are_time_based() -> None:
    split = parse_split({"trainUntil": "2026-01-05T09:00:00Z", "validation": "1h", "test": "30m"})
    windows = resolve_windows(split, pd.Timestamp("2026-01-05T11:59:59.999999Z").to_pydatetime())
    assert windows.end == pd.Timestamp("2026-01-05T12:00:00Z")
    assert windows.test_start == pd.Timestamp("2026-01-05T11:30:00Z")
    assert windows.validation_start == pd.Timestamp("2026-01-05T10:30:00Z")
    assert windows.train_until == pd.Timestamp("2026-01-05T09:00:00Z")


@pytest.mark.parametrize(
    "split",
    [
        {"method": "random", "validation": "1h", "test": "1h"},
        {"validation": "1h", "test": "1h", "trainFraction": 0.8},
        {"validation": "1h", "test": "1h", "shuffle": True},
    ],
)
def test_random_split_is_rejected(split: dict) -> None:
    with pytest.raises(TrainingSetError, match="random splits are not offered"):
        parse_split(split)


def test_overlapping_or_malformed_split_is_named() -> None:
    split = parse_split({"trainUntil": "2026-01-05T11:00:00Z", "validation": "1h", "test": "1h"})
    with pytest.raises(TrainingSetError, match="trainUntil .* is after the validation start"):
        resolve_windows(split, pd.Timestamp("2026-01-05T12:00:00Z").to_pydatetime())
    with pytest.raises(TrainingSetError, match="split.validation"):
        parse_split({"validation": "soon", "test": "1h"})


def test_bad_requests_are_named(inputs: tuple[dict, list[dict]], tmp_path: Path) -> None:
    labels, views = inputs
    with pytest.raises(TrainingSetError, match=r"features \['nope'\] are not declared"):
        build_training_set(
            labels, [{**views[1], "names": ["nope"]}], SPLIT, str(tmp_path), method="feast"
        )
    with pytest.raises(TrainingSetError, match=r"label columns \['lbl'\] are absent"):
        build_training_set(
            {**labels, "labelField": "lbl"}, views, SPLIT, str(tmp_path), method="feast"
        )


@pytest.mark.slow
def test_feast_and_spark_methods_write_identical_splits(
    inputs: tuple[dict, list[dict]], spark: SparkSession, tmp_path: Path
) -> None:
    labels, views = inputs
    feast = build_training_set(labels, views, SPLIT, str(tmp_path / "feast"), method="feast")
    # Spark reads and writes file:// URIs, as the operator hands them (components/uris.py).
    spark_summary = build_training_set(
        {**labels, "source": f"file://{labels['source']}"},
        [{**v, "offlinePath": f"file://{v['offlinePath']}"} for v in views],
        SPLIT,
        f"file://{tmp_path}/spark",
        method="spark",
        spark=spark,
    )
    assert feast.method == "feast" and spark_summary.method == "spark"
    # 12:00 is excluded (end), 10:00-11:00 validation, 11:00-12:00 test, the rest train.
    assert feast.rows == {"train": 2, "validation": 8, "test": 2}
    assert spark_summary.rows == feast.rows
    assert spark_summary.windows == feast.windows
    for name in ("train", "validation", "test"):
        a = pd.read_parquet(tmp_path / "feast" / name)
        b = pd.read_parquet(tmp_path / "spark" / name)
        assert list(a.columns) == list(b.columns) == feast.columns
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    train = pd.read_parquet(tmp_path / "feast" / "train")
    assert (train["event_timestamp"] < pd.Timestamp("2026-01-05T10:00:00Z")).all()


def test_train_window_keeps_only_the_last_window_before_the_training_end() -> None:
    split = parse_split({"validation": "1h", "test": "1h", "trainWindow": "2h"})
    windows = resolve_windows(split, pd.Timestamp("2026-01-05T11:59:59.999999Z").to_pydatetime())
    assert windows.train_until == pd.Timestamp("2026-01-05T10:00:00Z")
    assert windows.train_start == pd.Timestamp("2026-01-05T08:00:00Z")
    stamps = pd.to_datetime(
        ["2026-01-05T07:59:59Z", "2026-01-05T08:00:00Z", "2026-01-05T09:59:00Z"], utc=True
    )
    frame = pd.DataFrame({"ts": stamps, "label": [0, 1, 0]})
    train = split_by_time(frame, "ts", windows)["train"]
    assert list(train["ts"]) == list(stamps[1:])  # the row before the window is dropped
    everything = resolve_windows(
        parse_split({"validation": "1h", "test": "1h"}),
        pd.Timestamp("2026-01-05T11:59:59.999999Z").to_pydatetime(),
    )
    assert everything.train_start is None
    assert len(split_by_time(frame, "ts", everything)["train"]) == 3


def test_recency_weights_halve_per_half_life_and_average_one() -> None:
    weights = recency_weights(np.array([0.0, 3600.0, 7200.0, 7200.0]), timedelta(hours=1))
    assert weights.mean() == pytest.approx(1.0)
    assert weights[1] / weights[0] == pytest.approx(0.5)
    assert weights[2] / weights[0] == pytest.approx(0.25)
    assert recency_weights(np.zeros(0), timedelta(hours=1)).size == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [("trainWindow", "a week"), ("trainWindow", "0s"), ("recencyHalfLife", "-1d")],
)
def test_bad_window_durations_name_the_field(field: str, value: str) -> None:
    with pytest.raises(TrainingSetError, match=f"split.{field}"):
        parse_split({"validation": "1h", "test": "1h", field: value})


def test_weight_column_clashing_with_a_label_column_is_named() -> None:
    split = parse_split({"validation": "1h", "test": "1h", "recencyHalfLife": "1h"})
    windows = resolve_windows(split, pd.Timestamp("2026-01-05T12:00:00Z").to_pydatetime())
    frame = pd.DataFrame({"ts": pd.to_datetime(["2026-01-05T08:00:00Z"], utc=True)})
    with pytest.raises(TrainingSetError, match="split.recencyHalfLife"):
        with_recency_weights(frame.assign(sample_weight=1.0), "ts", windows, split)


@pytest.mark.slow
def test_windowed_weighted_splits_agree_between_feast_and_spark(
    inputs: tuple[dict, list[dict]], spark: SparkSession, tmp_path: Path
) -> None:
    labels, views = inputs
    split = {**SPLIT, "validation": "30m", "test": "30m", "trainWindow": "1h"}
    split["recencyHalfLife"] = "15m"
    feast = build_training_set(labels, views, split, str(tmp_path / "feast"), method="feast")
    spark_summary = build_training_set(
        labels, views, split, str(tmp_path / "spark"), method="spark", spark=spark
    )
    # Train is [10:00, 11:00): the 08:00 and 09:45 labels are outside the sliding window.
    assert feast.rows == spark_summary.rows == {"train": 8, "validation": 1, "test": 1}
    a = pd.read_parquet(tmp_path / "feast" / "train")
    b = pd.read_parquet(tmp_path / "spark" / "train")
    pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert a["sample_weight"].mean() == pytest.approx(1.0)
    ages = (pd.Timestamp("2026-01-05T11:00:00Z") - a["event_timestamp"]).dt.total_seconds()
    expected = np.exp2(-ages / 900.0)
    np.testing.assert_allclose(a["sample_weight"], expected / expected.mean())
    assert "sample_weight" not in pd.read_parquet(tmp_path / "feast" / "validation").columns


def test_auto_is_duckdb_on_one_node_and_writes_feasts_splits(
    inputs: tuple[dict, list[dict]], tmp_path: Path
) -> None:
    labels, views = inputs
    feast = build_training_set(labels, views, SPLIT, str(tmp_path / "feast"), method="feast")
    auto = build_training_set(labels, views, SPLIT, str(tmp_path / "auto"))
    assert auto.method == "duckdb"
    assert auto.rows == feast.rows and auto.windows == feast.windows
    for name in ("train", "validation", "test"):
        pd.testing.assert_frame_equal(
            pd.read_parquet(tmp_path / "auto" / name), pd.read_parquet(tmp_path / "feast" / name)
        )
    # Beyond the memory budget auto goes to Spark (the choice itself: components/engines.py).
    with pytest.raises(TrainingSetError, match="engine 'polars' is not one of"):
        build_training_set(labels, views, SPLIT, str(tmp_path / "x"), method="polars")  # type: ignore[arg-type]

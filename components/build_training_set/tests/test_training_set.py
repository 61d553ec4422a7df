"""Training-set build end to end: time-based split, both methods write the same splits."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from components.build_training_set.impl import build_training_set
from components.build_training_set.spec import TrainingSetError
from components.build_training_set.split import parse_split, resolve_windows
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
    spark_summary = build_training_set(
        labels, views, SPLIT, str(tmp_path / "spark"), method="spark", spark=spark
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

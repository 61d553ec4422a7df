"""Spark backfill on real Spark (one local session for the module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import SparkSession

from components.spark_feature_backfill.definition import DefinitionError
from components.spark_feature_backfill.impl import BackfillError, backfill, run_backfill
from kubeloop.sampledata.feature_views import user_activity_view
from kubeloop.sampledata.generate import GeneratorConfig, write_dataset


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("data")
    write_dataset(GeneratorConfig(rows=3000, seed=3, days=3), root)
    return str(root / "events")


def _expected(events: str, start: str, end: str) -> pd.DataFrame:
    frame = pd.read_parquet(events)
    window = (frame["event_timestamp"] >= pd.Timestamp(start)) & (
        frame["event_timestamp"] < pd.Timestamp(end)
    )
    return frame[window]


@pytest.mark.slow
def test_backfill_writes_date_partitions_and_reruns_idempotently(
    spark: SparkSession, events: str, tmp_path: Path
) -> None:
    view = user_activity_view(events)
    out = str(tmp_path / "offline")
    # Two windows meeting at noon: the second must not wipe the first one's morning rows.
    first = backfill(spark, view, "2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z", out)
    second = backfill(spark, view, "2026-01-06T12:00:00Z", "2026-01-08T00:00:00Z", out)
    again = backfill(spark, view, "2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z", out)
    assert first == len(_expected(events, "2026-01-05T00:00:00Z", "2026-01-06T12:00:00Z"))
    assert second == len(_expected(events, "2026-01-06T12:00:00Z", "2026-01-08T00:00:00Z"))
    assert again == first
    assert sorted(p.name for p in Path(out).iterdir() if p.is_dir()) == [
        "date=2026-01-05",
        "date=2026-01-06",
        "date=2026-01-07",
    ]
    written = (
        pd.read_parquet(out).sort_values(["event_timestamp", "user_id"]).reset_index(drop=True)
    )
    source = _expected(events, "2026-01-05T00:00:00Z", "2026-01-08T00:00:00Z").sort_values(
        ["event_timestamp", "user_id"]
    )
    source = source.reset_index(drop=True)
    assert len(written) == first + second
    assert list(written.columns[:8]) == [
        "user_id",
        "event_timestamp",
        "created_timestamp",
        "dwell_seconds",
        "clicks",
        "log_dwell",
        "clicked",
        "device",
    ]
    assert (written["event_timestamp"] == source["event_timestamp"]).all()
    assert (written["created_timestamp"] == source["created_timestamp"]).all()
    np.testing.assert_allclose(written["log_dwell"], np.log1p(source["dwell_seconds"]))
    assert (written["clicked"] == (source["clicks"] > 0)).all()
    dates = written["event_timestamp"].dt.strftime("%Y-%m-%d")
    assert (written["date"].astype(str) == dates).all()


def test_csv_source_without_created_field(spark: SparkSession, events: str, tmp_path: Path) -> None:
    csv = tmp_path / "events.csv"
    frame = pd.read_parquet(events).head(200)
    frame.drop(columns=["created_timestamp"]).to_csv(csv, index=False)
    view = user_activity_view(str(csv))
    view["source"] = {"path": str(csv), "format": "csv", "timestampField": "event_timestamp"}
    view["transformation"] = {
        "sql": "SELECT user_id, event_timestamp, CAST(clicks AS BIGINT) AS clicks FROM source"
    }
    view["features"] = [{"name": "clicks", "dtype": "int64"}]
    rows = backfill(
        spark, view, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", str(tmp_path / "out")
    )
    assert rows == 200
    written = pd.read_parquet(tmp_path / "out")
    assert (written["created_timestamp"] == written["event_timestamp"]).all()


def test_bad_inputs_name_the_problem(spark: SparkSession, events: str, tmp_path: Path) -> None:
    view = user_activity_view(events)
    out = str(tmp_path / "out")
    window = ("2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z")
    missing = {**view, "source": {**view["source"], "path": str(tmp_path / "missing")}}
    with pytest.raises(BackfillError, match=r"source.path .*missing.* does not exist"):
        backfill(spark, missing, *window, out)
    bad_sql = {**view, "transformation": {"sql": "SELECT user_id, no_such_column FROM source"}}
    with pytest.raises(
        BackfillError, match=r"Spark SQL error in transformation.sql: .*no_such_column"
    ):
        backfill(spark, bad_sql, *window, out)
    syntax = {**view, "transformation": {"sql": "SELEC user_id FROM source"}}
    with pytest.raises(
        BackfillError, match=r"Spark SQL error in transformation.sql: .*PARSE_SYNTAX_ERROR"
    ):
        backfill(spark, syntax, *window, out)
    absent = {**view, "features": [*view["features"], {"name": "basket_size", "dtype": "int64"}]}
    with pytest.raises(BackfillError, match=r"lacks declared column\(s\) \['basket_size'\]"):
        backfill(spark, absent, *window, out)
    wrong = {**view, "features": [{"name": "device", "dtype": "float64"}]}
    with pytest.raises(
        BackfillError, match=r"feature 'device' is declared float64 but the SQL yields string"
    ):
        backfill(spark, wrong, *window, out)
    with pytest.raises(BackfillError, match="window start .* is not before end"):
        backfill(spark, view, window[1], window[0], out)
    with pytest.raises(DefinitionError, match=r"features.0.dtype"):
        backfill(spark, {**view, "features": [{"name": "x", "dtype": "decimal"}]}, *window, out)
    assert not Path(out).exists()


def test_run_backfill_rejects_missing_source_before_starting_spark(tmp_path: Path) -> None:
    view = user_activity_view(str(tmp_path / "nope"))
    with pytest.raises(BackfillError, match="does not exist"):
        run_backfill(view, "2026-01-05", "2026-01-06", str(tmp_path / "out"), "local[1]")


def test_component_is_thin_and_uses_the_kubeloop_image() -> None:
    from components.image import COMPONENT_IMAGE
    from components.spark_feature_backfill.component import spark_feature_backfill

    spec = spark_feature_backfill.component_spec
    assert spec.implementation.container.image == COMPONENT_IMAGE
    assert list(spec.inputs) == [
        "feature_view",
        "start",
        "end",
        "output_path",
        "spark_master",
        "spark_conf",
        "engine",
        "memory_budget_mb",
    ]
    assert spec.outputs["Output"].type == "Integer"
    assert "run_backfill" in " ".join(spec.implementation.container.command)

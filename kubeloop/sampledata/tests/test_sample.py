"""`kubeloop data`: the demo's generator and schema, where examples/resources read it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kubeloop import cli
from kubeloop.sampledata.sample import DEFAULT_OUT, data_start, sample_config, write_sample_data

ROOT = Path(__file__).resolve().parents[3]


def test_history_ends_at_the_current_hour() -> None:
    now = datetime(2026, 11, 21, 17, 42, 13, tzinfo=UTC)
    config = sample_config(now, rows=1000)
    assert config.start == data_start(now, 21) == datetime(2026, 10, 31, 17, 0, tzinfo=UTC)
    assert config.end == datetime(2026, 11, 21, 17, 0, tzinfo=UTC)


def test_data_command_writes_what_the_tour_featureview_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "data"
    assert cli.main(["data", "--out", str(out), "--rows", "2000", "--seed", "3"]) == 0
    assert "wrote 2000 events" in capsys.readouterr().out
    events = pd.read_parquet(out / "events")
    labels = pd.read_parquet(out / "labels")
    assert len(events) == 2000 and len(labels) > 0
    view = yaml.safe_load((ROOT / "examples/resources/featureview.yaml").read_text())["spec"]
    experiment = yaml.safe_load((ROOT / "examples/resources/experiment.yaml").read_text())["spec"]
    assert view["source"]["path"] == f"{DEFAULT_OUT}/events"
    assert experiment["labels"]["source"] == f"{DEFAULT_OUT}/labels"
    sql = view["transformation"]["sql"]
    for feature in view["features"]:  # each feature is a column the events carry
        assert feature["name"] in events.columns and feature["name"] in sql
    for column in (view["source"]["timestampField"], view["source"]["createdTimestampField"]):
        assert column in events.columns
    label_spec = experiment["labels"]
    assert {
        label_spec["labelField"],
        label_spec["timestampField"],
        *label_spec["entityKeys"],
    } <= set(labels.columns)
    assert set(experiment["features"][0]["names"]) <= {f["name"] for f in view["features"]}


def test_a_smaller_rerun_replaces_the_earlier_parts(tmp_path: Path, monkeypatch) -> None:
    from kubeloop.sampledata import generate

    monkeypatch.setattr(generate, "CHUNK_ROWS", 1000)
    now = datetime(2026, 11, 21, tzinfo=UTC)
    write_sample_data(sample_config(now, rows=3000), tmp_path)
    write_sample_data(sample_config(now, rows=1000), tmp_path)
    assert len(pd.read_parquet(tmp_path / "events")) == 1000

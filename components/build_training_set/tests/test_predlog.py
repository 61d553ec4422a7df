"""Training set from the prediction log: served features joined with their outcomes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components.build_training_set.impl import build_training_set
from components.build_training_set.spec import TrainingSetError
from components.build_training_set.tests.test_pit_join import _view

T0 = pd.Timestamp("2026-01-05T00:00:00Z")
NAMES = ["stats__x1", "stats__x2"]


def _log_row(request: str, version: str, hour: int, x1: float, **kw: object) -> dict:
    row: dict = {
        "namespace": "default",
        "model": "ctr",
        "version": version,
        "role": "stable" if version == "1" else "shadow",
        "event_id": f"{request}-{version}",
        "request_id": request,
        "row": 0,
        "served_at": (T0 + pd.Timedelta(hours=hour)).to_pydatetime(),
        "status": 200,
        "latency_ms": 1.0,
        "entity": None,
        "feature_names": NAMES,
        "features": [x1, -x1],
        "score": 0.5,
        "predicted_class": None,
    }
    row.update(kw)
    return row


def write_log(root: Path, rows: list[dict]) -> str:
    frame = pd.DataFrame(rows)
    for day, part in frame.groupby(frame["served_at"].map(lambda t: t.strftime("%Y-%m-%d"))):
        target = root / f"date={day}"
        target.mkdir(parents=True)
        table = pa.Table.from_pandas(part.reset_index(drop=True), preserve_index=False)
        pq.write_table(table, target / "part-1-9.parquet", coerce_timestamps="us")
    return str(root)


@pytest.fixture
def sources(tmp_path: Path) -> tuple[dict, list[dict]]:
    rows = [_log_row(f"r{h}", "1", h, float(h)) for h in range(30)]
    rows.append(_log_row("r3", "2", 3, 3.0))  # the shadow saw the same request
    rows.append(_log_row("r40", "1", 40, 1.0, status=500, score=None))  # failed: no row
    rows.append(_log_row("r5", "1", 5, 9.0, model="other"))  # another model
    log = write_log(tmp_path / "log", rows)
    labels = pd.DataFrame(
        {
            "request_id": [f"r{h}" for h in range(0, 30, 2)] + ["r40", "unknown"],
            "event_timestamp": [T0 + pd.Timedelta(hours=h, minutes=30) for h in range(0, 30, 2)]
            + [T0 + pd.Timedelta(hours=40), T0],
            "label": [h % 4 == 0 for h in range(0, 30, 2)] + [True, False],
        }
    )
    labels["label"] = labels["label"].astype("int64")
    labels.to_parquet(tmp_path / "labels.parquet", index=False)
    spec = {
        "source": str(tmp_path / "labels.parquet"),
        "timestampField": "event_timestamp",
        "labelField": "label",
        "entityKeys": ["request_id"],
        "predictionLog": {"path": log, "model": "ctr", "namespace": "default"},
    }
    views = [
        {
            "featureView": _view("stats", "user_id", [("x1", "float64"), ("x2", "float64")], None),
            "offlinePath": str(tmp_path / "unused"),
        }
    ]
    return spec, views


def test_served_features_join_their_outcomes(
    sources: tuple[dict, list[dict]], tmp_path: Path
) -> None:
    labels, views = sources
    split = {"validation": "6h", "test": "6h", "end": "2026-01-06T06:00:00Z"}
    summary = build_training_set(labels, views, split, str(tmp_path / "out"))
    assert summary.method == "predictionLog"
    assert summary.columns == ["request_id", "event_timestamp", "label", *NAMES]
    parts = {n: pd.read_parquet(tmp_path / "out" / n) for n in ("train", "validation", "test")}
    everything = pd.concat(parts.values())
    # 15 labels matched one logged prediction each: the shadow's copy, the failed call, the
    # other model's prediction and the unknown request give no row.
    assert len(everything) == 15 and everything["request_id"].is_unique
    by_request = everything.set_index("request_id")
    assert by_request.loc["r4", "stats__x1"] == 4.0 and by_request.loc["r4", "stats__x2"] == -4.0
    assert summary.rows == {"train": 9, "validation": 3, "test": 3}


def test_features_the_model_was_not_served_are_named(
    sources: tuple[dict, list[dict]], tmp_path: Path
) -> None:
    labels, views = sources
    views[0]["names"] = ["x1"]
    view = _view("other", "user_id", [("y", "float64")], None)
    views.append({"featureView": view, "offlinePath": str(tmp_path / "unused2")})
    split = {"validation": "6h", "test": "6h"}
    with pytest.raises(TrainingSetError, match=r"features \['other__y'\] were not served"):
        build_training_set(labels, views, split, str(tmp_path / "out"))


def test_labels_matching_no_prediction_are_named(
    sources: tuple[dict, list[dict]], tmp_path: Path
) -> None:
    labels, views = sources
    strangers = pd.read_parquet(labels["source"]).assign(request_id="from-another-app")
    strangers.to_parquet(tmp_path / "strangers.parquet", index=False)
    labels = {**labels, "source": str(tmp_path / "strangers.parquet")}
    with pytest.raises(TrainingSetError, match="none of the 17 label events matched"):
        build_training_set(labels, views, {"validation": "6h", "test": "6h"}, str(tmp_path))

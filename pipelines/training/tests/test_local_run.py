"""The compiled training pipeline end to end through kfp.local (the embedded default).

Tiny data: one FeatureView (user_stats: x1, x2) and label events whose label follows
3·x1 − 2·x2, so a logistic regression beats the single-feature baseline and gets registered.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from operators.backends.kfp_local import KfpLocalBackend
from operators.backends.runs import RunState
from tests.support.mlflow import sqlite_artifact_location

USERS = 200
LABELS_PER_USER = 8
START = pd.Timestamp("2026-01-05T00:00:00Z")


def feature_view() -> dict:
    return {
        "name": "user_stats",
        "entities": [{"name": "user", "joinKey": "user_id", "valueType": "INT64"}],
        "source": {"path": "unused", "timestampField": "event_timestamp"},
        "transformation": {"sql": "SELECT * FROM source"},
        "features": [{"name": "x1", "dtype": "float64"}, {"name": "x2", "dtype": "float64"}],
    }


def write_inputs(root: Path) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(7)
    users = np.arange(USERS)
    x = rng.normal(size=(USERS, 2))
    offline = pd.DataFrame(
        {
            "user_id": users,
            "event_timestamp": START,
            "created_timestamp": START,
            "x1": x[:, 0],
            "x2": x[:, 1],
        }
    )
    for column in ("event_timestamp", "created_timestamp"):
        offline[column] = offline[column].astype("datetime64[us, UTC]")
    offline["date"] = offline["event_timestamp"].dt.strftime("%Y-%m-%d")
    offline.to_parquet(root / "user_stats", partition_cols=["date"], index=False)

    user = np.repeat(users, LABELS_PER_USER)
    minutes = rng.integers(60, 48 * 60, size=user.size)
    score = 3 * x[user, 0] - 2 * x[user, 1] + rng.normal(scale=0.3, size=user.size)
    labels = pd.DataFrame(
        {
            "user_id": user,
            "event_timestamp": (START + pd.to_timedelta(minutes, "min")).astype(
                "datetime64[us, UTC]"
            ),
            "label": (score > 0).astype("int64"),
        }
    )
    labels.to_parquet(root / "labels.parquet", index=False)
    spec = {
        "source": f"file://{root}/labels.parquet",
        "timestampField": "event_timestamp",
        "labelField": "label",
        "entityKeys": ["user_id"],
    }
    # URIs, as the operator hands them (components/uris.py).
    return spec, [{"featureView": feature_view(), "offlinePath": f"file://{root}/user_stats"}]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # five kfp.local steps incl. torchrun; slow on a loaded 2-core box
def test_training_pipeline_runs_locally_and_registers(mlflow_sqlite: str, tmp_path: Path) -> None:
    labels, views = write_inputs(tmp_path)
    client = MlflowClient(mlflow_sqlite)
    client.create_experiment(
        "kubeloop-e2e", artifact_location=sqlite_artifact_location(mlflow_sqlite, "e2e")
    )
    backend = KfpLocalBackend(tmp_path / "runs")
    params = {
        "labels": labels,
        "feature_views": views,
        "split": {"validation": "8h", "test": "8h"},
        "training_set_dir": f"file://{tmp_path}/training_set",
        "model_name": "ctr-e2e",
        "objective": {"metric": "auc", "threshold": 0.7},
        "experiment": "ctr",
        "trial": "t0",
        "feature_view_versions": {"user_stats": "v1"},
        "join_method": "feast",
        "hidden_units": [],
        "epochs": 3,
        "batch_size": 64,
        "learning_rate": 0.1,
        "mlflow_tracking_uri": mlflow_sqlite,
        "mlflow_experiment": "kubeloop-e2e",
        "code_version": "git:test",
    }
    ref = backend.submit("training", "exp-ctr-r1-t0", params)
    status = backend.wait(ref, timeout_s=1100)
    assert status.state == RunState.SUCCEEDED, f"{status.message}\n{status.log_tail}"

    import json

    metrics = json.loads(status.outputs["metrics_json"])
    assert metrics["objective"]["passed"], metrics["objective"]["reason"]
    run_id = status.outputs["mlflow_run_id"]
    (version,) = client.search_model_versions("name = 'ctr-e2e'")
    assert version.run_id == run_id
    assert version.tags["kubeloop.io/kfp-run-name"] == "exp-ctr-r1-t0"
    assert version.tags["kubeloop.io/trial"] == "t0"
    assert json.loads(version.tags["kubeloop.io/feature-view-versions"]) == {"user_stats": "v1"}
    window = json.loads(version.tags["kubeloop.io/data-window"])
    assert window == status.outputs["data_window"]
    assert pd.Timestamp(window["train"]["start"]) >= START
    assert window["train"]["end"] == window["validation"]["start"]
    assert window["test"]["end"] == window["end"]
    # The training reference (feature drift) and the validation scores (prediction drift).
    assert sorted(a.path for a in client.list_artifacts(run_id, "reference")) == [
        "reference/features.parquet",
        "reference/validation_scores.parquet",
    ]
    assert client.get_run(run_id).data.metrics["eval_validation_auc"] > 0.7

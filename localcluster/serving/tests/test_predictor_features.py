"""The predictor process serving from Feast: a real KServe ModelServer with the Feast
transformer's preprocess in front of its inference logger, a real MLflow model trained on the
training set's column names, and a real Feast SQLite online store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

from components.feast_apply_materialize.feast_objects import FeastStoreConfig
from components.feast_apply_materialize.impl import apply_and_materialize
from contracts import feature_serving as fs
from localcluster.serving import constants as c
from localcluster.serving.tests.conftest import (
    EventSink,
    RegisteredModel,
    start_predictor,
    stop_process,
)

pytestmark = pytest.mark.slow  # a predictor start-up and a Feast materialization

VIEW: dict[str, Any] = {
    "name": "acts",
    "entities": [{"name": "customer", "joinKey": "customer_id", "valueType": "INT64"}],
    "source": {"path": "/unused", "timestampField": "ts"},
    "transformation": {"sql": "SELECT * FROM source"},
    "features": [{"name": "x1", "dtype": "float64"}, {"name": "x2", "dtype": "float64"}],
    "ttl": "30d",
}
ONLINE = {1: (0.0, 3.0), 2: (3.0, 0.0)}
COLUMNS = ["acts__x1", "acts__x2"]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, event_sink: EventSink
) -> Iterator[tuple[str, LogisticRegression]]:
    root = Path(tmp_path_factory.mktemp("feast-predictor"))
    offline = pd.DataFrame(
        [(k, pd.Timestamp("2026-01-05T08:00:00Z"), x1, x2) for k, (x1, x2) in ONLINE.items()],
        columns=["customer_id", "event_timestamp", "x1", "x2"],
    )
    offline["event_timestamp"] = offline["event_timestamp"].astype("datetime64[us, UTC]")
    offline["created_timestamp"] = offline["event_timestamp"]
    offline["date"] = "2026-01-05"
    offline.to_parquet(root / "offline", partition_cols=["date"], index=False)
    store = FeastStoreConfig(project="kl_predictor", repo_path=str(root / "feast"))
    apply_and_materialize(
        VIEW, str(root / "offline"), store, "2026-01-01T00:00:00Z", "2026-01-06T00:00:00Z"
    )

    # A model trained on the training set's columns (<view>__<feature>).
    train = pd.DataFrame({COLUMNS[0]: [0.0, 1.0, 2.0, 3.0], COLUMNS[1]: [3.0, 2.0, 1.0, 0.0]})
    model = LogisticRegression().fit(train, [0, 0, 1, 1])
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.create_experiment("feast", artifact_location=(root / "art").as_uri())
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(train, model.predict(train)),
            registered_model_name="acts-model",
            pip_requirements=["mlflow"],
        )
    registered = RegisteredModel(
        tracking_uri, f"models:/acts-model/{info.registered_model_version}"
    )
    args = [
        f"{fs.ARG_FEATURE_VIEW}=acts",
        f"{fs.ARG_ENTITY_KEY}=customer_id",
        f"{fs.ARG_FEATURES}={json.dumps({'x1': 'float64', 'x2': 'float64'})}",
        f"{fs.ARG_DEFAULTS}={json.dumps({'x1': 2.5})}",
        f"{fs.ARG_FEAST_STORE}={store.model_dump_json(by_alias=True)}",
    ]
    extra = [
        "--mlmodel", "churn", "--inference-service", "acts-v1",
        "--logger-url", event_sink.url,
        "--transformer-args", json.dumps(args),
    ]  # fmt: skip
    # Served under the MLModel's name, as the kubeloop runtime runs it.
    proc, base = start_predictor(registered, "churn", root / "predictor.log", extra)
    yield base, model
    stop_process(proc)


def _expected(model: LogisticRegression, rows: list[tuple[float, float]]) -> list[int]:
    return [int(v) for v in model.predict(pd.DataFrame(rows, columns=COLUMNS))]


def test_entities_are_answered_from_the_online_store(
    served: tuple[str, LogisticRegression], event_sink: EventSink
) -> None:
    base, model = served
    body = {"instances": [{"customer_id": 1}, {"customer_id": 2}, {"customer_id": 404}]}
    answer = httpx.post(
        f"{base}/v1/models/churn:predict", json=body, headers={c.REQUEST_ID_HEADER: "feast-1"}
    )
    assert answer.status_code == 200, answer.text
    # Known entities: their online values; the unknown one: x1's default 2.5, x2's 0.
    rows = [ONLINE[1], ONLINE[2], (2.5, 0.0)]
    assert answer.json()["predictions"] == _expected(model, rows)
    assert _expected(model, rows) != _expected(model, [ONLINE[1], ONLINE[2], (0.0, 3.0)])

    # The logged request is the filled one: the prediction log holds the served features.
    events = {h[c.CE_TYPE_HEADER]: b for h, b in event_sink.wait_for("feast-1", 2)}
    logged = json.loads(events[c.CE_TYPE_REQUEST])["instances"]
    # Each row stamped with when the store was read (the skew check pairs rows at it); the
    # model ignores the stamp, as it ignores the entity.
    stamps = {row.pop(fs.FETCHED_AT_INPUT) for row in logged}
    assert len(stamps) == 1 and isinstance(stamps.pop(), float)
    assert logged[2] == {"customer_id": 404, "acts__x1": 2.5, "acts__x2": 0.0}
    assert logged[0] == {"customer_id": 1, "acts__x1": 0.0, "acts__x2": 3.0}

    metrics = httpx.get(f"{base}/metrics").text
    assert f'{fs.MISSING_ENTITIES_METRIC}{{feature_view="acts"}} 1.0' in metrics


def test_a_request_without_the_entity_is_a_400(served: tuple[str, LogisticRegression]) -> None:
    base, _ = served
    answer = httpx.post(f"{base}/v2/models/churn/infer", json={"inputs": [{"x": 1}]})
    assert answer.status_code == 400
    assert "customer_id" in answer.json()["error"]

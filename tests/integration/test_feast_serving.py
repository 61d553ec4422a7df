"""Serving from Feast on real Feast: a FeatureView applied and materialized to SQLite (and
Redis) from a small offline store, requests naming only the entity filled from its online
store by the transformer's middleware in front of the real inference logger, the logged
(served) rows fed to the monitor's skew check against the same offline store.

Served at 08:30 the online store agrees with the offline store as of then: skew 0. Served at
11:00 without a new materialization, the online values are those of 08:00 while the offline
store holds the 10:00 rows: every compared value disagrees, and the check says so.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import redis
from prometheus_client import CollectorRegistry
from starlette.types import Receive, Scope, Send

from components.feast_apply_materialize.feast_objects import FeastStoreConfig, open_store
from components.feast_apply_materialize.impl import apply_and_materialize
from contracts import feature_serving as fs
from contracts.monitor_config import SkewConfig
from localcluster.serving.feast_transformer import (
    FeatureFiller,
    FeatureServingMetrics,
    FeatureServingMiddleware,
    OnlineFeatures,
    parse_transformer_args,
)
from localcluster.serving.inference_logger import InferenceLoggerMiddleware, LoggedExchange
from services.monitor.drift.skew import read_offline, skew_result
from services.monitor.served import split_entities

VIEW: dict[str, Any] = {
    "name": "customer-activity",
    "entities": [{"name": "customer", "joinKey": "customer_id", "valueType": "INT64"}],
    "source": {"path": "/unused", "timestampField": "ts"},
    "transformation": {"sql": "SELECT * FROM source"},
    "features": [{"name": "tenure", "dtype": "int64"}, {"name": "spend", "dtype": "float64"}],
    "ttl": "1d",
}
KNOWN = [1, 2, 3, 4, 5]
UNKNOWN = 999


def _t(text: str) -> pd.Timestamp:
    return pd.Timestamp(f"2026-01-05T{text}", tz="UTC")


@pytest.fixture
def offline_store(tmp_path: Path) -> Path:
    """Each customer at 08:00, and again at 10:00 with other values."""
    rows = []
    for customer in KNOWN:
        rows.append((customer, _t("08:00:00"), customer * 10, customer * 1.5))
        rows.append((customer, _t("10:00:00"), customer * 10 + 1, customer * 1.5 + 100.0))
    frame = pd.DataFrame(rows, columns=["customer_id", "event_timestamp", "tenure", "spend"])
    frame["event_timestamp"] = frame["event_timestamp"].astype("datetime64[us, UTC]")
    frame["created_timestamp"] = frame["event_timestamp"]
    frame["date"] = frame["event_timestamp"].dt.strftime("%Y-%m-%d")
    path = tmp_path / "offline" / "customer_activity"
    frame.to_parquet(path, partition_cols=["date"], index=False)
    return path


class Captured:
    """The inference logger's sender, keeping what it would send to the monitor."""

    def __init__(self) -> None:
        self.exchanges: list[LoggedExchange] = []

    def submit(self, exchange: LoggedExchange) -> None:
        self.exchanges.append(exchange)


class EchoModel:
    """The predictor behind: answers one score per row, keeps the bodies it was given."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = json.loads(b"".join(chunks))
        self.bodies.append(body)
        answer = json.dumps({"predictions": [0.5] * len(body["instances"])}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})


def _transformer_args(config: FeastStoreConfig) -> list[str]:
    """The args the MLModel operator writes (operators/mlmodel/features.py), as KServe passes
    them on together with its own."""
    return [
        f"{fs.ARG_FEATURE_VIEW}=customer-activity",
        f"{fs.ARG_ENTITY_KEY}=customer_id",
        f"{fs.ARG_ENTITY_TYPE}=INT64",
        f"{fs.ARG_FEATURES}={json.dumps({'tenure': 'int64', 'spend': 'float64'})}",
        f"{fs.ARG_DEFAULTS}={json.dumps({'spend': -1.0})}",
        f"{fs.ARG_FEAST_STORE}={config.model_dump_json(by_alias=True)}",
        "--model_name=churn-v1",
        "--predictor_host=churn-v1-predictor.default",
    ]


async def _serve(
    config: FeastStoreConfig, bodies: list[dict[str, Any]]
) -> tuple[list[httpx.Response], EchoModel, Captured, CollectorRegistry]:
    spec, store, _ = parse_transformer_args(_transformer_args(config))
    registry = CollectorRegistry()
    filler = FeatureFiller(spec, OnlineFeatures(spec, store), FeatureServingMetrics(registry))
    model, captured = EchoModel(), Captured()
    logger = InferenceLoggerMiddleware(model, sender=captured)  # type: ignore[arg-type]
    app = FeatureServingMiddleware(logger, filler)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://predictor") as client:
        answers = [await client.post("/v1/models/churn:predict", json=body) for body in bodies]
    return answers, model, captured, registry


def _skew_of(
    captured: Captured, offline: Path, served_at: float, complete_until: float | None = None
) -> dict[str, Any]:
    skew = SkewConfig(
        entity_key="customer_id",
        offline=str(offline),
        columns={"customer_activity__tenure": "tenure", "customer_activity__spend": "spend"},
        ttl_seconds=86400.0,
        offline_complete_until=complete_until,
    )
    rows = []
    for exchange in captured.exchanges:
        _, served = split_entities(json.loads(exchange.request_body), skew, served_at)
        rows += served
    return skew_result(rows, read_offline(offline, skew, list(skew.columns.values())), skew)


def _materialize(config: FeastStoreConfig, offline: Path) -> None:
    apply_and_materialize(
        VIEW, str(offline), config, "2026-01-05T00:00:00Z", "2026-01-05T09:00:00Z"
    )


def _check_serving(config: FeastStoreConfig, offline: Path) -> None:
    requests = [{"instances": [{"customer_id": c, "hour": 8}]} for c in KNOWN]
    requests.append({"instances": [{"customer_id": UNKNOWN}, {"customer_id": 2}]})
    answers, model, captured, registry = asyncio.run(_serve(config, requests))
    assert [a.status_code for a in answers] == [200] * len(requests)

    # Known entities: the online values of 08:00 (the 10:00 rows were not materialized),
    # stamped with when the store was read (the skew check's timestampKey).
    first = dict(model.bodies[0]["instances"][0])
    assert abs(first.pop(fs.FETCHED_AT_INPUT) - time.time()) < 600
    assert first == {
        "customer_id": 1,
        "hour": 8,
        "customer_activity__tenure": 10,
        "customer_activity__spend": 1.5,
    }
    # The unknown entity: the documented defaults (declared spend, 0 for tenure), counted.
    unknown, known = model.bodies[-1]["instances"]
    assert unknown["customer_activity__tenure"] == 0
    assert unknown["customer_activity__spend"] == -1.0
    assert known["customer_activity__tenure"] == 20
    view = {"feature_view": "customer-activity"}
    assert registry.get_sample_value(fs.MISSING_ENTITIES_METRIC, view) == 1.0
    assert registry.get_sample_value(fs.SERVED_ROWS_METRIC, view) == len(KNOWN) + 2
    defaulted = {**view, "feature": "spend"}
    assert registry.get_sample_value(fs.DEFAULTED_VALUES_METRIC, defaulted) == 1.0

    # The prediction log gets the served features with the entity: what the model saw.
    assert [json.loads(e.request_body) for e in captured.exchanges] == model.bodies

    consistent = _skew_of(captured, offline, _t("08:30:00").timestamp())
    assert consistent["pairs"] == len(KNOWN) + 1
    assert consistent["unmatched_served"] == 1  # the unknown entity has no offline row
    assert consistent["mismatch_fraction"] == {
        "customer_activity__tenure": 0.0,
        "customer_activity__spend": 0.0,
    }
    assert consistent["is_skew"] is False

    stale = _skew_of(captured, offline, _t("11:00:00").timestamp())
    assert stale["mismatch_fraction"] == {
        "customer_activity__tenure": 1.0,
        "customer_activity__spend": 1.0,
    }
    assert stale["is_skew"] is True
    # Had the offline store been complete only up to 09:00 (its FeatureView's freshness), the
    # rows served at 11:00 would wait for the next backfill instead of reading as skew.
    waiting = _skew_of(captured, offline, _t("11:00:00").timestamp(), _t("09:00:00").timestamp())
    assert waiting["pairs"] == 0 and waiting["pending_served"] == len(KNOWN) + 2
    assert "newer than the offline store" in waiting["skipped"]
    partly = _skew_of(captured, offline, _t("08:30:00").timestamp(), _t("09:00:00").timestamp())
    assert partly["pending_served"] == 0 and partly["is_skew"] is False


def test_sqlite_online_store_serves_defaults_and_agrees_with_offline(
    offline_store: Path, tmp_path: Path
) -> None:
    config = FeastStoreConfig(project="kl_serving", repo_path=str(tmp_path / "repo"))
    _materialize(config, offline_store)
    _check_serving(config, offline_store)


def test_redis_online_store(offline_store: Path, tmp_path: Path) -> None:
    project = f"kltest_{uuid.uuid4().hex[:10]}"
    config = FeastStoreConfig(
        project=project,
        repo_path=str(tmp_path / "repo"),
        online_store="redis",
        redis_connection_string="127.0.0.1:6379",
    )
    try:
        _materialize(config, offline_store)
        _check_serving(config, offline_store)
    finally:
        open_store(config).teardown()
    client = redis.Redis(host="127.0.0.1", port=6379)
    assert not any(True for _ in client.scan_iter(match=f"*{project}".encode()))


def test_bad_requests_are_4xx_and_an_unapplied_view_is_503(
    offline_store: Path, tmp_path: Path
) -> None:
    config = FeastStoreConfig(project="kl_serving", repo_path=str(tmp_path / "repo"))
    # Nothing applied yet: the store cannot answer for the view, a 503 naming it.
    answers, model, captured, _ = asyncio.run(_serve(config, [{"instances": [{"customer_id": 1}]}]))
    assert answers[0].status_code == 503
    assert "customer-activity" in answers[0].json()["error"]
    _materialize(config, offline_store)
    bad: list[dict[str, Any]] = [
        {"instances": [{"hour": 1}]},
        {"instances": [{"customer_id": 1, "customer_activity__spend": 2.0}]},
    ]
    answers, model, captured, _ = asyncio.run(_serve(config, bad))
    assert [a.status_code for a in answers] == [400, 400]
    assert "lacks the entity input 'customer_id'" in answers[0].json()["error"]
    assert "customer_activity__spend" in answers[1].json()["error"]
    assert model.bodies == [] and captured.exchanges == []

"""Training-serving skew over real HTTP: served rows with an entity input, as-of joined to a
hive-partitioned offline parquet dataset, evaluated, reported, exported and rebuilt after a
restart; bad skew config and unreadable offline data."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pytest

from services.monitor import MonitorService
from services.monitor.config import SkewConfig
from services.monitor.served import split_entities
from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import BASE, post_evaluate, put_config, running, settings

ENTITIES = 50
DAY1 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
DAY2 = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
SERVED_AT = DAY2 + 12 * 3600  # as of this time the day-2 partition holds the values


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def offline_values(day: int) -> pd.DataFrame:
    ids = np.arange(ENTITIES)
    return pd.DataFrame(
        {
            "user_id": ids,
            "event_timestamp": pd.to_datetime(DAY1 if day == 1 else DAY2, unit="s", utc=True),
            "f_amount": ids * 10.0 + day,
            "f_count": (ids % 7 + day).astype(np.float64),
        }
    )


def write_offline(root: Path) -> Path:
    """Two date partitions; day 2 changes every entity's values."""
    for day in (1, 2):
        folder = root / f"date=2026-11-0{day}"
        folder.mkdir(parents=True)
        offline_values(day).to_parquet(folder / "part-0.parquet", index=False)
    return root


def write_reference(path: Path) -> str:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"amount": rng.uniform(0, 500, 400), "count": rng.integers(2, 9, 400)})
    frame.astype(np.float64).to_parquet(path)
    return str(path)


def skew_config(offline: str, **skew: Any) -> dict[str, Any]:
    return {
        "stableVersion": "1",
        "windowSize": 500,
        "drift": {"detector": "ks", "pValue": 0.01, "minWindow": 10},
        "skew": {
            "entityKey": "user_id",
            "offline": offline,
            "columns": {"amount": "f_amount", "count": "f_count"},
            "ttlSeconds": 3 * 86400,
            "maxMismatchFraction": 0.05,
            "maxRows": 50,
            **skew,
        },
    }


def served_rows(ids: range | list[int], amount_offset: float = 0.0) -> list[dict[str, Any]]:
    today = offline_values(2).set_index("user_id")
    return [
        {
            "user_id": int(i),
            "amount": float(today.loc[i, "f_amount"]) + amount_offset if i in today.index else 1.0,
            "count": float(today.loc[i, "f_count"]) if i in today.index else 1.0,
        }
        for i in ids
    ]


async def post_calls(
    http: aiohttp.ClientSession, url: str, rows: list[dict[str, Any]], prefix: str
) -> None:
    for start in range(0, len(rows), 10):
        batch, rid = rows[start : start + 10], f"{prefix}-{start}"
        headers = binary_headers("request", rid, "1")
        async with http.post(url, data=json.dumps({"instances": batch}), headers=headers) as r:
            assert r.status == 200, await r.text()
        headers = binary_headers("response", rid, "1", status=200, latency_ms=1.0)
        body = json.dumps({"predictions": [0.5] * len(batch)})
        async with http.post(url, data=body, headers=headers) as r:
            assert r.status == 200, await r.text()


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[MonitorService]:
    async with running(
        MonitorService(settings(tmp_path / "data"), clock=Clock(SERVED_AT))
    ) as service:
        yield service


async def test_skew_is_found_reported_and_rebuilt(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    offline = write_offline(tmp_path / "offline")
    config = skew_config(offline.as_uri())
    config["references"] = {"1": write_reference(tmp_path / "ref.parquet")}
    await put_config(http, monitor.url, config)

    await post_calls(http, monitor.ingest_url, served_rows(range(ENTITIES)), "same")
    skew = (await post_evaluate(http, monitor.url))["versions"]["1"]["checks"]["skew"]
    assert skew["isSkew"] is False, skew
    assert skew["pairs"] == ENTITIES and skew["unmatchedServed"] == 0
    assert skew["mismatchFraction"] == {"amount": 0.0, "count": 0.0}
    assert skew["maxMismatchFraction"] == 0.05 and skew["message"] is None

    # The entity input is stripped from the features: never a drift feature.
    version = (await post_evaluate(http, monitor.url))["versions"]["1"]
    assert set(version["pValues"]) == {"amount", "count"}
    assert monitor.core.models[("team-a", "churn")].versions["1"].feature_names == [
        "amount",
        "count",
    ]

    # 45 of the newest 50 rows (maxRows) serve amount off by +1.
    shifted = served_rows(range(45), amount_offset=1.0) + served_rows(range(45, ENTITIES))
    await post_calls(http, monitor.ingest_url, shifted, "off")
    body = await post_evaluate(http, monitor.url)
    skew = body["versions"]["1"]["checks"]["skew"]
    assert skew["isSkew"] is True and skew["skewedFeatures"] == ["amount"], skew
    assert skew["pairs"] == ENTITIES
    assert skew["mismatchFraction"] == {"amount": 0.9, "count": 0.0}
    assert body["versions"]["1"]["isDrift"] is False  # skew never decides drift

    # The operator re-sending the same config keeps the served rows.
    await put_config(http, monitor.url, config)
    assert (await post_evaluate(http, monitor.url))["versions"]["1"]["checks"]["skew"][
        "pairs"
    ] == 50

    async with http.get(f"{monitor.url}/metrics") as r:
        text = await r.text()
    assert (
        'kubeloop_monitor_skew_mismatch_fraction{feature="amount",model="churn",'
        'namespace="team-a",version="1"} 0.9' in text
    )
    async with http.get(f"{monitor.url}{BASE}/drift/report?version=1") as r:
        page = await r.text()
    assert r.status == 200 and "Training-serving skew" in page and "90.0%" in page

    # Served entities the offline store does not know are counted, not paired.
    await post_calls(http, monitor.ingest_url, served_rows([1000 + i for i in range(5)]), "new")
    skew = (await post_evaluate(http, monitor.url))["versions"]["1"]["checks"]["skew"]
    assert skew["unmatchedServed"] == 5 and skew["pairs"] == ENTITIES - 5

    # A restart rebuilds the served rows from the journal.
    await monitor.stop()
    again = MonitorService(settings(tmp_path / "data"), clock=Clock(SERVED_AT))
    await again.start()
    try:
        skew = (await post_evaluate(http, again.url))["versions"]["1"]["checks"]["skew"]
        assert skew["unmatchedServed"] == 5 and skew["pairs"] == ENTITIES - 5
        assert skew["skewedFeatures"] == ["amount"]
    finally:
        await again.stop()


async def test_as_of_join_uses_the_timestamp_input_and_ttl(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Rows served at a day-1 time pair with day-1 values; beyond the TTL they pair with none."""
    offline = write_offline(tmp_path / "offline")
    config = skew_config(str(offline), timestampKey="ts", ttlSeconds=86400)
    await put_config(http, monitor.url, config)
    day1 = offline_values(1)
    rows = [
        {
            "user_id": int(i),
            "ts": datetime.fromtimestamp(DAY1 + 3600, UTC).isoformat(),
            "amount": float(day1.loc[i, "f_amount"]),
            "count": float(day1.loc[i, "f_count"]),
        }
        for i in range(20)
    ]
    late = [{**row, "ts": DAY2 + 2 * 86400} for row in rows[:5]]  # day 2 + 2 days > TTL
    await post_calls(http, monitor.ingest_url, rows + late, "ts")
    skew = (await post_evaluate(http, monitor.url))["versions"]["1"]["checks"]["skew"]
    assert skew["isSkew"] is False and skew["pairs"] == 20 and skew["unmatchedServed"] == 5


@pytest.mark.parametrize(
    ("skew", "field"),
    [
        ({"columns": {}}, "skew.columns"),
        ({"maxMismatchFraction": 1.0}, "skew.maxMismatchFraction"),
        ({"maxMismatchFraction": -0.1}, "skew.maxMismatchFraction"),
        ({"entityKey": ""}, "skew.entityKey"),
        ({"ttlSeconds": 0}, "skew.ttlSeconds"),
        ({"maxRows": 0}, "skew.maxRows"),
        ({"offline": None}, "skew.offline"),
        ({"columns": {"user_id": "user_id"}}, "columns"),
        ({"unknown": 1}, "skew.unknown"),
    ],
)
async def test_bad_skew_config_is_400_naming_the_field(
    monitor: MonitorService, http: aiohttp.ClientSession, skew: dict[str, Any], field: str
) -> None:
    config = skew_config("/x")
    config["skew"].update(skew)
    async with http.put(f"{monitor.url}{BASE}/config", json=config) as r:
        body = await r.json()
    assert r.status == 400 and field in body["message"], body


@pytest.mark.parametrize("kind", ["missing", "not-parquet", "missing-column"])
async def test_unreadable_offline_data_is_a_message(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path, kind: str
) -> None:
    expected = {"missing": "no such file", "not-parquet": "cannot be read"}
    skew: dict[str, Any] = {"offline": str(tmp_path / "nowhere")}
    if kind == "not-parquet":
        (tmp_path / "junk.parquet").write_text("not parquet")
        skew = {"offline": str(tmp_path / "junk.parquet")}
    elif kind == "missing-column":
        skew = {"offline": str(write_offline(tmp_path / "offline")), "offlineTimestamp": "ts"}
        expected[kind] = "lacks columns ['ts']"
    await put_config(http, monitor.url, skew_config(**skew))
    async with http.get(f"{monitor.url}{BASE}/drift") as r:
        assert r.status == 200
        assert (await r.json())["versions"] == {}  # nothing served yet
    await post_calls(http, monitor.ingest_url, served_rows(range(10)), "x")
    skew_view = (await post_evaluate(http, monitor.url))["versions"]["1"]["checks"]["skew"]
    assert expected[kind] in skew_view["message"] and skew_view["pairs"] == 0, skew_view
    assert skew_view["isSkew"] is False


async def test_skew_only_model_without_entity_rows_says_so(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    config = skew_config(str(write_offline(tmp_path / "offline")))
    del config["drift"]
    await put_config(http, monitor.url, config)
    rows = [{"amount": 1.0, "count": 2.0} for _ in range(10)]  # no user_id input
    await post_calls(http, monitor.ingest_url, rows, "anon")
    skew = (await post_evaluate(http, monitor.url))["versions"]["1"]["checks"]["skew"]
    assert skew["pairs"] == 0 and "no served rows with entity input 'user_id'" in skew["message"]


def test_v2_tensors_split_entity_and_time() -> None:
    skew = SkewConfig.model_validate(
        {"entityKey": "id", "timestampKey": "t", "offline": "/x", "columns": {"a": "fa"}}
    )
    body = {
        "inputs": [
            {"name": "id", "datatype": "BYTES", "shape": [2], "data": ["u1", "u2"]},
            {"name": "t", "datatype": "FP64", "shape": [2, 1], "data": [[10.0], [20.0]]},
            {"name": "a", "datatype": "FP64", "shape": [2], "data": [1.5, None]},
        ]
    }
    stripped, rows = split_entities(body, skew, now=99.0)
    assert [t["name"] for t in stripped["inputs"]] == ["a"]
    assert [(r.entity, r.ts, r.received, r.values) for r in rows] == [
        ("u1", 10.0, 99.0, {"a": 1.5}),
        ("u2", 20.0, 99.0, {"a": None}),
    ]

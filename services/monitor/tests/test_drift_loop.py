"""The closed drift loop over real HTTP: config with a detector and a reference parquet per
version, events from the reference then shifted, evaluation, alarm, history, HTML reports,
metrics, bad config and unloadable references, and a restart on the same data dir."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pytest

from services.monitor import MonitorService
from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import BASE, post_evaluate, put_config, running, settings

ROWS_PER_CALL = 20
WINDOW = 200


def write_reference(path: Path, rows: int = 400, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    pd.DataFrame({"a": rng.standard_normal(rows), "b": rng.standard_normal(rows)}).to_parquet(path)
    return path


def drift_config(reference: str, **drift: Any) -> dict[str, Any]:
    return {
        "windowSize": WINDOW,
        "stableVersion": "1",
        "drift": {"detector": "ks", "pValue": 0.01, "minWindow": 50, **drift},
        "references": {"1": reference},
    }


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[MonitorService]:
    async with running(MonitorService(settings(tmp_path / "data"))) as service:
        yield service


async def post_calls(
    http: aiohttp.ClientSession,
    url: str,
    rows: list[dict[str, float | None]],
    prefix: str,
    version: str = "1",
) -> None:
    """One request + response event per ``ROWS_PER_CALL`` rows; score = sigmoid(a)."""
    for start in range(0, len(rows), ROWS_PER_CALL):
        batch = rows[start : start + ROWS_PER_CALL]
        rid = f"{prefix}-{start}"
        headers = binary_headers("request", rid, version)
        async with http.post(url, data=json.dumps({"instances": batch}), headers=headers) as r:
            assert r.status == 200, await r.text()
        scores = [1 / (1 + float(np.exp(-(row["a"] or 0.0)))) for row in batch]
        headers = binary_headers("response", rid, version, status=200, latency_ms=1.0)
        async with http.post(url, data=json.dumps({"predictions": scores}), headers=headers) as r:
            assert r.status == 200, await r.text()


def sample(seed: int, rows: int = WINDOW, shift: float = 0.0) -> list[dict[str, float | None]]:
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((rows, 2)) + shift
    return [{"a": float(a), "b": float(b)} for a, b in values]


async def evaluate(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    await post_evaluate(http, url)
    async with http.get(url + BASE + "/drift") as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
    return body


async def test_reference_traffic_is_quiet_then_a_shift_alarms_with_a_report(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    reference = write_reference(tmp_path / "reference.parquet")
    await put_config(http, monitor.url, drift_config(str(reference)))
    await post_calls(http, monitor.url + "/", sample(seed=2), "ref")

    quiet = (await evaluate(http, monitor.url))["versions"]["1"]
    assert quiet["isDrift"] is False and quiet["message"] is None
    assert set(quiet["pValues"]) == {"a", "b"}
    assert min(quiet["pValues"].values()) > 0.01
    assert quiet["detector"] == "ks" and quiet["window"] == WINDOW and quiet["reportUrl"] is None
    assert quiet["liveReportUrl"] == "/v1/models/team-a/churn/drift/report?version=1"
    assert "baseline captured" in quiet["checks"]["prediction"]["message"]

    # 40 rows where b is missing: dropped from the feature window, counted per feature.
    nulls: list[dict[str, float | None]] = [{"a": 0.1, "b": None}] * 40
    await post_calls(http, monitor.url + "/", nulls, "nulls")
    await post_calls(http, monitor.url + "/", sample(seed=3, shift=1.0), "shift")
    body = await evaluate(http, monitor.url)
    shifted = body["versions"]["1"]

    assert shifted["isDrift"] is True and shifted["since"] == shifted["checkedAt"]
    assert all(p < shifted["threshold"] for p in shifted["pValues"].values())
    assert shifted["checks"]["prediction"]["isDrift"] is True
    null_rate = shifted["checks"]["nullRate"]
    assert null_rate["isDrift"] is True and null_rate["exceeded"] == ["b"]
    assert null_rate["windowRates"]["a"] == 0.0 and null_rate["windowRates"]["b"] > 0.05
    assert body["results"]["1/feature"]["isDrift"] is True  # the generic keys stay
    assert shifted["reportUrl"] is not None and shifted["reportUrl"].startswith("/v1/reports/")

    async with http.get(monitor.url + shifted["reportUrl"]) as r:
        assert r.status == 200 and r.content_type == "text/html"
        snapshot = await r.text()
    assert snapshot.count("<svg") >= 3  # p-values over time + one histogram per feature
    assert "snapshot at alarm onset" in snapshot and "<script" not in snapshot
    async with http.get(monitor.url + shifted["liveReportUrl"]) as r:
        assert r.status == 200
        assert "<svg" in await r.text()
    async with http.get(monitor.url + "/metrics") as r:
        metrics = await r.text()
    assert 'kubeloop_monitor_drift_p_value{feature="a",model="churn",namespace="team-a"' in metrics

    # Still drifting: same alarm onset, same report.
    again = (await evaluate(http, monitor.url))["versions"]["1"]
    assert again["since"] == shifted["since"] and again["reportUrl"] == shifted["reportUrl"]
    history = monitor.core.models[("team-a", "churn")].history["1/feature"]
    assert [entry["isDrift"] for entry in history] == [False, True, True]


async def test_unknown_models_versions_and_reports_are_404(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    async with http.get(monitor.url + BASE + "/drift/report?version=1") as r:
        assert r.status == 404 and "team-a/churn" in (await r.json())["message"]
    await put_config(http, monitor.url, drift_config(str(tmp_path / "r.parquet")))
    async with http.get(monitor.url + BASE + "/drift/report?version=9") as r:
        assert r.status == 404 and "'9'" in (await r.json())["message"]
    async with http.get(monitor.url + BASE + "/drift/report") as r:
        assert r.status == 400 and "version" in (await r.json())["message"]
    async with http.get(monitor.url + "/v1/reports/feedbeef") as r:
        assert r.status == 404 and "feedbeef" in (await r.json())["message"]
    async with http.post(monitor.url + "/v1/models/team-a/other/drift/evaluate") as r:
        assert r.status == 404


@pytest.mark.parametrize(
    ("drift", "field", "value"),
    [
        ({"detector": "nope"}, "drift.detector", "nope"),
        ({"minWindow": 3}, "drift.minWindow", "10"),
        ({"pValue": 2}, "drift.pValue", "1"),
        ({"detectr": "ks"}, "drift.detectr", "Extra"),
    ],
)
async def test_bad_drift_config_is_400_naming_the_field(
    monitor: MonitorService,
    http: aiohttp.ClientSession,
    drift: dict[str, Any],
    field: str,
    value: str,
) -> None:
    config = {"drift": drift, "references": {"1": "/nowhere.parquet"}}
    async with http.put(monitor.url + BASE + "/config", json=config) as r:
        assert r.status == 400
        body = await r.json()
    assert body["message"].startswith(field + ":") and value in body["message"]


async def test_unloadable_reference_is_a_message_and_is_retried(
    monitor: MonitorService, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    path = tmp_path / "later.parquet"
    await put_config(http, monitor.url, drift_config(path.as_uri()))
    await post_calls(http, monitor.url + "/", sample(seed=4), "ref")

    missing = (await evaluate(http, monitor.url))["versions"]["1"]
    assert missing["isDrift"] is False and "later.parquet" in missing["message"]
    assert missing["pValues"] == {}
    path.write_bytes(b"not parquet at all")
    broken = (await evaluate(http, monitor.url))["versions"]["1"]
    assert "cannot be loaded" in broken["message"]
    async with http.get(monitor.url + missing["liveReportUrl"]) as r:
        assert r.status == 200 and "Reference not available" in await r.text()

    path.unlink()
    write_reference(path)
    loaded = (await evaluate(http, monitor.url))["versions"]["1"]
    assert loaded["message"] is None and set(loaded["pValues"]) == {"a", "b"}


async def test_alarm_history_report_and_baseline_survive_restart(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    reference = write_reference(tmp_path / "reference.parquet")
    service = MonitorService(settings(tmp_path / "data"))
    await service.start()
    try:
        await put_config(http, service.url, drift_config(str(reference)))
        await post_calls(http, service.url + "/", sample(seed=5), "ref")
        await evaluate(http, service.url)
        await post_calls(http, service.url + "/", sample(seed=6, shift=1.0), "shift")
        before = (await evaluate(http, service.url))["versions"]["1"]
        assert before["isDrift"] is True
    finally:
        await service.stop()

    restarted = MonitorService(settings(tmp_path / "data"))
    await restarted.start()
    try:
        async with http.get(restarted.url + BASE + "/drift") as r:
            after = (await r.json())["versions"]["1"]
        assert after == before
        async with http.get(restarted.url + after["reportUrl"]) as r:
            assert r.status == 200 and "<svg" in await r.text()
        state = restarted.core.models[("team-a", "churn")]
        assert [e["isDrift"] for e in state.history["1/feature"]] == [False, True]
        assert ("team-a", "churn", "1") in restarted.drift_suite.baselines
        # The restored baseline is compared against at once (no new capture).
        later = (await evaluate(http, restarted.url))["versions"]["1"]
        assert later["checks"]["prediction"]["pValue"] is not None
        assert later["since"] == before["since"]
    finally:
        await restarted.stop()

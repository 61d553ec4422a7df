"""Restart recovery: kill -9 a monitor subprocess, start it on the same data dir, and the
windows, pairings, half-finished calls, config and bad-input counters are all back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import AUTH_HEADERS
from services.monitor.tests.process import MonitorProcess

BASE = "/v1/models/team-a/churn"


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[MonitorProcess]:
    process = MonitorProcess(tmp_path / "monitor-data", "--flush-interval", "0.05")
    yield process
    process.stop()


def post(client: httpx.Client, url: str, headers: dict[str, str], body: Any) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.post(url, content=raw, headers=headers)
    assert response.status_code == 200, response.text


def send_traffic(client: httpx.Client, url: str) -> None:
    for i in range(40):
        x = [float(i), float(i % 7)]
        post(
            client, url, binary_headers("request", f"r{i}", "1", role="stable"), {"instances": [x]}
        )
        status = 503 if i % 10 == 0 else 200
        headers = binary_headers("response", f"r{i}", "1", role="stable", status=status,
                                 latency_ms=float(i))  # fmt: skip
        post(client, url, headers, {"predictions": [(i % 10) / 10]})
        if i % 4 == 0:  # the router mirrors every 4th call to the shadow version
            headers = binary_headers("response", f"r{i}", "2", role="shadow", latency_ms=1.0)
            post(client, url, headers, {"predictions": [0.55]})
    late = binary_headers("request", "late", "1", role="stable")
    post(client, url, late, {"instances": [[1.0, 1.0]]})
    post(client, url, binary_headers("request", "bad", "1"), b'{"instances": [[NaN, 1]]}')
    refused = client.post(url, content=b"{}", headers={"content-type": "text/plain"})
    assert refused.status_code == 400


def wait_flushed(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while client.get("/healthz").json()["journalBacklog"] > 0:
        assert time.monotonic() < deadline, "journal never flushed"
        time.sleep(0.05)


@pytest.mark.slow  # two monitor process starts; ~10 s idle, more on a loaded machine
def test_kill_9_then_restart_restores_windows(monitor: MonitorProcess) -> None:
    monitor.start()
    with httpx.Client(base_url=monitor.url, headers=AUTH_HEADERS, timeout=10) as client:
        # A long pairing timeout: the "late" call must still be half-open after the restart.
        config = {"windowSize": 25, "scoreTolerance": 0.3, "stableVersion": "1",
                  "pairingTimeoutSeconds": 600}  # fmt: skip
        assert client.put(BASE + "/config", json=config).status_code == 200
        send_traffic(client, monitor.ingest_url)
        wait_flushed(client)
        before = client.get(BASE + "/figures").json()
        bad_before = client.get("/v1/bad-input").json()["totals"]
    monitor.kill9()

    monitor.start()
    with httpx.Client(base_url=monitor.url, headers=AUTH_HEADERS, timeout=10) as client:
        params = {"since": before["since"], "until": before["until"]}
        after = client.get(BASE + "/figures", params=params).json()
        assert after["versions"] == before["versions"]
        stable = after["versions"]["1"]
        assert stable["requests"] == 25  # window size 25 of 40 calls (+1 still pending)
        assert stable["truncated"] is True
        # 10 mirrored calls, but 2 of them (i = 0, 20) failed on stable: no pair.
        assert after["versions"]["2"]["pairedRequests"] == 8
        assert client.get("/v1/bad-input").json()["totals"] == bad_before
        assert bad_before == {"nan": 1, "not_cloudevent": 1}
        assert client.get(BASE + "/config").json()["windowSize"] == 25
        # The half-finished call came back too: its response completes it after the restart.
        headers = binary_headers("response", "late", "1", role="stable", latency_ms=2.0)
        post(client, monitor.ingest_url, headers, {"predictions": [0.5]})
        window = client.get(BASE + "/counts", params={"latencySample": "1"}).json()
        assert window["versions"]["1"]["latencySampleMs"] == [2.0]


def send_features(client: httpx.Client, url: str, prefix: str, shift: float) -> None:
    rng = np.random.default_rng(len(prefix))
    for call in range(10):
        rows = rng.standard_normal((20, 2)) + shift
        instances = [{"a": float(a), "b": float(b)} for a, b in rows]
        post(
            client, url, binary_headers("request", f"{prefix}{call}", "1"), {"instances": instances}
        )
        scores = [float(1 / (1 + np.exp(-a))) for a, _ in rows]
        headers = binary_headers("response", f"{prefix}{call}", "1", status=200)
        post(client, url, headers, {"predictions": scores})


@pytest.mark.slow  # two monitor process starts
def test_kill_9_keeps_drift_alarm_history_report_and_score_baseline(
    monitor: MonitorProcess, tmp_path: Path
) -> None:
    reference = tmp_path / "reference.parquet"
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.standard_normal(400), "b": rng.standard_normal(400)}).to_parquet(
        reference
    )
    config = {"windowSize": 200, "stableVersion": "1", "references": {"1": reference.as_uri()},
              "drift": {"detector": "ks", "pValue": 0.01, "minWindow": 50}}  # fmt: skip
    monitor.start()
    with httpx.Client(base_url=monitor.url, headers=AUTH_HEADERS, timeout=30) as client:
        assert client.put(BASE + "/config", json=config).status_code == 200
        send_features(client, monitor.ingest_url, "ref", 0.0)
        wait_flushed(client)
        assert client.post(BASE + "/drift/evaluate").status_code == 200
        send_features(client, monitor.ingest_url, "shifted", 1.0)
        wait_flushed(client)
        before = client.post(BASE + "/drift/evaluate").json()["versions"]["1"]
        assert before["isDrift"] is True and before["reportUrl"]
        report = client.get(before["reportUrl"]).text
    monitor.kill9()

    monitor.start()
    with httpx.Client(base_url=monitor.url, headers=AUTH_HEADERS, timeout=30) as client:
        after = client.get(BASE + "/drift").json()["versions"]["1"]
        assert after == before
        assert client.get(after["reportUrl"]).text == report
        live = client.get(after["liveReportUrl"]).text
        assert live.count("<circle") == 4  # history: 2 checks x 2 features, restored
        # The score baseline came back: the prediction check compares at once.
        again = client.post(BASE + "/drift/evaluate").json()["versions"]["1"]
        assert again["checks"]["prediction"]["isDrift"] is True
        assert again["since"] == before["since"] and again["reportUrl"] == before["reportUrl"]

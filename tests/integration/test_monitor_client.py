"""The operator's monitor client against a real monitor process: an unchanged config is not
sent again until it is `config_refresh_s` old, a changed one is sent at once, and a monitor
that lost the model (fresh state dir) gets it back on the next push."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from contracts.monitor_config import DriftConfig, ModelConfig
from operators.backends.monitor import HttpMonitor
from services.monitor.tests.http_api import AUTH_HEADERS
from services.monitor.tests.process import MonitorProcess

NAMESPACE, MODEL = "team-a", "churn"


def config(stable: str) -> ModelConfig:
    drift = DriftConfig(detector="ks", p_value=0.01, features=["f0"], min_window=10)
    return ModelConfig(
        stable_version=stable,
        candidate_version=None,
        shadow_version=None,
        score_tolerance=0.1,
        drift=drift,
    )


def monitor_config(url: str) -> dict:
    answer = httpx.get(
        f"{url}/v1/models/{NAMESPACE}/{MODEL}/config", headers=AUTH_HEADERS, timeout=5
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def overwrite_stable(url: str, stable: str) -> None:
    """Another writer changes the monitor's copy behind the client's back: only a PUT from
    the client can put its own config back, so the monitor's copy shows whether it sent."""
    body = config(stable).to_json()
    answer = httpx.put(
        f"{url}/v1/models/{NAMESPACE}/{MODEL}/config", json=body, headers=AUTH_HEADERS, timeout=5
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[MonitorProcess]:
    process = MonitorProcess(tmp_path / "monitor-a")
    process.start()
    yield process
    process.stop()


def test_unchanged_config_is_not_sent_again_until_it_is_stale(monitor: MonitorProcess) -> None:
    client = HttpMonitor(monitor.url, config_refresh_s=3600, token_file=monitor.token_file)
    try:
        client.push_config(NAMESPACE, MODEL, config("1"))
        assert monitor_config(monitor.url)["stableVersion"] == "1"

        overwrite_stable(monitor.url, "9")
        client.push_config(NAMESPACE, MODEL, config("1"))  # same config: not sent
        assert monitor_config(monitor.url)["stableVersion"] == "9"

        client.push_config(NAMESPACE, MODEL, config("2"))  # changed: sent
        assert monitor_config(monitor.url)["stableVersion"] == "2"

        client.config_refresh_s = 0.0  # every copy is stale: sent again
        overwrite_stable(monitor.url, "9")
        client.push_config(NAMESPACE, MODEL, config("2"))
        assert monitor_config(monitor.url)["stableVersion"] == "2"
    finally:
        client.close()


def test_a_monitor_that_lost_the_model_gets_the_config_again(
    monitor: MonitorProcess, tmp_path: Path
) -> None:
    client = HttpMonitor(monitor.url, config_refresh_s=3600, token_file=monitor.token_file)
    try:
        client.push_config(NAMESPACE, MODEL, config("1"))
        monitor.stop()
        fresh = MonitorProcess(tmp_path / "monitor-b")  # a wiped state dir
        fresh.port, fresh.url = monitor.port, monitor.url
        fresh.start()
        try:
            assert client.drift(NAMESPACE, MODEL) == {}  # 404: the monitor lost it
            client.push_config(NAMESPACE, MODEL, config("1"))
            assert monitor_config(fresh.url)["stableVersion"] == "1"
        finally:
            fresh.stop()
    finally:
        client.close()

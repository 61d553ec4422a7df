"""Helpers of the tests that drive drift and skew evaluation through the monitor's HTTP API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from services.monitor import MonitorSettings

BASE = "/v1/models/team-a/churn"


def settings(data_dir: Path) -> MonitorSettings:
    # The loop interval is long: the tests trigger evaluations through the API.
    return MonitorSettings(port=0, data_dir=data_dir, flush_interval_s=0.05, drift_interval_s=3600)


async def put_config(http: aiohttp.ClientSession, url: str, config: dict[str, Any]) -> None:
    async with http.put(f"{url}{BASE}/config", json=config) as r:
        assert r.status == 200, await r.text()


async def post_evaluate(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Run an evaluation now; its answer."""
    async with http.post(f"{url}{BASE}/drift/evaluate") as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body

"""Helpers of the tests that talk to a running monitor over HTTP (config, drift evaluation)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from services.monitor import MonitorService, MonitorSettings
from services.monitor.config import AuthSettings

BASE = "/v1/models/team-a/churn"
#: The embedded token the monitor tests run with: authentication stays on in every test.
TEST_TOKEN = "monitor-test-token"
TEST_AUTH = AuthSettings(token=SecretStr(TEST_TOKEN))
AUTH_HEADERS = {"Authorization": f"Bearer {TEST_TOKEN}"}
AUTH_LINE = f"Authorization: Bearer {TEST_TOKEN}\r\n".encode()


@asynccontextmanager
async def running(service: MonitorService) -> AsyncIterator[MonitorService]:
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


def settings(data_dir: Path) -> MonitorSettings:
    # The loop interval is long: the tests trigger evaluations through the API.
    return MonitorSettings(
        port=0, data_dir=data_dir, flush_interval_s=0.05, drift_interval_s=3600, auth=TEST_AUTH
    )


async def put_config(http: aiohttp.ClientSession, url: str, config: dict[str, Any]) -> None:
    async with http.put(f"{url}{BASE}/config", json=config) as r:
        assert r.status == 200, await r.text()


async def post_evaluate(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """Run an evaluation now; its answer."""
    async with http.post(f"{url}{BASE}/drift/evaluate") as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        return body

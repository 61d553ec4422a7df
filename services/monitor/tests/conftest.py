"""Fixtures shared by the monitor's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from services.monitor.tests.http_api import AUTH_HEADERS


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH_HEADERS) as session:
        yield session

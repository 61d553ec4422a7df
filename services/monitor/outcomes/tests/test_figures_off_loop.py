"""Quality figures are computed off the event loop: while one is in progress (held here by a
file gate in the figures worker), ingest and other requests are answered; the figure then completes and is
cached per window revision."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.monitor import MonitorService, MonitorSettings
from services.monitor.outcomes import figures
from services.monitor.outcomes.service import FIGURES_THREAD
from services.monitor.outcomes.tests.feedback_events import BASE, post_binary, serve
from services.monitor.tests.http_api import AUTH_HEADERS, TEST_AUTH, running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH_HEADERS) as session:
        yield session


def settings(data_dir: Path) -> MonitorSettings:
    return MonitorSettings(
        auth=TEST_AUTH, port=0, ingest_port=0, data_dir=data_dir, flush_interval_s=0.05,
        drift_interval_s=3600, expiry_interval_s=3600,
    )  # fmt: skip


GATE = "KUBELOOP_TEST_FIGURE_GATE"


def held_quality(*args: Any) -> Any:
    """Runs in the monitor's figures executor: records the call and the thread it ran on,
    then waits for the test to release it (a file gate: it would hold a worker process too)."""
    gate = Path(os.environ[GATE])
    with (gate / "calls").open("a") as calls:
        calls.write(f"{threading.current_thread().name}\n")
    deadline = time.monotonic() + 60
    while not (gate / "release").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test never released the figure")
        time.sleep(0.01)
    return figures.version_quality(*args)


def calls(gate: Path) -> list[str]:
    path = gate / "calls"
    return path.read_text().split() if path.exists() else []


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.02)


async def test_ingest_is_answered_while_a_quality_figure_is_computed(
    tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    gate.mkdir()
    monkeypatch.setenv(GATE, str(gate))
    async with running(MonitorService(settings(tmp_path))) as monitor:
        monitor.outcomes.figure = held_quality
        url = monitor.url
        async with http.put(url + BASE + "/config", json={"stableVersion": "1"}) as r:
            assert r.status == 200
        for i, score in enumerate((0.9, 0.2, 0.7, 0.4)):
            await serve(http, url, f"r{i}", "1", score)
            status, _ = await post_binary(
                http, url, f"e{i}", {"requestId": f"r{i}", "label": i % 2}
            )
            assert status == 200

        async def get_quality() -> dict[str, Any]:
            async with http.get(url + BASE + "/quality") as r:
                assert r.status == 200, await r.text()
                body: dict[str, Any] = await r.json()
                return body

        report = asyncio.create_task(get_quality())
        await until(lambda: len(calls(gate)) == 1)
        # The figure is in progress (held): the loop still answers ingest, on both ports, and
        # a request that needs the same figure waits for the one computation.
        await serve(http, url, "r-during", "1", 0.5)
        await serve(http, f"http://127.0.0.1:{monitor.ingest_port}", "r-fast", "1", 0.6)
        async with http.get(url + "/healthz") as r:
            assert r.status == 200
        second = asyncio.create_task(get_quality())
        await asyncio.sleep(0)
        assert not report.done() and not second.done()
        (gate / "release").touch()
        first_body, second_body = await report, await second
        assert [v["labeled"] for v in first_body["versions"]] == [4]
        assert second_body["versions"] == first_body["versions"]
        assert len(calls(gate)) == 1  # one computation served both requests
        assert calls(gate)[0].startswith(FIGURES_THREAD)  # not on the event loop's thread
        # Cached per window revision: asking again computes nothing.
        assert (await get_quality())["versions"] == first_body["versions"]
        assert len(calls(gate)) == 1
        # A new label changes the window: the figure is computed again.
        await post_binary(http, url, "e-new", {"requestId": "r-during", "label": 1})
        assert [v["labeled"] for v in (await get_quality())["versions"]] == [5]
        assert len(calls(gate)) == 2


async def test_cached_figures_are_answered_without_a_pass_over_the_rows_until_one_ages_out(
    tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache is checked before the window's rows are selected (a scrape of an unchanged
    window costs the event loop no pass over up to 100k rows); a row ageing out of the max age
    still changes the figures."""
    from services.monitor.outcomes.join import VersionLabels

    now = [1_800_000_000.0]
    selects: list[float] = []
    select = VersionLabels.select

    def counted(self: VersionLabels, at: float, max_age: float, since: float | None = None):  # type: ignore[no-untyped-def]
        selects.append(at)
        return select(self, at, max_age, since)

    monkeypatch.setattr(VersionLabels, "select", counted)
    async with running(MonitorService(settings(tmp_path), clock=lambda: now[0])) as monitor:
        url = monitor.url
        config = {"stableVersion": "1", "outcomes": {"maxAgeSeconds": 100}}
        async with http.put(url + BASE + "/config", json=config) as r:
            assert r.status == 200, await r.text()

        async def labeled() -> list[int]:
            async with http.get(url + BASE + "/quality") as r:
                assert r.status == 200, await r.text()
                return [v["labeled"] for v in (await r.json())["versions"]]

        for i, score in enumerate((0.9, 0.2)):
            await serve(http, url, f"r{i}", "1", score)
            assert (await post_binary(http, url, f"e{i}", {"requestId": f"r{i}", "label": i}))[
                0
            ] == 200
        now[0] += 60  # the next two are labeled 60 s after the first two
        for i, score in enumerate((0.7, 0.4), start=2):
            await serve(http, url, f"r{i}", "1", score)
            await post_binary(http, url, f"e{i}", {"requestId": f"r{i}", "label": i % 2})
        assert await labeled() == [4]
        passes = len(selects)
        now[0] += 30  # nothing has aged out yet (the oldest is 90 s old)
        assert await labeled() == [4]
        assert await labeled() == [4]
        assert len(selects) == passes  # answered from the cache: no pass over the rows
        now[0] += 20  # the first two are now 110 s old: out of the 100 s max age
        assert await labeled() == [2]
        assert len(selects) == passes + 1

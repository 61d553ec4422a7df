"""The local router exports Istio's request metric, so error counts need no logged 5xx."""

from __future__ import annotations

import random

import aiohttp
from aiohttp import web

from contracts.mesh_metrics import ROUTER_METRICS_PATH
from localcluster.serving.router import Router, new_client_session, serve
from localcluster.serving.routing import route_table_from_spec, static_resolver
from operators.backends.prometheus import RequestCounts, counts_from_exposition

STABLE = "churn-v1-predictor.team-a.svc.cluster.local"
SHADOW = "churn-v2-predictor.team-a.svc.cluster.local"


async def _upstream() -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({}, status=int(request.headers.get("x-status", "200")))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def test_router_counts_requests_by_workload_and_code_mirrors_included() -> None:
    stable_runner, stable_url = await _upstream()
    shadow_runner, shadow_url = await _upstream()
    spec = {
        "http": [
            {
                "route": [{"destination": {"host": STABLE}, "weight": 100}],
                "mirror": {"host": SHADOW},
                "mirrorPercentage": {"value": 100.0},
            }
        ]
    }
    table = route_table_from_spec(spec, static_resolver({STABLE: stable_url, SHADOW: shadow_url}))
    async with new_client_session() as session:
        router = Router(session, table, rng=random.Random(1))
        runner = await serve(router, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as client:
                for status in ["200", "200", "200", "500", "503", "400"]:
                    async with client.post(
                        f"{url}/v1/models/churn:predict", data=b"{}", headers={"x-status": status}
                    ) as resp:
                        assert resp.status == int(status)
                await router.drain_mirrors()
                async with client.get(url + ROUTER_METRICS_PATH) as resp:
                    text = await resp.text()
        finally:
            await runner.cleanup()
            await stable_runner.cleanup()
            await shadow_runner.cleanup()
    assert counts_from_exposition(text, "team-a", "churn-v1") == RequestCounts(6, 1, 2)
    assert counts_from_exposition(text, "team-a", "churn-v2") == RequestCounts(6, 1, 2)
    assert counts_from_exposition(text, "team-b", "churn-v1") == RequestCounts(0, 0, 0)
    # churn-v1 must not also match churn-v10's workloads.
    assert counts_from_exposition(text, "team-a", "churn") == RequestCounts(0, 0, 0)

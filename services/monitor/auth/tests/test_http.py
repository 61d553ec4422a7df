"""Issue 16's acceptance on a running monitor (both listeners), with a stand-in reviewer.

The reviewer here answers TokenReview/SubjectAccessReview from a table; the same checks
against the embedded control plane's real TokenReview/SubjectAccessReview are in
tests/integration/test_monitor_auth.py.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from contracts import cloudevents as ce
from services.monitor import MonitorService, MonitorSettings
from services.monitor.auth.core import Identity, ResourceCheck
from services.monitor.auth.kube import ReviewUnavailable
from services.monitor.auth.service import MonitorAuth
from services.monitor.config import AuthSettings
from services.monitor.outcomes.client import feedback_event
from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import AUTH_HEADERS, TEST_AUTH, TEST_TOKEN, running

BASE = "/v1/models/team-a/churn"
OPERATOR = "system:serviceaccount:kubeloop-system:kubeloop-operator"
LABELER = "system:serviceaccount:team-a:labeler"
OUTSIDER = "system:serviceaccount:team-b:labeler"
TOKENS = {"op-token": OPERATOR, "labeler-token": LABELER, "outsider-token": OUTSIDER}
#: (user, verb, subresource, namespace) the stand-in RBAC grants.
GRANTS = {(LABELER, "create", "feedback", "team-a"), (LABELER, "get", "status", "team-a")}


class TableReviewer:
    """Answers like kube-apiserver would for the tokens and grants above; counts calls."""

    def __init__(self) -> None:
        self.token_reviews = 0
        self.access_reviews = 0
        self.down = False

    async def review_token(self, token: str) -> Identity | None:
        self.token_reviews += 1
        if self.down:
            raise ReviewUnavailable("connection refused")
        user = TOKENS.get(token)
        return Identity(user, ("system:authenticated",)) if user else None

    async def allowed(self, identity: Identity, check: ResourceCheck) -> bool:
        self.access_reviews += 1
        if self.down:
            raise ReviewUnavailable("connection refused")
        key = (identity.username, check.verb, check.subresource, check.namespace)
        return key in GRANTS

    async def close(self) -> None:
        pass


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def auth_settings(**kw: Any) -> AuthSettings:
    return TEST_AUTH.model_copy(update={"operators": (OPERATOR,), **kw})


async def started(tmp_path: Path, **auth: Any) -> tuple[MonitorService, TableReviewer]:
    settings = MonitorSettings(
        auth=auth_settings(**auth),
        port=0,
        ingest_port=0,
        data_dir=tmp_path,
        flush_interval_s=0.05,
        drift_interval_s=3600,
    )
    service = MonitorService(settings)
    reviewer = TableReviewer()
    service.auth = MonitorAuth(settings.auth, service.clock, TEST_TOKEN, reviewer)  # type: ignore[arg-type]
    return service, reviewer


@pytest.fixture
async def monitor(tmp_path: Path) -> AsyncIterator[tuple[MonitorService, TableReviewer]]:
    service, reviewer = await started(tmp_path)
    async with running(service):
        yield service, reviewer


async def seed(http: aiohttp.ClientSession, service: MonitorService) -> None:
    """A configured model with answered calls and one joined label."""
    config = {"stableVersion": "1", "outcomes": {"labelMaturitySeconds": 3600}}
    async with http.put(service.url + BASE + "/config", json=config, headers=AUTH_HEADERS) as r:
        assert r.status == 200, await r.text()
    for index in range(5):
        await post_call(http, service.url + "/", f"r{index}", AUTH_HEADERS)
    await post_labels(http, service.url, AUTH_HEADERS, ["r0", "r1"], expect=200)


async def post_call(
    http: aiohttp.ClientSession, url: str, rid: str, auth: dict[str, str], expect: int = 200
) -> None:
    request = binary_headers("request", rid, "1", role="stable")
    async with http.post(
        url, data=b'{"instances": [[1.0, 2.0]]}', headers={**request, **auth}
    ) as r:
        assert r.status == expect, await r.text()
    response = binary_headers("response", rid, "1", role="stable", status=200, latency_ms=5.0)
    async with http.post(url, data=b'{"predictions": [0.7]}', headers={**response, **auth}) as r:
        assert r.status == expect, await r.text()


async def post_labels(
    http: aiohttp.ClientSession,
    url: str,
    auth: dict[str, str],
    request_ids: list[str],
    expect: int,
    model: str = BASE,
) -> dict[str, Any]:
    events = [feedback_event({"requestId": rid, "label": 1}) for rid in request_ids]
    headers = {"content-type": ce.BATCH_CONTENT_TYPE, **auth}
    async with http.post(url + model + "/feedback", data=json.dumps(events), headers=headers) as r:
        assert r.status == expect, await r.text()
        body: dict[str, Any] = await r.json(content_type=None)
        return body


async def snapshot(http: aiohttp.ClientSession, service: MonitorService) -> dict[str, Any]:
    """Everything a forger would want to move: config, figures, counts, drift, quality."""
    found: dict[str, Any] = {}
    for tail in ("/config", "/figures", "/counts", "/drift", "/quality"):
        params = {"since": "0", "until": "4000000000"} if tail in ("/figures", "/counts") else {}
        url = service.url + BASE + tail
        async with http.get(url, params=params, headers=AUTH_HEADERS) as r:
            assert r.status == 200, (tail, await r.text())
            body = await r.json()
            for moving in ("now", "since", "until"):  # the query's own time, not a figure
                body.pop(moving, None)
            found[tail] = body
    found["events"] = dict(service.core.events_total)
    found["models"] = sorted(service.core.models)
    found["feedback"] = service.outcomes.sizes()
    return found


WRONG = [{}, bearer("wrong"), {"Authorization": "Basic dXNlcjpwYXNz"}, bearer("")]


async def test_unauthenticated_or_wrong_writes_and_reads_change_nothing(
    monitor: tuple[MonitorService, TableReviewer],
) -> None:
    service, _ = monitor
    async with aiohttp.ClientSession() as http:
        await seed(http, service)
        before = await snapshot(http, service)
        replacement = {"stableVersion": "9", "drift": {"detector": "ks"}}
        for auth in WRONG:
            async with http.put(
                service.url + BASE + "/config", json=replacement, headers=auth
            ) as r:
                assert r.status == 401
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
            for path in (BASE + "/drift/evaluate", "/v1/drift/evaluate"):
                async with http.post(service.url + path, headers=auth) as r:
                    assert r.status == 401
            await post_labels(http, service.url, auth, ["r2", "r3"], expect=401)
            for port_url in (service.url, f"http://127.0.0.1:{service.ingest_port}"):
                await post_labels(http, port_url, auth, ["r4"], expect=401)
            for path in ("/figures", "/counts", "/quality", "/quality/report", "/drift"):
                async with http.get(service.url + BASE + path, headers=auth) as r:
                    assert r.status == 401, path
            for path in ("/v1/models", "/v1/bad-input", "/v1/reports/x"):
                async with http.get(service.url + path, headers=auth) as r:
                    assert r.status == 401, path
        # An authenticated identity without the rights: 403, and still nothing changes.
        labeler = bearer("labeler-token")
        async with http.put(service.url + BASE + "/config", json=replacement, headers=labeler) as r:
            assert r.status == 403
        async with http.post(service.url + BASE + "/drift/evaluate", headers=labeler) as r:
            assert r.status == 403
        await post_labels(http, service.url, bearer("outsider-token"), ["r2"], expect=403)
        async with http.get(service.url + BASE + "/figures", headers=bearer("outsider-token")) as r:
            assert r.status == 403
        await asyncio.sleep(0.2)  # any write that slipped through would be flushed by now
        assert await snapshot(http, service) == before


async def test_a_forged_event_storm_changes_no_figure(
    monitor: tuple[MonitorService, TableReviewer],
) -> None:
    service, _ = monitor
    async with aiohttp.ClientSession() as http:
        await seed(http, service)
        before = await snapshot(http, service)
        fast = f"http://127.0.0.1:{service.ingest_port}/"
        for index in range(100):
            auth = WRONG[index % len(WRONG)] if index % 5 else bearer("labeler-token")
            expect = 403 if index % 5 == 0 else 401
            url = fast if index % 2 else service.url + "/"
            await post_call(http, url, f"forged{index}", auth, expect=expect)
        await asyncio.sleep(0.2)
        assert await snapshot(http, service) == before
        refused = service.auth.refused
        assert refused[("ingest", 401)] + refused[("ingest", 403)] == 200


async def test_feedback_needs_create_on_mlmodels_feedback_in_the_namespace(
    monitor: tuple[MonitorService, TableReviewer],
) -> None:
    service, reviewer = monitor
    async with aiohttp.ClientSession() as http:
        await seed(http, service)
        fast = f"http://127.0.0.1:{service.ingest_port}"
        for url in (service.url, fast):
            accepted = await post_labels(http, url, bearer("labeler-token"), ["r2"], expect=200)
            assert accepted["accepted"] + accepted.get("duplicates", 0) == 1
            await post_labels(http, url, bearer("outsider-token"), ["r3"], expect=403)
        # The labeler's grant is for team-a only.
        await post_labels(
            http, service.url, bearer("labeler-token"), ["r3"], 403, "/v1/models/team-b/churn"
        )
        # Reads by SAR get mlmodels/status: the labeler may read team-a, not everything.
        async with http.get(service.url + BASE + "/quality", headers=bearer("labeler-token")) as r:
            assert r.status == 200
        async with http.get(service.url + "/v1/models", headers=bearer("labeler-token")) as r:
            assert r.status == 403
        # The operator identity (a projected token on a cluster) may configure.
        async with http.put(
            service.url + BASE + "/config", json={"stableVersion": "1"}, headers=bearer("op-token")
        ) as r:
            assert r.status == 200
    # Verdicts are cached briefly: one TokenReview per token, one SAR per (user, check).
    assert reviewer.token_reviews <= 3 + 1
    assert reviewer.access_reviews <= 6


async def test_open_routes_and_an_unreachable_api_server(
    monitor: tuple[MonitorService, TableReviewer],
) -> None:
    service, reviewer = monitor
    async with aiohttp.ClientSession() as http:
        for path in ("/metrics", "/healthz", "/readyz"):
            async with http.get(service.url + path) as r:
                assert r.status == 200, path
        reviewer.down = True
        # A review that cannot be made is a 503 (retry), never a pass and never a 500.
        await post_labels(http, service.url, bearer("not-cached"), ["r1"], expect=503)


async def test_feedback_is_rate_limited_per_client(tmp_path: Path) -> None:
    service, _ = await started(tmp_path, feedback_rate_per_s=0.001, feedback_burst=3)
    async with running(service), aiohttp.ClientSession() as http:
        await seed(http, service)
        for _ in range(3):
            await post_labels(http, service.url, bearer("labeler-token"), ["r2"], expect=200)
        body = await post_labels(http, service.url, bearer("labeler-token"), ["r2"], expect=429)
        assert body["error"] == "rate_limited"
        # Another client, and kubeloop's own token, are not held back by the first.
        await post_labels(http, service.url, bearer("outsider-token"), ["r2"], expect=403)
        await post_labels(http, service.url, AUTH_HEADERS, ["r3"], expect=200)


async def test_tokenless_ingest_only_reaches_configured_models(tmp_path: Path) -> None:
    """On a cluster KServe's agent sends no credentials: with network ingest on, events of a
    configured model/version are taken, any other is counted and dropped."""
    service, _ = await started(tmp_path, network_ingest=True)
    async with running(service), aiohttp.ClientSession() as http:
        await seed(http, service)
        fast = f"http://127.0.0.1:{service.ingest_port}/"
        await post_call(http, fast, "n1", {})  # configured model, stable version 1
        headers = binary_headers("request", "n2", "1", model="ghost")
        async with http.post(fast, data=b'{"instances": [[1.0]]}', headers=headers) as r:
            assert r.status == 403 and (await r.json())["error"] == "unconfigured_model"
        headers = binary_headers("request", "n3", "7")  # a version nobody configured
        async with http.post(
            service.url + "/", data=b'{"instances": [[1.0]]}', headers=headers
        ) as r:
            assert r.status == 403
        assert service.auth.dropped_unconfigured == 2
        assert ("team-a", "ghost") not in service.core.models
        async with http.get(service.url + BASE + "/figures", headers=AUTH_HEADERS) as r:
            assert (await r.json())["versions"]["1"]["requests"] == 6
        async with http.get(service.url + "/metrics") as r:
            assert "kubeloop_monitor_auth_dropped_unconfigured_total 2.0" in await r.text()


def _fuzzed_headers(rng: random.Random) -> list[bytes]:
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + ["\t", "\x00", "\x7f", "é", "\u2603"]
    values: list[bytes] = [b"Bearer", b"Bearer ", b"bearer  x", b"Bearer " + b"a" * 20_000]
    for _ in range(150):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        prefix = rng.choice(["", "Bearer ", "bearer ", "Basic ", "Bearer  "])
        values.append((prefix + text).encode("utf-8"))
    values.append(b"Bearer " + TEST_TOKEN.encode() + b"\xff")
    values.append(b"Bearer " + TEST_TOKEN[:-1].encode())
    return values


async def _raw(port: int, request: bytes) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1") else 0


async def test_fuzzed_authorization_headers_never_yield_a_500(
    monitor: tuple[MonitorService, TableReviewer],
) -> None:
    service, _ = monitor
    body = json.dumps([feedback_event({"requestId": "x", "label": 1})]).encode()
    seen: set[int] = set()
    for value in _fuzzed_headers(random.Random(16)):
        for port, method, path in (
            (service.port, b"PUT", BASE.encode() + b"/config"),
            (service.port, b"POST", BASE.encode() + b"/feedback"),
            (service.port, b"GET", BASE.encode() + b"/figures"),
            (service.ingest_port, b"POST", b"/"),
            (service.ingest_port, b"POST", BASE.encode() + b"/feedback"),
        ):
            assert port is not None
            request = (
                method + b" " + path + b" HTTP/1.1\r\nHost: m\r\nAuthorization: " + value
                + b"\r\nContent-Type: " + ce.BATCH_CONTENT_TYPE.encode()
                + b"\r\nConnection: close\r\nContent-Length: " + str(len(body)).encode()
                + b"\r\n\r\n" + body
            )  # fmt: skip
            status = await _raw(port, request)
            assert status < 500, (value[:80], path, status)
            seen.add(status)
    assert 401 in seen and 200 not in seen
    assert service.core.events_total == {"request": 0, "response": 0}

"""The feedback API over real HTTP, in-process: the three CloudEvents modes, idempotency,
maturity, bad input (4xx naming the field, counted, never a 500, never in a window),
quality and compare, on both ports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from contracts import cloudevents as ce
from services.monitor import Limits, MonitorService, MonitorSettings
from services.monitor.outcomes.feedback import MAX_BATCH_EVENTS
from services.monitor.outcomes.tests.feedback_events import (
    BASE,
    FEEDBACK,
    feedback_headers,
    post_batch,
    post_binary,
    post_structured,
    serve,
    structured,
)
from services.monitor.tests.http_api import AUTH_HEADERS, TEST_AUTH, TEST_TOKEN, running


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=AUTH_HEADERS) as session:
        yield session


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settings(data_dir: Path, **kw: Any) -> MonitorSettings:
    return MonitorSettings(
        auth=TEST_AUTH,
        port=0,
        ingest_port=0,
        data_dir=data_dir,
        flush_interval_s=0.05,
        drift_interval_s=3600,
        expiry_interval_s=3600,  # the tests expire through the clock they move
        limits=Limits(max_body_bytes=64 * 1024),
        **kw,
    )


@pytest.fixture
async def monitor(tmp_path: Path, clock: Clock) -> AsyncIterator[MonitorService]:
    async with running(MonitorService(settings(tmp_path), clock=clock)) as service:
        yield service


async def configure(http: aiohttp.ClientSession, url: str, **outcomes: Any) -> None:
    body = {"stableVersion": "1", "shadowVersion": "2", "outcomes": outcomes or None}
    async with http.put(url + BASE + "/config", json=body) as r:
        assert r.status == 200, await r.text()


async def quality(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url + BASE + "/quality") as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
    return body


def version(report: dict[str, Any], name: str) -> dict[str, Any]:
    (entry,) = [v for v in report["versions"] if v["version"] == name]
    return entry


async def test_binary_structured_and_batch_labels_join_their_predictions(
    monitor: MonitorService, http: aiohttp.ClientSession, clock: Clock
) -> None:
    url = monitor.url
    await configure(http, url)
    for i, score in enumerate((0.9, 0.2, 0.7, 0.4)):
        await serve(http, url, f"r{i}", "1", score)
    clock.now += 30
    assert await post_binary(http, url, "e0", {"requestId": "r0", "label": 1}) == (
        200, {"accepted": 1, "duplicates": 0, "rejected": []},
    )  # fmt: skip
    event = structured("e1", {"requestId": "r1", "label": 0, "observedAt": clock.now - 10})
    assert (await post_structured(http, url, event))[0] == 200
    batch = [
        structured("e2", {"requestId": "r2", "label": True}),
        structured("e3", {"requestId": "r3", "label": 0}, time="2023-11-14T22:13:50Z"),
    ]
    assert (await post_batch(http, url, batch))[1]["accepted"] == 2
    report = await quality(http, url)
    v1 = version(report, "1")
    assert (v1["labeled"], v1["positives"], v1["role"]) == (4, 2, "stable")
    assert v1["auc"]["value"] == 1.0 and v1["accuracy"]["value"] == 1.0
    # Label delay: observedAt (default the receive time, or the event's time) - served time.
    assert v1["labelDelayP50S"] == pytest.approx(30.0, abs=10)
    assert report["orphans"] == 0 and report["pendingLabels"] == 0


async def test_a_repeated_event_id_is_acknowledged_and_counted_once(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    url = monitor.url
    await configure(http, url)
    await serve(http, url, "r0", "1", 0.8)
    data = {"requestId": "r0", "label": 1}
    assert (await post_binary(http, url, "same", data))[1]["accepted"] == 1
    assert (await post_binary(http, url, "same", data))[1] == {
        "accepted": 0, "duplicates": 1, "rejected": [],
    }  # fmt: skip
    batch = [structured("same", data), structured("same", data)]
    assert (await post_batch(http, url, batch))[1]["duplicates"] == 2
    # Another event id for an already labeled request: acknowledged, the first label wins.
    assert (await post_binary(http, url, "other", {"requestId": "r0", "label": 0}))[0] == 200
    v1 = version(await quality(http, url), "1")
    assert (v1["labeled"], v1["positives"]) == (1, 1)
    counts = monitor.outcomes.join.models[("team-a", "churn")].counts
    assert (counts["duplicate"], counts["relabeled"]) == (3, 1)


async def test_a_label_before_its_prediction_waits_for_the_maturity_then_is_an_orphan(
    monitor: MonitorService, http: aiohttp.ClientSession, clock: Clock
) -> None:
    url = monitor.url
    await configure(http, url, labelMaturitySeconds=60)
    await post_binary(http, url, "early", {"requestId": "late-call", "label": 1})
    await post_binary(http, url, "never", {"requestId": "no-call", "label": 0})
    report = await quality(http, url)
    assert (report["pendingLabels"], report["orphans"], report["versions"]) == (2, 0, [])
    clock.now += 59  # within the maturity: the prediction arrives and is joined
    await serve(http, url, "late-call", "1", 0.7)
    clock.now += 2  # past it: the other label never met a prediction
    await monitor.outcomes.tick()
    report = await quality(http, url)
    assert (report["pendingLabels"], report["orphans"]) == (0, 1)
    assert version(report, "1")["labeled"] == 1
    await serve(http, url, "no-call", "1", 0.4)  # too late: an orphan stays an orphan
    assert version(await quality(http, url), "1")["labeled"] == 1


async def test_shadow_and_stable_predictions_of_a_request_are_paired(
    monitor: MonitorService, http: aiohttp.ClientSession, clock: Clock
) -> None:
    url = monitor.url
    await configure(http, url)
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 60)
    stable = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 60), 0, 1)
    shadow = np.clip(labels * 0.6 + rng.uniform(0, 0.4, 60), 0, 1)
    for i in range(60):
        await serve(http, url, f"r{i}", "1", float(stable[i]), role="stable")
        if i % 2 == 0:  # half the traffic is mirrored
            await serve(http, url, f"r{i}", "2", float(shadow[i]), role="shadow")
    clock.now += 5
    events = [structured(f"e{i}", {"requestId": f"r{i}", "label": int(labels[i])})
              for i in range(60)]  # fmt: skip
    assert (await post_batch(http, url, events))[1]["accepted"] == 60
    report = await quality(http, url)
    assert (version(report, "1")["labeled"], version(report, "2")["labeled"]) == (60, 30)
    params = {"candidate": "2", "stable": "1", "metric": "auc", "design": "paired", "since": "0"}
    async with http.get(url + BASE + "/compare", params=params) as r:
        paired = await r.json()
    even = np.arange(0, 60, 2)
    expected = roc_auc_score(labels[even], shadow[even]) - roc_auc_score(labels[even], stable[even])
    assert paired["n"] == paired["nStable"] == 30
    assert paired["estimate"] == pytest.approx(expected, abs=1e-9)
    assert paired["method"] == "delong-paired" and paired["variance"] > 0
    params.update(design="concurrent", metric="logLoss")
    async with http.get(url + BASE + "/compare", params=params) as r:
        concurrent = await r.json()
    assert (concurrent["n"], concurrent["nStable"]) == (30, 60)
    expected = log_loss(labels, stable) - log_loss(labels[even], shadow[even])
    assert concurrent["estimate"] == pytest.approx(expected, abs=1e-9)
    params["since"] = str(clock.now)  # nothing served since: too few labels
    async with http.get(url + BASE + "/compare", params=params) as r:
        empty = await r.json()
    assert (empty["n"], empty["estimate"], empty["variance"]) == (0, None, None)


async def test_quality_figures_match_scikit_learn_on_the_joined_rows(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    url = monitor.url
    await configure(http, url)
    rng = np.random.default_rng(11)
    n = 300
    labels = rng.integers(0, 2, n)
    scores = np.clip(rng.beta(2, 2, n) * 0.6 + labels * 0.35, 0.0, 1.0)
    for i in range(n):
        await serve(http, url, f"r{i}", "1", float(scores[i]))
    events = [structured(f"e{i}", {"requestId": f"r{i}", "label": int(labels[i])})
              for i in range(n)]  # fmt: skip
    assert (await post_batch(http, url, events))[1]["accepted"] == n
    v1 = version(await quality(http, url), "1")
    assert v1["labeled"] == n and v1["positives"] == int(labels.sum())
    assert v1["auc"]["value"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-9)
    assert v1["logLoss"]["value"] == pytest.approx(log_loss(labels, scores), abs=1e-9)
    assert v1["brier"]["value"] == pytest.approx(brier_score_loss(labels, scores), abs=1e-9)
    accuracy = float(((scores >= 0.5) == labels).mean())
    assert v1["accuracy"]["value"] == pytest.approx(accuracy, abs=1e-9)
    assert v1["ece"]["low"] <= v1["ece"]["value"] <= v1["ece"]["high"]


async def test_quality_since_covers_only_the_rows_served_since(
    monitor: MonitorService, http: aiohttp.ClientSession, clock: Clock
) -> None:
    """A period's figures (the demo's "after the shift"): `since` keeps the rows served since."""
    url = monitor.url
    await configure(http, url)
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 200)
    # Good scores first, then inverted ones: the whole window and the later period differ.
    scores = np.where(labels == 1, 0.8, 0.2) + rng.normal(0, 0.15, 200)
    scores[100:] = 1 - scores[100:]
    for i in range(200):
        if i == 100:
            clock.now += 60
            later = clock.now
        await serve(http, url, f"r{i}", "1", float(np.clip(scores[i], 0, 1)))
    events = [structured(f"e{i}", {"requestId": f"r{i}", "label": int(labels[i])})
              for i in range(200)]  # fmt: skip
    assert (await post_batch(http, url, events))[1]["accepted"] == 200
    async with http.get(url + BASE + "/quality", params={"since": str(later)}) as r:
        period = version(await r.json(), "1")
    whole = version(await quality(http, url), "1")
    clipped = np.clip(scores, 0, 1)
    assert (whole["labeled"], period["labeled"]) == (200, 100)
    assert period["auc"]["value"] == pytest.approx(
        roc_auc_score(labels[100:], clipped[100:]), abs=1e-9
    )
    assert whole["auc"]["value"] == pytest.approx(roc_auc_score(labels, clipped), abs=1e-9)
    async with http.get(url + BASE + "/quality", params={"since": "soon"}) as r:
        assert r.status == 400


BAD_DATA = [
    ({"requestId": "r0"}, "data.label", "feedback_missing_field"),
    ({"label": 1}, "data", "feedback_missing_field"),
    ({"requestId": "r0", "label": "1"}, "data.label", "feedback_wrong_type"),
    ({"requestId": "r0", "label": 2}, "data.label", "feedback_invalid_value"),
    ({"requestId": 7, "label": 1}, "data.requestId", "feedback_wrong_type"),
    ({"requestId": "r0", "label": 1, "requestID": "r0"}, "data.requestID", "feedback_unknown_field"),
    ({"requestId": "r0", "label": 1, "observedAt": "yesterday"}, "data.observedAt",
     "feedback_invalid_value"),
    ({"entity": "u1", "label": 1}, "data", "feedback_missing_field"),
    ([1, 0], "data", "feedback_wrong_type"),
]  # fmt: skip


@pytest.mark.parametrize(("data", "field", "reason"), BAD_DATA)
async def test_bad_data_is_a_4xx_naming_the_field_counted_and_never_in_a_window(
    monitor: MonitorService, http: aiohttp.ClientSession, data: Any, field: str, reason: str
) -> None:
    url = monitor.url
    await configure(http, url)
    await serve(http, url, "r0", "1", 0.5)
    status, body = await post_binary(http, url, "bad", data)
    assert (status, body["field"], body["error"]) == (400, field, reason), body
    assert field.removeprefix("data.") in body["message"] or field == "data"
    async with http.get(url + "/v1/bad-input") as r:
        assert (await r.json())["totals"][reason] == 1
    assert (await quality(http, url))["versions"] == []


async def test_nan_and_infinity_are_refused_by_name(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    url = monitor.url
    await configure(http, url)
    await serve(http, url, "r0", "1", 0.5)
    cases = [
        (b'{"requestId": "r0", "label": NaN}', "data.label"),
        (b'{"requestId": "r0", "label": 1, "observedAt": Infinity}', "data.observedAt"),
        (b'{"requestId": "r0", "label": 1, "servedAt": -Infinity}', "data.servedAt"),
    ]
    for raw, field in cases:
        status, body = await post_binary(http, url, "nan", raw)
        assert (status, body["error"], body["field"]) == (400, "feedback_nan", field), body
    assert (await quality(http, url))["versions"] == []


async def test_envelope_problems_and_oversized_batches(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    url = monitor.url
    await configure(http, url)
    await serve(http, url, "r0", "1", 0.5)
    data = json.dumps({"requestId": "r0", "label": 1})
    cases = [
        ({ce.TYPE_HEADER: ce.TYPE_REQUEST}, 400, "feedback_unknown_type", ce.TYPE_HEADER),
        ({ce.ID_HEADER: ""}, 400, "feedback_missing_id", ce.ID_HEADER),
    ]
    for override, status, reason, field in cases:
        headers = {**feedback_headers("x"), **override}
        async with http.post(url + FEEDBACK, data=data, headers=headers) as r:
            body = await r.json()
            assert (r.status, body["error"], body["field"]) == (status, reason, field)
    async with http.post(url + FEEDBACK, data=b"{not json", headers=feedback_headers("j")) as r:
        assert (r.status, (await r.json())["error"]) == (400, "feedback_invalid_json")
    async with http.post(url + FEEDBACK, data=b"x" * 70_000, headers=feedback_headers("b")) as r:
        assert (r.status, (await r.json())["error"]) == (413, "feedback_oversized")
    many = [structured(f"e{i}", {"requestId": "r0", "label": 1})
            for i in range(MAX_BATCH_EVENTS + 1)]  # fmt: skip
    # Over the byte limit too here: 413 either way (the count alone: the next test).
    async with http.post(url + FEEDBACK, data=json.dumps(many),
                         headers={"content-type": ce.BATCH_CONTENT_TYPE}) as r:  # fmt: skip
        assert r.status == 413
    unknown = "/v1/models/team-a/nobody/feedback"
    status, body = await post_batch(http, url, [structured("u", {"requestId": "r0", "label": 1})],
                                    path=unknown)  # fmt: skip
    assert (status, body["error"], body["field"]) == (404, "feedback_unknown_model", "model")
    # One bad event in a batch: the rest is accepted, the bad one listed by index and field.
    mixed = [structured("ok", {"requestId": "r0", "label": 1}),
             structured("no", {"requestId": "r0", "label": None})]  # fmt: skip
    status, body = await post_batch(http, url, mixed)
    assert status == 200 and body["accepted"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "data.label")]
    assert version(await quality(http, url), "1")["labeled"] == 1


async def test_too_many_events_in_a_batch_is_413(tmp_path: Path) -> None:
    service = MonitorService(
        settings(tmp_path).model_copy(update={"limits": Limits(max_body_bytes=4 << 20)})
    )
    async with running(service), aiohttp.ClientSession(headers=AUTH_HEADERS) as http:
        await configure(http, service.url)
        many = [structured(f"e{i}", {"requestId": "r", "label": 1})
                for i in range(MAX_BATCH_EVENTS + 1)]  # fmt: skip
        status, body = await post_batch(http, service.url, many)
        assert (status, body["error"]) == (413, "feedback_too_many_events")
        async with http.get(service.url + "/v1/bad-input") as r:
            assert (await r.json())["totals"] == {"feedback_too_many_events": 1}
        assert service.outcomes.join.models == {} or not any(
            s.counts["accepted"] for s in service.outcomes.join.models.values()
        )


async def test_the_fast_ingest_port_takes_feedback_on_the_same_path(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    await configure(http, monitor.url)
    fast = f"http://{monitor.settings.host}:{monitor.ingest_port}"
    await serve(http, fast, "r0", "1", 0.8)
    await serve(http, fast, "r1", "1", 0.3)
    assert (await post_binary(http, fast, "e0", {"requestId": "r0", "label": 1}))[0] == 200
    events = [structured("e1", {"requestId": "r1", "label": 0})]
    assert (await post_batch(http, fast, events))[1]["accepted"] == 1
    status, body = await post_binary(http, fast, "e2", {"requestId": "r1", "label": "x"})
    assert (status, body["field"]) == (400, "data.label")
    async with http.get(fast + BASE + "/feedback") as r:
        assert r.status == 405
    assert version(await quality(http, monitor.url), "1")["labeled"] == 2


async def test_pipelined_replies_on_the_fast_port_stay_in_order(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    """A feedback reply waits for its commit; an inference event pipelined behind it on the
    same connection must still be answered after it."""
    import asyncio

    await configure(http, monitor.url)
    await serve(http, monitor.url, "r0", "1", 0.8)
    data = json.dumps({"requestId": "r0", "label": 1}).encode()
    head = "".join(f"{k}: {v}\r\n" for k, v in {**feedback_headers("p0"), **AUTH_HEADERS}.items())
    feedback = (f"POST {FEEDBACK} HTTP/1.1\r\nHost: m\r\n{head}Content-Length: {len(data)}"
                "\r\n\r\n").encode() + data  # fmt: skip
    missing = b"POST /nowhere HTTP/1.1\r\nHost: m\r\nContent-Length: 0\r\n\r\n"
    reader, writer = await asyncio.open_connection(monitor.settings.host, monitor.ingest_port)
    writer.write(feedback + missing + feedback)
    statuses = []
    for _ in range(3):
        head_bytes = await reader.readuntil(b"\r\n\r\n")
        length = int(head_bytes.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        statuses.append(int(head_bytes[9:12]))
    writer.close()
    assert statuses == [200, 404, 200]


async def test_metrics_and_report_show_quality_per_version(
    monitor: MonitorService, http: aiohttp.ClientSession, clock: Clock
) -> None:
    url = monitor.url
    await configure(http, url)
    for i, (score, label) in enumerate(((0.9, 1), (0.1, 0), (0.6, 1), (0.4, 0))):
        await serve(http, url, f"r{i}", "1", score)
        await post_binary(http, url, f"e{i}", {"requestId": f"r{i}", "label": label})
        clock.now += 60
        await monitor.outcomes.snapshot_history()
    async with http.get(url + "/metrics") as r:
        text = await r.text()
    line = (
        'kubeloop_monitor_quality_auc{model="churn",namespace="team-a",role="stable",version="1"}'
    )
    assert f"{line} 1.0" in text
    assert "kubeloop_monitor_quality_labeled{" in text and "kubeloop_monitor_quality_ece{" in text
    assert 'kubeloop_monitor_feedback_labels_total{model="churn",namespace="team-a",' in text
    async with http.get(url + BASE + "/quality/report") as r:
        page = await r.text()
    assert r.status == 200 and "Quality over time" in page and "<polyline" in page
    assert len(monitor.outcomes.history[("team-a", "churn", "1")]) == 4
    async with http.get(url + "/v1/models/team-a/nobody/quality") as r:
        assert r.status == 404


async def test_compare_names_a_bad_parameter(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    await configure(http, monitor.url)
    good = {"candidate": "2", "stable": "1", "metric": "auc", "design": "paired"}
    for name, value in (("metric", "f1"), ("design", "both"), ("since", "soon"),
                        ("candidate", "")):  # fmt: skip
        async with http.get(monitor.url + BASE + "/compare", params={**good, name: value}) as r:
            body = await r.json()
            assert r.status == 400 and body["message"].startswith(name), body
    async with http.get(monitor.url + "/v1/models/team-a/nobody/compare", params=good) as r:
        assert r.status == 404


async def test_the_python_helper_sends_batches_and_retries_are_duplicates(
    monitor: MonitorService, http: aiohttp.ClientSession
) -> None:
    import asyncio

    from services.monitor.outcomes.client import FeedbackRefused, send_feedback

    await configure(http, monitor.url)
    for i in range(5):
        await serve(http, monitor.url, f"r{i}", "1", 0.2 * i)
    labels = [{"id": f"app-{i}", "requestId": f"r{i}", "label": i % 2} for i in range(5)]
    labels.append({"requestId": "r0", "label": "yes"})

    def send() -> dict[str, Any]:
        return send_feedback(monitor.url, "team-a", "churn", labels, batch_size=2, token=TEST_TOKEN)

    first = await asyncio.to_thread(send)
    assert (first["accepted"], first["duplicates"]) == (5, 0)
    assert [(r["index"], r["field"]) for r in first["rejected"]] == [(5, "data.label")]
    again = await asyncio.to_thread(send)  # a retry of the same labels
    assert (again["accepted"], again["duplicates"]) == (0, 5)
    assert version(await quality(http, monitor.url), "1")["labeled"] == 5
    with pytest.raises(FeedbackRefused) as refused:
        await asyncio.to_thread(
            send_feedback, monitor.url, "team-a", "nobody", labels[:1], token=TEST_TOKEN
        )
    assert refused.value.status == 404

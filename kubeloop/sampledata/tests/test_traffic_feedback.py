"""The generator's outcomes: an X-Request-Id per request, one label per row sent to the
monitor's feedback API once released, failures counted, and the labels joined by a real
in-process monitor (quality labeled > 0)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from contracts.headers import REQUEST_ID_HEADER, ROLE_HEADER
from kubeloop.sampledata.traffic import TrafficConfig, TrafficGenerator, make_streams

COLUMNS = {"user_activity__dwell_seconds": "dwell_seconds", "user_activity__price": "price"}
ROWS = 3


class Predictor:
    """A fake router behind httpx.MockTransport: scores 0.8 per row, keeps the request ids."""

    def __init__(self) -> None:
        self.request_ids: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.request_ids.append(request.headers[REQUEST_ID_HEADER])
        rows = len(json.loads(request.content)["instances"])
        return httpx.Response(
            200, json={"predictions": [0.8] * rows}, headers={ROLE_HEADER: "stable"}
        )


class Labels:
    """A fake feedback sender: records the batches, answers like send_feedback."""

    def __init__(self, fail: int = 0) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail

    def __call__(self, batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("monitor unreachable")
        self.batches.append([dict(label) for label in batch])
        rejected = [{"index": 0, "field": "data.label", "message": "bad"}] if batch else []
        return {"accepted": len(batch) - len(rejected), "duplicates": 0, "rejected": rejected}


def _config(**kw: Any) -> TrafficConfig:
    values: dict[str, Any] = {
        "url": "http://router",
        "model": "churn",
        "protocol": "v1",
        "rows_per_request": ROWS,
        "label_delay_s": 0,
        "stream_rows": 200,
        "feedback_batch": 4,
    }
    return TrafficConfig(**{**values, **kw})


def _generator(
    predictor: Predictor, labels: Labels | None, **kw: Any
) -> tuple[TrafficGenerator, TrafficConfig]:
    config = _config(**kw)
    client = httpx.Client(transport=httpx.MockTransport(predictor))
    return TrafficGenerator(config, COLUMNS, client, make_streams(config), labels), config


def test_each_request_has_its_own_id_and_each_row_one_label() -> None:
    predictor, labels = Predictor(), Labels()
    generator, config = _generator(predictor, labels)
    for _ in range(3):
        generator.send_once()
    assert len(set(predictor.request_ids)) == 3
    generator.snapshot()  # releases the (due) labels
    assert generator.flush_feedback() == 9
    sent = [label for batch in labels.batches for label in batch]
    assert [len(batch) for batch in labels.batches] == [4, 4, 1]  # feedback_batch 4
    reference = make_streams(config)[0]
    expected = [
        (request_id, row, int(reference["label"].iloc[i * ROWS + row]))
        for i, request_id in enumerate(predictor.request_ids)
        for row in range(ROWS)
    ]
    assert [(x["requestId"], x["row"], x["label"]) for x in sent] == expected
    assert all(isinstance(x["observedAt"], float) for x in sent)
    stats = generator.snapshot()
    # The fake refuses the first label of each batch.
    assert (stats.feedback_accepted, stats.feedback_rejected, stats.feedback_failed) == (6, 3, 0)
    assert stats.feedback_pending == 0 and "data.label" in str(stats.feedback_last_error)


def test_labels_wait_for_their_delay() -> None:
    predictor, labels = Predictor(), Labels()
    generator, _ = _generator(predictor, labels, label_delay_s=3600)
    generator.send_once()
    assert generator.flush_feedback() == 0 and labels.batches == []
    assert generator.snapshot().feedback_pending == 0


def test_a_failed_post_is_counted_and_the_generator_goes_on() -> None:
    predictor, labels = Predictor(), Labels(fail=1)
    generator, _ = _generator(predictor, labels)
    generator.send_once()
    generator.snapshot()
    assert generator.flush_feedback() == ROWS
    stats = generator.snapshot()
    assert stats.feedback_failed == ROWS and "ConnectionError" in str(stats.feedback_last_error)
    generator.send_once()  # the next labels still go out
    generator.snapshot()
    generator.flush_feedback()
    assert len(labels.batches) == 1 and generator.snapshot().feedback_accepted == ROWS - 1


def test_the_queue_is_bounded_and_overflow_counted() -> None:
    predictor, labels = Predictor(), Labels()
    generator, _ = _generator(predictor, labels, feedback_queue=4)
    for _ in range(2):
        generator.send_once()
    stats = generator.snapshot()
    assert (stats.feedback_pending, stats.feedback_failed) == (4, 2)


def test_without_a_monitor_no_labels_are_queued() -> None:
    generator, _ = _generator(Predictor(), None)
    assert not generator.sends_feedback
    generator.send_once()
    assert generator.snapshot().feedback_pending == 0 and generator.flush_feedback() == 0


def test_a_slow_monitor_does_not_slow_the_requests() -> None:
    """The feedback thread, not the sender, waits on the monitor."""
    gate = threading.Event()

    def stuck(batch: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        gate.wait(10)
        return {"accepted": len(batch), "duplicates": 0, "rejected": []}

    predictor = Predictor()
    generator, _ = _generator(predictor, None, requests_per_s=200, feedback_interval_s=0.01)
    generator._post_labels = stuck  # a monitor that does not answer
    generator.start()
    try:
        deadline = time.monotonic() + 10
        while len(predictor.request_ids) < 40 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(predictor.request_ids) >= 40  # the sender went on meanwhile
    finally:
        gate.set()
        generator.stop()
    stats = generator.snapshot()
    assert stats.feedback_accepted > 0


def test_the_default_sender_posts_to_the_monitor_feedback_path() -> None:
    """No injected sender: send_feedback (the monitor's helper) to monitor_url."""
    received: list[tuple[str, list[dict[str, Any]]]] = []

    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Monitor(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            events = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.path, events))
            body = json.dumps({"accepted": len(events), "duplicates": 0, "rejected": []})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Monitor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        generator, _ = _generator(Predictor(), None, monitor_url=url, namespace="team-a")
        generator.send_once()
        generator.snapshot()
        generator.flush_feedback()
    finally:
        server.shutdown()
        server.server_close()
    assert [path for path, _ in received] == ["/v1/models/team-a/churn/feedback"]
    events = received[0][1]
    assert [e["data"]["row"] for e in events] == list(range(ROWS))
    assert len({e["id"] for e in events}) == ROWS
    assert generator.snapshot().feedback_accepted == ROWS


async def test_labels_join_in_a_real_monitor(tmp_path: Path) -> None:
    """Traffic → a predictor that logs to the in-process monitor as the inference logger
    does → labels through the feedback API → the monitor's quality counts them."""
    from services.monitor import MonitorService
    from services.monitor.outcomes.tests.feedback_events import serve
    from services.monitor.tests.http_api import AUTH_HEADERS, TEST_TOKEN, running, settings

    token_file = tmp_path / "token"
    token_file.write_text(TEST_TOKEN)  # what `kubeloop up` writes for the monitor's clients
    async with running(MonitorService(settings(tmp_path))) as monitor:
        import aiohttp

        async with aiohttp.ClientSession(headers=AUTH_HEADERS) as http:
            async with http.put(
                monitor.url + "/v1/models/team-a/churn/config", json={"stableVersion": "1"}
            ) as r:
                assert r.status == 200, await r.text()
            loop = asyncio.get_running_loop()

            def predict(request: httpx.Request) -> httpx.Response:
                request_id = request.headers[REQUEST_ID_HEADER]
                rows = json.loads(request.content)["instances"]
                scores = [0.9 if row["user_activity__price"] > 20 else 0.2 for row in rows]
                instances = [list(row.values()) for row in rows]
                # The inference logger's events, posted on the monitor's loop.
                asyncio.run_coroutine_threadsafe(
                    serve(http, monitor.url, request_id, "1", scores, instances=instances), loop
                ).result(10)
                return httpx.Response(200, json={"predictions": scores})

            config = _config(
                monitor_url=monitor.url,
                namespace="team-a",
                feedback_batch=100,
                monitor_token_file=str(token_file),
            )
            client = httpx.Client(transport=httpx.MockTransport(predict))
            generator = TrafficGenerator(config, COLUMNS, client, make_streams(config))

            def traffic() -> None:
                for _ in range(20):
                    generator.send_once()
                generator.snapshot()
                generator.flush_feedback()

            await asyncio.to_thread(traffic)
            stats = generator.snapshot()
            assert (stats.feedback_accepted, stats.feedback_failed) == (20 * ROWS, 0), stats
            async with http.get(monitor.url + "/v1/models/team-a/churn/quality") as r:
                report = await r.json()
    (version,) = [v for v in report["versions"] if v["version"] == "1"]
    assert version["labeled"] == 20 * ROWS and report["orphans"] == 0
    assert version["auc"]["value"] is not None

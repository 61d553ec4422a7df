"""The generator against a real local HTTP server: answers, errors, delayed labels, the switch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pandas as pd
import pytest

from kubeloop.sampledata.traffic import TrafficConfig, TrafficGenerator, make_streams

COLUMNS = {"user_activity__dwell_seconds": "dwell_seconds", "user_activity__price": "price"}


class _Predictor(BaseHTTPRequestHandler):
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Predictor.bodies.append(body)
        if not self.path.startswith(("/v1/models/churn:", "/v2/models/churn/")):
            self._answer(404, {"error": "Model with name other does not exist."})
            return
        # Scores every row 1.0: correct exactly when the row's label is 1.
        if self.path.startswith("/v2/"):
            rows = body["inputs"][0]["shape"][0]
            self._answer(200, {"outputs": [{"name": "predict", "data": [1.0] * rows}]})
            return
        self._answer(200, {"predictions": [1.0] * len(body["instances"])})

    def _answer(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def predictor_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Predictor)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _generator(
    url: str, model: str, label_delay_s: float, protocol: str = "v1"
) -> TrafficGenerator:
    config = TrafficConfig(
        url=url,
        model=model,
        protocol=protocol,  # type: ignore[arg-type]
        rows_per_request=5,
        label_delay_s=label_delay_s,
        stream_rows=200,
    )
    return TrafficGenerator(config, COLUMNS, httpx.Client(), make_streams(config))


def test_answers_count_and_labels_arrive_late(predictor_url: str) -> None:
    generator = _generator(predictor_url, "churn", label_delay_s=3600)
    for _ in range(4):
        generator.send_once()
    stats = generator.snapshot()
    assert (stats.sent, stats.ok, stats.errors, stats.labelled) == (4, 4, 0, 0)
    assert stats.accuracy is None  # the labels are not there yet
    body = _Predictor.bodies[-1]
    assert set(body["instances"][0]) == set(COLUMNS)

    now_generator = _generator(predictor_url, "churn", label_delay_s=0)
    now_generator.send_once()
    reference = make_streams(now_generator.config)[0]
    expected = reference["label"].head(5).mean()
    assert now_generator.snapshot().accuracy == pytest.approx(expected)


def test_errors_are_counted_with_the_answer(predictor_url: str) -> None:
    generator = _generator(predictor_url, "other", label_delay_s=0)
    generator.send_once()
    stats = generator.snapshot()
    assert (stats.ok, stats.errors) == (0, 1)
    assert stats.last_error is not None and "HTTP 404" in stats.last_error


def test_switch_draws_from_the_shifted_stream(predictor_url: str) -> None:
    generator = _generator(predictor_url, "churn", label_delay_s=0)
    generator.send_once()
    before = _Predictor.bodies[-1]["instances"][0]["user_activity__price"]
    generator.switch_to_shifted()
    generator._cursor = 0  # same rows, other stream: only the shift differs
    generator.send_once()
    after = _Predictor.bodies[-1]["instances"][0]["user_activity__price"]
    assert after == pytest.approx(before + 25.0)
    assert generator.snapshot().shifted is True


def test_v2_sends_typed_tensors_and_reads_outputs(predictor_url: str) -> None:
    generator = _generator(predictor_url, "churn", label_delay_s=0, protocol="v2")
    generator.send_once()
    body = _Predictor.bodies[-1]
    assert [(t["name"], t["datatype"], t["shape"]) for t in body["inputs"]] == [
        ("user_activity__dwell_seconds", "FP32", [5]),
        ("user_activity__price", "FP32", [5]),
    ]
    stats = generator.snapshot()
    assert (stats.ok, stats.errors, stats.labelled) == (1, 0, 5)
    # The answered request's round trip (a local server: well under the timeout).
    p50, p99, mean = stats.latency_ms_p50, stats.latency_ms_p99, stats.latency_ms_mean
    assert p50 is not None and p50 == p99 == mean and 0 < p50 < 5000


def test_served_rows_and_released_labels_go_to_the_lake(predictor_url: str, tmp_path) -> None:
    """The generator plays the application: what it served lands in the FeatureView's source
    as events of the moment it was served, and each label, once released, in the labels."""
    config = TrafficConfig(
        url=predictor_url,
        model="churn",
        protocol="v1",
        rows_per_request=5,
        label_delay_s=3600,
        stream_rows=200,
        events_dir=str(tmp_path / "events"),
        labels_dir=str(tmp_path / "labels"),
    )
    generator = TrafficGenerator(config, COLUMNS, httpx.Client(), make_streams(config))
    before = pd.Timestamp.now(tz="UTC")
    for _ in range(3):
        generator.send_once()
    assert generator.flush_lake() == (15, 0)  # the labels are not released yet
    events = pd.read_parquet(tmp_path / "events")
    assert len(events) == 15 and "label" not in events.columns
    assert (events["event_timestamp"] >= before.floor("us")).all()
    assert (events["created_timestamp"] >= events["event_timestamp"]).all()
    reference = make_streams(config)[0]
    assert events["user_id"].tolist() == reference["user_id"].head(15).tolist()
    assert not (tmp_path / "labels").exists()

    generator._release_labels(time.time() + 3601)  # an hour later
    assert generator.flush_lake() == (0, 15)
    labels = pd.read_parquet(tmp_path / "labels")
    assert labels["label"].tolist() == reference["label"].head(15).tolist()
    # A label's time is its event's, so the join sees the events served before, not its own.
    pd.testing.assert_series_equal(
        labels["event_timestamp"], events["event_timestamp"], check_names=False
    )
    stats = generator.snapshot()
    assert (stats.events_written, stats.labels_written, stats.lake_failed) == (15, 15, 0)


def test_a_failed_lake_write_is_counted_not_fatal(predictor_url: str, tmp_path) -> None:
    blocker = tmp_path / "events"
    blocker.write_text("a file where the folder should be")
    config = TrafficConfig(
        url=predictor_url,
        model="churn",
        protocol="v1",
        rows_per_request=5,
        stream_rows=200,
        events_dir=str(blocker),
    )
    generator = TrafficGenerator(config, COLUMNS, httpx.Client(), make_streams(config))
    generator.send_once()
    assert generator.flush_lake() == (0, 0)
    stats = generator.snapshot()
    assert stats.lake_failed == 5 and stats.lake_last_error is not None
    assert stats.ok == 1


def test_served_events_are_pushed_online_before_they_are_created(
    predictor_url: str, tmp_path
) -> None:
    """Serving from Feast: the lake thread pushes the served events to the online store, then
    stamps their created time (a training row sees a row only once created, and by then the
    online store holds it), a microsecond apart in event order. A failed push is counted and
    the events still reach the lake."""
    pushed: list[tuple[float, pd.DataFrame]] = []

    def push(events: pd.DataFrame) -> int:
        pushed.append((time.time(), events.copy()))
        if len(pushed) == 2:
            raise ConnectionError("online store down")
        return len(events)

    config = TrafficConfig(
        url=predictor_url,
        model="churn",
        protocol="v1",
        rows_per_request=5,
        stream_rows=200,
        events_dir=str(tmp_path / "events"),
    )
    generator = TrafficGenerator(
        config, {"user_id": "user_id"}, httpx.Client(), make_streams(config), push_online=push
    )
    generator.send_once()
    generator.send_once()
    assert generator.flush_lake() == (10, 0)
    events = pd.read_parquet(tmp_path / "events").sort_values("created_timestamp")
    pushed_at, rows = pushed[0]
    assert len(rows) == 10 and "created_timestamp" not in rows.columns
    assert (events["created_timestamp"] >= pd.Timestamp(pushed_at, unit="s", tz="UTC")).all()
    assert events["created_timestamp"].is_unique
    assert events["event_timestamp"].is_monotonic_increasing  # created order = event order
    assert _Predictor.bodies[-1]["instances"][0].keys() == {"user_id"}

    generator.send_once()
    assert generator.flush_lake() == (5, 0)
    stats = generator.snapshot()
    assert (stats.online_pushes, stats.online_failed, stats.events_written) == (1, 5, 15)
    assert "online store down" in str(stats.online_last_error)

"""Send inference requests from the synthetic stream to a router URL, in a background thread.

Two pre-generated streams (the reference distribution and a shifted one) feed the requests;
`switch_to_shifted()` flips between them at a chosen moment. Each request's true labels are
held back for `label_delay_s` (labels arrive later in real life) before they count towards
accuracy.

Every request carries its own `X-Request-Id` (a UUID). With `monitor_url` set, each released
label is also sent to the monitor's feedback API (one label per row: `requestId`, `row` = the
instance's position in the request, `label`, `observedAt` = the release time), so the monitor
joins it to the predictions every version served for that request (the shadow's too) and the
MLModel's label gate and `status.quality` see outcomes. The labels go out in batches from a
second thread with `services/monitor/outcomes/client.py:send_feedback`: a slow or absent
monitor never delays the request pacing; a batch that still fails after the helper's retries
is dropped and counted (`feedback_failed`), as is overflow of the bounded queue.

With `events_dir` and `labels_dir` set, the generator also plays the application's data
pipeline (`lake.py`): every answered row is appended to the FeatureView's source as an event
of the moment it was served (date-partitioned Parquet; created = when its file landed), and
every released label to the Experiment's labels (label time = the event's). What production
saw is then what a retrain can train on. A third thread writes them every
`lake_interval_s`; a failed write is counted (`lake_failed`), never fatal.

With `push_online` (a model served from Feast: `online.py`), the same thread first pushes the
served events' features to the FeatureView's online store, then stamps the events' created
time and appends them to the lake: a training row (the newest row created by the label's
time) then holds what the online store served at that moment. Rows of one write get created
times a microsecond apart in event order, so "newest created" and "newest event" name the
same row. A failed push is counted (`online_failed`); the events still reach the lake.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import httpx
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from contracts.headers import REQUEST_ID_HEADER, ROLE_HEADER
from kubeloop.sampledata import lake
from kubeloop.sampledata.generate import GeneratorConfig, generate_events
from kubeloop.sampledata.requests import (
    Outcome,
    TrafficInputError,
    accuracy_series,
    build_instances,
    build_v2_request,
    predictions_of,
    score_of,
)


class TrafficConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, description="Router base URL (MLModel status.url).")
    protocol: Literal["v1", "v2"] = "v2"
    path: str | None = Field(
        default=None, description="Default: /v1/models/{model}:predict or /v2/models/{model}/infer."
    )
    model: str = Field(min_length=1)
    requests_per_s: float = Field(default=10.0, gt=0, le=1000)
    rows_per_request: int = Field(default=4, ge=1, le=1000)
    label_delay_s: float = Field(default=5.0, ge=0)
    stream_rows: int = Field(
        default=4000,
        ge=10,
        description="Rows per stream; they repeat after that (repeated rows repeat labels: "
        "the label gate would count them twice, so the demo sizes this to its run).",
    )
    shift_sigma: float = 1.0
    seed: int = 7
    timeout_s: float = Field(default=5.0, gt=0)
    monitor_url: str | None = Field(
        default=None, description="Monitor base URL: released labels go to its feedback API."
    )
    namespace: str = Field(default="default", min_length=1, description="The MLModel's.")
    monitor_token_file: str | None = Field(
        default=None,
        description="The monitor's bearer token (0600 file; `kubeloop up` writes it). Default: "
        "the file named by $KUBELOOP_MONITOR_TOKEN_FILE.",
    )
    feedback_batch: int = Field(default=1000, ge=1, le=5000, description="Labels per POST.")
    feedback_interval_s: float = Field(default=0.5, gt=0, description="Feedback send period.")
    feedback_queue: int = Field(
        default=100_000, ge=1, description="Released labels waiting to be sent, at most."
    )
    events_dir: str | None = Field(
        default=None, description="The FeatureView's source folder: served events go there."
    )
    labels_dir: str | None = Field(
        default=None, description="The Experiment's labels folder: released labels go there."
    )
    lake_interval_s: float = Field(default=2.0, gt=0, description="Write period of the lake.")


# Posts one batch of feedback labels; returns send_feedback's summary (accepted, duplicates,
# rejected). Injected in tests; by default send_feedback to the configured monitor.
PostLabels = Callable[[Sequence[Mapping[str, Any]]], Mapping[str, Any]]
# Writes served raw events' features to the online store (returns rows written); see online.py.
PushOnline = Callable[[pd.DataFrame], int]


class TrafficStats(BaseModel):
    sent: int = 0
    ok: int = 0
    errors: int = 0
    last_error: str | None = None
    shifted: bool = False
    labelled: int = 0
    accuracy: float | None = Field(default=None, description="Over the last 200 labelled rows.")
    feedback_accepted: int = Field(default=0, description="Labels the monitor accepted.")
    feedback_duplicates: int = 0
    feedback_rejected: int = Field(default=0, description="Labels the monitor refused (4xx).")
    feedback_failed: int = Field(
        default=0, description="Labels dropped: a POST failed after retries, or queue overflow."
    )
    feedback_pending: int = Field(default=0, description="Released labels not yet sent.")
    feedback_last_error: str | None = None
    events_written: int = Field(default=0, description="Served events appended to events_dir.")
    labels_written: int = Field(default=0, description="Labels appended to labels_dir.")
    lake_failed: int = Field(default=0, description="Rows whose write failed (dropped).")
    lake_last_error: str | None = None
    latency_ms_p50: float | None = Field(
        default=None, description="Answered requests' round trip, the last 2,000: median."
    )
    latency_ms_p99: float | None = None
    latency_ms_mean: float | None = Field(default=None, description="Over every answered one.")
    online_pushes: int = Field(default=0, description="Pushes to the online store.")
    online_push_seconds_max: float = Field(default=0.0, description="The slowest push.")
    online_push_seconds_total: float = 0.0
    online_failed: int = Field(default=0, description="Events whose push failed.")
    online_last_error: str | None = None


def make_streams(
    config: TrafficConfig, world: GeneratorConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference and the shifted event streams (same draws: only the shift differs).

    `world` is the data the served model was trained on: the streams are new events of that
    world — its users, items and item prices — drawn with the traffic's own seed. Events of
    another world differ in distribution (a different price per item), which a drift
    detector rightly flags even before any shift.
    """
    world = world or GeneratorConfig(rows=config.stream_rows, seed=config.seed)
    base = world.model_copy(
        update={
            "rows": config.stream_rows,
            "users": world.n_users,
            "items": world.n_items,
            "event_seed": config.seed,
            "days": 7,
            "shift_at": None,
            "shift_sigma": 0.0,
        }
    )
    shifted = base.model_copy(update={"shift_at": base.start, "shift_sigma": config.shift_sigma})
    return generate_events(base), generate_events(shifted)


class TrafficGenerator:
    """Owns a sender thread and, with a monitor, a feedback thread; the HTTP client is passed
    in and closed by the caller."""

    def __init__(
        self,
        config: TrafficConfig,
        columns: Mapping[str, str],
        client: httpx.Client,
        streams: tuple[pd.DataFrame, pd.DataFrame] | None = None,
        post_labels: PostLabels | None = None,
        push_online: PushOnline | None = None,
    ) -> None:
        self.config = config
        self.push_online = push_online
        self.columns = dict(columns)
        self.client = client
        reference, shifted = streams if streams is not None else make_streams(config)
        # Kept as frames, rows converted per request: a demo stream holds 10^5 rows, which as
        # dicts would cost ~1 KB each.
        self._streams = {
            False: reference.reset_index(drop=True),
            True: shifted.reset_index(drop=True),
        }
        self._cursor = 0
        self._shifted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = TrafficStats()
        self._latencies: deque[float] = deque(maxlen=2000)  # seconds, answered requests
        self._latency_total = 0.0
        # (due, outcome, the label for the feedback API, the label's row for the lake)
        self._pending: deque[tuple[float, Outcome, dict[str, Any], dict[str, Any]]] = deque()
        self._outcomes: list[Outcome] = []
        self._feedback: deque[dict[str, Any]] = deque()
        self._post_labels = post_labels or self._default_post_labels()
        # Served events and released labels waiting for the lake writer (its own lock: a
        # slow disk never holds up the request pacing).
        self._lake_lock = threading.Lock()
        self._served: list[dict[str, Any]] = []
        self._labelled: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._lake_thread = threading.Thread(
            target=self._run_lake, name="traffic-lake", daemon=True
        )
        self._feedback_thread = threading.Thread(
            target=self._run_feedback, name="traffic-feedback", daemon=True
        )

    def _default_post_labels(self) -> PostLabels | None:
        if not self.config.monitor_url:
            return None
        # Imported here: the sample data package stays usable without the monitor's code.
        from services.monitor.auth.tokens import read_token
        from services.monitor.outcomes.client import send_feedback

        return functools.partial(
            send_feedback,
            self.config.monitor_url,
            self.config.namespace,
            self.config.model,
            batch_size=self.config.feedback_batch,
            timeout_s=self.config.timeout_s,
            retries=2,
            # Read once: the token of a running monitor does not change.
            token=read_token(self.config.monitor_token_file),
        )

    @property
    def sends_feedback(self) -> bool:
        return self._post_labels is not None

    @property
    def writes_lake(self) -> bool:
        return bool(self.config.events_dir or self.config.labels_dir)

    def start(self) -> None:
        self._thread.start()
        if self.sends_feedback:
            self._feedback_thread.start()
        if self.writes_lake:
            self._lake_thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.config.timeout_s + 2)
        if self._feedback_thread.is_alive():
            self._feedback_thread.join(timeout=3 * self.config.timeout_s + 2)
        if self._lake_thread.is_alive():
            self._lake_thread.join(timeout=30)

    def switch_to_shifted(self) -> None:
        self._shifted.set()

    def snapshot(self) -> TrafficStats:
        self._release_labels(time.time())
        with self._lock:
            recent = self._outcomes[-200:]
            stats = self._stats.model_copy()
        stats.shifted = self._shifted.is_set()
        stats.labelled = len(self._outcomes)
        stats.feedback_pending = len(self._feedback)
        stats.accuracy = sum(o.correct for o in recent) / len(recent) if recent else None
        with self._lock:
            latencies = sorted(self._latencies)
            if stats.ok:
                stats.latency_ms_mean = round(1000 * self._latency_total / stats.ok, 2)
        if latencies:
            stats.latency_ms_p50 = round(1000 * latencies[len(latencies) // 2], 2)
            stats.latency_ms_p99 = round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 2)
        return stats

    def accuracy_over_time(self, bucket_s: float = 10.0) -> list[tuple[float, float, int]]:
        self._release_labels(time.time())
        with self._lock:
            return accuracy_series(list(self._outcomes), bucket_s)

    @property
    def path(self) -> str:
        if self.config.path:
            return self.config.path
        if self.config.protocol == "v2":
            return "/v2/models/{model}/infer"
        return "/v1/models/{model}:predict"

    def next_rows(self) -> list[dict[str, Any]]:
        stream = self._streams[self._shifted.is_set()]
        count = self.config.rows_per_request
        positions = [(self._cursor + i) % len(stream) for i in range(count)]
        self._cursor += count
        rows: list[dict[str, Any]] = stream.iloc[positions].to_dict("records")  # type: ignore[assignment]
        return rows

    def send_once(self) -> None:
        rows = self.next_rows()
        url = self.config.url.rstrip("/") + self.path.format(model=self.config.model)
        if self.config.protocol == "v2":
            body: dict[str, Any] = build_v2_request(rows, self.columns)
        else:
            body = build_instances(rows, self.columns)
        # Our own correlation id: the router forwards it to every version (shadow included)
        # and the monitor indexes the predictions by it, so the labels can name it.
        request_id = str(uuid.uuid4())
        with self._lock:
            self._stats.sent += 1
        started = time.monotonic()
        try:
            answer = self.client.post(
                url,
                json=body,
                headers={REQUEST_ID_HEADER: request_id},
                timeout=self.config.timeout_s,
            )
        except httpx.HTTPError as error:
            self._count_error(f"{type(error).__name__}: {error}")
            return
        took = time.monotonic() - started
        if answer.status_code != 200:
            self._count_error(f"HTTP {answer.status_code} from {url}: {answer.text[:200]}")
            return
        try:
            scores = [score_of(p) for p in predictions_of(answer.json())]
        except (ValueError, TypeError, TrafficInputError) as error:
            self._count_error(f"unreadable answer from {url}: {error}")
            return
        with self._lock:
            self._latencies.append(took)
            self._latency_total += took
        self._record(rows, scores, answer.headers.get(ROLE_HEADER, "unknown"), request_id)

    def _record(
        self, rows: list[dict[str, Any]], scores: list[float], version: str, request_id: str
    ) -> None:
        now = time.time()
        due = now + self.config.label_delay_s
        served_at = pd.Timestamp(now, unit="s", tz="UTC")
        if self.config.events_dir:
            events = [{**row, "event_timestamp": served_at} for row in rows]
            with self._lake_lock:
                self._served.extend(events)
        with self._lock:
            self._stats.ok += 1
            for index, (row, score) in enumerate(zip(rows, scores, strict=False)):
                verdict = (score >= 0.5) == bool(row["label"])
                label = {
                    "requestId": request_id,
                    "row": index,
                    "label": int(row["label"]),
                    "observedAt": due,
                }
                lake_label = {
                    "user_id": row["user_id"],
                    "item_id": row["item_id"],
                    "event_timestamp": served_at,
                    "label": int(row["label"]),
                }
                self._pending.append(
                    (
                        due,
                        Outcome(served_at=now, version=version, correct=verdict),
                        label,
                        lake_label,
                    )
                )

    def _count_error(self, message: str) -> None:
        with self._lock:
            self._stats.errors += 1
            self._stats.last_error = message

    def _release_labels(self, now: float) -> None:
        released = []
        with self._lock:
            while self._pending and self._pending[0][0] <= now:
                _, outcome, label, lake_label = self._pending.popleft()
                self._outcomes.append(outcome)
                released.append(lake_label)
                if self._post_labels is None:
                    continue
                if len(self._feedback) >= self.config.feedback_queue:
                    self._feedback.popleft()  # the oldest goes: the newest matter most
                    self._stats.feedback_failed += 1
                self._feedback.append(label)
        if self.config.labels_dir and released:
            with self._lake_lock:
                self._labelled.extend(released)

    def flush_lake(self) -> tuple[int, int]:
        """Append the served events and released labels to the lake now; returns how many
        (events, labels) were written. The lake thread calls it; tests call it directly."""
        with self._lake_lock:
            served, self._served = self._served, []
            labelled, self._labelled = self._labelled, []
        written = [0, 0]
        events_dir, labels_dir = self.config.events_dir, self.config.labels_dir
        if served and events_dir:
            events = pd.DataFrame(served)
            self._push(events)
            # Created = when the row reached the lake (and the online store, pushed just
            # before): later than its event, as the label's own row must be (a label at the
            # event's time must not see it, point-in-time). A microsecond apart in event
            # order (rows are served in order), so the newest created row is the newest event.
            now = pd.Timestamp(time.time(), unit="s", tz="UTC")
            events["created_timestamp"] = now + pd.to_timedelta(np.arange(len(events)), unit="us")
            written[0] = self._write(
                lambda: lake.append_events(events, events_dir, "traffic"), len(events)
            )
        if labelled and labels_dir:
            labels = pd.DataFrame(labelled)
            written[1] = self._write(
                lambda: lake.append_labels(labels, labels_dir, "traffic"), len(labels)
            )
        with self._lock:
            self._stats.events_written += written[0]
            self._stats.labels_written += written[1]
        return written[0], written[1]

    def _push(self, events: pd.DataFrame) -> None:
        if self.push_online is None:
            return
        started = time.monotonic()
        try:
            # Not created yet: the stream's own created times are the generator's, not these.
            self.push_online(events.drop(columns=["created_timestamp"], errors="ignore"))
        except Exception as error:  # noqa: BLE001 - counted, never fatal: the lake still gets them
            with self._lock:
                self._stats.online_failed += len(events)
                self._stats.online_last_error = f"{type(error).__name__}: {error}"
            return
        took = time.monotonic() - started
        with self._lock:
            self._stats.online_pushes += 1
            self._stats.online_push_seconds_total += took
            self._stats.online_push_seconds_max = max(self._stats.online_push_seconds_max, took)

    def _write(self, append: Callable[[], object], rows: int) -> int:
        try:
            append()
        except Exception as error:  # noqa: BLE001 - a failed write is counted, never fatal
            with self._lock:
                self._stats.lake_failed += rows
                self._stats.lake_last_error = f"{type(error).__name__}: {error}"
            return 0
        return rows

    def _run_lake(self) -> None:
        while not self._stop.wait(self.config.lake_interval_s):
            self._release_labels(time.time())
            self.flush_lake()
        self._release_labels(time.time())
        self.flush_lake()

    def flush_feedback(self) -> int:
        """Send the released labels now, in batches; returns how many were sent (accepted or
        not). The feedback thread calls it; tests call it directly."""
        if self._post_labels is None:
            return 0
        sent = 0
        while True:
            with self._lock:
                count = min(len(self._feedback), self.config.feedback_batch)
                batch = [self._feedback.popleft() for _ in range(count)]
            if not batch:
                return sent
            sent += len(batch)
            try:
                summary = self._post_labels(batch)
            except Exception as error:  # noqa: BLE001 - any failure is counted, never fatal
                with self._lock:
                    self._stats.feedback_failed += len(batch)
                    self._stats.feedback_last_error = f"{type(error).__name__}: {error}"
                continue
            rejected = list(summary.get("rejected") or [])
            with self._lock:
                self._stats.feedback_accepted += int(summary.get("accepted", 0))
                self._stats.feedback_duplicates += int(summary.get("duplicates", 0))
                self._stats.feedback_rejected += len(rejected)
                if rejected:
                    first = rejected[0]
                    self._stats.feedback_last_error = (
                        f"rejected {first.get('field')}: {first.get('message')}"
                    )

    def _run_feedback(self) -> None:
        while not self._stop.wait(self.config.feedback_interval_s):
            self._release_labels(time.time())
            self.flush_feedback()
        self._release_labels(time.time())  # what is due by now still goes out
        self.flush_feedback()

    def _run(self) -> None:
        interval = 1.0 / self.config.requests_per_s
        while not self._stop.is_set():
            started = time.monotonic()
            self.send_once()
            self._release_labels(time.time())
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

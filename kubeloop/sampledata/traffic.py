"""Send inference requests from the synthetic stream to a router URL, in a background thread.

Two pre-generated streams (the reference distribution and a shifted one) feed the requests;
`switch_to_shifted()` flips between them at a chosen moment. Each request's true labels are
held back for `label_delay_s` (labels arrive later in real life) before they count towards
accuracy.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

import httpx
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from contracts.headers import ROLE_HEADER
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
    stream_rows: int = Field(default=4000, ge=10)
    shift_sigma: float = 1.0
    seed: int = 7
    timeout_s: float = Field(default=5.0, gt=0)


class TrafficStats(BaseModel):
    sent: int = 0
    ok: int = 0
    errors: int = 0
    last_error: str | None = None
    shifted: bool = False
    labelled: int = 0
    accuracy: float | None = Field(default=None, description="Over the last 200 labelled rows.")


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
    """Owns one sender thread; the HTTP client is passed in and closed by the caller."""

    def __init__(
        self,
        config: TrafficConfig,
        columns: Mapping[str, str],
        client: httpx.Client,
        streams: tuple[pd.DataFrame, pd.DataFrame] | None = None,
    ) -> None:
        self.config = config
        self.columns = dict(columns)
        self.client = client
        reference, shifted = streams if streams is not None else make_streams(config)
        self._streams = {False: reference.to_dict("records"), True: shifted.to_dict("records")}
        self._cursor = 0
        self._shifted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stats = TrafficStats()
        self._pending: deque[tuple[float, Outcome]] = deque()
        self._outcomes: list[Outcome] = []
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.config.timeout_s + 2)

    def switch_to_shifted(self) -> None:
        self._shifted.set()

    def snapshot(self) -> TrafficStats:
        self._release_labels(time.time())
        with self._lock:
            recent = self._outcomes[-200:]
            stats = self._stats.model_copy()
        stats.shifted = self._shifted.is_set()
        stats.labelled = len(self._outcomes)
        stats.accuracy = sum(o.correct for o in recent) / len(recent) if recent else None
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
        rows = []
        for _ in range(self.config.rows_per_request):
            rows.append(stream[self._cursor % len(stream)])
            self._cursor += 1
        return rows

    def send_once(self) -> None:
        rows = self.next_rows()
        url = self.config.url.rstrip("/") + self.path.format(model=self.config.model)
        if self.config.protocol == "v2":
            body: dict[str, Any] = build_v2_request(rows, self.columns)
        else:
            body = build_instances(rows, self.columns)
        with self._lock:
            self._stats.sent += 1
        try:
            answer = self.client.post(url, json=body, timeout=self.config.timeout_s)
        except httpx.HTTPError as error:
            self._count_error(f"{type(error).__name__}: {error}")
            return
        if answer.status_code != 200:
            self._count_error(f"HTTP {answer.status_code} from {url}: {answer.text[:200]}")
            return
        try:
            scores = [score_of(p) for p in predictions_of(answer.json())]
        except (ValueError, TypeError, TrafficInputError) as error:
            self._count_error(f"unreadable answer from {url}: {error}")
            return
        self._record(rows, scores, answer.headers.get(ROLE_HEADER, "unknown"))

    def _record(self, rows: list[dict[str, Any]], scores: list[float], version: str) -> None:
        now = time.time()
        due = now + self.config.label_delay_s
        with self._lock:
            self._stats.ok += 1
            for row, score in zip(rows, scores, strict=False):
                verdict = (score >= 0.5) == bool(row["label"])
                self._pending.append(
                    (due, Outcome(served_at=now, version=version, correct=verdict))
                )

    def _count_error(self, message: str) -> None:
        with self._lock:
            self._stats.errors += 1
            self._stats.last_error = message

    def _release_labels(self, now: float) -> None:
        with self._lock:
            while self._pending and self._pending[0][0] <= now:
                self._outcomes.append(self._pending.popleft()[1])

    def _run(self) -> None:
        interval = 1.0 / self.config.requests_per_s
        while not self._stop.is_set():
            started = time.monotonic()
            self.send_once()
            self._release_labels(time.time())
            self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

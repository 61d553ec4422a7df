"""Bounded, columnar ring buffers and the figures computed over them (pure, numpy only).

Memory per version is fixed by the window size: requests, feature rows, scores and shadow
pairs each live in a preallocated ring; the oldest entries are overwritten, and rows older
than the model's max age are masked out at read time.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from services.monitor.served import ServedRow

# Latency histogram edges (ms) for the raw-counts form; the last bucket is open-ended.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
)  # fmt: skip
STATUS_UNANSWERED = 0


class Ring:
    """Fixed-capacity columnar ring; column ``ts`` (float64 seconds) is always present."""

    def __init__(self, capacity: int, columns: dict[str, tuple[Any, tuple[int, ...]]]) -> None:
        self.capacity = capacity
        self._spec = {"ts": (np.float64, ()), **columns}
        self._cols = {
            name: np.zeros((capacity, *tail), dtype=dtype)
            for name, (dtype, tail) in self._spec.items()
        }
        self._columns = tuple(self._cols.values())  # in order: what ``append`` takes
        self._head = 0  # next write position
        self.size = 0

    @property
    def nbytes(self) -> int:
        return sum(column.nbytes for column in self._cols.values())

    def row_shape(self, name: str) -> tuple[int, ...]:
        """Shape of one entry of column ``name`` (``(d,)`` for feature rows)."""
        return tuple(self._cols[name].shape[1:])

    def append(self, *values: Any) -> None:
        """One row: its values in column order, ``ts`` first (positional: this runs per
        ingested event, and keywords cost a dict and a lookup per column)."""
        position = self._head
        for column, value in zip(self._columns, values, strict=True):
            column[position] = value
        self._head = (position + 1) % self.capacity
        if self.size < self.capacity:
            self.size += 1

    def extend(self, count: int, **values: Any) -> None:
        """Append ``count`` rows; array values have ``count`` rows, scalars are broadcast."""
        if count <= 0:
            return
        if count == 1:  # the usual single-prediction call: plain item assignment is cheapest
            position = self._head
            for name, column in self._cols.items():
                value = values[name]
                column[position] = value[0] if isinstance(value, np.ndarray) else value
            self._head = (position + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)
            return
        skip = max(0, count - self.capacity)
        count -= skip
        start = self._head
        first = min(count, self.capacity - start)  # contiguous slice up to the ring's end
        for name, column in self._cols.items():
            value = values[name]
            if isinstance(value, np.ndarray):
                value = value[skip:]
                column[start : start + first] = value[:first]
                if first < count:
                    column[: count - first] = value[first:]
            else:
                column[start : start + first] = value
                if first < count:
                    column[: count - first] = value
        self._head = (start + count) % self.capacity
        self.size = min(self.size + count, self.capacity)

    def ordered(self) -> dict[str, np.ndarray]:
        """All live rows, oldest first (copies)."""
        if self.size < self.capacity:
            return {name: column[: self.size].copy() for name, column in self._cols.items()}
        order = np.r_[self._head : self.capacity, 0 : self._head]
        return {name: column[order] for name, column in self._cols.items()}

    def select(self, since: float, until: float) -> dict[str, np.ndarray]:
        rows = self.ordered()
        mask = (rows["ts"] >= since) & (rows["ts"] <= until)
        return {name: column[mask] for name, column in rows.items()}

    def oldest_ts(self) -> float | None:
        if self.size == 0:
            return None
        return float(self._cols["ts"][self._head if self.size == self.capacity else 0])

    def resized(self, capacity: int) -> Ring:
        ring = Ring(capacity, {k: v for k, v in self._spec.items() if k != "ts"})
        rows = self.ordered()
        ring.extend(self.size, **rows)
        return ring


def request_ring(capacity: int) -> Ring:
    return Ring(
        capacity,
        {"status": (np.int16, ()), "latency_ms": (np.float64, ()), "rows": (np.int32, ())},
    )


def score_ring(capacity: int) -> Ring:
    return Ring(capacity, {"score": (np.float64, ()), "cls": (np.int64, ())})


def pair_ring(capacity: int) -> Ring:
    return Ring(
        capacity,
        {
            "predictions": (np.int32, ()),
            "disagreements": (np.int32, ()),
            "abs_diff_sum": (np.float64, ()),
        },
    )


def feature_ring(capacity: int, width: int) -> Ring:
    return Ring(capacity, {"x": (np.float64, (width,))})


def null_ring(capacity: int, width: int) -> Ring:
    """Per request: rows logged and, per feature, rows where it was NaN/inf/null."""
    return Ring(capacity, {"rows": (np.int32, ()), "nulls": (np.int32, (width,))})


@dataclass
class VersionWindow:
    """Everything the monitor keeps about one model version."""

    version: str
    capacity: int
    role: str = ""
    last_event_ts: float = 0.0
    paired_with: str = ""
    feature_names: list[str] | None = None
    requests: Ring = field(init=False)
    scores: Ring = field(init=False)
    pairs: Ring = field(init=False)
    features: Ring | None = None
    feature_nulls: Ring | None = None
    #: The last ``skew.maxRows`` served rows with an entity (None: skew is off).
    served: deque[ServedRow] | None = None

    def __post_init__(self) -> None:
        self.requests = request_ring(self.capacity)
        self.scores = score_ring(self.capacity)
        self.pairs = pair_ring(self.capacity)

    @property
    def nbytes(self) -> int:
        rings = [self.requests, self.scores, self.pairs, self.features, self.feature_nulls]
        return sum(ring.nbytes for ring in rings if ring is not None)

    def resize(self, capacity: int) -> None:
        self.capacity = capacity
        self.requests = self.requests.resized(capacity)
        self.scores = self.scores.resized(capacity)
        self.pairs = self.pairs.resized(capacity)
        if self.features is not None:
            self.features = self.features.resized(capacity)
        if self.feature_nulls is not None:
            self.feature_nulls = self.feature_nulls.resized(capacity)


# ------------------------------------------------------------------------------ figures


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _quantiles(latencies: np.ndarray) -> dict[str, float | None]:
    if latencies.size == 0:
        return {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
    return {
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(latencies.mean()),
        "max": float(latencies.max()),
    }


def request_counts(requests: dict[str, np.ndarray]) -> dict[str, int]:
    status = requests["status"]
    client = int(((status >= 400) & (status < 500)).sum())
    server = int((status >= 500).sum())
    unanswered = int((status == STATUS_UNANSWERED).sum())
    total = int(status.size)
    return {
        "requests": total,
        "successes": total - client - server - unanswered,
        "clientErrors": client,
        "serverErrors": server,
        "unanswered": unanswered,
        "predictions": int(requests["rows"].sum()),
    }


def judged_latencies(requests: dict[str, np.ndarray]) -> np.ndarray:
    """Latencies that count against a version: answered, not a client error."""
    status = requests["status"]
    latency = requests["latency_ms"]
    keep = (status != STATUS_UNANSWERED) & ((status < 400) | (status >= 500))
    keep &= np.isfinite(latency)
    return latency[keep]


def request_figures(requests: dict[str, np.ndarray]) -> dict[str, Any]:
    counts = request_counts(requests)
    # Client errors are the caller's fault and unanswered calls have no known status, so
    # neither enters the error rate's denominator.
    judged = counts["requests"] - counts["clientErrors"] - counts["unanswered"]
    return {
        **counts,
        "errorRate": _rate(counts["serverErrors"], judged),
        "unansweredRate": _rate(counts["unanswered"], counts["requests"]),
        "latencyMs": _quantiles(judged_latencies(requests)),
    }


def latency_histogram(latencies: np.ndarray) -> dict[str, list[float] | list[int]]:
    edges = np.asarray(LATENCY_BUCKETS_MS)
    counts = np.bincount(np.searchsorted(edges, latencies, side="left"), minlength=edges.size + 1)
    return {"leMs": [*LATENCY_BUCKETS_MS, math.inf], "counts": counts.tolist()}


def pair_figures(pairs: dict[str, np.ndarray]) -> dict[str, Any]:
    predictions = int(pairs["predictions"].sum())
    disagreements = int(pairs["disagreements"].sum())
    return {
        "pairedRequests": int(pairs["ts"].size),
        "pairedPredictions": predictions,
        "disagreements": disagreements,
        "disagreementRate": _rate(disagreements, predictions),
        "meanAbsScoreDiff": float(pairs["abs_diff_sum"].sum() / predictions)
        if predictions
        else None,
    }


def disagreement(
    stable: tuple[np.ndarray, np.ndarray | None],
    shadow: tuple[np.ndarray, np.ndarray | None],
    threshold: float,
    tolerance: float,
) -> tuple[int, float]:
    """(disagreeing predictions, sum of |score gaps|) for two aligned prediction vectors.

    A prediction disagrees when its label flips (class ids when both sides report them,
    else the score cut at ``threshold``) or the scores differ by more than ``tolerance``.
    """
    stable_scores, stable_classes = stable
    shadow_scores, shadow_classes = shadow
    if stable_classes is not None and shadow_classes is not None:
        flips = stable_classes != shadow_classes
    else:
        flips = (stable_scores >= threshold) != (shadow_scores >= threshold)
    gaps = np.abs(stable_scores - shadow_scores)
    return int((flips | (gaps > tolerance)).sum()), float(gaps.sum())

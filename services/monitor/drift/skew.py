"""Training-serving skew on served rows: as-of join with the offline store, then SkewCheck.

Each served row (entity, time, model-column values) is paired with the offline row of the
same entity whose timestamp is the latest one at or before the served time and no older
than ``ttlSeconds`` (``pandas.merge_asof``), which is what a point-in-time correct
training set would have read for it. Served rows without such an offline row are counted
as ``unmatched_served``. Offline datasets are cached per URI and columns; a local dataset
is re-read when its files change, any dataset at least every ``reload_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd

from contracts.monitor_config import SkewConfig
from services.monitor.drift.errors import DriftError
from services.monitor.drift.evaluator import next_alarm_state, unchanged_outcome
from services.monitor.drift.quality import SkewCheck
from services.monitor.hooks import SKEW, DriftOutcome, WindowSnapshot
from services.monitor.served import ServedRow, entity_key

RELOAD_SECONDS = 300.0
_ENTITY, _TS, _OFFLINE_TS = "__entity", "__ts", "__offline_ts"

CacheKey = tuple[str, str, str, tuple[str, ...]]
Signature = tuple[tuple[str, int, int], ...] | None


class OfflineLoadError(DriftError):
    """The offline dataset cannot be read; the message names the URI and why."""


@dataclass(frozen=True)
class _Cached:
    frame: pd.DataFrame
    signature: Signature
    loaded_at: float


class OfflineCache:
    """(URI, columns) -> the offline rows, normalised for the as-of join. Thread-safe."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        reload_seconds: float = RELOAD_SECONDS,
        max_entries: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.reload_seconds = reload_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._frames: dict[CacheKey, _Cached] = {}
        self._lock = threading.Lock()

    def load(self, skew: SkewConfig) -> pd.DataFrame:
        """Columns ``__entity`` (str), ``__offline_ts`` (epoch s) and the offline columns."""
        columns = tuple(sorted(set(skew.columns.values())))
        key = (skew.offline, skew.entity_key, skew.offline_timestamp, columns)
        local = _local_path(skew.offline)
        signature = _signature(local, skew.offline) if local is not None else None
        now = self.clock()
        with self._lock:
            cached = self._frames.get(key)
        if (
            cached is not None
            and cached.signature == signature
            and now - cached.loaded_at < self.reload_seconds
        ):
            return cached.frame
        path = local if local is not None else self._download(skew.offline)
        frame = read_offline(path, skew, columns)
        with self._lock:
            self._frames.pop(key, None)
            if len(self._frames) >= self.max_entries:
                self._frames.pop(next(iter(self._frames)))  # the oldest entry
            self._frames[key] = _Cached(frame, signature, now)
        return frame

    def _download(self, uri: str) -> Path:
        try:
            import mlflow  # lazily: only MLflow-hosted datasets need it

            downloaded = mlflow.artifacts.download_artifacts(
                artifact_uri=uri, tracking_uri=self.tracking_uri
            )
        except Exception as error:
            raise OfflineLoadError(f"offline {uri!r} cannot be downloaded: {error}") from None
        return Path(downloaded)


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and uri[1:2] == ":"):  # C:\...
        return Path(uri)
    return None


def _signature(path: Path, uri: str) -> Signature:
    """Name, size and mtime of every parquet file: any rewrite changes it."""
    if not path.exists():
        raise OfflineLoadError(f"offline {uri!r}: no such file or directory")
    files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
    try:
        return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    except OSError as error:  # a file replaced while listing: the next round retries
        raise OfflineLoadError(f"offline {uri!r}: {error}") from None


def read_offline(path: Path, skew: SkewConfig, columns: Sequence[str]) -> pd.DataFrame:
    """Read a parquet file or a (hive-partitioned) directory of them; raises
    :class:`OfflineLoadError` naming what is wrong."""
    import pyarrow.dataset as ds

    uri = skew.offline
    needed = list(dict.fromkeys([skew.entity_key, skew.offline_timestamp, *columns]))
    try:
        dataset = ds.dataset(str(path), format="parquet", partitioning="hive")
        missing = [c for c in needed if c not in dataset.schema.names]
        if missing:
            have = ", ".join(dataset.schema.names[:30])
            raise OfflineLoadError(f"offline {uri!r} lacks columns {missing}; it has: {have}")
        raw = dataset.to_table(columns=needed).to_pandas()
    except OfflineLoadError:
        raise
    except Exception as error:  # any reader failure becomes a message on the version
        raise OfflineLoadError(f"offline {uri!r} cannot be read: {error}") from None
    if raw.empty:
        raise OfflineLoadError(f"offline {uri!r} has no rows")
    frame = pd.DataFrame(
        {
            _ENTITY: _entity_keys(raw[skew.entity_key]),
            _OFFLINE_TS: _epoch_seconds(raw[skew.offline_timestamp], uri),
            **{c: raw[c].to_numpy() for c in columns},
        }
    )
    frame = frame.dropna(subset=[_ENTITY, _OFFLINE_TS])
    return frame.sort_values(_OFFLINE_TS, kind="stable").reset_index(drop=True)


def _entity_keys(column: pd.Series) -> pd.Series:
    if pd.api.types.is_integer_dtype(column) and not column.isna().any():
        return column.astype(np.int64).astype(str)
    return column.map(entity_key).astype(object)


def _epoch_seconds(column: pd.Series, uri: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.astype(np.float64)
    try:
        stamps = pd.to_datetime(column, utc=True, errors="coerce")
    except (TypeError, ValueError) as error:
        raise OfflineLoadError(f"offline {uri!r}: timestamps unreadable: {error}") from None
    seconds = (stamps - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return seconds.astype(np.float64)


def served_frame(rows: Sequence[ServedRow], model_columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            _ENTITY: pd.Series([r.entity for r in rows], dtype=object),
            _TS: np.array([r.ts for r in rows], dtype=np.float64),
            **{c: [r.values.get(c) for r in rows] for c in model_columns},
        }
    )
    return frame.sort_values(_TS, kind="stable").reset_index(drop=True)


def skew_result(
    rows: Sequence[ServedRow], offline: pd.DataFrame, skew: SkewConfig
) -> dict[str, Any]:
    """The skew check's JSON result for served rows against the loaded offline rows. Rows
    served after ``offline_complete_until`` wait (``pending_served``): the offline rows they
    pair with may not be backfilled yet, and an older one would read as skew."""
    bound = skew.offline_complete_until
    compared = list(rows) if bound is None else [r for r in rows if r.ts <= bound]
    pending, rows = len(rows) - len(compared), compared
    if pending and not rows:
        return {
            "detector": SKEW,
            "pairs": 0,
            "pending_served": pending,
            "max_mismatch_fraction": skew.max_mismatch_fraction,
            "skipped": f"all {pending} served rows are newer than the offline store",
        }
    model_columns = list(skew.columns)
    served = served_frame(rows, model_columns)
    right = pd.DataFrame(
        {
            _ENTITY: offline[_ENTITY],
            _OFFLINE_TS: offline[_OFFLINE_TS],
            **{f"{m}__offline": offline[o] for m, o in skew.columns.items()},
        }
    )
    joined = pd.merge_asof(
        served,
        right,
        left_on=_TS,
        right_on=_OFFLINE_TS,
        by=_ENTITY,
        direction="backward",
        tolerance=float(skew.ttl_seconds),
    )
    matched = joined[joined[_OFFLINE_TS].notna()]
    unmatched = len(joined) - len(matched)
    if matched.empty:
        message = (
            f"none of {len(joined)} served rows has an offline row for its entity "
            f"within ttlSeconds={skew.ttl_seconds:g}"
        )
        return {
            "detector": SKEW,
            "pairs": 0,
            "unmatched_served": unmatched,
            "max_mismatch_fraction": skew.max_mismatch_fraction,
            "skipped": message,
        }
    check = SkewCheck(model_columns, max_mismatch_fraction=skew.max_mismatch_fraction)
    offline_values = matched[[f"{m}__offline" for m in model_columns]]
    offline_values.columns = model_columns
    result = check.check(matched[model_columns], offline_values, unmatched_served=unmatched)
    return {"detector": SKEW, **result.model_dump(mode="json"), "pending_served": pending}


class SkewEvaluator:
    """Runs per version beside the drift checks when the model's config has ``skew``."""

    name = SKEW

    def __init__(self, offline: OfflineCache) -> None:
        self.offline = offline

    def evaluate(self, snapshot: WindowSnapshot, alarm_state: Mapping[str, Any]) -> DriftOutcome:
        skew = snapshot.config.skew
        if skew is None:
            return unchanged_outcome(
                {"detector": SKEW, "skipped": "no skew configured"}, alarm_state
            )
        if not snapshot.served:
            message = f"no served rows with entity input {skew.entity_key!r} yet"
            return unchanged_outcome({"detector": SKEW, "skipped": message}, alarm_state)
        try:
            result = skew_result(snapshot.served, self.offline.load(skew), skew)
        except DriftError as error:  # unreadable offline data or non-numeric values
            return unchanged_outcome({"detector": SKEW, "error": str(error)}, alarm_state)
        if "skipped" in result:
            return unchanged_outcome(result, alarm_state)
        is_skew = bool(result["is_skew"])
        state = next_alarm_state(alarm_state, is_skew, snapshot.taken_at)
        return DriftOutcome(result=result, alarm_state=state, is_drift=is_skew)

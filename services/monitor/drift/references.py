"""Training reference snapshots (one parquet file per model version), loaded by URI and cached.

A URI is a local path, a ``file://`` URI, or any MLflow artifact URI (``runs:/``,
``models:/``, ``s3://``, ``mlflow-artifacts:/``...). Loaded frames are cached by URI; a
failed load is not cached, so the next drift round tries again (the artifact may simply
not be uploaded yet).
"""

from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd

from services.monitor.drift.errors import DriftError


class ReferenceLoadError(DriftError):
    """A reference snapshot could not be loaded; the message says which URI and why."""


class ReferenceCache:
    """URI -> DataFrame, loaded once; thread-safe (drift thread and report requests)."""

    def __init__(self, tracking_uri: str | None = None, max_entries: int = 64) -> None:
        self.tracking_uri = tracking_uri
        self.max_entries = max_entries
        self._frames: dict[str, pd.DataFrame] = {}
        self._lock = threading.Lock()

    def load(self, uri: str) -> pd.DataFrame:
        with self._lock:
            cached = self._frames.get(uri)
        if cached is not None:
            return cached
        frame = read_reference(uri, self.tracking_uri)
        with self._lock:
            if len(self._frames) >= self.max_entries:
                self._frames.pop(next(iter(self._frames)))  # the oldest entry
            self._frames[uri] = frame
        return frame


def read_reference(uri: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """The parquet behind ``uri`` as a DataFrame; raises :class:`ReferenceLoadError`."""
    try:
        path = _local_path(uri, tracking_uri)
        frame = pd.read_parquet(path)
    except ReferenceLoadError:
        raise
    except Exception as error:  # any loader failure becomes a message on the version
        raise ReferenceLoadError(f"reference {uri!r} cannot be loaded: {error}") from None
    if frame.empty or frame.shape[1] == 0:
        raise ReferenceLoadError(f"reference {uri!r} has no rows or no columns")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _local_path(uri: str, tracking_uri: str | None) -> Path:
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme == "file" else uri)
        if not path.exists():
            raise ReferenceLoadError(f"reference {uri!r}: no such file")
        return _parquet_in(path, uri)
    import mlflow  # lazily: only MLflow-hosted references need it

    downloaded = mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri)
    return _parquet_in(Path(downloaded), uri)


def _parquet_in(path: Path, uri: str) -> Path:
    """A file, or the single parquet file of an artifact directory."""
    if path.is_file():
        return path
    files = sorted(path.rglob("*.parquet"))
    if len(files) != 1:
        raise ReferenceLoadError(
            f"reference {uri!r} is a directory with {len(files)} parquet files; expected one"
        )
    return files[0]

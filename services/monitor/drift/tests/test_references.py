"""Reference snapshots by URI: local paths, file:// and MLflow runs:/ artifacts (a real
MLflow tracking store in tmp_path), cached by URI; failures are messages, never cached."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from services.monitor.drift.references import ReferenceCache, ReferenceLoadError


def reference_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.standard_normal(50), "b": rng.standard_normal(50)})


def test_local_path_and_file_uri_load_and_are_cached(tmp_path: Path) -> None:
    path = tmp_path / "ref.parquet"
    reference_frame().to_parquet(path)
    cache = ReferenceCache()

    by_path = cache.load(str(path))
    assert list(by_path.columns) == ["a", "b"] and len(by_path) == 50
    assert cache.load(path.as_uri()).equals(by_path)
    path.unlink()
    assert cache.load(str(path)) is by_path  # cached: no second read


def test_failures_name_the_uri_and_are_retried(tmp_path: Path) -> None:
    path = tmp_path / "late.parquet"
    cache = ReferenceCache()
    with pytest.raises(ReferenceLoadError, match="late.parquet"):
        cache.load(str(path))
    path.write_text("garbage")
    with pytest.raises(ReferenceLoadError, match="cannot be loaded"):
        cache.load(str(path))
    reference_frame().to_parquet(path)
    assert len(cache.load(str(path))) == 50


def test_mlflow_runs_uri_downloads_the_artifact(tmp_path: Path) -> None:
    import mlflow

    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=tracking)
    experiment = client.create_experiment("drift", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    local = tmp_path / "snapshot.parquet"
    reference_frame().to_parquet(local)
    client.log_artifact(run.info.run_id, str(local), artifact_path="reference")

    cache = ReferenceCache(tracking_uri=tracking)
    frame = cache.load(f"runs:/{run.info.run_id}/reference/snapshot.parquet")
    assert frame.equals(reference_frame())
    whole_dir = cache.load(f"runs:/{run.info.run_id}/reference")  # the one parquet inside
    assert whole_dir.equals(reference_frame())
    with pytest.raises(ReferenceLoadError, match="runs:/"):
        cache.load(f"runs:/{run.info.run_id}/nothing-here.parquet")

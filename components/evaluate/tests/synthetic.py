"""Tiny synthetic training sets and real MLflow models for the evaluate/register tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

FEATURES = ["user__x1", "user__x2", "user__noise"]
LABEL = "label"
TIMESTAMP = "event_timestamp"
# The true model: P(label) = sigmoid(2 x1 - x2); `noise` carries no signal.
TRUE_WEIGHTS = np.array([2.0, -1.0, 0.0])


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def labelled_frame(rows: int, seed: int, start: str = "2026-01-01") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, len(FEATURES)))
    probability = sigmoid(x @ TRUE_WEIGHTS)
    frame = pd.DataFrame(x, columns=FEATURES)
    frame.insert(0, "user_id", rng.integers(0, 50, size=rows))
    frame.insert(
        1, TIMESTAMP, pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.arange(rows), "min")
    )
    frame[LABEL] = (rng.random(rows) < probability).astype(np.int64)
    return frame


def write_training_set(directory: Path, rows: dict[str, int] | None = None, seed: int = 0) -> Path:
    """``<directory>/{train,validation,test}/part-00000.parquet`` like build_training_set."""
    sizes = rows or {"train": 600, "validation": 300, "test": 300}
    for offset, (split, count) in enumerate(sizes.items()):
        frame = labelled_frame(count, seed + offset, start=f"2026-0{offset + 1}-01")
        target = directory / split
        target.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(target / "part-00000.parquet", index=False)
    return directory


def logistic_module(weights: np.ndarray):  # type: ignore[no-untyped-def]
    """A torch Sequential(Linear, Sigmoid) like train_ddp's served model."""
    import torch
    from torch import nn

    linear = nn.Linear(len(weights), 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weights, dtype=torch.float32).reshape(1, -1))
        linear.bias.zero_()
    return nn.Sequential(linear, nn.Sigmoid())


@contextmanager
def tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's fluent log_model only knows the process-global URI; restore it afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def log_model_run(
    uri: str, experiment: str, weights: np.ndarray, artifact_location: str | None = None
) -> tuple[str, str]:
    """A FINISHED run with an MLflow 3 logged pytorch model named "model": (run_id, model_uri)."""
    import mlflow
    import mlflow.pytorch
    from mlflow.models import infer_signature

    example = pd.DataFrame(np.zeros((2, len(FEATURES)), dtype=np.float32), columns=FEATURES)
    module = logistic_module(weights)
    client = mlflow.MlflowClient(uri)
    existing = client.get_experiment_by_name(experiment)
    experiment_id = (
        existing.experiment_id
        if existing
        else client.create_experiment(experiment, artifact_location=artifact_location)
    )
    with tracking_uri(uri), mlflow.start_run(experiment_id=experiment_id) as run:
        info = mlflow.pytorch.log_model(
            module,
            name="model",
            signature=infer_signature(example, np.zeros((2, 1), dtype=np.float32)),
            pip_requirements=["torch"],
            serialization_format="pickle",
        )
    return run.info.run_id, str(info.model_uri)

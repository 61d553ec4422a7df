"""Tiny MLflow pyfunc models for the tests, and their registration in an MLflow store.

The classes are pickled by value (cloudpickle), so a predictor process loads them without
importing `tests/`, which is not installed.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import cloudpickle
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

FEATURES = ["x1", "x2"]


class LogisticModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """p = sigmoid(w1*x1 + w2*x2 + b)."""

    def __init__(self, w1: float = 1.0, w2: float = -2.0, b: float = 0.5) -> None:
        self.w1, self.w2, self.b = w1, w2, b

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        z = self.w1 * frame["x1"].astype(float) + self.w2 * frame["x2"].astype(float) + self.b
        return np.asarray(1.0 / (1.0 + np.exp(-z)))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return self.scores(model_input)

    def expected(self, x1: float, x2: float) -> float:
        return float(1.0 / (1.0 + np.exp(-(self.w1 * x1 + self.w2 * x2 + self.b))))


class FailingModel(LogisticModel):
    """Every prediction is a server error."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        raise RuntimeError("this model version is broken")


class SlowModel(LogisticModel):
    """Right answers, too late."""

    def __init__(self, delay_s: float = 0.5) -> None:
        super().__init__()
        self.delay_s = delay_s

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        time.sleep(self.delay_s)
        return self.scores(model_input)


class FlippedModel(LogisticModel):
    """Answers fast and without errors, but the opposite of the stable model."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        return 1.0 - self.scores(model_input)


def sqlite_tracking_uri(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def register_model(
    tracking_uri: str,
    root: Path,
    name: str,
    model: LogisticModel,
    reference: pd.DataFrame | None = None,
    tags: dict[str, str] | None = None,
) -> str:
    """Log `model` in a run and register it under `name`; returns the new version number.

    `reference` is uploaded as the run's `reference/features.parquet` (the drift baseline, as
    components/register_model does); `tags` are set on the new model version.
    """
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name("mlmodel-tests")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment(
            "mlmodel-tests", artifact_location=(root / "artifacts").as_uri()
        )
    )
    sample = pd.DataFrame({"x1": [0.0, 1.0], "x2": [1.0, 0.0]})
    signature = infer_signature(sample, LogisticModel().scores(sample))
    with mlflow.start_run(experiment_id=experiment_id), warnings.catch_warnings():
        # MLflow nags about a missing input example; the signature is all the predictor needs.
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=signature,
            registered_model_name=name,
            # Skips inferring requirements in a subprocess: the predictor runs in this venv.
            pip_requirements=["mlflow"],
        )
        if reference is not None:
            folder = root / "reference-upload"
            folder.mkdir(parents=True, exist_ok=True)
            reference.to_parquet(folder / "features.parquet")
            mlflow.log_artifact(str(folder / "features.parquet"), artifact_path="reference")
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, value)
    return version


# Predictors unpickle these classes without `tests` on their path.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

"""A tiny MLflow pyfunc model (a fixed logistic function) registered by the tests."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

FEATURES = ["x1", "x2"]


class LogisticModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
    """p = sigmoid(w1*x1 + w2*x2 + b); importable so the predictor process can unpickle it."""

    def __init__(self, w1: float = 1.0, w2: float = -2.0, b: float = 0.5) -> None:
        self.w1, self.w2, self.b = w1, w2, b

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        z = self.w1 * model_input["x1"].astype(float) + self.w2 * model_input["x2"].astype(float)
        return (1.0 / (1.0 + np.exp(-(z + self.b)))).to_numpy()

    def expected(self, x1: float, x2: float) -> float:
        return float(1.0 / (1.0 + np.exp(-(self.w1 * x1 + self.w2 * x2 + self.b))))


def register_logistic_model(
    root: Path, model_name: str = "logistic", model: LogisticModel | None = None
) -> tuple[str, str]:
    """Log and register the model in an SQLite MLflow store under ``root``; returns (tracking_uri, models:/ uri)."""
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.get_experiment_by_name("serving-tests")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else mlflow.create_experiment(
            "serving-tests", artifact_location=(root / "artifacts").as_uri()
        )
    )
    model = model or LogisticModel()
    sample = pd.DataFrame({"x1": [0.0, 1.0], "x2": [1.0, 0.0]})
    signature = infer_signature(sample, model.predict(None, sample))
    with mlflow.start_run(experiment_id=experiment_id), warnings.catch_warnings():
        # MLflow nags about a missing input example; the signature is all the predictor needs.
        warnings.simplefilter("ignore", UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=signature,
            registered_model_name=model_name,
        )
    version = info.registered_model_version
    return tracking_uri, f"models:/{model_name}/{version}"

"""Rank-0 experiment tracking in MLflow: params, per-epoch metrics, the served model.

The MLflow run survives worker restarts: its id comes from the caller, or is created once and
kept next to the checkpoints so a restarted rank 0 logs into the same run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from components.train_ddp.config import TrainConfig

RUN_ID_FILE = "mlflow_run_id"
MODEL_NAME = "model"


class Tracker(Protocol):
    run_id: str | None

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def log_model(self, model: nn.Sequential, example: pd.DataFrame) -> str | None: ...

    def finish(self, summary: dict[str, Any], status: str) -> None: ...


class NullTracker:
    """Ranks other than 0, and runs without a tracking URI."""

    run_id: str | None = None

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        return None

    def log_model(self, model: nn.Sequential, example: pd.DataFrame) -> str | None:
        return None

    def finish(self, summary: dict[str, Any], status: str) -> None:
        return None


# mlflow is imported where it is used: it is slow to import, and only rank 0 needs it.


def pip_requirements() -> list[str]:
    import mlflow

    # Explicit, so MLflow does not spawn a process to infer them; no local tag (+cpu).
    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"]


def model_signature(model: nn.Sequential, example: pd.DataFrame) -> Any:
    from mlflow.models import infer_signature

    with torch.no_grad():
        probabilities = model(torch.from_numpy(example.to_numpy(dtype=np.float32))).numpy()
    return infer_signature(example, probabilities)


def save_model_locally(model: nn.Sequential, example: pd.DataFrame, path: Path) -> None:
    """An MLflow model directory (pytorch + pyfunc flavors) next to the summary."""
    import mlflow.pytorch

    if path.exists():
        shutil.rmtree(path)
    mlflow.pytorch.save_model(
        model,
        str(path),
        signature=model_signature(model, example),
        input_example=example,
        pip_requirements=pip_requirements(),
        # Pickled built-in torch layers load on any MLflow/KServe server with torch.
        serialization_format="pickle",
    )


def _experiment_id(name: str) -> str:
    import mlflow

    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(mlflow.create_experiment(name))


def resolve_run_id(config: TrainConfig) -> str:
    """The caller's run, else the run this checkpoint dir already uses, else a new one."""
    if config.mlflow_run_id:
        return config.mlflow_run_id
    import mlflow

    remembered = config.checkpoint_path / RUN_ID_FILE
    if remembered.exists():
        return remembered.read_text().strip()
    client = mlflow.MlflowClient()
    run = client.create_run(_experiment_id(config.mlflow_experiment), run_name=config.run_name)
    config.checkpoint_path.mkdir(parents=True, exist_ok=True)
    temporary = remembered.with_suffix(".tmp")
    temporary.write_text(run.info.run_id)
    temporary.replace(remembered)
    return str(run.info.run_id)


def logged_params(config: TrainConfig, world_size: int) -> dict[str, str]:
    params = {
        "label_column": config.label_column,
        "epochs": str(config.epochs),
        "batch_size": str(config.batch_size),
        "learning_rate": repr(config.learning_rate),
        "weight_decay": repr(config.weight_decay),
        "hidden_units": ",".join(str(unit) for unit in config.hidden_units) or "none",
        "seed": str(config.seed),
    }
    return {**params, **config.params}


class MlflowTracker:
    def __init__(self, run_id: str) -> None:
        self.run_id: str | None = run_id

    @classmethod
    def start(cls, config: TrainConfig, world_size: int, backend: str) -> MlflowTracker:
        import mlflow

        assert config.mlflow_tracking_uri, "MlflowTracker needs a tracking URI"
        mlflow.set_tracking_uri(config.mlflow_tracking_uri)
        run_id = resolve_run_id(config)
        mlflow.start_run(run_id=run_id)
        mlflow.log_params(logged_params(config, world_size))
        # Tags, not params: a resumed run may legitimately use another world size.
        mlflow.set_tags({"kubeloop.world_size": str(world_size), "kubeloop.backend": backend})
        return cls(run_id)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        import mlflow

        mlflow.log_metrics(metrics, step=epoch)

    def log_model(self, model: nn.Sequential, example: pd.DataFrame) -> str | None:
        import mlflow.pytorch

        info = mlflow.pytorch.log_model(
            model,
            name=MODEL_NAME,
            signature=model_signature(model, example),
            input_example=example,
            pip_requirements=pip_requirements(),
            serialization_format="pickle",
        )
        return str(info.model_uri)

    def finish(self, summary: dict[str, Any], status: str) -> None:
        import mlflow

        final = {
            key: float(value)
            for key, value in summary.items()
            if key in ("final_train_loss", "final_val_loss", "samples_per_sec")
            and value is not None
        }
        if final:
            mlflow.log_metrics(final)
        mlflow.log_text(json.dumps(summary, indent=2), "training_summary.json")
        mlflow.end_run(status=status)

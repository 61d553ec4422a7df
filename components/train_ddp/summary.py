"""The run's local JSON summary: what the launcher, the KFP component and the bench read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class EpochLoss(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epoch: int  # 1-based
    train_loss: float
    val_loss: float


class TrainingSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    world_size: int
    backend: str
    device: str
    epochs: int
    global_batch_size: int
    final_train_loss: float | None
    final_val_loss: float | None
    loss_curve: list[EpochLoss]
    samples_per_sec: float | None  # training throughput of this (last) attempt, all ranks
    samples_trained: int  # global samples in those training loops
    train_cpu_seconds: float  # CPU time of those training loops, summed over all ranks
    # Mean ms per step per rank, {"wall"|"cpu": {phase: ms}} over the phases data, forward,
    # backward, all_reduce, optimizer (cpu: the whole process's); None unless asked for.
    step_ms: dict[str, dict[str, float]] | None = None
    resumed_after_epoch: int | None  # None: started from scratch
    restart_count: int  # torchrun worker-group restarts before the attempt that finished
    feature_columns: list[str]
    label_column: str
    feature_means: list[float]  # the served model expects no NaN; impute with these
    mlflow_run_id: str | None
    model_uri: str | None  # MLflow model URI when a tracking URI was given
    model_path: str  # local MLflow model directory (pytorch + pyfunc flavors)
    checkpoint_dir: str

    @classmethod
    def from_history(cls, history: list[EpochLoss], **fields: Any) -> TrainingSummary:
        last = history[-1] if history else None
        return cls(
            epochs=len(history),
            final_train_loss=last.train_loss if last else None,
            final_val_loss=last.val_loss if last else None,
            loss_curve=history,
            **fields,
        )


def write_summary(summary: TrainingSummary, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(summary.model_dump_json(indent=2))
    temporary.replace(path)


def read_summary(path: Path) -> TrainingSummary:
    return TrainingSummary.model_validate_json(path.read_text())

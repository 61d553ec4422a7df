"""The trainer's configuration: one pydantic model shared by the launcher and the workers.

The launcher turns a `TrainConfig` into command-line flags (`to_cli_args`); every torchrun
worker parses them back (`parse_cli_args`). Keeping both directions here means the flag set
cannot drift between the two sides.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

SUMMARY_FILE = "summary.json"
MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


class Backend(StrEnum):
    AUTO = "auto"
    GLOO = "gloo"
    NCCL = "nccl"


class Device(StrEnum):
    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


class TrainConfig(BaseModel):
    """Everything one training run needs; the same on every rank."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training_set: str = Field(min_length=1, description="Parquet file or directory.")
    validation_set: str = Field(min_length=1, description="Parquet file or directory.")
    label_column: str = Field(min_length=1)
    feature_columns: tuple[str, ...] = Field(
        default=(), description="Empty: every column except the label, in file order."
    )
    output_dir: str = Field(min_length=1, description="Summary, model and logs land here.")
    checkpoint_dir: str | None = Field(
        default=None, description="Default: <output_dir>/checkpoints. Reuse it to resume."
    )
    epochs: int = Field(default=5, ge=1, le=10_000)
    batch_size: int = Field(default=256, ge=1, description="Global batch over all ranks.")
    learning_rate: float = Field(default=1e-2, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    hidden_units: tuple[int, ...] = Field(
        default=(32, 16), description="Empty: logistic regression."
    )
    seed: int = Field(default=0, ge=0)
    backend: Backend = Backend.AUTO
    device: Device = Device.AUTO
    num_threads: int | None = Field(default=None, ge=1, description="torch threads per rank.")
    shared_memory_allreduce: bool = Field(
        default=True,
        description="CPU ranks all on one machine share parameters, gradients and a sharded "
        "Adam through shared memory (no DDP); False: torch's DDP with gloo.",
    )
    step_breakdown: bool = Field(
        default=False, description="Time each step's phases (the summary's step_ms)."
    )
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "kubeloop-training"
    mlflow_run_id: str | None = None
    run_name: str | None = None
    params: dict[str, str] = Field(
        default_factory=dict, description="Extra parameters logged to MLflow (trial params)."
    )

    @field_validator("hidden_units")
    @classmethod
    def _positive_units(cls, units: tuple[int, ...]) -> tuple[int, ...]:
        if any(unit < 1 for unit in units):
            raise ValueError(f"hidden_units must all be >= 1, got {list(units)}")
        return units

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint_dir or Path(self.output_dir) / CHECKPOINT_DIR)

    @property
    def summary_path(self) -> Path:
        return Path(self.output_dir) / SUMMARY_FILE

    @property
    def model_path(self) -> Path:
        return Path(self.output_dir) / MODEL_DIR

    def fingerprint(self) -> str:
        """Hash of what decides the trajectory; a checkpoint from another config is refused."""
        fields = (
            "label_column",
            "feature_columns",
            "batch_size",
            "learning_rate",
            "weight_decay",
            "hidden_units",
            "seed",
        )
        payload = json.dumps({name: getattr(self, name) for name in fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_cli_args(self) -> list[str]:
        """Flags for `python -m components.train_ddp.trainer`."""
        args = [
            f"--training-set={self.training_set}",
            f"--validation-set={self.validation_set}",
            f"--label-column={self.label_column}",
            f"--feature-columns={','.join(self.feature_columns)}",
            f"--output-dir={self.output_dir}",
            f"--checkpoint-dir={self.checkpoint_path}",
            f"--epochs={self.epochs}",
            f"--batch-size={self.batch_size}",
            f"--learning-rate={self.learning_rate!r}",
            f"--weight-decay={self.weight_decay!r}",
            f"--hidden-units={','.join(str(unit) for unit in self.hidden_units)}",
            f"--seed={self.seed}",
            f"--backend={self.backend.value}",
            f"--device={self.device.value}",
            f"--mlflow-experiment={self.mlflow_experiment}",
        ]
        optional = {
            "--num-threads": self.num_threads,
            "--mlflow-tracking-uri": self.mlflow_tracking_uri,
            "--mlflow-run-id": self.mlflow_run_id,
            "--run-name": self.run_name,
        }
        args += [f"{flag}={value}" for flag, value in optional.items() if value is not None]
        if self.step_breakdown:
            args.append("--step-breakdown")
        if not self.shared_memory_allreduce:
            args.append("--no-shared-memory-allreduce")
        if self.params:
            args.append(f"--params-json={json.dumps(self.params, sort_keys=True)}")
        return args


def _split_csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _split_ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _split_csv(text))
    except ValueError as error:
        message = f"expected comma-separated integers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from error


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m components.train_ddp.trainer",
        description="One DDP worker: run it under torchrun.",
    )
    parser.add_argument("--training-set", required=True)
    parser.add_argument("--validation-set", required=True)
    parser.add_argument("--label-column", required=True)
    parser.add_argument("--feature-columns", type=_split_csv, default=())
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--hidden-units", type=_split_ints, default=(32, 16))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=[b.value for b in Backend], default="auto")
    parser.add_argument("--device", choices=[d.value for d in Device], default="auto")
    parser.add_argument("--num-threads", type=int, default=None)
    parser.add_argument("--step-breakdown", action="store_true")
    parser.add_argument(
        "--no-shared-memory-allreduce", dest="shared_memory_allreduce", action="store_false"
    )
    parser.add_argument("--mlflow-tracking-uri", default=None)
    parser.add_argument("--mlflow-experiment", default="kubeloop-training")
    parser.add_argument("--mlflow-run-id", default=None)
    parser.add_argument("--run-name", default=None)
    parser.add_argument("--params-json", type=json.loads, default={})
    return parser


def parse_cli_args(argv: Sequence[str] | None = None) -> TrainConfig:
    namespace = build_arg_parser().parse_args(argv)
    values = vars(namespace)
    values["params"] = {str(k): str(v) for k, v in values.pop("params_json").items()}
    return TrainConfig(**values)

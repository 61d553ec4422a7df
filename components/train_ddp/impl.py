"""The launcher: check the inputs, then run the DDP trainer under torchrun (or as a TrainJob).

Locally: `python -m torch.distributed.run --standalone --nproc-per-node=N --max-restarts=R
-m components.train_ddp.trainer ...`, with `sys.executable` so the workers run in this venv.
A worker that dies makes torchrun restart the whole group (up to R times); the workers resume
from the last epoch checkpoint. With nodes > 1 the same trainer runs as a Kubeflow Trainer
TrainJob created through the Kubernetes API.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from components.train_ddp.config import TrainConfig
from components.train_ddp.data import TrainingInputError, check_table
from components.train_ddp.summary import TrainingSummary, read_summary
from components.train_ddp.trainjob import (
    TRAINER_MODULE,
    ClusterOptions,
    CustomObjects,
    TrainingFailedError,
    run_trainjob,
    trainjob_manifest,
)
from components.validation import problems

LOG_FILE = "torchrun.log"
# torchrun shares its rendezvous TCPStore with the workers by default; after a restart the
# new workers can then read the previous attempt's peer addresses and fail to connect
# (pytorch/pytorch#135712, #167288). A fresh store per attempt avoids that.
RESTART_SAFE_ENV = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
LOG_TAIL_LINES = 40

__all__ = [
    "ClusterOptions",
    "LaunchOptions",
    "TrainingFailedError",
    "TrainingInputError",
    "TrainingSummary",
    "torchrun_command",
    "train",
]


class LaunchOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nproc_per_node: int = Field(default=1, ge=1, le=64)
    nodes: int = Field(default=1, ge=1, le=64)
    max_restarts: int = Field(default=3, ge=0, le=100)
    monitor_interval_s: float = Field(default=0.5, gt=0)

    @property
    def world_size(self) -> int:
        return self.nproc_per_node * self.nodes


def torchrun_command(
    config: TrainConfig, options: LaunchOptions, python: str = sys.executable
) -> list[str]:
    """The single-node torchrun command line (pure)."""
    return [
        python,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes=1",
        f"--nproc-per-node={options.nproc_per_node}",
        f"--max-restarts={options.max_restarts}",
        f"--monitor-interval={options.monitor_interval_s}",
        "-m",
        TRAINER_MODULE,
        *config.to_cli_args(),
    ]


def check_inputs(config: TrainConfig, options: LaunchOptions) -> TrainConfig:
    """Fail before any worker starts; returns the config with feature columns resolved."""
    training = check_table(
        config.training_set, config.label_column, config.feature_columns, "training_set"
    )
    features = training.feature_columns
    check_table(config.validation_set, config.label_column, features, "validation_set")
    if training.rows < config.batch_size:
        raise TrainingInputError(
            f"training_set has {training.rows} rows, fewer than batch_size {config.batch_size}: "
            "not one full batch to train on"
        )
    if config.batch_size % options.world_size:
        raise TrainingInputError(
            f"batch_size {config.batch_size} must be divisible by the world size "
            f"{options.world_size} (nodes x nproc_per_node) so every rank gets an equal share"
        )
    return config.model_copy(update={"feature_columns": features})


def error_lines(lines: Sequence[str]) -> list[str]:
    """The trainer's own error messages, to put first in a failure report."""
    return [line.split("error: ", 1)[1] for line in lines if " ERROR error: " in line]


def run_torchrun(command: Sequence[str], cwd: Path, env: Mapping[str, str]) -> None:
    """Run torchrun, teeing its output to our stdout and to <cwd>/torchrun.log."""
    tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
    errors: list[str] = []
    with (
        (cwd / LOG_FILE).open("a") as log_file,
        subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process,
    ):
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            log_file.write(line)
            tail.append(line.rstrip("\n"))
            errors += error_lines([line])
        code = process.wait()
    if code != 0:
        reason = "; ".join(dict.fromkeys(errors)) or "see the log"
        raise TrainingFailedError(
            f"torchrun exited with code {code}: {reason}\nlast lines of {cwd / LOG_FILE}:\n"
            + "\n".join(tail)
        )


def ensure_mlflow_run(config: TrainConfig) -> TrainConfig:
    """Create the MLflow run up front so every restarted rank 0 logs into the same run."""
    if not config.mlflow_tracking_uri or config.mlflow_run_id:
        return config
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config.mlflow_tracking_uri)
    experiment = client.get_experiment_by_name(config.mlflow_experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(config.mlflow_experiment)
    )
    run = client.create_run(experiment_id, run_name=config.run_name)
    return config.model_copy(update={"mlflow_run_id": run.info.run_id})


def mark_mlflow_run_failed(config: TrainConfig) -> None:
    if not config.mlflow_tracking_uri or not config.mlflow_run_id:
        return
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=config.mlflow_tracking_uri).set_terminated(
        config.mlflow_run_id, status="FAILED"
    )


def run_local(config: TrainConfig, options: LaunchOptions, env: Mapping[str, str]) -> None:
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    # cwd is the output dir, so nothing a library writes relative to cwd lands elsewhere.
    run_torchrun(
        torchrun_command(config, options), output_dir, {**os.environ, **RESTART_SAFE_ENV, **env}
    )


def run_cluster(
    config: TrainConfig,
    options: LaunchOptions,
    cluster: ClusterOptions,
    api: CustomObjects | None,
) -> None:
    if api is None:
        from kubernetes import client
        from kubernetes import config as kube_config

        try:
            kube_config.load_incluster_config()
        except kube_config.ConfigException:
            kube_config.load_kube_config()
        api = client.CustomObjectsApi()
    manifest = trainjob_manifest(
        config,
        nodes=options.nodes,
        nproc_per_node=options.nproc_per_node,
        max_restarts=options.max_restarts,
        options=cluster,
    )
    run_trainjob(api, manifest, cluster)


def absolute(path: str | Path) -> str:
    # Workers run with the output dir as cwd, so relative paths would point elsewhere.
    return str(Path(path).absolute()) if str(path).strip() else str(path)


def build_config(**fields: Any) -> TrainConfig:
    try:
        return TrainConfig(**fields)
    except ValidationError as error:
        described = problems(error)
        raise TrainingInputError(f"invalid training parameters: {described}") from error


def train(
    training_set: str | Path,
    validation_set: str | Path,
    label_column: str,
    output_dir: str | Path,
    *,
    feature_columns: Sequence[str] = (),
    checkpoint_dir: str | Path | None = None,
    epochs: int = 5,
    batch_size: int = 256,
    learning_rate: float = 1e-2,
    weight_decay: float = 0.0,
    hidden_units: Sequence[int] = (32, 16),
    seed: int = 0,
    nproc_per_node: int = 1,
    nodes: int = 1,
    backend: str = "auto",
    device: str = "auto",
    max_restarts: int = 3,
    num_threads: int | None = None,
    step_breakdown: bool = False,
    shared_memory_allreduce: bool = True,
    mlflow_tracking_uri: str | None = None,
    mlflow_experiment: str = "kubeloop-training",
    mlflow_run_id: str | None = None,
    run_name: str | None = None,
    params: Mapping[str, str] | None = None,
    cluster: ClusterOptions | None = None,
    kubernetes_api: CustomObjects | None = None,
    env: Mapping[str, str] | None = None,
) -> TrainingSummary:
    """Train a binary classifier with DDP; returns the summary rank 0 wrote.

    Raises TrainingInputError (bad input, before any worker starts; the message names the
    table/column/parameter) or TrainingFailedError (torchrun or the TrainJob failed).
    """
    config = build_config(
        training_set=absolute(training_set),
        validation_set=absolute(validation_set),
        label_column=label_column,
        feature_columns=tuple(feature_columns),
        output_dir=absolute(output_dir),
        checkpoint_dir=absolute(checkpoint_dir) if checkpoint_dir else None,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        hidden_units=tuple(hidden_units),
        seed=seed,
        backend=backend,
        device=device,
        num_threads=num_threads,
        step_breakdown=step_breakdown,
        shared_memory_allreduce=shared_memory_allreduce,
        mlflow_tracking_uri=mlflow_tracking_uri or None,
        mlflow_experiment=mlflow_experiment,
        mlflow_run_id=mlflow_run_id or None,
        run_name=run_name or None,
        params=dict(params or {}),
    )
    try:
        options = LaunchOptions(
            nproc_per_node=nproc_per_node, nodes=nodes, max_restarts=max_restarts
        )
    except ValidationError as error:
        raise TrainingInputError(f"invalid launch options: {error}") from error
    if nodes > 1 and cluster is None:
        raise TrainingInputError(
            f"nodes={nodes} needs a cluster (ClusterOptions: image, namespace) for a TrainJob"
        )
    config = ensure_mlflow_run(check_inputs(config, options))
    try:
        if nodes > 1 and cluster is not None:
            run_cluster(config, options, cluster, kubernetes_api)
        else:
            run_local(config, options, env or {})
    except TrainingFailedError:
        mark_mlflow_run_failed(config)
        raise
    return read_summary(config.summary_path)

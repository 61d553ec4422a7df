"""Pure parts: command line, backend choice, batching, checkpoints, model export, TrainJob."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler, TensorDataset

from components.train_ddp import checkpoint as checkpoints
from components.train_ddp import trainer
from components.train_ddp.config import Backend, Device, TrainConfig, parse_cli_args
from components.train_ddp.data import TrainingInputError
from components.train_ddp.impl import LaunchOptions, torchrun_command
from components.train_ddp.network import Standardizer, build_mlp, serving_model
from components.train_ddp.trainer import per_rank_batch_size, resolve_backend
from components.train_ddp.trainjob import (
    ClusterOptions,
    trainjob_manifest,
    trainjob_name,
    trainjob_outcome,
)

TRAINER_ARGS_START = "components.train_ddp.trainer"


def _config(**overrides: Any) -> TrainConfig:
    fields: dict[str, Any] = {
        "training_set": "/data/train.parquet",
        "validation_set": "/data/validation.parquet",
        "label_column": "converted",
        "feature_columns": ("amount", "clicks"),
        "output_dir": "/out",
        "epochs": 4,
        "batch_size": 128,
        "learning_rate": 0.003,
        "hidden_units": (16, 8),
        "mlflow_tracking_uri": "http://mlflow:5000",
        "mlflow_run_id": "abc123",
        "params": {"trial": "t-3", "lr": "0.003"},
    }
    fields.update(overrides)
    return TrainConfig(**fields)


def test_torchrun_command_runs_the_trainer_in_this_interpreter() -> None:
    config = _config()
    command = torchrun_command(config, LaunchOptions(nproc_per_node=2, max_restarts=3))
    assert command[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert {"--standalone", "--nproc-per-node=2", "--max-restarts=3"} <= set(command)
    module_at = command.index(TRAINER_ARGS_START)
    assert command[module_at - 1] == "-m"
    expected = config.model_copy(update={"checkpoint_dir": "/out/checkpoints"})
    assert parse_cli_args(command[module_at + 1 :]) == expected


def test_cli_round_trip_of_logistic_regression_without_tracking() -> None:
    config = _config(hidden_units=(), mlflow_tracking_uri=None, mlflow_run_id=None, params={})
    parsed = parse_cli_args(config.to_cli_args())
    assert parsed.hidden_units == () and parsed.mlflow_tracking_uri is None
    assert parsed.fingerprint() == config.fingerprint()


@pytest.mark.parametrize(("breakdown", "shared"), [(True, False), (False, True)])
def test_cli_round_trip_of_the_breakdown_and_all_reduce_flags(
    breakdown: bool, shared: bool
) -> None:
    config = _config(step_breakdown=breakdown, shared_memory_allreduce=shared)
    parsed = parse_cli_args(config.to_cli_args())
    assert (parsed.step_breakdown, parsed.shared_memory_allreduce) == (breakdown, shared)


@pytest.mark.parametrize(
    ("backend", "device", "cuda", "expected"),
    [
        (Backend.AUTO, Device.AUTO, False, ("gloo", "cpu")),
        (Backend.AUTO, Device.AUTO, True, ("nccl", "cuda")),
        (Backend.GLOO, Device.AUTO, True, ("gloo", "cuda")),
        (Backend.AUTO, Device.CPU, True, ("gloo", "cpu")),
    ],
)
def test_backend_follows_the_device(
    backend: Backend, device: Device, cuda: bool, expected: tuple[str, str]
) -> None:
    assert resolve_backend(backend, device, cuda) == expected


def test_impossible_backend_choices_are_refused() -> None:
    with pytest.raises(TrainingInputError, match="nccl"):
        resolve_backend(Backend.NCCL, Device.CPU, True)
    with pytest.raises(TrainingInputError, match="cuda"):
        resolve_backend(Backend.AUTO, Device.CUDA, False)


def _global_batches(rows: int, global_batch: int, world: int, epoch: int) -> list[set[int]]:
    per_rank = per_rank_batch_size(global_batch, world)
    ranks = []
    for rank in range(world):
        sampler: DistributedSampler[Any] = DistributedSampler(
            TensorDataset(torch.zeros(rows)), num_replicas=world, rank=rank, seed=7, drop_last=True
        )
        sampler.set_epoch(epoch)
        ranks.append(list(trainer.epoch_rows(sampler, per_rank).split(per_rank)))
    return [set().union(*(r[step].tolist() for r in ranks)) for step in range(len(ranks[0]))]


@pytest.mark.parametrize("rows", [1000, 1001, 1024])
def test_one_and_two_ranks_see_the_same_global_batches(rows: int) -> None:
    for epoch in (0, 3):
        single = _global_batches(rows, 64, 1, epoch)
        double = _global_batches(rows, 64, 2, epoch)
        assert single == double and len(single) == rows // 64
        assert all(len(batch) == 64 for batch in single)


@pytest.mark.parametrize(("rows", "world"), [(1000, 1), (1001, 2), (999, 3)])
def test_epoch_rows_are_the_samplers_own_order(rows: int, world: int) -> None:
    for rank in range(world):
        sampler: DistributedSampler[Any] = DistributedSampler(
            TensorDataset(torch.zeros(rows)), num_replicas=world, rank=rank, seed=5, drop_last=True
        )
        for epoch in (0, 2):
            sampler.set_epoch(epoch)
            listed = list(iter(sampler))
            assert trainer.epoch_rows(sampler, 32).tolist() == listed[: len(listed) // 32 * 32]


def test_epoch_batches_gather_the_batch_rows_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "GATHER_ROWS", 100)  # blocks of 96 rows: several per epoch
    features = torch.arange(1000.0).repeat(3, 1).T.contiguous()
    labels, weights = torch.arange(1000.0) * 2, torch.arange(1000.0) * 3
    sampler: DistributedSampler[Any] = DistributedSampler(
        TensorDataset(labels), num_replicas=2, rank=1, seed=5, drop_last=True
    )
    got = list(trainer.epoch_batches((features, labels, weights), sampler, 32))
    want = list(trainer.epoch_rows(sampler, 32).split(32))
    assert len(got) == len(want) == 500 // 32
    for (x, y, w), index in zip(got, want, strict=True):
        assert torch.equal(x, features[index]) and torch.equal(y, labels[index])
        assert torch.equal(w, weights[index])


def test_checkpoints_are_atomic_pruned_and_loadable(tmp_path: Path) -> None:
    for epoch in range(1, 5):
        checkpoints.save_checkpoint(tmp_path, epoch, {"completed_epochs": epoch})
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["epoch-00003.pt", "epoch-00004.pt"], "old ones pruned, no temp files"
    latest = checkpoints.latest_checkpoint(tmp_path)
    assert latest is not None and checkpoints.load_checkpoint(latest)["completed_epochs"] == 4
    (tmp_path / ".epoch-00005.pt.123.tmp").write_bytes(b"half-written")
    assert checkpoints.latest_checkpoint(tmp_path) == latest
    assert checkpoints.latest_checkpoint(tmp_path / "absent") is None


def test_serving_model_folds_standardization_and_returns_probabilities() -> None:
    rng = np.random.default_rng(0)
    raw = (rng.normal(size=(50, 3)) * [1.0, 100.0, 0.01] + [0.0, 50.0, 3.0]).astype(np.float32)
    standardizer = Standardizer.fit(raw)
    torch.manual_seed(0)
    trained = build_mlp(3, (5,))
    served = serving_model(trained, standardizer)
    with torch.no_grad():
        expected = torch.sigmoid(trained(torch.from_numpy(standardizer.apply(raw))))
        probabilities = served(torch.from_numpy(raw))
    torch.testing.assert_close(probabilities, expected, rtol=1e-4, atol=1e-5)
    # Built-in layers only: loadable by any model server with torch, without kubeloop.
    assert all(type(layer).__module__.startswith("torch.nn.") for layer in served)


def test_standardizer_imputes_missing_values_with_the_mean() -> None:
    raw = np.array([[1.0, 5.0], [3.0, 5.0], [np.nan, 5.0]], dtype=np.float32)
    standardizer = Standardizer.fit(raw)
    assert standardizer.mean.tolist() == [2.0, 5.0] and standardizer.scale[1] == 1.0
    assert standardizer.apply(raw)[2].tolist() == [0.0, 0.0]


def test_trainjob_manifest_for_two_nodes() -> None:
    config = _config(run_name="Trial 3 / churn")
    options = ClusterOptions(image="ghcr.io/kubeloop/kubeloop:0.1.0", namespace="ml", gpu=1)
    manifest = trainjob_manifest(config, nodes=2, nproc_per_node=4, max_restarts=2, options=options)
    assert manifest["apiVersion"] == "trainer.kubeflow.org/v1alpha1"
    assert manifest["kind"] == "TrainJob"
    assert manifest["metadata"]["namespace"] == "ml"
    assert manifest["spec"]["runtimeRef"] == {
        "name": "torch-distributed",
        "apiGroup": "trainer.kubeflow.org",
        "kind": "ClusterTrainingRuntime",
    }
    trainer = manifest["spec"]["trainer"]
    assert trainer["numNodes"] == 2 and trainer["numProcPerNode"] == 4
    assert trainer["command"] == [
        "torchrun",
        "--max-restarts=2",
        "-m",
        "components.train_ddp.trainer",
    ]
    assert parse_cli_args(trainer["args"]).mlflow_run_id == "abc123"
    assert trainer["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": "1"}
    name = manifest["metadata"]["name"]
    assert name == trainjob_name(config) and name.startswith("trial-3-churn-")
    assert len(name) <= 63 and name.replace("-", "").isalnum() and name.islower()


def test_trainjob_name_is_a_dns_label_for_any_run_name() -> None:
    for run_name in (None, "9" * 80, "---", "Ünïcode run"):
        name = trainjob_name(_config(run_name=run_name))
        assert len(name) <= 63 and name[0].isalpha() and not name.endswith("-")
        assert name == trainjob_name(_config(run_name=run_name))


def test_trainjob_outcome_reads_terminal_conditions() -> None:
    running = {"status": {"conditions": [{"type": "Suspended", "status": "False"}]}}
    assert trainjob_outcome(running) is None and trainjob_outcome({}) is None
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "message": "OOM"}]}}
    assert trainjob_outcome(failed) == ("Failed", "OOM")
    complete = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    assert trainjob_outcome(complete) == ("Complete", "")


def test_component_compiles_to_kfp_ir(tmp_path: Path) -> None:
    import yaml
    from kfp import compiler

    from components.train_ddp.component import train_ddp

    target = tmp_path / "train_ddp.yaml"
    compiler.Compiler().compile(train_ddp, str(target))
    spec = yaml.safe_load(target.read_text())
    inputs = spec["root"]["inputDefinitions"]
    assert {"training_set", "validation_set"} <= set(inputs["artifacts"])
    assert {"label_column", "nproc_per_node", "nodes", "mlflow_tracking_uri"} <= set(
        inputs["parameters"]
    )
    outputs = spec["root"]["outputDefinitions"]
    assert {"model", "metrics"} <= set(outputs["artifacts"])
    assert {"mlflow_run_id", "model_uri"} <= set(outputs["parameters"])

"""Recency weights of the training set (column ``sample_weight``) weigh each row's loss."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler, TensorDataset

from components.train_ddp.data import TrainingInputError, load_tabular, resolve_feature_columns
from components.train_ddp.local_sharded import open_sharded_step
from components.train_ddp.network import build_mlp
from components.train_ddp.trainer import OptimizerStep, TrainStep, train_epoch
from contracts.training_set import SAMPLE_WEIGHT_COLUMN


@pytest.fixture(scope="module")
def one_rank() -> Iterator[None]:
    """A one-process gloo group: train_epoch all-reduces its loss like every rank does."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _slope(weights: torch.Tensor | None, sharded: bool) -> float:
    """Old rows say y = [x > 0], recent rows say y = [x < 0] (the world flipped)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 1)).astype(np.float32)
    recent = np.arange(512) >= 256
    y = np.where(recent, x[:, 0] < 0, x[:, 0] > 0).astype(np.float32)
    torch.manual_seed(0)
    model = build_mlp(1, [])
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    caller: torch.nn.Module = model if sharded else DistributedDataParallel(model)
    stepper: TrainStep = (
        open_sharded_step(model, optimizer) if sharded else OptimizerStep(optimizer)
    )
    tensors = (torch.from_numpy(x), torch.from_numpy(y))
    sampler: DistributedSampler[object] = DistributedSampler(
        TensorDataset(tensors[1]), num_replicas=1, rank=0, shuffle=True, seed=0
    )
    for epoch in range(20):
        sampler.set_epoch(epoch)
        train_epoch(caller, stepper, tensors, sampler, 64, weights)
    layer = model[0]
    assert isinstance(layer, torch.nn.Linear)
    return float(layer.weight.detach()[0, 0])


@pytest.mark.parametrize("sharded", [False, True], ids=["ddp", "sharded-step"])
def test_weighted_rows_dominate_what_is_learned(one_rank: None, sharded: bool) -> None:
    recent = torch.tensor([0.05] * 256 + [1.95] * 256)
    assert _slope(recent, sharded) < -0.5  # learns the recent world
    assert _slope(recent.flip(0), sharded) > 0.5  # the same data weighted the other way
    # unweighted: the two worlds cancel out
    assert abs(_slope(None, sharded)) < abs(_slope(recent, sharded))


def test_weights_are_read_and_never_a_feature(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a__x": [0.1, 0.2], "y": [0, 1], SAMPLE_WEIGHT_COLUMN: [0.5, 1.5]})
    frame.to_parquet(tmp_path / "train.parquet")
    data = load_tabular(tmp_path / "train.parquet", "y", (), "training_set")
    assert data.feature_columns == ("a__x",)
    assert data.weights is not None and data.weights.tolist() == [0.5, 1.5]
    assert resolve_feature_columns(list(frame.columns), "y", (), "t") == ("a__x",)
    frame.drop(columns=[SAMPLE_WEIGHT_COLUMN]).to_parquet(tmp_path / "plain.parquet")
    assert load_tabular(tmp_path / "plain.parquet", "y", (), "training_set").weights is None


def test_bad_weights_name_the_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a__x": [0.1, 0.2], "y": [0, 1], SAMPLE_WEIGHT_COLUMN: [-1.0, None]})
    frame.to_parquet(tmp_path / "train.parquet")
    with pytest.raises(TrainingInputError, match=f"training_set: column '{SAMPLE_WEIGHT_COLUMN}'"):
        load_tabular(tmp_path / "train.parquet", "y", (), "training_set")


def test_features_are_row_major(tmp_path: Path) -> None:
    # Parquet frames convert column-major; the trainer's batch gathers need each row in one
    # place (the DDP bench's data phase was ~3x slower per step on column-major features).
    columns = {f"f{index}": [float(row + index) for row in range(5)] for index in range(4)}
    pd.DataFrame({**columns, "y": [0, 1, 0, 1, 1]}).to_parquet(tmp_path / "train.parquet")
    data = load_tabular(tmp_path / "train.parquet", "y", (), "training_set")
    assert data.features.flags.c_contiguous
    assert data.features[2].tolist() == [2.0, 3.0, 4.0, 5.0]

"""The sharded step between two real processes: the same training as one whole-model Adam on
the mean gradient, one shared model, and a resume through torch's own optimizer state."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from components.train_ddp.local_sharded import open_sharded_step
from components.train_ddp.network import build_mlp
from components.train_ddp.tests.two_ranks import run_ranks
from components.train_ddp.trainer import StepTimes

WORLD = 2
STEPS = 6  # resumed after STEPS // 2 in a fresh model, optimizer and shared block
FEATURES, HIDDEN, ROWS = 5, [6, 3], 16  # 61 parameters: rank 1's slice starts inside a tensor


def _batch(rank: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1000 * step + rank)
    x = torch.randn(ROWS, FEATURES, generator=generator)
    return x, (torch.rand(ROWS, generator=generator) < 0.5).float()


def _fresh() -> tuple[nn.Sequential, torch.optim.Adam]:
    torch.manual_seed(0)
    model = build_mlp(FEATURES, HIDDEN)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, weight_decay=0.01, fused=True)
    return model, optimizer


def _loss(model: nn.Module, rank: int, step: int) -> torch.Tensor:
    x, y = _batch(rank, step)
    return nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)


def _train(model: nn.Sequential, optimizer: torch.optim.Adam, steps: range) -> None:
    rank, clock = dist.get_rank(), StepTimes()
    stepper = open_sharded_step(model, optimizer)
    for step in steps:
        stepper.zero_grad()
        _loss(model, rank, step).backward()
        stepper.step(clock)
    dist.barrier()  # every rank past its last step before the moments are read
    stepper.close()


def _worker(rank: int, port: int, results: Any) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        model, optimizer = _fresh()
        _train(model, optimizer, range(STEPS // 2))
        saved = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
        model, optimizer = _fresh()  # what a restarted worker builds, then restores
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        _train(model, optimizer, range(STEPS // 2, STEPS))
        state = optimizer.state_dict()["state"]
        moment = state[0]["exp_avg_sq"].tolist()
        results.put((rank, [p.tolist() for p in model.parameters()], moment))
    finally:
        dist.destroy_process_group()


def _reference() -> tuple[list[torch.Tensor], torch.Tensor]:
    """One process, whole-model fused Adam on the mean of the two ranks' losses."""
    model, optimizer = _fresh()
    for step in range(STEPS):
        optimizer.zero_grad()
        ((_loss(model, 0, step) + _loss(model, 1, step)) / WORLD).backward()
        optimizer.step()
    return [p.detach() for p in model.parameters()], optimizer.state_dict()["state"][0][
        "exp_avg_sq"
    ]


def test_two_ranks_train_like_one_adam_on_the_mean_gradient_and_resume() -> None:
    got = run_ranks(_worker, WORLD)
    assert got[0][0] == got[1][0]  # one shared model: both ranks read the same parameters
    expected, expected_moment = _reference()
    assert not torch.allclose(expected[0], next(_fresh()[0].parameters()))  # it trained
    for param, want in zip(got[0][0], expected, strict=True):
        torch.testing.assert_close(torch.tensor(param), want, rtol=1e-5, atol=1e-6)
    # Adam's state came back whole through torch's format (rank 0 checkpoints it).
    torch.testing.assert_close(torch.tensor(got[0][1]), expected_moment, rtol=1e-5, atol=1e-9)

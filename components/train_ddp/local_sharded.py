"""The training step for CPU ranks that all run on this machine: no DDP, Adam sharded.

Why: with DDP and a shared-memory comm hook (the previous mechanism), 2 ranks on 2 cores still
reached only ~1.5x one process. Each rank repeated the optimizer step for the whole model,
and DDP's reducer copied every gradient into its bucket and back on every step. Here the
ranks share one float32 block in shared memory:

    params           [numel]          every rank's nn.Parameters are views of it
    grads            [world, numel]   row r holds rank r's gradients (its .grad views)
    exp_avg, exp_avg_sq [numel]       Adam's moments

and rank r owns the slice [numel*r/world, numel*(r+1)/world) of the flat vector. One step:

  1. backward accumulates rank r's gradients into row r; `exchange` ("my row is written");
  2. reduce-scatter: rank r sums the rows over its slice in rank order, then divides by the
     world size — DDP's mean, for its slice only;
  3. rank r runs fused Adam on its slice of params and moments. Adam is elementwise, so this
     is the same update the whole-model optimizer makes, computed once instead of per rank;
  4. `exchange` ("my slice of the parameters is updated"). The all-gather moves no bytes:
     the parameters are shared, so after the exchange every rank reads the new model.

No double buffering is needed: a rank overwrites its gradient row (step t+1's backward) only
after step t's second exchange, which each peer enters only after reading the row in step 2;
and a rank updates its slice (step 3) only after every peer finished step t's backward, the
last read of the old parameters. One model replica instead of N, so nothing can drift apart.

Checkpoints stay in torch's own format: `export_state` writes the moments into the
whole-model `torch.optim.Adam` the trainer checkpoints, and `open_sharded_step` starts from
that optimizer's state (so a run resumes across world sizes and code versions alike).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.adam import adam as functional_adam

from components.train_ddp.shared_block import PeerPipes, PhaseClock, open_shared_block

# The moments of Adam that this step keeps (amsgrad's max is not supported).
MOMENTS = ("exp_avg", "exp_avg_sq")


def _views(flat: torch.Tensor, shapes: list[torch.Size]) -> Iterator[torch.Tensor]:
    offset = 0
    for shape in shapes:
        count = shapes_numel(shape)
        yield flat[offset : offset + count].view(shape)
        offset += count


def shapes_numel(shape: torch.Size) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


@dataclass
class ShardedStep:
    """Gradient reduce-scatter + Adam on this rank's slice + shared parameters."""

    rank: int
    world_size: int
    params: list[nn.Parameter]  # the model's, now views of `flat["params"]`
    optimizer: torch.optim.Optimizer  # the whole-model Adam the trainer checkpoints
    flat: dict[str, torch.Tensor]  # params, grads (world, numel), exp_avg, exp_avg_sq
    pipes: PeerPipes | None  # None with one rank
    owned: slice  # this rank's slice of the flat vector
    reduced: torch.Tensor  # this rank's slice of the mean gradient
    step_count: torch.Tensor  # Adam's step, float32 scalar as fused Adam keeps it
    hyper: dict[str, Any]

    def __post_init__(self) -> None:
        # Views made once (a step is ~1.5 ms at 2 ranks: per-step slicing showed up).
        self.grad_rows = self.flat["grads"][:, self.owned]
        self.owned_state = tuple(self.flat[name][self.owned] for name in ("params", *MOMENTS))

    def zero_grad(self) -> None:
        self.flat["grads"][self.rank].zero_()

    def step(self, clock: PhaseClock) -> None:
        """After backward: reduce the gradients, update this rank's slice, share it.
        Times the exchanges and the reduction as `all_reduce`, Adam as `optimizer`."""
        started = clock.now()
        if self.pipes is not None:
            self.pipes.exchange()
            # Rank order: the same sum as DDP's mean, element for element on every scale.
            torch.sum(self.grad_rows, dim=0, out=self.reduced)
            self.reduced.div_(self.world_size)
        started = clock.add("all_reduce", started)
        params, exp_avg, exp_avg_sq = self.owned_state
        functional_adam(
            [params], [self.reduced], [exp_avg], [exp_avg_sq], [], [self.step_count],
            fused=True, **self.hyper,
        )  # fmt: skip
        started = clock.add("optimizer", started)
        if self.pipes is not None:
            self.pipes.exchange()
            clock.add("all_reduce", started)

    def export_state(self) -> None:
        """Write Adam's state into the whole-model optimizer (rank 0, for a checkpoint):
        call it when every rank is past its last step (after a collective)."""
        shapes = [param.shape for param in self.params]
        moments = [list(_views(self.flat[name], shapes)) for name in MOMENTS]
        for index, param in enumerate(self.params):
            self.optimizer.state[param] = {
                "step": self.step_count.clone(),
                **{name: moments[i][index].clone() for i, name in enumerate(MOMENTS)},
            }

    def close(self) -> None:
        """Give the model private parameters again and the optimizer the final state."""
        self.export_state()
        for param in self.params:
            param.data = param.data.clone()
            param.grad = None
        if self.pipes is not None:
            self.pipes.close()


def adam_hyperparameters(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    if not isinstance(optimizer, torch.optim.Adam) or len(optimizer.param_groups) != 1:
        raise ValueError("the sharded step needs a torch.optim.Adam with one parameter group")
    group = optimizer.param_groups[0]
    if group["amsgrad"]:
        raise ValueError("the sharded step does not support amsgrad")
    beta1, beta2 = group["betas"]
    return {
        "amsgrad": False,
        "beta1": beta1,
        "beta2": beta2,
        "lr": group["lr"],
        "weight_decay": group["weight_decay"],
        "eps": group["eps"],
        "maximize": group["maximize"],
        "decoupled_weight_decay": group.get("decoupled_weight_decay", False),
    }


def _layout(numel: int, world: int) -> dict[str, tuple[int, int]]:
    """(offset, length) of each region of the shared block."""
    sizes = {"params": numel, "grads": world * numel, "exp_avg": numel, "exp_avg_sq": numel}
    offsets, offset = {}, 0
    for name, size in sizes.items():
        offsets[name] = (offset, size)
        offset += size
    return offsets


def _fill(flat: dict[str, torch.Tensor], params: list[nn.Parameter], state: Any) -> None:
    """Rank 0 copies the model and any restored Adam moments into the shared block."""
    shapes = [param.shape for param in params]
    with torch.no_grad():
        for view, param in zip(_views(flat["params"], shapes), params, strict=True):
            view.copy_(param)
        for name in MOMENTS:
            for view, param in zip(_views(flat[name], shapes), params, strict=True):
                if name in state.get(param, {}):
                    view.copy_(state[param][name])


def open_sharded_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> ShardedStep:
    """Move `model`'s parameters and `optimizer`'s state into a block shared by the ranks
    of the current (all-local, CPU) process group; with one rank, into private memory."""
    hyper = adam_hyperparameters(optimizer)
    params = list(model.parameters())
    rank, world = dist.get_rank(), dist.get_world_size()
    numel = sum(param.numel() for param in params)
    layout = _layout(numel, world)
    total = sum(size for _, size in layout.values())
    pipes = None
    if world > 1:
        block, pipes = open_shared_block(total)
    else:
        block = torch.zeros(total)
    flat = {name: block[offset : offset + size] for name, (offset, size) in layout.items()}
    flat["grads"] = flat["grads"].view(world, numel)
    if rank == 0:
        _fill(flat, params, optimizer.state)
    if world > 1:
        dist.barrier()  # rank 0's copy is in place before anyone reads it
    shapes = [param.shape for param in params]
    for param, view, grad in zip(
        params, _views(flat["params"], shapes), _views(flat["grads"][rank], shapes), strict=True
    ):
        param.data = view
        param.grad = grad  # backward accumulates into this rank's row in place
    restored = optimizer.state.get(params[0], {}).get("step")
    step_count = torch.tensor(0.0 if restored is None else float(restored), dtype=torch.float32)
    owned = slice(numel * rank // world, numel * (rank + 1) // world)
    reduced = torch.empty(owned.stop - owned.start)
    if world == 1:
        reduced = flat["grads"][0]  # nothing to reduce: the gradient itself
    return ShardedStep(
        rank, world, params, optimizer, flat, pipes, owned, reduced, step_count, hyper
    )

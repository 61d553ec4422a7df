"""One process of `bench/ddp.py`'s parallel-ceiling probe: the trainer's own one-rank training
loop (`train_epoch` with the sharded step of one rank) at a given batch, started at an agreed
wall time and run for whole epochs of a small set (so a run overshoots the window by little).
Prints its samples per wall second.

    python bench/ddp_step_probe.py BATCH FEATURES START_AT SECONDS HIDDEN
"""

from __future__ import annotations

import sys
import tempfile
import time
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler, TensorDataset

from components.train_ddp.allocator import keep_freed_memory
from components.train_ddp.local_sharded import open_sharded_step
from components.train_ddp.network import build_mlp
from components.train_ddp.trainer import train_epoch

PROBE_ROWS = 32_768


def main(argv: list[str]) -> None:
    batch, features, start_at, seconds = int(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    hidden = [int(units) for units in argv[4].split(",") if units]
    keep_freed_memory()  # as the trainer's workers do
    torch.set_num_threads(1)
    with tempfile.NamedTemporaryFile() as rendezvous:
        dist.init_process_group(
            "gloo", init_method=f"file://{rendezvous.name}", rank=0, world_size=1
        )
    torch.manual_seed(0)
    model = build_mlp(features, hidden)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    step = open_sharded_step(model, optimizer)
    x, y = torch.randn(PROBE_ROWS, features), (torch.rand(PROBE_ROWS) < 0.5).float()
    sampler: DistributedSampler[Any] = DistributedSampler(
        TensorDataset(y), num_replicas=1, rank=0, shuffle=True, drop_last=True
    )
    train_epoch(model, step, (x, y), sampler, batch)  # warm-up
    time.sleep(max(0.0, start_at - time.time()))
    started, samples, epoch = time.perf_counter(), 0, 1
    while time.perf_counter() - started < seconds:
        sampler.set_epoch(epoch)
        samples += train_epoch(model, step, (x, y), sampler, batch)[1]
        epoch += 1
    print(samples / (time.perf_counter() - started))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])

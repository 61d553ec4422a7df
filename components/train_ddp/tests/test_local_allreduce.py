"""The shared-memory gradient all-reduce between two real processes: means, rank-identical."""

from __future__ import annotations

import multiprocessing
import socket
from typing import Any

import pytest
import torch
import torch.distributed as dist

from components.train_ddp.local_allreduce import open_shared_reducer

WORLD = 2
CALLS = 5  # more than the two parity slots, with buckets of different sizes


def _buffers(rank: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(size, generator=generator) for size in (7, 1000, 3, 1000, 64)]


def _worker(rank: int, port: int, results: Any) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD
    )
    try:
        reducer = open_shared_reducer(1000)
        reduced = [reducer.all_reduce_mean(buffer.clone()) for buffer in _buffers(rank)]
        reducer.close()
        results.put((rank, [tensor.tolist() for tensor in reduced]))
    finally:
        dist.destroy_process_group()


def test_two_ranks_get_the_same_mean_bit_for_bit() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_worker, args=(r, port, results)) for r in range(WORLD)]
    for worker in workers:
        worker.start()
    got = dict(results.get(timeout=120) for _ in range(WORLD))
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert got[0] == got[1]  # identical replicas: every rank sums in rank order
    expected = [(a + b) / 2 for a, b in zip(_buffers(0), _buffers(1), strict=True)]
    assert len(got[0]) == CALLS
    for reduced, want in zip(got[0], expected, strict=True):
        assert torch.allclose(torch.tensor(reduced), want, rtol=1e-6, atol=1e-7)


def test_a_bucket_larger_than_the_slot_is_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        reducer = open_shared_reducer(4)
        with pytest.raises(ValueError, match="exceeds the slot"):
            reducer.all_reduce_mean(torch.zeros(5))
        reducer.close()
    finally:
        dist.destroy_process_group()

"""`PeerPipes.exchange` between two real processes: what a rank wrote before its exchange is
what the peer reads after it, whether the peer caught it while polling shared memory or had
to sleep on the pipe (the writer arriving after the poll gave up)."""

from __future__ import annotations

import time
from typing import Any

import torch.distributed as dist

from components.train_ddp import shared_block
from components.train_ddp.tests.two_ranks import run_ranks

ROUNDS = 8
#: Rank 1's delay before each round's exchange: under and well over the poll's budget.
DELAYS_S = (0.0, shared_block.SPIN_S * 10)


def _worker(rank: int, port: int, results: Any) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        block, pipes = shared_block.open_shared_block(4)
        seen = []
        for round_ in range(1, ROUNDS + 1):
            if rank == 1:
                time.sleep(DELAYS_S[round_ % 2])
                block[0] = float(round_)  # written before this rank's exchange
            pipes.exchange()
            if rank == 0:
                seen.append(float(block[0]))
            pipes.exchange()  # rank 1 writes the next round only after rank 0 has read
        results.put((rank, seen, pipes.done.tolist()))
        pipes.close()
    finally:
        dist.destroy_process_group()


def test_exchange_orders_a_peers_writes_whether_polled_or_slept() -> None:
    got = run_ranks(_worker, 2)
    assert got[0][0] == [float(round_) for round_ in range(1, ROUNDS + 1)]
    assert got[0][1][0] == 2 * ROUNDS  # each rank counted its exchanges in shared memory

"""Run a function as the ranks of a real gloo process group on loopback (spawned processes)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from tests.support.processes import free_port


def run_ranks(worker: Callable[[int, int, Any], None], world: int) -> dict[int, tuple[Any, ...]]:
    """Start ``worker(rank, port, results)`` in ``world`` spawned processes (``port`` for the
    group's TCP rendezvous); each puts one tuple ``(rank, ...)`` on ``results``. Returns the
    rest of each rank's tuple by rank, once every process exited cleanly."""
    port = free_port()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=worker, args=(r, port, results)) for r in range(world)]
    for process in workers:
        process.start()
    got = {}
    for _ in range(world):
        rank, *rest = results.get(timeout=120)
        got[rank] = tuple(rest)
    for process in workers:
        process.join(30)
        assert process.exitcode == 0
    return got

"""Shared memory and pipes between the ranks of one machine (``local_sharded`` steps through
them).

Why: on CPU, gloo's all-reduce of a small model's gradients costs more than the bytes it
moves. Each call hops the bucket through gloo's worker thread and its TCP loop thread on
both ranks (several thread wake-ups and loopback round trips per step); on a 2-core machine
running 2 ranks that latency sits on every step's critical path. Ranks on one machine instead
share one block of memory and tell each other "my part is written" with one byte on a named
pipe per rank pair. The files live only while the group sets up: once every rank has them
open they are unlinked, so a killed group leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist


class PhaseClock(Protocol):
    def now(self) -> tuple[float, float]: ...
    def add(self, phase: str, started: tuple[float, float]) -> tuple[float, float]: ...


#: How long `exchange` polls shared memory for a peer's "done" before it sleeps on the pipe.
#: Why poll: on a VM a sleeping rank's wake-up is an inter-processor interrupt through the
#: hypervisor (tens of microseconds, twice per step); the ranks usually reach an exchange
#: within a fraction of a millisecond of each other. The poll yields the core between looks,
#: so on a machine with fewer free cores than ranks the peer it waits for is not kept out.
SPIN_S = 0.002


@dataclass
class PeerPipes:
    """One named pipe per ordered rank pair: `exchange` tells every peer "done" and waits for
    every peer's "done" (one byte each way; the bytes of successive calls queue in order).
    Each rank also counts its exchanges in shared memory (`done`), which a waiting peer
    polls for up to `SPIN_S` before it blocks on the pipe. The pipe's byte is always read:
    its write and read are what order the peer's memory writes before this rank's reads
    (the count only says the byte is there)."""

    rank: int
    send: list[int]  # write end of each peer's pipe from this rank (-1 for self)
    receive: list[int]  # read end of the pipe from each peer to this rank (-1 for self)
    done: np.ndarray  # int64 [world]: exchanges each rank has finished (shared)
    exchanges: int = 0

    def exchange(self) -> None:
        self.exchanges += 1
        for peer, fd in enumerate(self.send):
            if peer != self.rank:
                os.write(fd, b"\x01")
        self.done[self.rank] = self.exchanges  # after the bytes: a peer that sees it reads one
        for peer, fd in enumerate(self.receive):
            if peer == self.rank:
                continue
            if self.done[peer] < self.exchanges:
                give_up = time.perf_counter() + SPIN_S
                while self.done[peer] < self.exchanges and time.perf_counter() < give_up:
                    os.sched_yield()  # a peer waiting for this core (more ranks than cores) runs
            if not os.read(fd, 1):
                raise RuntimeError(f"rank {peer} closed its pipe")

    def close(self) -> None:
        for fd in (*self.send, *self.receive):
            if fd >= 0:
                os.close(fd)


def all_ranks_local() -> bool:
    """True when torchrun started every rank of the group on this machine."""
    local = os.environ.get("LOCAL_WORLD_SIZE")
    return local is not None and int(local) == dist.get_world_size()


def _pipe(directory: Path, sender: int, receiver: int) -> Path:
    return directory / f"pipe-{sender}-to-{receiver}"


def open_shared_block(numel: int) -> tuple[torch.Tensor, PeerPipes]:
    """A zeroed float32 block of `numel` elements shared by every rank of the current
    (all-local) process group, and the pipes between the ranks.

    Rank 0 makes a fresh directory and broadcasts its path; every rank opens its ends, and
    rank 0 unlinks the directory once all have them open.
    """
    rank, world = dist.get_rank(), dist.get_world_size()
    shared_root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    paths: list[str | None] = [None]
    if rank == 0:
        directory = Path(tempfile.mkdtemp(prefix="kubeloop-ddp-", dir=shared_root))
        for name, size in (("block", numel * 4), ("done", world * 8)):
            (directory / name).write_bytes(b"")
            os.truncate(directory / name, size)
        for sender in range(world):
            for receiver in range(world):
                if sender != receiver:
                    os.mkfifo(_pipe(directory, sender, receiver))
        paths = [str(directory)]
    dist.broadcast_object_list(paths, src=0)
    directory = Path(str(paths[0]))
    block = torch.from_file(str(directory / "block"), shared=True, size=numel, dtype=torch.float32)
    done = torch.from_file(str(directory / "done"), shared=True, size=world, dtype=torch.int64)
    # O_RDWR: opening a FIFO this way never blocks waiting for the other end (Linux).
    send = [
        -1 if p == rank else os.open(_pipe(directory, rank, p), os.O_RDWR) for p in range(world)
    ]
    receive = [
        -1 if p == rank else os.open(_pipe(directory, p, rank), os.O_RDWR) for p in range(world)
    ]
    dist.barrier()
    if rank == 0:
        for entry in directory.iterdir():
            entry.unlink()
        directory.rmdir()
    return block, PeerPipes(rank, send, receive, done.numpy())

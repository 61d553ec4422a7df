"""Gradient all-reduce through shared memory for ranks on one machine (a DDP comm hook).

Why: on CPU, gloo's all-reduce of a small model's gradients costs more than the bytes it
moves. Each call hops the bucket through gloo's worker thread and its TCP loop thread on
both ranks (several thread wake-ups and loopback round trips per step); on a 2-core machine
running 2 ranks that latency sits on every step's critical path. Here every rank copies its
bucket into its own slot of one shared-memory block, tells each peer "my slot is written"
with one byte on a named pipe, waits for one byte from each peer, and sums the slots in rank
order itself — the same sum, bit for bit, on every rank, so the replicas stay identical.

Slots are double-buffered by call parity: a rank overwrites its slot of parity p only after
every peer has signalled the next call, which each sends only after reading this one. Every
rank calls the hook for the same buckets in the same order (DDP's contract), so the call
counter is the same everywhere. The files live only while the group sets up: once every
rank has them open they are unlinked, so a killed group leaves nothing behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist


class PhaseClock(Protocol):
    def now(self) -> tuple[float, float]: ...
    def add(self, phase: str, started: tuple[float, float]) -> tuple[float, float]: ...


HookFn = Callable[[Any, dist.GradBucket], torch.futures.Future[torch.Tensor]]


@dataclass
class PeerPipes:
    """One named pipe per ordered rank pair: `exchange` tells every peer "done" and waits for
    every peer's "done" (one byte each way; the bytes of successive calls queue in order)."""

    rank: int
    send: list[int]  # write end of each peer's pipe from this rank (-1 for self)
    receive: list[int]  # read end of the pipe from each peer to this rank (-1 for self)

    def exchange(self) -> None:
        for peer, fd in enumerate(self.send):
            if peer != self.rank:
                os.write(fd, b"\x01")
        for peer, fd in enumerate(self.receive):
            if peer != self.rank and not os.read(fd, 1):
                raise RuntimeError(f"rank {peer} closed its pipe")

    def close(self) -> None:
        for fd in (*self.send, *self.receive):
            if fd >= 0:
                os.close(fd)


@dataclass
class SharedReducer:
    rank: int
    world_size: int
    slots: torch.Tensor  # (world_size, 2, numel) float32, shared between the ranks
    pipes: PeerPipes
    calls: int = field(default=0)

    def all_reduce_mean(self, buffer: torch.Tensor) -> torch.Tensor:
        """Mean of `buffer` over the ranks, in place; blocks until every rank contributed."""
        parity, count = self.calls % 2, buffer.numel()
        self.calls += 1
        if count > self.slots.shape[2]:
            raise ValueError(f"bucket of {count} elements exceeds the slot ({self.slots.shape[2]})")
        self.slots[self.rank, parity, :count].copy_(buffer.reshape(-1))
        self.pipes.exchange()
        # Rank order, the same on every rank: identical results everywhere.
        torch.sum(self.slots[:, parity, :count], dim=0, out=buffer.view(-1))
        return buffer.div_(self.world_size)

    def hook(self, times: PhaseClock | None = None) -> HookFn:
        """The DDP comm hook; with `times`, each call is timed as its `all_reduce` phase."""

        def hook(state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
            started = times.now() if times else None
            future: torch.futures.Future[torch.Tensor] = torch.futures.Future()
            future.set_result(self.all_reduce_mean(bucket.buffer()))
            if times is not None and started is not None:
                times.add("all_reduce", started)
            return future

        # DDP checks the hook's annotations as objects; this module's are strings (PEP 563).
        hook.__annotations__ = {
            "bucket": dist.GradBucket,
            "return": torch.futures.Future[torch.Tensor],
        }
        return hook

    def close(self) -> None:
        self.pipes.close()


def all_ranks_local() -> bool:
    """True when torchrun started every rank of the group on this machine."""
    local = os.environ.get("LOCAL_WORLD_SIZE")
    return local is not None and int(local) == dist.get_world_size()


def _pipe(directory: Path, sender: int, receiver: int) -> Path:
    return directory / f"pipe-{sender}-to-{receiver}"


def open_shared_reducer(numel: int) -> SharedReducer:
    """The DDP comm hook's state for the current (all-local, CPU) process group."""
    world = dist.get_world_size()
    block, pipes = open_shared_block(world * 2 * numel)
    return SharedReducer(dist.get_rank(), world, block.view(world, 2, numel), pipes)


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
        (directory / "block").write_bytes(b"")
        os.truncate(directory / "block", numel * 4)
        for sender in range(world):
            for receiver in range(world):
                if sender != receiver:
                    os.mkfifo(_pipe(directory, sender, receiver))
        paths = [str(directory)]
    dist.broadcast_object_list(paths, src=0)
    directory = Path(str(paths[0]))
    block = torch.from_file(str(directory / "block"), shared=True, size=numel, dtype=torch.float32)
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
    return block, PeerPipes(rank, send, receive)

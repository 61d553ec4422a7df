"""Epoch checkpoints, written atomically so a crash never leaves a half-written one behind.

A checkpoint file exists under its final name only once it is complete (write to a temporary
name in the same directory, fsync, rename), so "the latest file" is always loadable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

_NAME = re.compile(r"^epoch-(\d{5})\.pt$")
KEEP_CHECKPOINTS = 2


def checkpoint_file(directory: Path, completed_epochs: int) -> Path:
    return directory / f"epoch-{completed_epochs:05d}.pt"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    if not directory.is_dir():
        return []
    found = [
        (int(match.group(1)), path)
        for path in directory.iterdir()
        if (match := _NAME.match(path.name))
    ]
    return sorted(found)


def latest_checkpoint(directory: Path) -> Path | None:
    checkpoints = list_checkpoints(directory)
    return checkpoints[-1][1] if checkpoints else None


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def save_checkpoint(directory: Path, completed_epochs: int, state: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    final = checkpoint_file(directory, completed_epochs)
    temporary = directory / f".{final.name}.{os.getpid()}.tmp"
    with temporary.open("wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    _fsync_directory(directory)
    for _, old in list_checkpoints(directory)[:-KEEP_CHECKPOINTS]:
        old.unlink(missing_ok=True)
    return final


def load_checkpoint(path: Path) -> dict[str, Any]:
    # weights_only: a checkpoint holds tensors and plain containers only, never pickled code.
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state

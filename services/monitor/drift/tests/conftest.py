"""Fixtures shared by the drift tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def torch_single_thread() -> Iterator[None]:
    # One thread: on a shared 2-core CI box more threads only add contention.
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the permutations draw from torch's global generator
    yield
    torch.set_num_threads(threads)

"""The trainer's allocator policy: freed step memory stays in the process (no page churn)."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]

# A step in miniature: four 1 MiB tensors at once, then all freed; page faults over 50 steps.
# "kept": the trainer's policy. "returned": glibc's static default (128 KiB mmap threshold,
# without the adaptation that makes the default's churn depend on the allocation history),
# so every tensor is mapped and unmapped: the witness that the count sees memory given back.
STEPS, PAGES_PER_STEP = 50, 4 * 1024 * 1024 // 4096
CHURN = f"""
import ctypes, resource, sys, torch
from components.train_ddp import allocator
if sys.argv[1] == "kept":
    assert allocator.keep_freed_memory()
else:
    assert ctypes.CDLL(None).mallopt(allocator.M_MMAP_THRESHOLD, 128 * 1024)
def step():
    blocks = [torch.ones(262_144) for _ in range(4)]
    del blocks
for _ in range(5):
    step()  # the heap grows to the step's peak
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({STEPS}):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(policy: str) -> int:
    # A process of its own: the policy is process-wide and must not leak into the suite.
    done = subprocess.run(
        [sys.executable, "-c", CHURN, policy],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the policy is glibc's mallopt")
def test_freed_step_memory_is_reused_not_faulted_in_again() -> None:
    assert page_faults("returned") >= STEPS * PAGES_PER_STEP
    assert page_faults("kept") < STEPS  # none after the warm-up, give or take

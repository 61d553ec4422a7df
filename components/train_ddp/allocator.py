"""Keep freed memory in the process instead of handing it back to the OS every step (glibc).

Why: a training step allocates its activations and gradients afresh and frees them at the end
(torch has no caching allocator on CPU). Under glibc's default policy, blocks of 128 KiB and
more are mmapped, and the threshold then adapts to the largest block freed, with the heap
trimmed whenever more than twice that is free at its top. At batch 1,024 of the DDP bench's
model (activations of 0.5 to 1 MiB) a step's peak frees more than that, so every step gave
its pages back and faulted them in again: 15 to 114 minor page faults and 0.05 to 0.22 ms of
system time per ~3.5 ms step at one process (five runs), and none once the thresholds are fixed.
Smaller per-rank batches (2 ranks at 512) mostly stayed under the adaptive threshold (0.2 to
11 faults per step), so the churn also flattered the multi-rank speedup. torch's tuning guide
suggests jemalloc or tcmalloc "by reusing memory as much as possible" for the same reason
(https://pytorch.org/tutorials/recipes/recipes/tuning_guide.html, "Switch Memory allocator");
fixed glibc thresholds need nothing installed.
"""

from __future__ import annotations

import ctypes
import platform

# mallopt parameters (<malloc.h>).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3

#: Blocks below this come from the heap: glibc's largest allowed value on 64-bit (32 MiB), so
#: a step's tensors up to ~32k rows x 256 float32 values are reused, not mapped and unmapped.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
#: Free memory kept at the top of the heap before it is given back.
TRIM_THRESHOLD_BYTES = 256 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (setting them turns glibc's
    adaptive thresholds off). Returns False where the C library is not glibc (nothing done)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    applied = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    applied &= libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    return bool(applied)

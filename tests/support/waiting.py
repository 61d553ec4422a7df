"""Polling: the one `wait_for` every integration test, e2e test and benchmark uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    probe: Callable[[], T | None],
    timeout_s: float,
    what: str,
    interval_s: float = 0.3,
    context: Callable[[], str] | None = None,
) -> T:
    """Poll until `probe()` returns something truthy and return it; fail naming `what`, the
    last value and `context()` (logs, status) when `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval_s)
    extra = f"\n{context()}" if context else ""
    raise AssertionError(
        f"timed out after {timeout_s:.0f}s waiting for {what}; last: {last!r}{extra}"
    )

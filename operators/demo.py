"""`kubeloop demo`: the whole loop on the embedded default (grows with each part of the loop)."""

from __future__ import annotations

from pathlib import Path


def run_demo(state_dir: Path) -> int:
    raise NotImplementedError("the demo lands with the drift/retrain loop (issue 6)")

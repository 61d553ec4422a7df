"""`kubeloop demo`: the whole loop on the embedded default.

synthetic data → `kubeloop up` → FeatureView backfill → Experiment (v1) → MLModel serves v1 →
traffic (with labels to the monitor) → shift → drift alarm → retrain (v2) → shadow → 10 → 50
→ 100%, judged on the labels → Promoted,
with a live progress view and a report in `<state_dir>/report/`. The stages live in
`kubeloop/demo/`.
"""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType

from kubeloop.demo.config import DemoConfig
from kubeloop.demo.runner import run


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(state_dir: Path, stop_after: str | None = None, keep_running: bool = False) -> int:
    config = DemoConfig.from_env(state_dir)
    updates: dict[str, object] = {}
    if stop_after is not None:
        updates["stop_after"] = stop_after
    if keep_running:
        updates["keep_running"] = True
    # SIGTERM (CI timeouts, `kill`) ends the demo like Ctrl-C: report written, processes stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    outcome, _ = run(config.model_copy(update=updates))
    return 0 if outcome.ok else 1

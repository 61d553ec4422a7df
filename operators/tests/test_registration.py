"""Handlers are registered explicitly at start-up, with the intervals of the configuration."""

from __future__ import annotations

import subprocess
import sys

from operators.config import OperatorConfig
from operators.main import build_registry
from operators.runtime import OperatorContext

NO_IMPORT_TIME_HANDLERS = """
import kopf
from kopf._core.intents.registries import get_default_registry
import operators.main, operators.featureview, operators.experiment, operators.mlmodel
registry = get_default_registry()
print(len(registry._changing.get_all_handlers()) + len(registry._spawning.get_all_handlers()))
"""


def test_importing_the_operators_registers_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", NO_IMPORT_TIME_HANDLERS], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "0"


def test_registry_has_every_kind_with_the_configured_intervals() -> None:
    config = OperatorConfig(poll_interval_s=3.0, analysis_tick_s=2.0)
    registry = build_registry(OperatorContext(config=config))
    spawning = registry._spawning.get_all_handlers()
    timers = {h.id: (h.interval, h.initial_delay) for h in spawning}  # type: ignore[attr-defined]
    assert timers == {
        "follow_backfill": (3.0, 3.0),
        "follow_trials": (3.0, 3.0),
        "step_rollout": (2.0, None),
    }
    changes = {(h.id, h.reason) for h in registry._changing.get_all_handlers()}
    for kind, change in (("featureview", "reconcile"), ("experiment", "reconcile")):
        assert {(f"{change}_{kind}", r) for r in (None, "create", "update")} <= changes
        assert (f"release_{kind}", "delete") in changes
    assert ("reconcile_mlmodel", "update") in changes and ("release_mlmodel", "delete") in changes

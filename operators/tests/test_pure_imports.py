"""Importing a pure core loads no Kopf, no Kubernetes client and no backend I/O module.

Checked in a fresh interpreter per module, where nothing else has imported them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PURE_CORES = [
    "operators.kind",
    "operators.status",
    "operators.backends.runs",
    "operators.featureview.backfill",
    "operators.featureview.definition",
    "operators.featureview.reconcile",
    "operators.experiment.reconcile",
    "operators.experiment.trials",
    "operators.mlmodel.analysis",
    "operators.mlmodel.drift",
    "operators.mlmodel.outcome_gate",
    "operators.mlmodel.quality",
    "operators.mlmodel.reconcile",
    "operators.mlmodel.retrain_policy",
    "operators.mlmodel.rollout",
    "operators.mlmodel.skew",
]
FORBIDDEN = [
    "kopf",
    "kubernetes",
    "mlflow",
    "httpx",
    "operators.controller",
    "operators.runtime",
    "operators.backends.pipelines",
    "operators.backends.kfp_cluster",
    "operators.backends.kfp_local",
    "operators.backends.kfp_local_worker",
    "operators.backends.serving",
    "operators.backends.registry",
    "operators.backends.monitor",
]
ALLOWED: dict[str, set[str]] = {}

SCRIPT = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps([name for name in json.loads(sys.argv[2]) if name in sys.modules]))
"""


@pytest.mark.parametrize("module", PURE_CORES)
def test_pure_core_imports_no_io(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, module, json.dumps(FORBIDDEN)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(done.stdout)) - ALLOWED.get(module, set())
    assert loaded == set(), f"importing {module} loaded {sorted(loaded)}"

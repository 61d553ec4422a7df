"""`kubeloop up` as a user runs it: a subprocess, then the real kubectl, then `kubeloop down`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import free_port
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
KUBELOOP = [sys.executable, "-m", "kubeloop.cli"]


def _kubectl(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


@pytest.fixture(scope="module")
def kubeloop_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH; these machines have it, install kubectl v1.32")
    state = tmp_path_factory.mktemp("kubeloop-state")
    port = free_port()
    up = subprocess.run(
        [*KUBELOOP, "up", "--state-dir", str(state), "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    kubeconfig = state / "cluster" / "kubeconfig"
    assert f"export KUBECONFIG={kubeconfig.resolve()}" in up.stdout
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    try:
        yield {**env, "KUBELOOP_TEST_STATE": str(state)}
    finally:
        down = subprocess.run(
            [*KUBELOOP, "down", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert down.returncode == 0, down.stderr
        assert "controlplane" in down.stdout


def test_second_up_on_the_same_state_dir_says_it_is_running(kubeloop_up: dict[str, str]) -> None:
    again = subprocess.run(
        [*KUBELOOP, "up", "--state-dir", kubeloop_up["KUBELOOP_TEST_STATE"]],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert again.returncode == 2
    assert "already running" in again.stderr and "Traceback" not in again.stderr


def test_examples_apply_and_show_printer_columns(kubeloop_up: dict[str, str]) -> None:
    env = kubeloop_up
    applied = _kubectl(env, "apply", "-f", "examples/resources/")
    assert "mlmodel.kubeloop.io/churn created" in applied.stdout

    def mlmodel_phase() -> str:
        out = _kubectl(env, "get", "mlmodel", "churn", "-o", "jsonpath={.status.phase}")
        return out.stdout.strip()

    assert (
        wait_for(mlmodel_phase, 60, "the operator to write MLModel status", interval_s=0.5)
        == "Pending"
    )
    table = _kubectl(env, "get", "mlmodels,experiments,featureviews").stdout
    for header in (
        "PHASE",
        "STABLE",
        "CANDIDATE",
        "STABLE%",
        "CANARY%",
        "DRIFT",
        "BEST",
        "REGISTERED",
        "BACKFILLED",
        "VERSION",
        "ROWS",
        "AGE",
    ):
        assert header in table, table
    mlmodel_line = next(line for line in table.splitlines() if line.startswith("mlmodel"))
    assert "Pending" in mlmodel_line
    featureview = _kubectl(env, "get", "featureview", "user-activity", "-o", "json").stdout
    assert len(json.loads(featureview)["status"]["version"]) == 12


def test_invalid_resource_gets_ready_false_naming_the_field(kubeloop_up: dict[str, str]) -> None:
    env = kubeloop_up
    _kubectl(env, "apply", "-f", "examples/invalid/mlmodel-bad-version.yaml")

    def ready_condition() -> dict | None:
        out = _kubectl(env, "get", "mlmodel", "churn-two-selectors", "-o", "json").stdout
        conditions = json.loads(out).get("status", {}).get("conditions", [])
        return next((c for c in conditions if c["type"] == "Ready"), None)

    ready = wait_for(ready_condition, 60, "Ready condition on the invalid MLModel", interval_s=0.5)
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.model" in ready["message"]
    events = wait_for(
        lambda: "InvalidSpec" in _kubectl(env, "describe", "mlmodel", "churn-two-selectors").stdout,
        60,
        "an InvalidSpec event in kubectl describe",
        interval_s=0.5,
    )
    assert events
    rejected = _kubectl(
        env, "apply", "-f", "examples/invalid/experiment-random-split.yaml", check=False
    )
    assert rejected.returncode != 0 and "spec.split.method" in rejected.stderr
    # A set in the schema (x-kubernetes-list-type: set): the API server names the repeat.
    repeated = _kubectl(
        env, "apply", "-f", "examples/invalid/experiment-repeated-feature.yaml", check=False
    )
    assert repeated.returncode != 0, repeated.stdout
    assert 'spec.features[0].names[2]: Duplicate value: "sessions_7d"' in repeated.stderr

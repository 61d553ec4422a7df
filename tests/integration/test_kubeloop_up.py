"""`kubeloop up` as a user runs it: a subprocess, then the real kubectl, then `kubeloop down`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeloop.embedded.launcher import free_port as _free_port

ROOT = Path(__file__).resolve().parents[2]
KUBELOOP = [sys.executable, "-m", "kubeloop.cli"]


def _kubectl(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def _wait_for(predicate, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last value: {last!r}")


@pytest.fixture(scope="module")
def kubeloop_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH; these machines have it, install kubectl v1.32")
    state = tmp_path_factory.mktemp("kubeloop-state")
    port = _free_port()
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

    assert _wait_for(mlmodel_phase, what="the operator to write MLModel status") == "Pending"
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

    ready = _wait_for(ready_condition, what="Ready condition on the invalid MLModel")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.model" in ready["message"]
    events = _wait_for(
        lambda: "InvalidSpec" in _kubectl(env, "describe", "mlmodel", "churn-two-selectors").stdout,
        what="an InvalidSpec event in kubectl describe",
    )
    assert events
    rejected = _kubectl(
        env, "apply", "-f", "examples/invalid/experiment-random-split.yaml", check=False
    )
    assert rejected.returncode != 0 and "spec.split.method" in rejected.stderr

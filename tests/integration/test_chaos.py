"""Chaos, short form: components run under the embedded default's supervisor
(`Stack.supervised`) and are killed with -9 at the worst moments; the supervisor restarts
them and the loop finishes as if nothing had happened.

- the operators while a FeatureView backfill runs: the backfill succeeds with one pipeline
  run (the run names under the state dir's pipeline-runs), none launched twice;
- the candidate's predictor while it is in shadow, under the real local serving controller
  (its own control plane: that controller realizes every InferenceService of a cluster):
  the controller restarts it, as a Deployment would, and the rollout promotes, every step
  in order;
- the monitor while an MLModel is in shadow: the rollout passes every canary step in order
  and promotes; the monitor in a failing canary step: the candidate is rolled back, never
  promoted; in both, every call the monitor acknowledged (a 200) is counted after its
  restart.

The full matrix (each component × each moment) is `bench/chaos.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeloop.embedded.supervisor import CONTROLPLANE
from tests.support.chaos import (
    PREDICTOR,
    RolloutDriver,
    ServedDriver,
    acknowledged_kept,
    backfill_under_kill,
    monitor_requests,
    rollout_under_kill,
    small_feature_view,
    step_weights,
)
from tests.support.kube import CustomObjects
from tests.support.localcluster import RunningCluster
from tests.support.models import LogisticModel, register_model
from tests.support.processes import free_port
from tests.support.stack import MONITOR, OPERATORS, SERVING, OperatorHarness, Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

RUN_TIMEOUT_S = 480.0  # Spark on a loaded 2-core machine; never a timing assertion


def test_operators_killed_while_a_backfill_runs(
    localcluster_module: RunningCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("chaos-backfill")
    spec = small_feature_view(root)
    harness = OperatorHarness(localcluster_module.kubeconfig, root)
    with harness.stack.supervised(OPERATORS) as supervisor:
        outcome = backfill_under_kill(
            harness, supervisor, OPERATORS, "chaos", spec, harness.run_names, RUN_TIMEOUT_S
        )
    assert outcome["lastExit"] == "SIGKILL"
    assert outcome["state"] == "SUCCEEDED" and outcome["backfilled"] == "True", outcome
    assert outcome["runs"] == [outcome["runBeforeKill"]] == [outcome["run"]], outcome


@pytest.fixture(scope="module")
def supervised_models(localcluster_module: RunningCluster, model_stack: Stack) -> Iterator[dict]:
    versions = [
        register_model(model_stack.tracking_uri, model_stack.state_dir, "churn", LogisticModel())
        for _ in range(3)
    ]
    objects = CustomObjects(model_stack.kubeconfig, context=model_stack.logs)
    with model_stack.supervised(MONITOR, OPERATORS) as supervisor:
        yield {
            "objects": objects,
            "supervisor": supervisor,
            "versions": versions,
            "monitor": model_stack.monitor_url,
            "monitor_headers": model_stack.monitor_headers,
        }


def _roll(models: dict, moment: str, versions: tuple[str, str], name: str, failing: bool) -> dict:
    driver = RolloutDriver(models["objects"], models["monitor"], name, models["monitor_headers"])
    outcome = rollout_under_kill(
        models["objects"],
        models["supervisor"],
        MONITOR,
        moment,
        driver,
        versions,
        name,
        failing=failing,
    )
    # Every call the monitor acknowledged before or after its kill is still counted.
    counted = monitor_requests(models["monitor"], name, models["monitor_headers"])
    assert driver.acked and acknowledged_kept(driver.acked, counted), (driver.acked, counted)
    return outcome


def test_monitor_killed_in_shadow_the_rollout_steps_through_and_promotes(
    supervised_models: dict,
) -> None:
    v1, v2, _ = supervised_models["versions"]
    outcome = _roll(supervised_models, "Shadow", (v1, v2), "chaos-shadow", failing=False)
    assert outcome["lastExit"] == "SIGKILL"
    assert outcome["phase"] == "Promoted" and outcome["stableVersion"] == v2, outcome
    # Every step after the first (1%) reached once, in order: none skipped, none repeated.
    assert step_weights(outcome["stepPassed"]) == [50, 100], outcome
    assert {"ShadowPassed", "Promoted"} <= set(outcome["reasons"])


def test_monitor_killed_in_a_failing_canary_rolls_back(supervised_models: dict) -> None:
    v1, _, v3 = supervised_models["versions"]
    outcome = _roll(supervised_models, "Canary", (v1, v3), "chaos-canary", failing=True)
    assert outcome["phase"] == "RolledBack" and outcome["stableVersion"] == v1, outcome
    assert outcome["lastExit"] == "SIGKILL"
    assert "Promoted" not in [phase for phase, _, _ in outcome["seen"]], outcome


def test_predictor_killed_in_shadow_is_restarted_and_the_rollout_promotes(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    env = {"KUBELOOP_ANALYSIS_TICK_S": "0.5", "KUBELOOP_POLL_INTERVAL_S": "1"}
    stack = Stack(state / "cluster" / "kubeconfig", state, env, install_crds=False)
    stack.add_control_plane(free_port())
    stable = register_model(stack.tracking_uri, stack.state_dir, "churn", LogisticModel())
    candidate = register_model(stack.tracking_uri, stack.state_dir, "churn", LogisticModel())
    with stack.supervised(CONTROLPLANE, MONITOR, SERVING, OPERATORS) as supervisor:
        objects = CustomObjects(stack.kubeconfig, context=stack.logs)
        outcome = rollout_under_kill(
            objects,
            supervisor,
            PREDICTOR,
            "Shadow",
            ServedDriver(objects, "chaos"),
            (stable, candidate),
            "chaos",
            timeout_s=RUN_TIMEOUT_S,
            served_by=SERVING,
        )
    assert outcome["restartCount"] >= 1 and outcome["newPid"] != outcome["oldPid"], outcome
    assert outcome["phase"] == "Promoted" and outcome["stableVersion"] == candidate, outcome
    assert step_weights(outcome["stepPassed"]) == [50, 100], outcome

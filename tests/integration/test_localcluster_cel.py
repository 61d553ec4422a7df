"""CEL validation rules (`x-kubernetes-validations`) enforced by the embedded control plane.

Drives the real `kubectl` with the real kubeloop CRDs, plus two small CRDs of its own: one with
a transition rule (`oldSelf`) and one whose rule does not compile.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.localcluster import RunningCluster
from tests.support.widgets import crd

ROOT = Path(__file__).resolve().parents[2]
CRDS_DIR = ROOT / "crds"
MLMODEL_EXAMPLE = ROOT / "examples" / "resources" / "mlmodel.yaml"
GROUP = "cel.localcluster.test"


class Kubectl:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def kubectl(localcluster_module: RunningCluster) -> Kubectl:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH: these tests drive the real kubectl")
    run = Kubectl(localcluster_module.env())
    run.ok("apply", "-f", str(CRDS_DIR))
    run.ok("wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
    return run


def mlmodel(name: str, steps: list[int]) -> str:
    body: dict[str, Any] = yaml.safe_load(MLMODEL_EXAMPLE.read_text())
    body = copy.deepcopy(body)
    body["metadata"]["name"] = name
    body["spec"]["rollout"]["steps"] = steps
    return yaml.safe_dump(body)


@pytest.mark.parametrize(
    ("name", "steps", "message"),
    [
        ("dup", [10, 10, 100], "steps must be strictly increasing"),
        ("unsorted", [50, 10, 100], "steps must be strictly increasing"),
        ("no-full", [1, 10, 50], "the last step must be 100"),
    ],
)
def test_mlmodel_steps_rule_rejects(kubectl: Kubectl, name: str, steps: list[int], message: str):
    result = kubectl("apply", "-f", "-", stdin=mlmodel(name, steps))
    assert result.returncode != 0
    assert "is invalid" in result.stderr
    assert f'spec.rollout.steps: Invalid value: "array": {message}' in result.stderr
    assert kubectl("get", "mlmodel", name).returncode != 0  # nothing was stored


def test_mlmodel_valid_steps_accepted_and_update_checked(kubectl: Kubectl):
    assert "created" in kubectl.ok("apply", "-f", "-", stdin=mlmodel("good", [1, 10, 50, 100]))
    stored = kubectl.ok("get", "mlmodel", "good", "-o", "jsonpath={.spec.rollout.steps}")
    assert stored == "[1,10,50,100]"
    # Updates are judged too: a patch that breaks a rule is refused and changes nothing.
    patch = '{"spec": {"rollout": {"steps": [1, 10, 50]}}}'
    result = kubectl("patch", "mlmodel", "good", "--type=merge", "-p", patch)
    assert result.returncode != 0
    assert "the last step must be 100" in result.stderr
    assert kubectl.ok("get", "mlmodel", "good", "-o", "jsonpath={.spec.rollout.steps}") == stored


def small_crd(kind: str, validations: list[dict[str, Any]]) -> dict[str, Any]:
    plural = f"{kind.lower()}s"
    spec_schema = {
        "type": "object",
        "properties": {
            "size": {"type": "integer", "x-kubernetes-validations": validations},
            "mode": {"type": "string"},
        },
    }
    schema = {"type": "object", "properties": {"spec": spec_schema}}
    return crd(GROUP, kind, plural, "Namespaced", schema)


def custom(kind: str, name: str, spec: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def test_transition_rule_uses_old_self_on_update_only(kubectl: Kubectl):
    rules = [
        {"rule": "self >= oldSelf", "message": "size may only grow"},
        {"rule": "self <= 100"},
    ]
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(small_crd("Volume", rules)))
    kubectl.ok("wait", "--for=condition=Established", f"crd/volumes.{GROUP}", "--timeout=30s")
    # On create there is no oldSelf: the transition rule is skipped, the other one applies.
    assert "created" in kubectl.ok("apply", "-f", "-", stdin=custom("Volume", "v", {"size": 5}))
    too_big = kubectl("apply", "-f", "-", stdin=custom("Volume", "big", {"size": 500}))
    assert 'spec.size: Invalid value: "integer": failed rule: self <= 100' in too_big.stderr
    # On update the old value is bound: growing is fine, shrinking is refused.
    assert "configured" in kubectl.ok("apply", "-f", "-", stdin=custom("Volume", "v", {"size": 7}))
    shrink = kubectl("apply", "-f", "-", stdin=custom("Volume", "v", {"size": 3}))
    assert shrink.returncode != 0
    assert 'spec.size: Invalid value: "integer": size may only grow' in shrink.stderr
    # A change elsewhere leaves size alone: the unchanged node passes.
    assert "configured" in kubectl.ok(
        "apply", "-f", "-", stdin=custom("Volume", "v", {"size": 7, "mode": "fast"})
    )
    # Absent node: no rule runs.
    assert "created" in kubectl.ok("apply", "-f", "-", stdin=custom("Volume", "empty", {}))


def test_rule_that_does_not_compile_rejects_the_crd(kubectl: Kubectl):
    broken = small_crd("Broken", [{"rule": "self.size(", "message": "never"}])
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(broken))
    assert result.returncode != 0
    assert "x-kubernetes-validations[0].rule" in result.stderr
    assert "compilation failed" in result.stderr
    assert kubectl("get", "crd", f"brokens.{GROUP}").returncode != 0
    unknown = small_crd("Unknown", [{"rule": "self.noSuchFunction()"}])
    result = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(unknown))
    assert result.returncode != 0
    assert "noSuchFunction" in result.stderr


def test_list_library_functions(kubectl: Kubectl):
    rules = [
        {"rule": "[3, 1, 2].sum() == 6 && [3, 1, 2].min() == 1 && [3, 1, 2].max() == 3"},
        {"rule": "[1, 2, 2].lastIndexOf(2) == 2 && [1, 2].indexOf(5) == -1"},
        {
            "rule": "self.size % 2 == 0",
            "messageExpression": "'size ' + string(self.size) + ' is odd'",
            "fieldPath": ".size",
            "reason": "FieldValueForbidden",
        },
    ]
    definition = small_crd("Pair", [])
    spec_schema = definition["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"][
        "spec"
    ]
    spec_schema["x-kubernetes-validations"] = rules
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(definition))
    kubectl.ok("wait", "--for=condition=Established", f"crd/pairs.{GROUP}", "--timeout=30s")
    assert "created" in kubectl.ok("apply", "-f", "-", stdin=custom("Pair", "even", {"size": 4}))
    odd = kubectl("apply", "-f", "-", stdin=custom("Pair", "odd", {"size": 3}))
    assert odd.returncode != 0
    assert "spec.size: Forbidden: size 3 is odd" in odd.stderr

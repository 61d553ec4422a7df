"""The real kubectl against the embedded control plane (issue 2 acceptance)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.support.localcluster import RunningCluster
from tests.support.widgets import GROUP, crds, widget

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def patch_w1(kubectl: Kubectl, ns: str, json_patch: str, check: bool = True) -> Any:
    """`kubectl patch wdg w1 --type=json -p PATCH` in `ns`."""
    return kubectl("patch", "wdg", "w1", "-n", ns, "--type=json", "-p", json_patch, check=check)


@pytest.fixture(scope="module")
def kubectl(localcluster_module: RunningCluster) -> Kubectl:
    if shutil.which("kubectl") is None:
        pytest.fail(
            "kubectl is not on PATH: these tests drive the real kubectl and CI machines have it"
        )
    env = localcluster_module.env()

    def run(
        *args: str, stdin: str | None = None, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["kubectl", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
            )
        return result

    run("apply", "-f", "-", stdin=yaml.safe_dump_all(crds()))
    return run


def manifest(*objects: dict[str, Any]) -> str:
    return yaml.safe_dump_all(list(objects))


def make_namespace(kubectl: Kubectl, name: str) -> str:
    kubectl(
        "apply",
        "-f",
        "-",
        stdin=manifest({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
    )
    return name


def test_crds_are_listed_and_established(kubectl: Kubectl) -> None:
    out = kubectl("get", "crd").stdout
    assert f"widgets.{GROUP}" in out and f"gadgets.{GROUP}" in out
    kubectl("wait", "--for=condition=Established", f"crd/widgets.{GROUP}", "--timeout=10s")
    resources = kubectl("api-resources", f"--api-group={GROUP}").stdout
    assert "wdg" in resources and "Widget" in resources


def test_apply_created_unchanged_configured(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "apply-cycle")
    body = manifest(widget("w1", ns, size=3))
    assert "widget.lctest.example.com/w1 created" in kubectl("apply", "-f", "-", stdin=body).stdout
    assert (
        "widget.lctest.example.com/w1 unchanged" in kubectl("apply", "-f", "-", stdin=body).stdout
    )
    changed = manifest(widget("w1", ns, size=4))
    assert (
        "widget.lctest.example.com/w1 configured"
        in kubectl("apply", "-f", "-", stdin=changed).stdout
    )
    obj = json.loads(kubectl("get", "widget", "w1", "-n", ns, "-o", "json").stdout)
    assert obj["spec"] == {"size": 4, "color": "red"}  # default applied
    assert obj["metadata"]["generation"] == 2


def test_apply_rejects_unknown_fields_and_schema_violations(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "apply-invalid")
    unknown = kubectl("apply", "-f", "-", stdin=manifest(widget("w1", ns, bogus=1)), check=False)
    assert unknown.returncode != 0
    assert 'unknown field "spec.bogus"' in unknown.stderr
    bad = kubectl(
        "apply", "-f", "-", stdin=manifest(widget("w2", ns, size=30, color="green")), check=False
    )
    assert bad.returncode != 0
    assert "spec.size" in bad.stderr and "spec.color" in bad.stderr


def test_get_shows_printer_columns_and_yaml(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "columns")
    kubectl("apply", "-f", "-", stdin=manifest(widget("w1", ns, size=5, color="blue")))
    table = kubectl("get", "wdg", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "SIZE", "COLOR", "READY", "AGE"]
    assert table[1].split()[:3] == ["w1", "5", "blue"]
    as_yaml = yaml.safe_load(kubectl("get", "wdg", "w1", "-n", ns, "-o", "yaml").stdout)
    assert as_yaml["kind"] == "Widget" and as_yaml["spec"]["size"] == 5
    assert as_yaml["metadata"]["resourceVersion"].isdigit()
    everything = kubectl("get", "lctest", "-n", ns).stdout
    assert everything.splitlines()[1].split()[0] == "w1"


def test_describe_shows_events(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "describe")
    kubectl("apply", "-f", "-", stdin=manifest(widget("w1", ns)))
    uid = kubectl("get", "wdg", "w1", "-n", ns, "-o", "jsonpath={.metadata.uid}").stdout
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "w1.ev1", "namespace": ns},
        "involvedObject": {
            "apiVersion": f"{GROUP}/v1",
            "kind": "Widget",
            "name": "w1",
            "namespace": ns,
            "uid": uid,
        },
        "reason": "Reconciled",
        "message": "all parts in place",
        "type": "Normal",
        "source": {"component": "widget-operator"},
        "count": 1,
    }
    kubectl("apply", "-f", "-", stdin=manifest(event))
    described = kubectl("describe", "wdg", "w1", "-n", ns).stdout
    assert "Reconciled" in described and "all parts in place" in described


def test_patch_merge_json_and_status(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "patching")
    kubectl("apply", "-f", "-", stdin=manifest(widget("w1", ns)))
    kubectl("patch", "wdg", "w1", "-n", ns, "--type=merge", "-p", '{"spec":{"size":6}}')
    patch_w1(kubectl, ns, '[{"op":"replace","path":"/spec/color","value":"blue"}]')
    status = '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}'
    kubectl("patch", "wdg", "w1", "-n", ns, "--subresource=status", "--type=merge", "-p", status)
    obj = json.loads(kubectl("get", "wdg", "w1", "-n", ns, "-o", "json").stdout)
    assert obj["spec"]["size"] == 6 and obj["spec"]["color"] == "blue"
    assert obj["status"]["conditions"][0]["status"] == "True"
    assert obj["metadata"]["generation"] == 3  # two spec changes; the status write does not count
    failed = patch_w1(kubectl, ns, '[{"op":"test","path":"/spec/size","value":1}]', check=False)
    assert failed.returncode != 0
    smp = kubectl("patch", "wdg", "w1", "-n", ns, "-p", '{"spec":{"size":2}}', check=False)
    assert (
        smp.returncode != 0
        and "UnsupportedMediaType" in smp.stderr
        or "not supported" in smp.stderr
    )


def test_get_watch_sees_a_change(kubectl: Kubectl, localcluster_module: RunningCluster) -> None:
    ns = make_namespace(kubectl, "watching")
    kubectl("apply", "-f", "-", stdin=manifest(widget("w1", ns, size=2)))
    watcher = subprocess.Popen(
        ["kubectl", "get", "wdg", "-n", ns, "-w", "--request-timeout=20s"],
        env=localcluster_module.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        header = watcher.stdout.readline()
        assert header.split()[:2] == ["NAME", "SIZE"]
        assert watcher.stdout.readline().split()[:2] == ["w1", "2"]
        kubectl("patch", "wdg", "w1", "-n", ns, "--type=merge", "-p", '{"spec":{"size":9}}')
        assert watcher.stdout.readline().split()[:2] == ["w1", "9"]
    finally:
        watcher.kill()
        watcher.communicate()


def test_wait_for_condition(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "waiting")
    kubectl("apply", "-f", "-", stdin=manifest(widget("w1", ns)))
    not_yet = kubectl(
        "wait", "--for=condition=Ready", "wdg/w1", "-n", ns, "--timeout=1s", check=False
    )
    assert not_yet.returncode != 0
    status = '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}'
    kubectl("patch", "wdg", "w1", "-n", ns, "--subresource=status", "--type=merge", "-p", status)
    out = kubectl("wait", "--for=condition=Ready", "wdg/w1", "-n", ns, "--timeout=10s").stdout
    assert "condition met" in out


def test_delete_waits_for_finalizer(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "finalizing")
    obj = widget("w1", ns)
    obj["metadata"]["finalizers"] = [f"{GROUP}/cleanup"]
    kubectl("apply", "-f", "-", stdin=manifest(obj))
    kubectl("delete", "wdg", "w1", "-n", ns, "--wait=false")
    pending = json.loads(kubectl("get", "wdg", "w1", "-n", ns, "-o", "json").stdout)
    assert pending["metadata"]["deletionTimestamp"]
    blocked = kubectl("delete", "wdg", "w1", "-n", ns, "--timeout=1s", check=False)
    assert blocked.returncode != 0  # still held by the finalizer
    patch_w1(kubectl, ns, '[{"op":"remove","path":"/metadata/finalizers"}]', check=False)
    deleted = kubectl(
        "delete", "wdg", "w1", "-n", ns, "--wait=true", "--ignore-not-found", "--timeout=10s"
    )
    assert deleted.returncode == 0
    assert kubectl("get", "wdg", "w1", "-n", ns, check=False).returncode != 0


def test_namespace_deletion_cascades(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "doomed")
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c1", "namespace": ns},
        "data": {"a": "b"},
    }
    kubectl("apply", "-f", "-", stdin=manifest(widget("w1", ns), widget("w2", ns), cm))
    kubectl("delete", "namespace", ns, "--wait=true", "--timeout=20s")
    assert kubectl("get", "namespace", ns, check=False).returncode != 0
    assert (
        "No resources found" in kubectl("get", "wdg", "-A").stderr
        or ns not in kubectl("get", "wdg", "-A").stdout
    )


def test_builtin_reapply_uses_strategic_merge(kubectl: Kubectl) -> None:
    ns = make_namespace(kubectl, "builtins")

    def deployment(containers: list[dict[str, Any]]) -> str:
        return manifest(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "d1", "namespace": ns},
                "spec": {
                    "selector": {"matchLabels": {"app": "d1"}},
                    "template": {
                        "metadata": {"labels": {"app": "d1"}},
                        "spec": {"containers": containers},
                    },
                },
            }
        )

    kubectl(
        "apply",
        "-f",
        "-",
        stdin=deployment(
            [
                {"name": "a", "image": "img:1", "env": [{"name": "X", "value": "1"}]},
                {"name": "b", "image": "img:b"},
            ]
        ),
    )
    out = kubectl("apply", "-f", "-", stdin=deployment([{"name": "a", "image": "img:2"}])).stdout
    assert "configured" in out
    got = json.loads(kubectl("get", "deploy", "d1", "-n", ns, "-o", "json").stdout)
    assert got["spec"]["template"]["spec"]["containers"] == [{"name": "a", "image": "img:2"}]
    unchanged = kubectl(
        "apply", "-f", "-", stdin=deployment([{"name": "a", "image": "img:2"}])
    ).stdout
    assert "unchanged" in unchanged
    names = kubectl("get", "deploy", "-n", ns).stdout.split()
    assert names[:2] == ["NAME", "AGE"] and "d1" in names


def test_create_subcommands_for_builtins(kubectl: Kubectl) -> None:
    """`kubectl create namespace|configmap|secret|serviceaccount` send protobuf bodies."""
    assert (
        "namespace/made-by-create created"
        in kubectl("create", "namespace", "made-by-create").stdout
    )
    ns = "made-by-create"
    kubectl("create", "configmap", "c1", "-n", ns, "--from-literal=a=b")
    kubectl("create", "secret", "generic", "s1", "-n", ns, "--from-literal=p=q")
    kubectl("create", "serviceaccount", "sa1", "-n", ns)
    cm = json.loads(kubectl("get", "configmap", "c1", "-n", ns, "-o", "json").stdout)
    assert cm["data"] == {"a": "b"}
    secret = json.loads(kubectl("get", "secret", "s1", "-n", ns, "-o", "json").stdout)
    assert secret["data"] == {"p": "cQ=="} and secret["type"] == "Opaque"
    assert "sa1" in kubectl("get", "serviceaccounts", "-n", ns).stdout
    unsupported = kubectl("create", "deployment", "d1", "--image=x", "-n", ns, check=False)
    assert unsupported.returncode != 0 and "kubectl apply" in unsupported.stderr

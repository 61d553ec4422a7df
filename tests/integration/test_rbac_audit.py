"""RBAC audit (issue 3): every call the running operators make is granted by the declared table.

The embedded control plane records each request in RBAC terms (verb, API group, resource,
subresource) with the user of its bearer token. The operator gets a kubeconfig with a token of
its own (user `kubeloop-operator`), so its calls are told apart from this test's (kubectl and
the Python client, with the admin token) by identity, not by guesswork. The test runs the real
operator process (`python -m operators --standalone`, as `kubeloop up` runs it)
through a real lifecycle: the example resources and an invalid MLModel are applied, reconciled
until their status shows it, deleted through the finalizer, and the operator is stopped. Then
every (group, resource[/subresource], verb) the operator used must be granted by
`operators/permissions.py`, whose table the RBAC manifests and the Helm chart are proven to
grant exactly (`operators/tests/test_rbac.py`). Whatever the operators do as they grow, this test
judges what they really did.

This module imports no operator package: importing one registers its Kopf handlers in Kopf's
process-wide registry, which would leak into in-process Kopf tests sharing the worker.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from localcluster.audit import AuditRecord
from operators.permissions import is_granted
from tests.support.localcluster import RunningCluster
from tests.support.stack import OperatorHarness
from tests.support.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = sorted((ROOT / "examples" / "resources").glob("*.yaml"))
INVALID_MLMODEL = ROOT / "examples" / "invalid" / "mlmodel-bad-version.yaml"
GROUP, VERSION = "kubeloop.io", "v1alpha1"
OPERATOR_USER = "kubeloop-operator"
ADMIN_USER = "localcluster-admin"

pytestmark = pytest.mark.slow


def kubectl(env: dict[str, str], *args: str, timeout: float = 60) -> str:
    result = subprocess.run(
        ["kubectl", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture
def custom_api(localcluster_audited: RunningCluster) -> Iterator[client.CustomObjectsApi]:
    api = config.new_client_from_config(config_file=str(localcluster_audited.kubeconfig))
    yield client.CustomObjectsApi(api)
    api.close()


def plural_of(doc: dict[str, Any]) -> str:
    return f"{doc['kind'].lower()}s"


def reconciled(custom: client.CustomObjectsApi, plural: str, name: str) -> bool:
    """The operator has written a status for this generation (whatever its verdict)."""
    obj = custom.get_namespaced_custom_object(GROUP, VERSION, "default", plural, name)
    status = obj.get("status") or {}
    generation = obj["metadata"].get("generation")
    return bool(status.get("conditions")) and status.get("observedGeneration") == generation


def gone_after_nudge(custom: client.CustomObjectsApi, plural: str, name: str) -> bool:
    """Whether the object is gone; if not, touch it so Kopf looks at it again.

    Kopf removes its finalizer only once the object's timers have exited, and it re-checks a
    stopping timer only every `settings.background.cancellation_polling` seconds (60 by
    default) unless a new event arrives. A harmless annotation from this test is that event,
    so the finalizer path finishes in seconds rather than a minute.
    """
    nudge = {"metadata": {"annotations": {"test.kubeloop.io/nudge": str(time.monotonic())}}}
    try:
        custom.patch_namespaced_custom_object(GROUP, VERSION, "default", plural, name, nudge)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def operator_calls_on(cluster: RunningCluster, plural: str, name: str) -> list[str]:
    return [
        f"{r.verb} {r.rbac_resource}"
        for r in cluster.audit_records()
        if r.user == OPERATOR_USER and r.resource == plural and r.name == name
    ]


def ungranted(records: list[AuditRecord]) -> list[str]:
    return sorted(
        {
            f"{r.verb} {r.api_group or 'core'}/{r.rbac_resource}"
            for r in records
            if not is_granted(r.api_group, r.rbac_resource, r.verb)
        }
    )


def test_operator_uses_only_granted_permissions(
    localcluster_audited: RunningCluster, custom_api: client.CustomObjectsApi, tmp_path: Path
):
    cluster = localcluster_audited
    admin_env = cluster.env()
    kubectl(admin_env, "apply", "-f", str(CRDS))
    kubectl(admin_env, "wait", "--for=condition=Established", "crd", "--all", "--timeout=30s")
    # The CRDs are the admin's (kubectl above): the operator's identity only runs the operator.
    operator = OperatorHarness(cluster.add_user(OPERATOR_USER), tmp_path, install_crds=False)
    operator.start()
    paths = [*EXAMPLES, INVALID_MLMODEL]
    documents = [yaml.safe_load(path.read_text()) for path in paths]
    try:
        for path in paths:
            kubectl(admin_env, "apply", "-f", str(path))
        for doc in documents:  # the first wait includes the operator's start (imports)
            plural, name = plural_of(doc), doc["metadata"]["name"]
            done = functools.partial(reconciled, custom_api, plural, name)
            wait_for(done, 120, f"{plural}/{name} reconciled", 0.5, operator.logs)
        for doc in documents:
            kubectl(admin_env, "delete", plural_of(doc), doc["metadata"]["name"], "--wait=false")
        for doc in documents:  # through the finalizer: gone only once the operator lets go
            plural, name = plural_of(doc), doc["metadata"]["name"]
            gone = functools.partial(gone_after_nudge, custom_api, plural, name)
            calls = functools.partial(operator_calls_on, cluster, plural, name)
            context = lambda c=calls: f"{c()}\n{operator.logs()}"  # noqa: E731
            wait_for(gone, 60, f"{plural}/{name} deleted", 0.5, context)
    finally:
        returncode = operator.stop()
        operator.close()
    assert returncode in (0, 130), operator.logs()  # a clean exit on SIGINT, no crash

    records = cluster.audit_records()
    users = {r.user for r in records}
    assert users <= {OPERATOR_USER, ADMIN_USER}, users
    operator_calls = [r for r in records if r.user == OPERATOR_USER and r.resource]
    # The audit saw the operator at work: watching, patching status, removing its finalizer.
    used = {(r.api_group, r.rbac_resource, r.verb) for r in operator_calls}
    assert (GROUP, "mlmodels", "watch") in used, used
    assert any(res.endswith("/status") and verb == "patch" for _, res, verb in used), used
    assert (GROUP, "featureviews", "patch") in used, used
    assert ungranted(operator_calls) == [], (
        "the operator made calls operators/permissions.py does not grant:\n"
        + "\n".join(ungranted(operator_calls))
        + "\n"
        + operator.logs()
    )


def test_audit_tells_users_apart_and_is_off_by_default(
    localcluster: RunningCluster, localcluster_audited: RunningCluster
):
    for cluster in (localcluster, localcluster_audited):
        second = cluster.add_user("second")
        env = {**cluster.env(), "KUBECONFIG": str(second)}
        kubectl(env, "create", "configmap", "c")
        kubectl(cluster.env(), "get", "configmap", "c", "-o", "json")
        kubectl(env, "delete", "configmap", "c")
    assert localcluster.audit_records() == []
    records = [r for r in localcluster_audited.audit_records() if r.resource == "configmaps"]
    seen = [(r.user, r.verb, r.name or None) for r in records]
    # kubectl may read back what it deleted; what matters is who did what, in order.
    assert seen[:3] == [
        ("second", "create", None),
        (ADMIN_USER, "get", "c"),
        ("second", "delete", "c"),
    ], seen
    assert [s for s in seen if s[0] == ADMIN_USER] == [(ADMIN_USER, "get", "c")], seen
    assert all(r.namespace == "default" for r in records)
    localcluster_audited.clear_audit()
    assert localcluster_audited.audit_records() == []

"""Issue 16 against the embedded control plane: its TokenReview, SubjectAccessReview and
TokenRequest (localcluster/reviews.py, localcluster/rbac.py) through the official Kubernetes
client, and the monitor deciding feedback by them with the shipped label-job Role
(manifests/samples/label-job-rbac.yaml)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from contracts import cloudevents as ce
from contracts.auth import MONITOR_AUDIENCE
from services.monitor import MonitorService, MonitorSettings
from services.monitor.outcomes.client import feedback_event
from services.monitor.tests.events import binary_headers
from services.monitor.tests.http_api import AUTH_HEADERS, TEST_AUTH, running
from tests.support.localcluster import RunningCluster

ROOT = Path(__file__).resolve().parents[2]
LABEL_JOB_RBAC = ROOT / "manifests" / "samples" / "label-job-rbac.yaml"
NAMESPACE = "team-a"
BASE = f"/v1/models/{NAMESPACE}/churn"


def api_client(cluster: RunningCluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


def setup_rbac(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": NAMESPACE}})
    rbac = client.RbacAuthorizationV1Api(api)
    for doc in yaml.safe_load_all(LABEL_JOB_RBAC.read_text()):
        doc["metadata"]["namespace"] = NAMESPACE
        for subject in doc.get("subjects", []):
            subject["namespace"] = NAMESPACE
        if doc["kind"] == "ServiceAccount":
            core.create_namespaced_service_account(NAMESPACE, doc)
        elif doc["kind"] == "Role":
            rbac.create_namespaced_role(NAMESPACE, doc)
        else:
            rbac.create_namespaced_role_binding(NAMESPACE, doc)
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "intruder"}})


def service_account_token(api: client.ApiClient, name: str, audience: str) -> str:
    request = {"spec": {"audiences": [audience], "expirationSeconds": 3600}}
    answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, NAMESPACE, request)
    token: str = answer.status.token
    return token


def test_token_review_and_subject_access_review_as_kube_apiserver_answers(
    localcluster: RunningCluster,
) -> None:
    api = api_client(localcluster)
    setup_rbac(api)
    token = service_account_token(api, "label-job", MONITOR_AUDIENCE)
    authn = client.AuthenticationV1Api(api)
    review = authn.create_token_review({"spec": {"token": token, "audiences": [MONITOR_AUDIENCE]}})
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{NAMESPACE}:label-job"
    assert f"system:serviceaccounts:{NAMESPACE}" in review.status.user.groups
    assert review.status.audiences == [MONITOR_AUDIENCE]
    # The same token is not valid for the API server's audience (or any other).
    for audiences in ([], ["https://elsewhere"]):
        other = authn.create_token_review({"spec": {"token": token, "audiences": audiences}})
        assert other.status.authenticated is False and other.status.error
    garbage = authn.create_token_review({"spec": {"token": token[:-2] + "xx"}})
    assert garbage.status.authenticated is False
    # The admin's kubeconfig token is an API-server token.
    admin = authn.create_token_review({"spec": {"token": localcluster.token}})
    assert admin.status.authenticated is True and "system:masters" in admin.status.user.groups
    with pytest.raises(ApiException) as empty:
        authn.create_token_review({"spec": {"token": ""}})
    assert empty.value.status == 400

    authz = client.AuthorizationV1Api(api)

    def allowed(user: str, verb: str, subresource: str, namespace: str = NAMESPACE) -> bool:
        attributes = {
            "namespace": namespace,
            "verb": verb,
            "group": "kubeloop.io",
            "resource": "mlmodels",
            "subresource": subresource,
            "name": "churn",
        }
        spec = {"user": user, "groups": ["system:authenticated"], "resourceAttributes": attributes}
        answer = authz.create_subject_access_review({"spec": spec})
        return bool(answer.status.allowed)

    job = f"system:serviceaccount:{NAMESPACE}:label-job"
    assert allowed(job, "create", "feedback")
    assert not allowed(job, "create", "feedback", namespace="team-b")
    assert not allowed(job, "get", "status")
    assert not allowed(job, "delete", "")
    assert not allowed(f"system:serviceaccount:{NAMESPACE}:intruder", "create", "feedback")
    with pytest.raises(ApiException) as neither:
        authz.create_subject_access_review({"spec": {"user": job}})
    assert neither.value.status == 422
    # A deleted ServiceAccount's tokens stop authenticating.
    client.CoreV1Api(api).delete_namespaced_service_account("label-job", NAMESPACE)
    gone = authn.create_token_review({"spec": {"token": token, "audiences": [MONITOR_AUDIENCE]}})
    assert gone.status.authenticated is False


def test_reviews_need_create_permission_like_any_other_request(
    localcluster: RunningCluster,
) -> None:
    """A client that is not allowed to create tokenreviews gets kube-apiserver's 403."""
    other = config.new_client_from_config(config_file=str(localcluster.add_user("nobody")))
    with pytest.raises(ApiException) as refused:
        client.AuthenticationV1Api(other).create_token_review({"spec": {"token": "x"}})
    assert refused.value.status == 403


async def _post_labels(http: aiohttp.ClientSession, url: str, token: str, rid: str) -> int:
    events = [feedback_event({"requestId": rid, "label": 1})]
    headers = {"content-type": ce.BATCH_CONTENT_TYPE, "Authorization": f"Bearer {token}"}
    async with http.post(url + BASE + "/feedback", data=json.dumps(events), headers=headers) as r:
        return r.status


async def _scenario(monitor: MonitorService, tokens: dict[str, str]) -> dict[str, Any]:
    statuses: dict[str, Any] = {}
    async with running(monitor), aiohttp.ClientSession() as http:
        async with http.put(
            monitor.url + BASE + "/config", json={"stableVersion": "1"}, headers=AUTH_HEADERS
        ) as r:
            assert r.status == 200
        for rid in ("r1", "r2"):
            for kind, body in (
                ("request", b'{"instances": [[1.0]]}'),
                ("response", b'{"predictions": [0.9]}'),
            ):
                headers = {**binary_headers(kind, rid, "1", namespace=NAMESPACE), **AUTH_HEADERS}
                async with http.post(monitor.url + "/", data=body, headers=headers) as r:
                    assert r.status == 200
        for who, token in tokens.items():
            statuses[who] = await _post_labels(http, monitor.url, token, "r1")
            fast = f"http://127.0.0.1:{monitor.ingest_port}"
            statuses[who + "@fast"] = await _post_labels(http, fast, token, "r2")
        await asyncio.sleep(0.1)
        statuses["sizes"] = monitor.outcomes.sizes()
    return statuses


def test_the_monitor_authorizes_feedback_through_the_embedded_control_plane(
    localcluster: RunningCluster, tmp_path: Path
) -> None:
    api = api_client(localcluster)
    setup_rbac(api)
    tokens = {
        "label-job": service_account_token(api, "label-job", MONITOR_AUDIENCE),
        "intruder": service_account_token(api, "intruder", MONITOR_AUDIENCE),
        "wrong-audience": service_account_token(api, "label-job", "https://elsewhere"),
    }
    auth = TEST_AUTH.model_copy(update={"kubernetes": True, "kubeconfig": localcluster.kubeconfig})
    settings = MonitorSettings(auth=auth, port=0, ingest_port=0, data_dir=tmp_path / "monitor")
    statuses = asyncio.run(_scenario(MonitorService(settings), tokens))
    assert statuses["label-job"] == 200 and statuses["label-job@fast"] == 200
    assert statuses["intruder"] == 403 and statuses["intruder@fast"] == 403
    assert statuses["wrong-audience"] == 401 and statuses["wrong-audience@fast"] == 401

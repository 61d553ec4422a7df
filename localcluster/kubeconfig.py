"""The kubeconfig file that points kubectl, Kopf and client libraries at a local cluster."""

from __future__ import annotations

import base64

import yaml

CONTEXT = "localcluster"


def kubeconfig_text(url: str, token: str, ca_pem: bytes, namespace: str = "default") -> str:
    cluster = {"server": url, "certificate-authority-data": base64.b64encode(ca_pem).decode()}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": cluster}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [
            {
                "name": CONTEXT,
                "context": {"cluster": CONTEXT, "user": CONTEXT, "namespace": namespace},
            }
        ],
        "current-context": CONTEXT,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)

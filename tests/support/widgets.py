"""Manifests shared by the localcluster tests: the Widget (namespaced, validated) and Gadget (cluster-scoped) CRDs."""

from __future__ import annotations

import copy
from typing import Any

GROUP = "lctest.example.com"

WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wdg"],
            "categories": ["lctest"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Color", "type": "string", "jsonPath": ".spec.color"},
                    {
                        "name": "Ready",
                        "type": "string",
                        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
                    },
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {
                                        "type": "string",
                                        "enum": ["red", "blue"],
                                        "default": "red",
                                    },
                                    "code": {"type": "string", "pattern": "^[a-z]+$"},
                                    "port": {"x-kubernetes-int-or-string": True},
                                    "note": {"type": "string", "nullable": True},
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def crd(
    group: str,
    kind: str,
    plural: str,
    scope: str,
    schema: dict[str, Any],
    names: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A one-version (v1) CustomResourceDefinition with `schema` as its openAPIV3Schema."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {"plural": plural, "kind": kind, **(names or {})},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


PRESERVE_UNKNOWN: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
GADGET_CRD = crd(GROUP, "Gadget", "gadgets", "Cluster", PRESERVE_UNKNOWN, {"singular": "gadget"})


def widget(name: str, namespace: str, size: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"size": size, **spec},
    }


def crds() -> list[dict[str, Any]]:
    return [copy.deepcopy(WIDGET_CRD), copy.deepcopy(GADGET_CRD)]


def install_crds(api_client: Any) -> None:
    """Create the Widget and Gadget CRDs through a kubernetes `ApiClient`."""
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(api_client)
    for definition in crds():
        extensions.create_custom_resource_definition(definition)

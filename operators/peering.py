"""Kopf peering: one active kubeloop operator per cluster, however many replicas or releases.

Kopf's peering (https://docs.kopf.dev/en/stable/peering/): every operator writes a keep-alive
into the `status` of one peering object; an operator that sees a live peer of higher priority
pauses, and operators of *equal* priority all pause ("freeze, leaving the cluster unserved").
So kubeloop

- runs with a named peering (`kopf.operator(peering_name=...)`, Kopf's `--peering`), which Kopf
  treats as mandatory: without the peering CRD, or before the operator has seen the peering
  object, it stays paused rather than acting alone (`settings.peering.mandatory`);
- creates that object at start-up when missing (Kopf never creates it; the CRDs ship in
  manifests/crd/kopf and the chart's crds/), so every replica and every Helm release meets in
  the same cluster-wide `ClusterKopfPeering` named `kubeloop`;
- gives each process its own priority, drawn at random below Kopf's `--dev` priority (666), so
  among N live operators exactly one (the highest) acts and the others wait; a developer's
  `--dev` operator still takes over. A tie (chance 1/600 for two) freezes both, which is safe,
  and clears when either restarts.

`--standalone` (no peering at all) is for the embedded single-process setup (`kubeloop up`).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Protocol

PEERING_NAME = "kubeloop"
PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"
CLUSTER_PEERINGS = "clusterkopfpeerings"
CLUSTER_PEERING_KIND = "ClusterKopfPeering"
DEV_PRIORITY = 666  # Kopf's `--dev` priority: a developer's operator outranks every deployed one
PRIORITY_RANGE = 600

logger = logging.getLogger(__name__)


class ClusterObjects(Protocol):
    """The part of kubernetes' CustomObjectsApi this module calls."""

    def create_cluster_custom_object(
        self, group: str, version: str, plural: str, body: dict[str, Any]
    ) -> Any: ...


def draw_priority(randbelow: Any = secrets.randbelow) -> int:
    """A per-process priority in [0, 600): distinct peers, one winner; below Kopf's --dev."""
    return int(randbelow(PRIORITY_RANGE))


def cluster_peering(name: str = PEERING_NAME) -> dict[str, Any]:
    return {
        "apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}",
        "kind": CLUSTER_PEERING_KIND,
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "kubeloop"}},
    }


def ensure_cluster_peering(api: ClusterObjects, name: str = PEERING_NAME) -> bool:
    """Create the ClusterKopfPeering unless it exists; True when this call created it.

    409 (another replica or release made it first) is the normal race, not an error. Any other
    failure propagates: with mandatory peering the operator would otherwise sit paused for ever
    with no sign why, so a start-up that fails loudly (and is retried by the kubelet) is better.
    """
    from kubernetes.client.exceptions import ApiException

    try:
        api.create_cluster_custom_object(
            PEERING_GROUP, PEERING_VERSION, CLUSTER_PEERINGS, cluster_peering(name)
        )
    except ApiException as error:
        if error.status == 409:
            return False
        raise
    logger.info("created %s %s", CLUSTER_PEERING_KIND, name)
    return True

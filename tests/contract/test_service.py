"""The Service the MLModel operator owns, against the Kubernetes API of the versions a kind
cluster may run (kubernetes-validate's schemas, strict: unknown fields refused) and the
``kubernetes`` package's models.

Break 4 of issue #13: the VirtualService host needs a Service behind it; this one is
selector-less ClusterIP with an HTTP port (docs/kind.md says why not ExternalName).
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from localcluster.serving.kserve_types import problems
from operators.backends.serving import Owner, model_service

VERSIONS = ["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"]
OWNER = Owner(namespace="team", name="churn", uid="0d6f6f9e-4f3b-4a55-9b8e-2f6a1c1d2e3f")


@pytest.mark.parametrize("version", VERSIONS)
def test_the_service_validates_strictly(version: str) -> None:
    kubernetes_validate.validate(model_service(OWNER), version, strict=True)


def test_the_service_fits_the_client_models() -> None:
    assert problems(model_service(OWNER), "V1Service", "service") == []


def test_the_check_can_fail() -> None:
    body = model_service(OWNER)
    body["spec"]["ports"][0]["targetport"] = 8080
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(body, VERSIONS[-1], strict=True)
    assert problems(body, "V1Service", "service") == [
        "service.spec.ports[0].targetport: unknown field"
    ]

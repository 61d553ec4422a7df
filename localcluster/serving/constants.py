"""The local serving stack's view of the wire contracts (``c.<NAME>`` in its modules).

Nothing is defined here: headers and roles are :mod:`contracts.headers`, the inference
CloudEvents :mod:`contracts.cloudevents` (attribute names follow KServe's logger; the
``kubeloop*`` extensions are ours), labels, annotations and the KServe/Istio kinds
:mod:`contracts.kube`. The predictor, the router, the controller and the monitor all read
the same definitions.
"""

from __future__ import annotations

from contracts.cloudevents import COMPONENT_HEADER as CE_COMPONENT_HEADER
from contracts.cloudevents import ENDPOINT_HEADER as CE_ENDPOINT_HEADER
from contracts.cloudevents import ID_HEADER as CE_ID_HEADER
from contracts.cloudevents import INFERENCESERVICE_HEADER as CE_INFERENCESERVICE_HEADER
from contracts.cloudevents import LATENCY_MS_HEADER as CE_LATENCY_MS_HEADER
from contracts.cloudevents import (
    LOGGER_MODE_ALL,
    LOGGER_MODE_REQUEST,
    LOGGER_MODE_RESPONSE,
    LOGGER_MODES,
)
from contracts.cloudevents import METADATA_HEADER as CE_METADATA_HEADER
from contracts.cloudevents import MODEL_HEADER as CE_MODEL_HEADER
from contracts.cloudevents import NAMESPACE_HEADER as CE_NAMESPACE_HEADER
from contracts.cloudevents import ROLE_HEADER as CE_ROLE_HEADER
from contracts.cloudevents import SOURCE_HEADER as CE_SOURCE_HEADER
from contracts.cloudevents import SPECVERSION as CE_SPECVERSION
from contracts.cloudevents import SPECVERSION_HEADER as CE_SPECVERSION_HEADER
from contracts.cloudevents import STATUS_HEADER as CE_STATUS_HEADER
from contracts.cloudevents import TIME_HEADER as CE_TIME_HEADER
from contracts.cloudevents import TYPE_HEADER as CE_TYPE_HEADER
from contracts.cloudevents import TYPE_REQUEST as CE_TYPE_REQUEST
from contracts.cloudevents import TYPE_RESPONSE as CE_TYPE_RESPONSE
from contracts.cloudevents import VERSION_HEADER as CE_MODEL_VERSION_HEADER
from contracts.headers import (
    REQUEST_ID_HEADER,
    ROLE_CANDIDATE,
    ROLE_HEADER,
    ROLE_SHADOW,
    ROLE_STABLE,
    ROLES,
)
from contracts.kube import (
    ISVC_GROUP,
    ISVC_PLURAL,
    ISVC_VERSION,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
    MLMODEL_LABEL,
    MODEL_VERSION_LABEL,
    ROUTER_PORT_ANNOTATION,
    VS_GROUP,
    VS_PLURAL,
    VS_VERSION,
)

__all__ = [
    "CE_COMPONENT_HEADER",
    "CE_ENDPOINT_HEADER",
    "CE_ID_HEADER",
    "CE_INFERENCESERVICE_HEADER",
    "CE_LATENCY_MS_HEADER",
    "CE_METADATA_HEADER",
    "CE_MODEL_HEADER",
    "CE_MODEL_VERSION_HEADER",
    "CE_NAMESPACE_HEADER",
    "CE_ROLE_HEADER",
    "CE_SOURCE_HEADER",
    "CE_SPECVERSION",
    "CE_SPECVERSION_HEADER",
    "CE_STATUS_HEADER",
    "CE_TIME_HEADER",
    "CE_TYPE_HEADER",
    "CE_TYPE_REQUEST",
    "CE_TYPE_RESPONSE",
    "ISVC_GROUP",
    "ISVC_PLURAL",
    "ISVC_VERSION",
    "LOGGER_MODES",
    "LOGGER_MODE_ALL",
    "LOGGER_MODE_REQUEST",
    "LOGGER_MODE_RESPONSE",
    "MANAGED_BY_LABEL",
    "MANAGED_BY_VALUE",
    "MLMODEL_LABEL",
    "MODEL_VERSION_LABEL",
    "REQUEST_ID_HEADER",
    "ROLES",
    "ROLE_CANDIDATE",
    "ROLE_HEADER",
    "ROLE_SHADOW",
    "ROLE_STABLE",
    "ROUTER_PORT_ANNOTATION",
    "VS_GROUP",
    "VS_PLURAL",
    "VS_VERSION",
]

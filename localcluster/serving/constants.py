"""Names shared by the predictor, the router, the controller and the monitor that consumes them.

The CloudEvent attribute names follow KServe's logger (pkg/logger in kserve/kserve); the
``kubeloop*`` extensions are ours. CloudEvent extension names must be lowercase alphanumeric,
so role and latency are sent as ``ce-kubelooprole`` / ``ce-kubelooplatencyms`` (the monitor
also accepts the dashed spellings first agreed, kept below for readers of old events).
"""

from __future__ import annotations

from typing import Final

# --- request headers -------------------------------------------------------------------
REQUEST_ID_HEADER: Final = "x-request-id"
ROLE_HEADER: Final = "x-kubeloop-role"

ROLE_STABLE: Final = "stable"
ROLE_CANDIDATE: Final = "candidate"
ROLE_SHADOW: Final = "shadow"
ROLES: Final = (ROLE_STABLE, ROLE_CANDIDATE, ROLE_SHADOW)

# --- CloudEvents (binary mode: attributes are HTTP headers) -----------------------------
CE_SPECVERSION: Final = "1.0"
CE_TYPE_REQUEST: Final = "org.kubeflow.serving.inference.request"
CE_TYPE_RESPONSE: Final = "org.kubeflow.serving.inference.response"

CE_ID_HEADER: Final = "ce-id"
CE_SPECVERSION_HEADER: Final = "ce-specversion"
CE_TYPE_HEADER: Final = "ce-type"
CE_SOURCE_HEADER: Final = "ce-source"
CE_TIME_HEADER: Final = "ce-time"
# KServe logger extensions
CE_INFERENCESERVICE_HEADER: Final = "ce-inferenceservicename"
CE_NAMESPACE_HEADER: Final = "ce-namespace"
CE_COMPONENT_HEADER: Final = "ce-component"
CE_ENDPOINT_HEADER: Final = "ce-endpoint"
CE_METADATA_HEADER: Final = "ce-metadata"
# kubeloop extensions
CE_MODEL_VERSION_HEADER: Final = "ce-kubeloopversion"
CE_MODEL_HEADER: Final = "ce-kubeloopmodel"  # the MLModel name, when known
CE_ROLE_HEADER: Final = "ce-kubelooprole"
CE_STATUS_HEADER: Final = "ce-kubeloopstatus"
CE_LATENCY_MS_HEADER: Final = "ce-kubelooplatencyms"
CE_ROLE_HEADER_DASHED: Final = "ce-kubeloop-role"
CE_LATENCY_MS_HEADER_DASHED: Final = "ce-kubeloop-latency-ms"

LOGGER_MODE_ALL: Final = "all"
LOGGER_MODE_REQUEST: Final = "request"
LOGGER_MODE_RESPONSE: Final = "response"
LOGGER_MODES: Final = (LOGGER_MODE_ALL, LOGGER_MODE_REQUEST, LOGGER_MODE_RESPONSE)

# --- Kubernetes resources ---------------------------------------------------------------
ISVC_GROUP: Final = "serving.kserve.io"
ISVC_VERSION: Final = "v1beta1"
ISVC_PLURAL: Final = "inferenceservices"
VS_GROUP: Final = "networking.istio.io"
VS_VERSION: Final = "v1beta1"
VS_PLURAL: Final = "virtualservices"

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "kubeloop"
# The MLModel operator labels each per-version InferenceService with its model version and
# MLModel name (labels or annotations; labels win).
MODEL_VERSION_LABEL: Final = "kubeloop.io/model-version"
MLMODEL_LABEL: Final = "kubeloop.io/mlmodel"
# Optional fixed port for a VirtualService's router (otherwise a free port is picked).
ROUTER_PORT_ANNOTATION: Final = "kubeloop.io/router-port"

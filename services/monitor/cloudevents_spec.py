"""The monitor's view of the inference CloudEvent contract (``ce.<NAME>`` in its modules).

Nothing is defined here: the attributes, types and content types are
:mod:`contracts.cloudevents` (its docstring tables what KServe's logger and kubeloop's
predictors send, and the monitor's fallbacks), the headers and roles
:mod:`contracts.headers`, the annotations :mod:`contracts.kube`.
"""

from __future__ import annotations

from contracts.cloudevents import (
    ATTR_ANNOTATIONS,
    ATTR_COMPONENT,
    ATTR_ENDPOINT,
    ATTR_ID,
    ATTR_INFERENCESERVICE,
    ATTR_LATENCY_MS,
    ATTR_METADATA,
    ATTR_MODEL,
    ATTR_NAMESPACE,
    ATTR_ROLE,
    ATTR_SOURCE,
    ATTR_SPECVERSION,
    ATTR_STATUS,
    ATTR_TYPE,
    ATTR_VERSION,
    BATCH_CONTENT_TYPE,
    BINARY_PREFIX,
    LATENCY_ATTRS,
    ROLE_ATTRS,
    STRUCTURED_CONTENT_TYPE,
)
from contracts.cloudevents import TYPE_REQUEST as CE_TYPE_REQUEST
from contracts.cloudevents import TYPE_RESPONSE as CE_TYPE_RESPONSE
from contracts.headers import REQUEST_ID_HEADER as METADATA_REQUEST_ID_HEADER
from contracts.headers import ROLE_CANDIDATE, ROLE_SHADOW, ROLE_STABLE, ROLES
from contracts.headers import ROLE_HEADER as METADATA_ROLE_HEADER
from contracts.kube import MLMODEL_LABEL as ANNOTATION_MODEL
from contracts.kube import MODEL_VERSION_LABEL as ANNOTATION_VERSION

__all__ = [
    "ANNOTATION_MODEL",
    "ANNOTATION_VERSION",
    "ATTR_ANNOTATIONS",
    "ATTR_COMPONENT",
    "ATTR_ENDPOINT",
    "ATTR_ID",
    "ATTR_INFERENCESERVICE",
    "ATTR_LATENCY_MS",
    "ATTR_METADATA",
    "ATTR_MODEL",
    "ATTR_NAMESPACE",
    "ATTR_ROLE",
    "ATTR_SOURCE",
    "ATTR_SPECVERSION",
    "ATTR_STATUS",
    "ATTR_TYPE",
    "ATTR_VERSION",
    "BATCH_CONTENT_TYPE",
    "BINARY_PREFIX",
    "CE_TYPE_REQUEST",
    "CE_TYPE_RESPONSE",
    "LATENCY_ATTRS",
    "METADATA_REQUEST_ID_HEADER",
    "METADATA_ROLE_HEADER",
    "ROLES",
    "ROLE_ATTRS",
    "ROLE_CANDIDATE",
    "ROLE_SHADOW",
    "ROLE_STABLE",
    "STRUCTURED_CONTENT_TYPE",
]

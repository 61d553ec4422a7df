"""The CloudEvents the monitor accepts: KServe logger attributes plus kubeloop's extensions.

KServe's logger (``pkg/logger`` in kserve/kserve) POSTs one event per inference request and
one per response, in binary mode: attributes travel as ``ce-*`` HTTP headers, the inference
payload is the body. Attributes it sets:

==========================  ===============================================================
``ce-type``                 ``org.kubeflow.serving.inference.request`` / ``.response``
``ce-id``                   the request id (KServe reads the incoming ``Ce-Id`` header; the
                            local predictors use ``x-request-id``); the router mirrors the
                            same id to a shadow, which is how stable and shadow pair up
                            (``X-Request-Id`` in ``ce-metadata`` wins for that pairing)
``ce-source``               the predictor's URL
``ce-inferenceservicename`` the InferenceService (one per model version in kubeloop)
``ce-namespace``            its namespace
``ce-component``            predictor / transformer / explainer
``ce-endpoint``             ``default`` or ``canary`` (KServe's own canary)
``ce-metadata``             JSON ``{header: [values]}`` of ``logger.metadataHeaders``
``ce-annotations``          JSON ``{key: value}`` of ``logger.metadataAnnotations``
==========================  ===============================================================

KServe only logs responses with status 200 and carries neither the status nor the latency,
so kubeloop adds extensions (CloudEvents extension names are lowercase alphanumeric; the
dashed spellings the local predictors used first are accepted too):

=============================================  ============================================
``ce-kubeloopmodel``                           the MLModel name. Fallbacks: annotation
                                               ``kubeloop.io/mlmodel`` in ``ce-annotations``;
                                               the InferenceService name without a trailing
                                               ``-<version>`` / ``-v<version>``
``ce-kubeloopversion``                         the model version. Fallback: annotation
                                               ``kubeloop.io/model-version``; neither → the
                                               event is rejected (reason missing_version)
``ce-kubelooprole`` / ``ce-kubeloop-role``     ``stable`` | ``candidate`` | ``shadow``.
                                               Fallbacks: ``X-Kubeloop-Role`` in
                                               ``ce-metadata``; the versions named in the
                                               model's monitor config; else ``stable``
``ce-kubeloopstatus``                          response only: HTTP status of the inference
                                               call. Absent → 200 (KServe logs only 200s)
``ce-kubelooplatencyms`` /                     response only: latency in ms measured by the
``ce-kubeloop-latency-ms``                     predictor/router. Absent → time between the
                                               request and response events at the monitor
=============================================  ============================================

Structured mode (``Content-Type: application/cloudevents+json``) carries the same attributes
as JSON members (without the ``ce-`` prefix) and the payload in ``data`` or ``data_base64``;
``application/cloudevents-batch+json`` is a JSON array of structured events.
"""

from __future__ import annotations

from typing import Final

CE_TYPE_REQUEST: Final = "org.kubeflow.serving.inference.request"
CE_TYPE_RESPONSE: Final = "org.kubeflow.serving.inference.response"

# Attribute names (structured-mode JSON members; binary mode prefixes them with "ce-").
ATTR_ID: Final = "id"
ATTR_TYPE: Final = "type"
ATTR_SOURCE: Final = "source"
ATTR_SPECVERSION: Final = "specversion"
ATTR_INFERENCESERVICE: Final = "inferenceservicename"
ATTR_NAMESPACE: Final = "namespace"
ATTR_COMPONENT: Final = "component"
ATTR_ENDPOINT: Final = "endpoint"
ATTR_METADATA: Final = "metadata"
ATTR_ANNOTATIONS: Final = "annotations"

ATTR_MODEL: Final = "kubeloopmodel"
ATTR_VERSION: Final = "kubeloopversion"
ATTR_ROLE: Final = "kubelooprole"
ATTR_STATUS: Final = "kubeloopstatus"
ATTR_LATENCY_MS: Final = "kubelooplatencyms"

# Spellings accepted for the same attribute, first match wins.
ROLE_ATTRS: Final = (ATTR_ROLE, "kubeloop-role")
LATENCY_ATTRS: Final = (ATTR_LATENCY_MS, "kubeloop-latency-ms")

BINARY_PREFIX: Final = "ce-"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"

ANNOTATION_MODEL: Final = "kubeloop.io/mlmodel"
ANNOTATION_VERSION: Final = "kubeloop.io/model-version"
METADATA_ROLE_HEADER: Final = "x-kubeloop-role"
METADATA_REQUEST_ID_HEADER: Final = "x-request-id"

ROLE_STABLE: Final = "stable"
ROLE_CANDIDATE: Final = "candidate"
ROLE_SHADOW: Final = "shadow"
ROLES: Final = (ROLE_STABLE, ROLE_CANDIDATE, ROLE_SHADOW)

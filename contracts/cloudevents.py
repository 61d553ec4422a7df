"""The inference CloudEvents: KServe logger attributes plus kubeloop's extensions.

Written by KServe's logger (``pkg/logger`` in kserve/kserve) in a cluster and by the local
predictor/router's inference logger (``localcluster/serving/inference_logger.py``); read by the
monitor (``services/monitor/parsing.py``). The logger POSTs one event per inference request
and one per response, in binary mode: attributes travel as ``ce-*`` HTTP headers, the
inference payload is the body. Attributes it sets:

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
                            (always sent, ``{}`` when none matched)
``ce-annotations``          JSON ``{key: value}`` of ``logger.metadataAnnotations``
                            (sent only when at least one annotation matched)
==========================  ===============================================================

What the agent really does, read in kserve/kserve (the sources, for whoever re-checks them):

- ``pkg/logger/handler.go`` (``LoggerHandler.ServeHTTP``): the event id is the incoming
  ``Ce-Id`` header or a fresh UUID (``getOrCreateID``), never ``x-request-id``; the metadata
  map keeps the request headers whose name is *in* ``metadataHeaders``, compared with
  ``slices.Contains`` against Go's canonical header keys (``X-Request-Id``), so the spec must
  spell them canonically (:data:`LOGGER_METADATA_HEADERS`); the response event is queued only
  when the status is 200 (``lrw.statusCode == http.StatusOK``), errors are never logged.
- ``pkg/logger/worker.go`` (``sendHttpCloudEvent``): binary encoding; ``SetID``/``SetType``;
  extensions ``inferenceservicename``, ``namespace``, ``component``, ``endpoint``;
  ``metadata`` = ``json.Marshal(map[string][]string)``, always; ``annotations`` =
  ``json.Marshal(map[string]string)`` only when non-empty; ``source`` = the pod name.
- ``pkg/webhook/admission/pod/agent_injector.go`` (``InjectAgent``): ``metadataAnnotations``
  lists annotation *keys*; the injector looks each up on the pod (KServe copies the
  InferenceService's annotations to it) and passes ``key=value`` pairs to the agent, skipping
  (with a warning) keys that are absent. So the version reaches the monitor only if the
  InferenceService carries ``kubeloop.io/model-version`` *and* the logger spec names it
  (:data:`LOGGER_METADATA_ANNOTATIONS`).
- ``pkg/apis/serving/v1beta1/component.go`` (``LoggerSpec``): ``url``, ``mode``,
  ``metadataHeaders []string``, ``metadataAnnotations []string``.

Istio's mirror copies keep ``X-Request-Id`` but not the header rules of the route's
destinations (istio/istio#50811; mirror header rules are only proposed in istio/api#3705), so a
shadow's events carry no ``X-Kubeloop-Role``: the monitor takes the role from the versions in
its config (a shadow version is named there).

Because the agent never logs a non-200 response, the error rate of a version cannot come from
these events on a cluster; it comes from the mesh's request metrics (Istio's
``istio_requests_total`` by destination and response code).

KServe only logs responses with status 200 and carries neither the status nor the latency,
so kubeloop adds extensions. CloudEvents extension names must be lowercase alphanumeric, so
they are spelled ``kubeloop<name>`` without dashes; the dashed spellings the local predictors
used first are still accepted for readers of old events:

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

**Feedback** (labels, ``POST /v1/models/{namespace}/{name}/feedback`` on the monitor's API
and fast ingest ports) is one more event type, ``TYPE_FEEDBACK``
(``io.kubeloop.feedback.label``), sent by the application that learns the outcome of a
prediction (a click, a chargeback, a churned customer). Binary, structured and batch modes as
above; the model is named by the URL, so only the core attributes are read: ``id`` (the
idempotency key: a repeated id is acknowledged and not counted twice), ``type``, ``source``,
``specversion``, optionally ``time`` (the default ``observedAt``). ``data`` is one JSON object,
:class:`contracts.feedback.FeedbackData`: ``{"requestId": "...", "label": 1,
"observedAt": 1700000000.0}`` or ``{"entity": "user-17", "servedAt": ..., "label": 0}``.

The ``LOGGER_MODE_*`` values are KServe's ``spec.predictor.logger.mode``: the MLModel operator
writes ``all`` into each InferenceService, the local controller reads it.
"""

from __future__ import annotations

from typing import Final

from contracts.headers import REQUEST_ID_HEADER as _REQUEST_ID_HTTP_HEADER
from contracts.headers import ROLE_HEADER as _ROLE_HTTP_HEADER
from contracts.headers import canonical
from contracts.kube import MLMODEL_LABEL, MODEL_VERSION_LABEL

SPECVERSION: Final = "1.0"
TYPE_REQUEST: Final = "org.kubeflow.serving.inference.request"
TYPE_RESPONSE: Final = "org.kubeflow.serving.inference.response"
#: A label for served predictions (data: :class:`contracts.feedback.FeedbackData`). Reverse-DNS
#: prefix as the CloudEvents spec recommends for ``type``.
TYPE_FEEDBACK: Final = "io.kubeloop.feedback.label"

# Attribute names (structured-mode JSON members; binary mode prefixes them with "ce-").
ATTR_ID: Final = "id"
ATTR_TYPE: Final = "type"
ATTR_SOURCE: Final = "source"
ATTR_SPECVERSION: Final = "specversion"
ATTR_TIME: Final = "time"
# KServe logger extensions
ATTR_INFERENCESERVICE: Final = "inferenceservicename"
ATTR_NAMESPACE: Final = "namespace"
ATTR_COMPONENT: Final = "component"
ATTR_ENDPOINT: Final = "endpoint"
ATTR_METADATA: Final = "metadata"
ATTR_ANNOTATIONS: Final = "annotations"
# kubeloop extensions
ATTR_MODEL: Final = "kubeloopmodel"
ATTR_VERSION: Final = "kubeloopversion"
ATTR_ROLE: Final = "kubelooprole"
ATTR_STATUS: Final = "kubeloopstatus"
ATTR_LATENCY_MS: Final = "kubelooplatencyms"
# The dashed spellings first agreed (not valid extension names; still accepted).
ATTR_ROLE_DASHED: Final = "kubeloop-role"
ATTR_LATENCY_MS_DASHED: Final = "kubeloop-latency-ms"

# Spellings accepted for the same attribute, first match wins.
ROLE_ATTRS: Final = (ATTR_ROLE, ATTR_ROLE_DASHED)
LATENCY_ATTRS: Final = (ATTR_LATENCY_MS, ATTR_LATENCY_MS_DASHED)

BINARY_PREFIX: Final = "ce-"
STRUCTURED_CONTENT_TYPE: Final = "application/cloudevents+json"
BATCH_CONTENT_TYPE: Final = "application/cloudevents-batch+json"


def binary_header(attribute: str) -> str:
    """The HTTP header that carries ``attribute`` in binary mode (``id`` -> ``ce-id``)."""
    return BINARY_PREFIX + attribute


# Binary-mode headers, as the local inference logger sends them.
ID_HEADER: Final = binary_header(ATTR_ID)
TYPE_HEADER: Final = binary_header(ATTR_TYPE)
SOURCE_HEADER: Final = binary_header(ATTR_SOURCE)
SPECVERSION_HEADER: Final = binary_header(ATTR_SPECVERSION)
TIME_HEADER: Final = binary_header(ATTR_TIME)
INFERENCESERVICE_HEADER: Final = binary_header(ATTR_INFERENCESERVICE)
NAMESPACE_HEADER: Final = binary_header(ATTR_NAMESPACE)
COMPONENT_HEADER: Final = binary_header(ATTR_COMPONENT)
ENDPOINT_HEADER: Final = binary_header(ATTR_ENDPOINT)
METADATA_HEADER: Final = binary_header(ATTR_METADATA)
ANNOTATIONS_HEADER: Final = binary_header(ATTR_ANNOTATIONS)
MODEL_HEADER: Final = binary_header(ATTR_MODEL)
VERSION_HEADER: Final = binary_header(ATTR_VERSION)
ROLE_HEADER: Final = binary_header(ATTR_ROLE)
STATUS_HEADER: Final = binary_header(ATTR_STATUS)
LATENCY_MS_HEADER: Final = binary_header(ATTR_LATENCY_MS)

# KServe's InferenceService `spec.predictor.logger.mode`.
LOGGER_MODE_ALL: Final = "all"
LOGGER_MODE_REQUEST: Final = "request"
LOGGER_MODE_RESPONSE: Final = "response"
LOGGER_MODES: Final = (LOGGER_MODE_ALL, LOGGER_MODE_REQUEST, LOGGER_MODE_RESPONSE)

# What kubeloop writes into each InferenceService's ``spec.predictor.logger``: the headers
# the agent copies into ``ce-metadata`` (Go-canonical spelling, see above: the agent compares
# names exactly) and the InferenceService annotations it copies into ``ce-annotations``.
#: ``X-Request-Id`` pairs a stable response with its shadow's (the agent's ``ce-id`` is a fresh
#: UUID per pod); ``X-Kubeloop-Role`` is the role the VirtualService route set.
LOGGER_METADATA_HEADERS: Final = (canonical(_REQUEST_ID_HTTP_HEADER), canonical(_ROLE_HTTP_HEADER))
#: The MLModel name and the model version (the monitor rejects an event with no version).
LOGGER_METADATA_ANNOTATIONS: Final = (MLMODEL_LABEL, MODEL_VERSION_LABEL)

"""Kubernetes names kubeloop writes and reads: its API group, labels, annotations, finalizer,
and the KServe/Istio kinds it creates.

- ``GROUP``/``VERSION``/``API_VERSION``: the kubeloop CRDs (``operators/api`` generates them;
  the operators, the CLI, the demo and the Experiment→FeatureView reads address them).
- ``FINALIZER``: put on every kubeloop object by the operators (Kopf) so deletion waits for
  clean-up.
- ``ANNOTATION_RETRAIN`` (``kubeloop.io/retrain-requested``): written on an Experiment by the
  MLModel operator when drift asks for a retrain (JSON: reason, report, time); read by the
  Experiment operator, which starts one training round per request.
- ``ANNOTATION_APPROVE`` (``kubeloop.io/approve``): written by a person on an MLModel (a
  version number, ``retrain``, ``true`` or an RFC 3339 time); read by the MLModel operator's
  rollout and retrain policy.
- ``ANNOTATION_PAUSE`` (``kubeloop.io/pause``): written by a person; ``true`` holds the rollout.
- ``MLMODEL_LABEL`` / ``MODEL_VERSION_LABEL`` (``kubeloop.io/mlmodel``,
  ``kubeloop.io/model-version``): written by the MLModel operator as labels *and* annotations
  on each per-version InferenceService; the labels select an MLModel's InferenceServices, the
  local controller passes them to the predictor (sent as CloudEvent extensions), and KServe's
  ``logger.metadataAnnotations`` forwards the annotations in ``ce-annotations`` where the
  monitor reads them (labels win where both exist).
- ``ROUTER_PORT_ANNOTATION`` (``kubeloop.io/router-port``): optional, on a VirtualService;
  the local serving controller binds its router there instead of a free port.
- ``ASSIGNMENT_ANNOTATION`` (``kubeloop.io/assignment``): written by the MLModel operator on
  its VirtualService when ``spec.rollout.assignment.by`` is ``header`` or ``entity`` (JSON
  ``{"by", "key", "header"}``): which request value is hashed into ``BUCKET_HEADER``
  (:mod:`contracts.headers`). The local router computes the bucket from it; on a real mesh
  whatever sits in front of the sidecar must (Istio cannot hash a value into a weighted
  split; ``docs/sticky-assignment.md`` says what it can do).
- ``MANAGED_BY_LABEL`` = ``MANAGED_BY_VALUE``: the recommended ``app.kubernetes.io/managed-by``
  label, on everything kubeloop creates (InferenceServices, VirtualServices, TrainJobs); the
  local serving controller realizes only VirtualServices carrying it.
- ``ISVC_*`` / ``VS_*``: KServe's InferenceService and Istio's VirtualService as the operator
  creates them and the local controller watches them (their upstream group/version/plural).

Everything kubeloop owns is under the ``kubeloop.io/`` prefix, the API group's DNS name, as
Kubernetes asks of label and annotation keys.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "kubeloop.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
PREFIX: Final = f"{GROUP}/"

FINALIZER: Final = "kubeloop.io/finalizer"

ANNOTATION_RETRAIN: Final = "kubeloop.io/retrain-requested"
ANNOTATION_APPROVE: Final = "kubeloop.io/approve"
ANNOTATION_PAUSE: Final = "kubeloop.io/pause"

MLMODEL_LABEL: Final = "kubeloop.io/mlmodel"
MODEL_VERSION_LABEL: Final = "kubeloop.io/model-version"
ROUTER_PORT_ANNOTATION: Final = "kubeloop.io/router-port"
ASSIGNMENT_ANNOTATION: Final = "kubeloop.io/assignment"

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "kubeloop"

ISVC_GROUP: Final = "serving.kserve.io"
ISVC_VERSION: Final = "v1beta1"
ISVC_PLURAL: Final = "inferenceservices"
VS_GROUP: Final = "networking.istio.io"
VS_VERSION: Final = "v1beta1"
VS_PLURAL: Final = "virtualservices"

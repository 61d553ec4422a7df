"""Serving from Feast: the transformer container the MLModel operator writes and what it exposes.

Writers and readers:

- ``TRANSFORMER_MODULE`` and the ``ARG_*`` flags: the MLModel operator writes an
  InferenceService whose ``spec.transformer.containers[0]`` runs
  ``python -m localcluster.serving.feast_transformer`` from the kubeloop image with these
  flags (``operators/mlmodel/features.py``); KServe appends its own ``--model_name``,
  ``--predictor_host`` and ``--http_port``. The transformer parses them
  (``localcluster/serving/feast_transformer.py``), and so does the local serving controller,
  which runs the same preprocess inside the predictor process (``inferenceservice.py``).
- ``TRANSFORMER_CONTAINER``: the container name KServe gives its serving containers.
- ``FETCHED_AT_INPUT``: the request input the transformer adds to every filled row, the time
  (epoch seconds) just after it read the online store. The MLModel operator names it as the
  skew check's ``timestampKey`` (``operators/mlmodel/skew.py``), so the monitor pairs each
  served row with what the offline store knew at that moment, not when the log reached it
  (``services/monitor/served.py`` strips it from the drift features).
- ``MISSING_ENTITIES_METRIC`` and the others: Prometheus counters on the serving process's
  ``/metrics`` (the transformer's on a cluster, the predictor's locally); labelled by
  ``feature_view`` (and ``feature`` for defaulted values).
"""

from __future__ import annotations

from typing import Final

TRANSFORMER_MODULE: Final = "localcluster.serving.feast_transformer"
TRANSFORMER_CONTAINER: Final = "kserve-container"

ARG_FEAST_STORE: Final = "--feast-store"  # the Feast repo config (JSON, FeastStoreConfig)
ARG_FEATURE_VIEW: Final = "--feature-view"  # the FeatureView (Kubernetes name)
ARG_ENTITY_KEY: Final = "--entity-key"  # the request input naming the entity (its join key)
ARG_ENTITY_TYPE: Final = "--entity-type"  # the join key's value type (INT64, STRING, ...)
ARG_FEATURES: Final = "--features"  # JSON object: feature name -> dtype
ARG_DEFAULTS: Final = "--defaults"  # JSON object: feature name -> value for a missing entity
ARG_MLMODEL: Final = "--mlmodel"  # the MLModel name, the second name the server answers to

FETCHED_AT_INPUT: Final = "kubeloop_features_fetched_at"

SERVED_ROWS_METRIC: Final = "kubeloop_feature_serving_rows_total"
MISSING_ENTITIES_METRIC: Final = "kubeloop_feature_serving_missing_entities_total"
DEFAULTED_VALUES_METRIC: Final = "kubeloop_feature_serving_defaulted_values_total"

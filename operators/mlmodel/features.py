"""Pure core of serving from Feast: the transformer container an MLModel's InferenceServices get.

``spec.serving.features`` names a FeatureView; its definition (join key, features and their
dtypes) and the Feast store the FeatureView operator applies it to give the container's args
(:mod:`contracts.feature_serving`). The transformer then reads the same Feast FeatureView the
FeatureView operator materialized, whose offline rows the training set was joined from, so the
model gets at serving time what a training row would have held at that moment.

An InferenceService is never changed after creation, so it is created only once the
FeatureView can serve: it exists, has one join key and holds every named feature, and its
online store has been materialized. Until then the reason is returned (``str``). With an
image (a cluster) it also needs a store the transformer pod can reach: Redis and a shared
registry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts import feature_serving as fs
from operators.api.featureview import FeatureViewSpec, FeatureViewStatus
from operators.api.mlmodel import FeatureServing
from operators.featureview.service import feast_store_config

INT_DTYPES = frozenset({"int32", "int64"})
NUMERIC_DTYPES = INT_DTYPES | {"float32", "float64"}


def _shared(registry: str | None) -> bool:
    """A registry other pods can read: an object store or database URL, not a local path."""
    return registry is not None and "://" in registry


def transformer_container(
    features: FeatureServing,
    feature_view: dict[str, Any] | None,
    mlmodel: str,
    feast_repo: Path,
    feast_registry: str | None,
    redis_connection_string: str | None,
    image: str | None,
) -> dict[str, Any] | str:
    """The ``spec.transformer.containers[0]`` (a Kubernetes Container), or why not yet."""
    name = features.feature_view
    if feature_view is None:
        return f"FeatureView {name!r} not found"
    try:
        spec = FeatureViewSpec.model_validate(feature_view.get("spec") or {})
        status = FeatureViewStatus.model_validate(feature_view.get("status") or {})
    except ValidationError as error:
        return f"FeatureView {name!r} is invalid: {error.errors()[0].get('msg')}"
    problem = _cannot_serve(features, spec, status)
    if problem is not None:
        return problem
    dtypes = {f.name: str(f.dtype) for f in spec.features}
    served = {f: dtypes[f] for f in features.features or dtypes}
    entity = spec.entities[0]
    store = feast_store_config(spec, feast_repo, feast_registry, redis_connection_string)
    args = [
        f"{fs.ARG_FEATURE_VIEW}={name}",
        f"{fs.ARG_ENTITY_KEY}={entity.join_key}",
        f"{fs.ARG_ENTITY_TYPE}={entity.value_type}",
        f"{fs.ARG_FEATURES}={json.dumps(served)}",
        f"{fs.ARG_DEFAULTS}={json.dumps(features.defaults)}",
        f"{fs.ARG_FEAST_STORE}={json.dumps(store)}",
        f"{fs.ARG_MLMODEL}={mlmodel}",
    ]
    if image and (store["onlineStore"] != "redis" or not _shared(feast_registry)):
        # A transformer pod reads neither the operator's SQLite file nor a registry file on
        # the operator's disk: on a cluster both must be reachable over the network.
        return (
            f"FeatureView {name!r}: serving from Feast on a cluster needs the Redis online "
            "store and a shared Feast registry (KUBELOOP_FEAST_ONLINE_STORE, "
            f"KUBELOOP_FEAST_REGISTRY); the store is {store['onlineStore']} and the registry "
            f"{feast_registry or 'under the operator state dir'}"
        )
    container: dict[str, Any] = {
        "name": fs.TRANSFORMER_CONTAINER,
        "command": ["python", "-m", fs.TRANSFORMER_MODULE],
        "args": args,
    }
    if image:
        container["image"] = image
    return container


def _cannot_serve(
    features: FeatureServing, spec: FeatureViewSpec, status: FeatureViewStatus
) -> str | None:
    """Why this FeatureView cannot fill these requests yet (or at all), else None."""
    name = features.feature_view
    if len(spec.entities) != 1:
        keys = [e.join_key for e in spec.entities]
        return f"FeatureView {name!r}: serving looks entities up by one join key, it has {keys}"
    if not spec.online:
        return f"FeatureView {name!r} has online: false (nothing is materialized to serve)"
    dtypes = {f.name: str(f.dtype) for f in spec.features}
    missing = [f for f in features.features if f not in dtypes]
    if missing:
        return f"FeatureView {name!r} has no feature(s) {missing}; it has {sorted(dtypes)}"
    unknown = sorted(set(features.defaults) - set(dtypes))
    if unknown:
        return f"serving.features.defaults: {unknown} are not features of FeatureView {name!r}"
    not_numeric = sorted(f for f in features.defaults if dtypes[f] not in NUMERIC_DTYPES)
    if not_numeric:
        return f"serving.features.defaults: {not_numeric} are not numeric features of {name!r}"
    fractional = sorted(
        f for f, v in features.defaults.items() if dtypes[f] in INT_DTYPES and not v.is_integer()
    )
    if fractional:
        return f"serving.features.defaults: {fractional} are integer features of {name!r}"
    if status.freshness is None or status.freshness.online is None:
        return f"FeatureView {name!r} has not been materialized to its online store yet"
    return None

"""Serving from Feast in the demo: what the traffic sends and where it pushes.

When the demo's MLModel fills requests from a FeatureView's online store
(``spec.serving.features``), the traffic sends only the FeatureView's join key, and, playing
the application, pushes the features of the events it served to the same online store
before they land in the lake (``kubeloop/sampledata/online.py``: why). The store is the one
the InferenceService's Feast transformer reads, taken from its args as kubectl shows them.
"""

from __future__ import annotations

from typing import Any

from contracts.feature_serving import TRANSFORMER_MODULE
from kubeloop.demo.context import DemoContext, StageFailed
from kubeloop.demo.resources import name_of, namespace_of
from kubeloop.sampledata.online import OnlinePush


def transformer_args(isvc: dict[str, Any]) -> list[str] | None:
    """The args of an InferenceService's Feast transformer container, if it has one."""
    transformer = (isvc.get("spec") or {}).get("transformer") or {}
    for container in transformer.get("containers") or []:
        if TRANSFORMER_MODULE in (container.get("command") or []):
            return [str(a) for a in container.get("args") or []]
    return None


def feast_serving(ctx: DemoContext) -> tuple[dict[str, str], OnlinePush] | None:
    """(the traffic's request columns: the join key only, the push) when the MLModel serves
    from Feast; None when it does not (the traffic then sends the features themselves)."""
    from localcluster.serving.feast_transformer import parse_transformer_args

    features = (ctx.documents["MLModel"]["spec"].get("serving") or {}).get("features")
    if not features:
        return None
    view = ctx.documents["FeatureView"]
    if features.get("featureView") != name_of(view):
        raise StageFailed(
            f"the MLModel serves from FeatureView {features.get('featureView')!r}; the demo "
            f"pushes to its own {name_of(view)!r} only"
        )
    assert ctx.kube is not None
    for isvc in ctx.kube.inference_services(namespace_of(ctx.documents["MLModel"])):
        args = transformer_args(isvc)
        if args is None:
            continue
        spec, store, _ = parse_transformer_args(args)
        if spec.feature_view == name_of(view):
            key = spec.entity_key
            return {key: key}, OnlinePush(name_of(view), view["spec"], store)
    raise StageFailed(f"no InferenceService with a Feast transformer for {name_of(view)!r}")

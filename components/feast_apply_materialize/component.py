"""KFP component: register the FeatureView's Feast objects and materialize a window online."""

from kfp import dsl

# No `from __future__ import annotations`: KFP reads the real annotation types.
# The kubeloop image carries the installed `components` package the component body imports.
KUBELOOP_IMAGE = "ghcr.io/kubeloop/kubeloop:0.1.0"


@dsl.component(base_image=KUBELOOP_IMAGE)
def feast_apply_materialize(
    feature_view: dict,
    offline_path: str,
    store: dict,
    start: str,
    end: str,
    materialize: bool = True,
) -> str:
    """Returns the summary as JSON (project, view, entities, features, window, online store)."""
    from components.feast_apply_materialize.impl import apply_and_materialize

    summary = apply_and_materialize(feature_view, offline_path, store, start, end, materialize)
    return summary.model_dump_json()

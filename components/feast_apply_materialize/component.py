"""KFP component: register the FeatureView's Feast objects and materialize a window online."""

from kfp import dsl

from components.image import COMPONENT_IMAGE

# No `from __future__ import annotations`: KFP reads the real annotation types.


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
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

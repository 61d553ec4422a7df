"""The demo's custom resources: the README tour's FeatureView and Experiment
(examples/resources), pointed at the demo's data folder, and the demo's own MLModel
(examples/demo, short rollout and drift intervals; `${NAME}` placeholders allowed)."""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

FEATUREVIEW_FILE = "featureview.yaml"
EXPERIMENT_FILE = "experiment.yaml"
MLMODEL_FILE = "mlmodel.yaml"
# Where examples/resources read the data `kubeloop data` writes by default.
TOUR_DATA_DIR = ".kubeloop/data"


class ResourceTemplateError(ValueError):
    """A template that cannot be filled or parsed; the message names the file and placeholder."""


def render(path: Path, values: Mapping[str, str]) -> dict[str, Any]:
    try:
        text = string.Template(path.read_text()).substitute(values)
    except KeyError as error:
        raise ResourceTemplateError(
            f"{path}: no value for placeholder ${{{error.args[0]}}}"
        ) from error
    document = yaml.safe_load(text)
    if not isinstance(document, dict) or "kind" not in document:
        raise ResourceTemplateError(f"{path}: not a Kubernetes object (no kind)")
    return document


def name_of(document: Mapping[str, Any]) -> str:
    return str(document["metadata"]["name"])


def namespace_of(document: Mapping[str, Any]) -> str:
    return str(document["metadata"].get("namespace", "default"))


def _repointed(path: str, data_dir: str) -> str:
    if not path.startswith(TOUR_DATA_DIR + "/"):
        raise ResourceTemplateError(f"{path} is not under {TOUR_DATA_DIR}/")
    return data_dir + path[len(TOUR_DATA_DIR) :]


def tour_resource(path: Path, data_dir: str, backfill_start: str) -> dict[str, Any]:
    """A FeatureView or Experiment of the tour, reading `data_dir` instead of .kubeloop/data
    (and a FeatureView backfilling from `backfill_start`, the data's first hour)."""
    document = render(path, {})
    spec = document["spec"]
    if document["kind"] == "FeatureView":
        spec["source"]["path"] = _repointed(spec["source"]["path"], data_dir)
        spec["backfill"]["start"] = backfill_start
    else:
        spec["labels"]["source"] = _repointed(spec["labels"]["source"], data_dir)
    return document

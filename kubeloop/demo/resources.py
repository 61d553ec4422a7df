"""The demo's custom resources: YAML templates in examples/demo with `${NAME}` placeholders."""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

FEATUREVIEW_FILE = "featureview.yaml"
EXPERIMENT_FILE = "experiment.yaml"
MLMODEL_FILE = "mlmodel.yaml"


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

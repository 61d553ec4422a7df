"""A FeatureView as the pipeline components take it, and how its local paths are resolved.

Shared by the FeatureView service (backfill runs) and the Experiment service (training runs,
which rebuild each FeatureView's definition); no I/O beyond resolving a relative path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from operators.api.featureview import FeatureViewSpec

DEFAULT_SQL = "SELECT * FROM source"


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def local(path: str) -> str:
    return urlparse(path).path if path.startswith("file:") else path


@dataclass(frozen=True)
class LocalPaths:
    """On the embedded default runs execute in their own working directory, so relative paths
    in a spec are resolved against the operator's; on a cluster they mean the pod's."""

    resolve_relative: bool

    @property
    def operator_sees_data(self) -> bool:
        """Only on the embedded default do runs share the operator's filesystem. On a cluster
        the data is under the storage root the task pods mount (issue #13 item 2), which the
        operator never reads: it checks nothing there and sizes nothing there."""
        return self.resolve_relative

    def task_uri(self, path: str) -> str:
        """A spec's path as the URI tasks read (components/uris.py): on the embedded default a
        local path becomes ``file://<absolute path>``; on a cluster a relative path keeps its
        meaning in the pod (its working directory) and an absolute one becomes ``file://``."""
        if not is_local(path):
            return path
        resolved = local(path)
        if not os.path.isabs(resolved):
            if not self.resolve_relative:
                return path
            resolved = str(Path(resolved).resolve())
        # Not Path.as_uri(): fsspec reads a file:// URI's path unquoted, so no %-escapes.
        return "file://" + resolved


def component_definition(paths: LocalPaths, name: str, spec: FeatureViewSpec) -> dict[str, Any]:
    """The FeatureView as the backfill and Feast components take it."""
    wire = spec.to_k8s()
    source = dict(wire["source"])
    source["path"] = paths.task_uri(spec.source.path)
    return {
        "name": name,
        "entities": wire["entities"],
        "source": source,
        "transformation": {"sql": spec.transformation.sql if spec.transformation else DEFAULT_SQL},
        "features": wire["features"],
        "ttl": spec.ttl,
    }

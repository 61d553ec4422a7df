"""Compile the kubeloop pipelines to KFP IR YAML; the compiled files are checked in.

Each pipeline is compiled once per kind of storage root (pipelines/storage.py STORAGE_KINDS):
``<name>/pipeline.yaml`` for a claim (pvc, the default), ``<name>/pipeline.<kind>.yaml`` for the
object stores, which differ only in their platform spec (how each task reaches the root).

Regenerate after changing a pipeline or a component:  ``python -m pipelines.compile``
Check that the checked-in files are current (CI):        ``python -m pipelines.compile --check``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

PIPELINES_DIR = Path(__file__).resolve().parent
PIPELINE_FILE = "pipeline.yaml"
# The kinds of storage root each pipeline is compiled for (pipelines/storage.py STORAGE_KINDS;
# literal here so listing the packages imports no component).
STORAGE_KINDS = ("pvc", "s3", "gs")
DEFAULT_KIND = "pvc"
# Keys that change with the SDK release, not with the pipeline.
VOLATILE_KEYS = ("sdkVersion",)


def pipeline_functions() -> dict[str, Callable[[str], Any]]:
    """Each pipeline's builder: ``builder(storage_kind)`` is the pipeline for that kind."""
    # Imported here: each import pulls every component of the pipeline.
    from pipelines.feature_backfill.pipeline import build_feature_backfill
    from pipelines.training.pipeline import build_training

    return {"feature_backfill": build_feature_backfill, "training": build_training}


def package_file(name: str, kind: str = DEFAULT_KIND) -> Path:
    """Where the compiled YAML of pipeline ``name`` for a ``kind`` root lives."""
    if kind not in STORAGE_KINDS:
        raise ValueError(f"storage kind {kind!r} is not one of {', '.join(STORAGE_KINDS)}")
    file = PIPELINE_FILE if kind == DEFAULT_KIND else f"pipeline.{kind}.yaml"
    return PIPELINES_DIR / name / file


def package_path(name: str, kind: str = DEFAULT_KIND) -> Path:
    """The checked-in compiled YAML of pipeline ``name`` (``feature_backfill``, ``training``)
    for a storage root of ``kind``."""
    path = package_file(name, kind)
    if not path.is_file():
        raise ValueError(f"unknown pipeline {name!r}: no compiled package at {path}")
    return path


def compile_to_text(name: str, kind: str = DEFAULT_KIND) -> str:
    from kfp import compiler

    function = pipeline_functions()[name](kind)
    with tempfile.TemporaryDirectory(prefix="kubeloop-compile-") as tmp:
        target = Path(tmp) / PIPELINE_FILE
        compiler.Compiler().compile(function, str(target))
        return target.read_text()


def normalized(text: str) -> Any:
    """The compiled package as data, without the SDK-release keys (for golden comparisons):
    ``{"pipeline_spec": …, "platform_spec": …}``. The platform spec is the second YAML document
    (the Kubernetes config: the storage claim every task mounts, pipelines/storage.py); ``{}``
    when there is none."""
    documents = [d for d in yaml.safe_load_all(text) if d]
    if not documents or len(documents) > 2:
        raise ValueError(f"a compiled package has 1 or 2 YAML documents, not {len(documents)}")
    pipeline = documents[0]
    for key in VOLATILE_KEYS:
        pipeline.pop(key, None)
    return {"pipeline_spec": pipeline, "platform_spec": documents[1] if documents[1:] else {}}


def checked_in(name: str, kind: str = DEFAULT_KIND) -> Any:
    """The checked-in PipelineSpec of pipeline ``name``, normalized."""
    return normalized(package_path(name, kind).read_text())["pipeline_spec"]


def checked_in_platform(name: str, kind: str = DEFAULT_KIND) -> Any:
    """The checked-in PlatformSpec of pipeline ``name`` (``{}`` if it has none)."""
    return normalized(package_path(name, kind).read_text())["platform_spec"]


def packages() -> list[tuple[str, str]]:
    """Every (pipeline, storage kind) compiled and checked in."""
    return [(name, kind) for name in pipeline_functions() for kind in STORAGE_KINDS]


def write_all() -> list[Path]:
    written = []
    for name, kind in packages():
        path = package_file(name, kind)
        path.write_text(compile_to_text(name, kind))
        written.append(path)
    return written


def stale() -> list[str]:
    return [
        str(package_file(name, kind).relative_to(PIPELINES_DIR))
        for name, kind in packages()
        if not package_file(name, kind).is_file()
        or normalized(package_file(name, kind).read_text())
        != normalized(compile_to_text(name, kind))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a compiled file is stale")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for file in outdated:
            print(f"stale: pipelines/{file} (run: python -m pipelines.compile)")
        return 1 if outdated else 0
    for path in write_all():
        print(f"wrote {path.relative_to(PIPELINES_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

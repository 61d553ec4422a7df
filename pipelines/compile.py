"""Compile the kubeloop pipelines to KFP IR YAML; the compiled files are checked in.

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
# Keys that change with the SDK release, not with the pipeline.
VOLATILE_KEYS = ("sdkVersion",)


def pipeline_functions() -> dict[str, Callable[..., Any]]:
    # Imported here: each import pulls every component of the pipeline.
    from pipelines.feature_backfill.pipeline import feature_backfill
    from pipelines.training.pipeline import training

    return {"feature_backfill": feature_backfill, "training": training}


def package_path(name: str) -> Path:
    """The checked-in compiled YAML of pipeline ``name`` (``feature_backfill``, ``training``)."""
    path = PIPELINES_DIR / name / PIPELINE_FILE
    if not path.is_file():
        raise ValueError(f"unknown pipeline {name!r}: no compiled package at {path}")
    return path


def compile_to_text(name: str) -> str:
    from kfp import compiler

    function = pipeline_functions()[name]
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


def checked_in(name: str) -> Any:
    """The checked-in PipelineSpec of pipeline ``name``, normalized."""
    return normalized(package_path(name).read_text())["pipeline_spec"]


def checked_in_platform(name: str) -> Any:
    """The checked-in PlatformSpec of pipeline ``name`` (``{}`` if it has none)."""
    return normalized(package_path(name).read_text())["platform_spec"]


def write_all() -> list[Path]:
    written = []
    for name in pipeline_functions():
        path = PIPELINES_DIR / name / PIPELINE_FILE
        path.write_text(compile_to_text(name))
        written.append(path)
    return written


def stale() -> list[str]:
    return [
        name
        for name in pipeline_functions()
        if not (PIPELINES_DIR / name / PIPELINE_FILE).is_file()
        or normalized((PIPELINES_DIR / name / PIPELINE_FILE).read_text())
        != normalized(compile_to_text(name))
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a compiled file is stale")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for name in outdated:
            print(f"stale: pipelines/{name}/{PIPELINE_FILE} (run: python -m pipelines.compile)")
        return 1 if outdated else 0
    for path in write_all():
        print(f"wrote {path.relative_to(PIPELINES_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
    """The compiled IR as data, without the SDK-release keys (for golden comparisons)."""
    document = yaml.safe_load(text)
    for key in VOLATILE_KEYS:
        document.pop(key, None)
    return document


def checked_in(name: str) -> Any:
    """The checked-in compiled IR of pipeline ``name``, normalized."""
    return normalized(package_path(name).read_text())


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

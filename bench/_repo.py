"""Puts the repository root on `sys.path`, so a benchmark run as `python bench/<name>.py` can
import the test harness (`tests/support/`, which is not installed). Import it first."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def write_json(path: str | Path, report: object) -> Path:
    """Write a benchmark's JSON report (creating its folder); returns the path."""
    import json

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out


def add_spark_run_arguments(parser: argparse.ArgumentParser, small: str) -> None:
    """The options every Spark benchmark takes: a small run, the master, a seed, a work dir."""
    parser.add_argument("--small", action="store_true", help=small)
    parser.add_argument("--spark-master", default="local[*]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None)

"""Run the three kubeloop operators (FeatureView, Experiment, MLModel) in one Kopf process.

`python -m operators [--standalone | --priority N] [--namespace NS]... [--liveness URL] [--verbose]`;
`kubeloop operator` takes the same options through `add_arguments` and `run`.
"""

from __future__ import annotations

import argparse
import sys

OPTIONS = ("namespaces", "standalone", "liveness", "verbose", "priority")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--standalone", action="store_true", help="no peering (one process, e.g. `kubeloop up`)"
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="Kopf peering priority (default: drawn per process; the highest live one acts)",
    )
    parser.add_argument("--namespace", dest="namespaces", metavar="NS", action="append", default=[])
    parser.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--verbose", action="store_true")


def run(args: argparse.Namespace) -> int:
    # Imported here: building the parser (for `kubeloop --help` too) loads no Kopf.
    from operators.main import run_operators

    return run_operators(**{name: getattr(args, name) for name in OPTIONS})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operators", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

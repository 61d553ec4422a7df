"""Run the three kubeloop operators (FeatureView, Experiment, MLModel) in one Kopf process.

`python -m operators [--standalone] [--namespace NS]... [--liveness URL] [--verbose]`
"""

from __future__ import annotations

import argparse
import sys

from operators.main import run_operators


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m operators", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--standalone", action="store_true", help="no peering")
    parser.add_argument("--namespace", action="append", default=[])
    parser.add_argument("--liveness", default=None, help="e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    return run_operators(
        namespaces=args.namespace,
        standalone=args.standalone,
        liveness=args.liveness,
        verbose=args.verbose,
    )


if __name__ == "__main__":
    sys.exit(main())

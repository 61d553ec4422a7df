"""The operators' entry point: register every kind's handlers and run Kopf.

(Stand-in on the product branch with the agreed signature; the shell helper's version
replaces it at merge.)"""

from __future__ import annotations

import asyncio


def run_operators(
    *, namespaces: list[str], standalone: bool, liveness: str | None, verbose: bool
) -> int:
    import kopf

    import operators.experiment
    import operators.featureview
    import operators.mlmodel  # noqa: F401  (all three register their handlers)

    kopf.configure(verbose=verbose)
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces or (),
            standalone=standalone,
            liveness_endpoint=liveness,
        )
    )
    return 0

"""A stable version's labeled traffic as the operator sees it, pass after pass, for the
Degraded test's error rates (``operators/mlmodel/tests/test_quality_simulation.py``,
``bench/degraded_alarm.py``).

The world: each pass ``per_pass`` labeled requests arrive, each correct with probability
``accuracy``; the monitor's window is the newest ``window`` of them and its figure is their
accuracy with a 95% Wald interval (served times: the requests' order). Every pass the
operator's rule (:func:`operators.mlmodel.quality.pooled` and
:func:`~operators.mlmodel.quality.degradation`, the functions the operator runs) judges the
window; a sequence *alarms* at the first pass Degraded is True. ``peek`` judges instead the
window's own fixed 95% interval every pass (the rule before the sequential test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contracts.quality import Interval, VersionQuality
from operators.api.mlmodel import PrimaryMetric, StableQuality
from operators.mlmodel import quality as outcomes

Z95 = 1.959963984540054


@dataclass(frozen=True)
class World:
    accuracy: float  # the served version's true accuracy
    validation: float = 0.80  # its offline figure
    margin: float = 0.02
    alpha: float = 0.05
    window: int = 500
    per_pass: int = 250
    passes: int = 40
    min_labeled: int = 500


def first_alarms(
    world: World, sequences: int, rng: np.random.Generator, peek: bool = False
) -> np.ndarray:
    """Per sequence, the first pass Degraded was True (-1: never)."""
    metric = PrimaryMetric(
        name="accuracy", margin=world.margin, min_labeled=world.min_labeled, alpha=world.alpha
    )
    total = world.per_pass * world.passes
    correct = rng.random((sequences, total)) < world.accuracy
    sums = np.concatenate([np.zeros((sequences, 1)), np.cumsum(correct, axis=1)], axis=1)
    out = np.full(sequences, -1)
    bound = world.validation - world.margin
    for s in range(sequences):
        state = None
        for k in range(world.passes):
            end = (k + 1) * world.per_pass
            start = max(0, end - world.window)
            n = end - start
            value = float(sums[s, end] - sums[s, start]) / n
            half = Z95 * np.sqrt(max(value * (1 - value), 1e-12) / n)
            if peek:
                if n >= world.min_labeled and value + half < bound:
                    out[s] = k
                    break
                continue
            # model_construct: the figures are made here, validating them would only cost time.
            entry = VersionQuality.model_construct(
                version="1", role="stable", labeled=n, positives=0,
                window_start=float(start), window_end=float(end - 1),
                accuracy=Interval.model_construct(value=value, low=value - half, high=value + half),
            )  # fmt: skip
            state = outcomes.pooled(state, entry, "accuracy", world.margin, world.alpha)
            judged = StableQuality.model_construct(
                version="1", metric="accuracy", labeled=n, validation=world.validation,
                sequential=state,
            )  # fmt: skip
            if outcomes.degradation(judged, metric)[0] == "True":
                out[s] = k
                break
    return out

"""Pure analysis gates for one interval: shadow agreement and canary health (the guardrails),
and how they combine with the outcome gate (`outcome_gate.judge`, labels) into one verdict.

A gate answers PASS, FAIL or INCONCLUSIVE. Too few requests is inconclusive, never a pass: a
quiet interval says nothing about the candidate. Client errors (4xx) are the caller's fault
and never count against a version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from operators.api.mlmodel import DEFAULT_MAX_DISAGREEMENT, Analysis, Shadow

Figures = dict[str, float | int | str | None]


class Verdict(StrEnum):
    PASS = "Pass"
    FAIL = "Fail"
    INCONCLUSIVE = "Inconclusive"


@dataclass(frozen=True)
class VersionFigures:
    """What the monitor counted for one version in one interval."""

    requests: int = 0
    server_errors: int = 0
    client_errors: int = 0
    latency_p99_ms: float | None = None

    @property
    def judged_requests(self) -> int:
        """Requests that say something about the server: all but the client's own errors."""
        return max(self.requests - self.client_errors, 0)

    @property
    def error_rate(self) -> float:
        judged = self.judged_requests
        return self.server_errors / judged if judged else 0.0


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    message: str
    figures: dict[str, float | int | str | None] = field(default_factory=dict)


def error_rise_p_value(candidate: VersionFigures, stable: VersionFigures) -> float:
    """One-sided Fisher exact test: is the candidate's server-error rate above stable's?

    Exact rather than a z-test because canary intervals at 1% traffic have small counts.
    """
    table = [
        [candidate.server_errors, candidate.judged_requests - candidate.server_errors],
        [stable.server_errors, stable.judged_requests - stable.server_errors],
    ]
    if stable.judged_requests == 0:
        return 1.0
    # Imported here: scipy.stats takes seconds to import and most operator ticks never test.
    from scipy.stats import fisher_exact

    _, p_value = fisher_exact(table, alternative="greater")
    return float(p_value)


def _latency_ratio_problems(
    candidate: VersionFigures, stable: VersionFigures, limits: Analysis, figures: Figures
) -> list[str]:
    """p99 relative to stable's in the same interval (`maxLatencyRatio`): a candidate twice
    as slow as stable is a regression even under the absolute cap. Needs both p99s."""
    figures["stableLatencyP99Ms"] = stable.latency_p99_ms
    if candidate.latency_p99_ms is None or not stable.latency_p99_ms:
        return []
    ratio = candidate.latency_p99_ms / stable.latency_p99_ms
    figures["latencyRatio"] = round(ratio, 4)
    if limits.max_latency_ratio is None or ratio <= limits.max_latency_ratio:
        return []
    return [
        f"p99 {candidate.latency_p99_ms:.0f} ms is {ratio:.2f}x stable's "
        f"{stable.latency_p99_ms:.0f} ms > maxLatencyRatio {limits.max_latency_ratio:g}"
    ]


def assess_canary(
    candidate: VersionFigures, stable: VersionFigures, limits: Analysis
) -> Assessment:
    figures: Figures = {
        "requests": candidate.requests,
        "errors": candidate.server_errors,
        "errorRate": round(candidate.error_rate, 6),
        "stableErrorRate": round(stable.error_rate, 6),
        "latencyP99Ms": candidate.latency_p99_ms,
    }
    if candidate.judged_requests < limits.min_requests:
        return Assessment(
            Verdict.INCONCLUSIVE,
            f"inconclusive: {candidate.judged_requests} requests < minRequests "
            f"{limits.min_requests}",
            figures,
        )
    problems = []
    if candidate.error_rate > limits.max_error_rate:
        problems.append(
            f"error rate {candidate.error_rate:.3%} > maxErrorRate {limits.max_error_rate:.3%}"
        )
    if (
        candidate.latency_p99_ms is not None
        and candidate.latency_p99_ms > limits.max_latency_p99_ms
    ):
        problems.append(
            f"p99 {candidate.latency_p99_ms:.0f} ms > maxLatencyP99Ms "
            f"{limits.max_latency_p99_ms:.0f}"
        )
    problems += _latency_ratio_problems(candidate, stable, limits, figures)
    p_value = error_rise_p_value(candidate, stable)
    figures["errorRiseP"] = round(p_value, 6)
    if p_value < limits.significance:
        problems.append(
            f"errors rose against stable ({candidate.error_rate:.3%} vs "
            f"{stable.error_rate:.3%}, p={p_value:.4f})"
        )
    if problems:
        return Assessment(Verdict.FAIL, "; ".join(problems), figures)
    if candidate.latency_p99_ms is None:
        # Requests counted (by the mesh) whose responses the monitor has not seen yet: the
        # latency guardrail has no figure, and a slow candidate's responses are exactly the
        # ones that arrive late. Never pass a guardrail on no data.
        return Assessment(
            Verdict.INCONCLUSIVE,
            f"inconclusive: {candidate.judged_requests} requests but no latency figure yet",
            figures,
        )
    return Assessment(
        Verdict.PASS,
        f"{candidate.judged_requests} requests, error rate {candidate.error_rate:.3%}",
        figures,
    )


def disagreement_limit(shadow: Shadow, limits: Analysis) -> float | None:
    """The shadow's disagreement limit; None when disagreement is not judged.

    Set in the spec: that. Unset: off when a primary metric judges the candidate on outcomes
    (a retrain asked for because stable went wrong is expected to disagree with it), else the
    limit kubeloop always had (DEFAULT_MAX_DISAGREEMENT)."""
    if shadow.max_disagreement is not None:
        return shadow.max_disagreement
    return None if limits.primary_metric is not None else DEFAULT_MAX_DISAGREEMENT


def _shadow_error_failure(
    candidate: VersionFigures, shadow: Shadow, limits: Analysis, figures: Figures
) -> Assessment | None:
    if (
        candidate.judged_requests >= shadow.min_requests
        and candidate.error_rate > limits.max_error_rate
    ):
        return Assessment(
            Verdict.FAIL,
            f"shadow error rate {candidate.error_rate:.3%} > maxErrorRate "
            f"{limits.max_error_rate:.3%}",
            figures,
        )
    return None


def assess_shadow(
    candidate: VersionFigures,
    paired: int,
    disagreements: int,
    shadow: Shadow,
    limits: Analysis,
) -> Assessment:
    rate = disagreements / paired if paired else 0.0
    figures: Figures = {
        "paired": paired,
        "disagreement": round(rate, 6),
        "errors": candidate.server_errors,
        "errorRate": round(candidate.error_rate, 6),
    }
    # A shadow that only fails has no scores to pair: judge its errors on their own, or a
    # broken candidate would sit in shadow forever as "inconclusive".
    failed = _shadow_error_failure(candidate, shadow, limits, figures)
    if failed is not None:
        return failed
    limit = disagreement_limit(shadow, limits)
    if limit is None:  # only errors are judged here; the outcome gate judges the scores
        if candidate.judged_requests < shadow.min_requests:
            return Assessment(
                Verdict.INCONCLUSIVE,
                f"inconclusive: {candidate.judged_requests} shadow requests < minRequests "
                f"{shadow.min_requests}",
                figures,
            )
        return Assessment(
            Verdict.PASS,
            f"{candidate.judged_requests} shadow requests, error rate {candidate.error_rate:.3%}",
            figures,
        )
    if paired < shadow.min_requests:
        return Assessment(
            Verdict.INCONCLUSIVE,
            f"inconclusive: {paired} paired requests < minRequests {shadow.min_requests}",
            figures,
        )
    if rate > limit:
        return Assessment(
            Verdict.FAIL, f"disagreement {rate:.2%} > maxDisagreement {limit:.2%}", figures
        )
    if candidate.error_rate > limits.max_error_rate:  # enough pairs, fewer judged requests
        return Assessment(
            Verdict.FAIL,
            f"shadow error rate {candidate.error_rate:.3%} > maxErrorRate "
            f"{limits.max_error_rate:.3%}",
            figures,
        )
    return Assessment(Verdict.PASS, f"{paired} paired requests, disagreement {rate:.2%}", figures)


def combine(guard: Assessment, outcome: Assessment | None) -> Assessment:
    """One verdict from the guardrails and the outcome gate (None: no primary metric).

    FAIL when either fails (the guardrail's reason first: errors and latency hurt users at
    once); PASS only when both pass; INCONCLUSIVE otherwise, naming what is still missing.
    """
    if outcome is None:
        return guard
    figures = {**guard.figures, **outcome.figures}
    for part in (guard, outcome):
        if part.verdict == Verdict.FAIL:
            return Assessment(Verdict.FAIL, part.message, figures)
    if guard.verdict == Verdict.PASS and outcome.verdict == Verdict.PASS:
        return Assessment(Verdict.PASS, f"{outcome.message}; {guard.message}", figures)
    waiting = [p.message for p in (outcome, guard) if p.verdict == Verdict.INCONCLUSIVE]
    return Assessment(Verdict.INCONCLUSIVE, "; ".join(waiting), figures)

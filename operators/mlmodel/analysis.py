"""Pure analysis gates for one interval: shadow agreement and canary health.

A gate answers PASS, FAIL or INCONCLUSIVE. Too few requests is inconclusive, never a pass: a
quiet interval says nothing about the candidate. Client errors (4xx) are the caller's fault
and never count against a version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from operators.api.mlmodel import Analysis, Shadow


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


def assess_canary(
    candidate: VersionFigures, stable: VersionFigures, limits: Analysis
) -> Assessment:
    figures: dict[str, float | int | str | None] = {
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
    p_value = error_rise_p_value(candidate, stable)
    figures["errorRiseP"] = round(p_value, 6)
    if p_value < limits.significance:
        problems.append(
            f"errors rose against stable ({candidate.error_rate:.3%} vs "
            f"{stable.error_rate:.3%}, p={p_value:.4f})"
        )
    if problems:
        return Assessment(Verdict.FAIL, "; ".join(problems), figures)
    return Assessment(
        Verdict.PASS,
        f"{candidate.judged_requests} requests, error rate {candidate.error_rate:.3%}",
        figures,
    )


def assess_shadow(
    candidate: VersionFigures,
    paired: int,
    disagreements: int,
    shadow: Shadow,
    limits: Analysis,
) -> Assessment:
    rate = disagreements / paired if paired else 0.0
    figures: dict[str, float | int | str | None] = {
        "paired": paired,
        "disagreement": round(rate, 6),
        "errors": candidate.server_errors,
        "errorRate": round(candidate.error_rate, 6),
    }
    # A shadow that only fails has no scores to pair: judge its errors on their own, or a
    # broken candidate would sit in shadow forever as "inconclusive".
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
    if paired < shadow.min_requests:
        return Assessment(
            Verdict.INCONCLUSIVE,
            f"inconclusive: {paired} paired requests < minRequests {shadow.min_requests}",
            figures,
        )
    if rate > shadow.max_disagreement:
        return Assessment(
            Verdict.FAIL,
            f"disagreement {rate:.2%} > maxDisagreement {shadow.max_disagreement:.2%}",
            figures,
        )
    if candidate.error_rate > limits.max_error_rate:
        return Assessment(
            Verdict.FAIL,
            f"shadow error rate {candidate.error_rate:.3%} > maxErrorRate "
            f"{limits.max_error_rate:.3%}",
            figures,
        )
    return Assessment(Verdict.PASS, f"{paired} paired requests, disagreement {rate:.2%}", figures)

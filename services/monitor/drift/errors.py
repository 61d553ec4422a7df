"""Errors raised by the drift detectors; each names the offending field or value."""

from __future__ import annotations

from typing import Literal

#: Why a window was rejected; the monitor counts rejections per reason.
WindowRejection = Literal["empty", "shape", "missing-feature", "type", "non-finite", "null"]


class DriftError(ValueError):
    """Base class: bad input or bad configuration for a drift detector."""


class InvalidWindowError(DriftError):
    """A window (or reference) that cannot be assessed; ``reason`` is a stable counter label."""

    def __init__(self, reason: WindowRejection, message: str) -> None:
        super().__init__(message)
        self.reason: WindowRejection = reason


class UnknownDetectorError(DriftError):
    """A detector name that the registry does not know."""

    def __init__(self, name: object, known: list[str]) -> None:
        super().__init__(
            f"unknown drift detector {name!r} (monitoring.drift.detector); "
            f"known detectors: {', '.join(known)}"
        )
        self.name = name
        self.known = known


class DetectorConfigError(DriftError):
    """A detector option or feature set that the detector cannot work with."""


class NotFittedError(DriftError):
    """``check`` was called before ``fit``."""

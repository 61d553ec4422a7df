"""Data-quality checks next to drift: feature null rates and training-serving skew."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from services.monitor.drift.errors import DetectorConfigError, InvalidWindowError, NotFittedError
from services.monitor.drift.result import NullRateResult, SkewResult
from services.monitor.drift.schema import TableLike, _as_frame


def _null_mask(frame: pd.DataFrame) -> np.ndarray:
    """True where a value is missing: None, NaN (and NaT)."""
    return frame.isna().to_numpy()


class NullRateCheck:
    """Alarm when a feature's null fraction in a window exceeds the reference's + tolerance.

    Unlike the drift tests, windows may (of course) hold nulls here; a window with the wrong
    shape or missing feature columns is still rejected with ``InvalidWindowError``.
    """

    def __init__(self, tolerance: float = 0.05) -> None:
        if not 0.0 <= tolerance < 1.0:
            raise DetectorConfigError(f"null-rate tolerance must be in [0, 1), got {tolerance!r}")
        self.tolerance = float(tolerance)
        self._reference_rates: dict[str, float] | None = None

    def fit(self, reference: TableLike, feature_names: Sequence[str] | None = None) -> Self:
        frame = _as_frame(reference, feature_names, what="reference")
        rates = _null_mask(frame).mean(axis=0)
        self._reference_rates = {
            str(n): float(r) for n, r in zip(frame.columns, rates, strict=True)
        }
        return self

    def check(self, window: TableLike) -> NullRateResult:
        if self._reference_rates is None:
            raise NotFittedError("null-rate check used before fit()")
        names = list(self._reference_rates)
        frame = _as_frame(window, names, what="window")
        rates = dict(zip(names, (float(r) for r in _null_mask(frame).mean(axis=0)), strict=True))
        exceeded = [n for n in names if rates[n] > self._reference_rates[n] + self.tolerance]
        return NullRateResult(
            reference_rates=dict(self._reference_rates),
            window_rates=rates,
            tolerance=self.tolerance,
            exceeded=exceeded,
            is_alarm=bool(exceeded),
            window_size=len(frame),
        )


class SkewTolerance(BaseModel):
    """A served numeric value matches the offline one when ``|s - o| <= absolute + relative*|o|``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    absolute: float = Field(default=1e-6, ge=0)
    relative: float = Field(default=1e-3, ge=0)


class SkewCheck:
    """Training-serving skew: served feature values against the offline store's values for
    the same entity and time. Alarm when a feature's mismatch fraction exceeds
    ``max_mismatch_fraction``. A null on one side only is a mismatch; nulls on both agree."""

    def __init__(
        self,
        feature_names: Sequence[str],
        categorical: Iterable[str] = (),
        tolerance: SkewTolerance | None = None,
        per_feature: Mapping[str, SkewTolerance] | None = None,
        max_mismatch_fraction: float = 0.01,
    ) -> None:
        self.feature_names = [str(n) for n in feature_names]
        if not self.feature_names:
            raise DetectorConfigError("skew check needs at least one feature name")
        self.categorical = frozenset(categorical)
        unknown = sorted((self.categorical | set(per_feature or {})) - set(self.feature_names))
        if unknown:
            raise DetectorConfigError(f"skew check: unknown features {unknown}")
        if not 0.0 <= max_mismatch_fraction < 1.0:
            raise DetectorConfigError(
                f"max_mismatch_fraction must be in [0, 1), got {max_mismatch_fraction!r}"
            )
        default = tolerance or SkewTolerance()
        self.tolerances = {n: (per_feature or {}).get(n, default) for n in self.feature_names}
        self.max_mismatch_fraction = float(max_mismatch_fraction)

    def check(self, served: TableLike, offline: TableLike, unmatched_served: int = 0) -> SkewResult:
        """Compare row-aligned served and offline values (row i = the same entity and time)."""
        served_frame = _as_frame(served, self.feature_names, what="served features")
        offline_frame = _as_frame(offline, self.feature_names, what="offline features")
        if len(served_frame) != len(offline_frame):
            raise InvalidWindowError(
                "shape",
                f"served has {len(served_frame)} rows but offline has {len(offline_frame)}; "
                "rows must pair the same entity and time",
            )
        mismatched = {
            n: self._mismatches(served_frame[n], offline_frame[n], n) for n in self.feature_names
        }
        pairs = len(served_frame)
        fractions = {n: count / pairs for n, count in mismatched.items()}
        skewed = [n for n, f in fractions.items() if f > self.max_mismatch_fraction]
        return SkewResult(
            pairs=pairs,
            mismatch_fraction=fractions,
            mismatched=mismatched,
            max_mismatch_fraction=self.max_mismatch_fraction,
            skewed_features=skewed,
            is_skew=bool(skewed),
            unmatched_served=unmatched_served,
        )

    def check_by_keys(
        self, served: pd.DataFrame, offline: pd.DataFrame, keys: Sequence[str]
    ) -> SkewResult:
        """Pair rows on ``keys`` (entity columns and the event time), then :meth:`check`."""
        for what, frame in (("served", served), ("offline", offline)):
            missing = [k for k in keys if k not in frame.columns]
            if missing:
                raise InvalidWindowError("missing-feature", f"{what} lacks key columns {missing}")
        joined = served.merge(
            offline, on=list(keys), how="left", suffixes=("", "__offline"), indicator=True
        )
        matched = joined[joined["_merge"] == "both"]
        if matched.empty:
            raise InvalidWindowError("empty", "no served row has an offline row with the same keys")
        offline_columns = {f"{n}__offline": n for n in self.feature_names}
        return self.check(
            matched[self.feature_names],
            matched[list(offline_columns)].rename(columns=offline_columns),
            unmatched_served=int((joined["_merge"] == "left_only").sum()),
        )

    def _mismatches(self, served: pd.Series, offline: pd.Series, name: str) -> int:
        served_null = served.isna().to_numpy()
        offline_null = offline.isna().to_numpy()
        one_sided = served_null != offline_null
        both = ~(served_null | offline_null)
        if name in self.categorical:
            differ = served.astype(str).to_numpy() != offline.astype(str).to_numpy()
        else:
            differ = self._numeric_differ(served, offline, name)
        return int(one_sided.sum() + (differ & both).sum())

    def _numeric_differ(self, served: pd.Series, offline: pd.Series, name: str) -> np.ndarray:
        try:
            s = pd.to_numeric(served, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
            o = pd.to_numeric(offline, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as error:
            raise InvalidWindowError(
                "type", f"feature {name!r} holds non-numbers: {error}"
            ) from None
        tol = self.tolerances[name]
        with np.errstate(invalid="ignore"):
            close = np.abs(s - o) <= tol.absolute + tol.relative * np.abs(o)
        close |= s == o  # equal infinities
        return ~close

"""Turn reference and window data into validated float matrices with a fixed column order.

The schema is learnt from the reference: feature order, which features are categorical and
the categories each one had. Windows are then checked against it (shape, missing columns,
non-numeric values, NaN/inf) and rejected with an :class:`InvalidWindowError` whose
``reason`` the caller counts. Categorical values are replaced by integer codes in the
reference's category order; a category the reference never saw gets one shared extra code,
so new categories show up as drift instead of crashing a test.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pandas as pd

from services.monitor.drift.errors import DetectorConfigError, InvalidWindowError

#: Reference data, or a window: an (n, d) array, a DataFrame with the feature columns, or
#: (for a single feature, e.g. model scores) a 1-D array.
TableLike: TypeAlias = np.ndarray | pd.DataFrame | Sequence[Sequence[Any]] | Sequence[float]


@dataclass(frozen=True)
class FeatureSchema:
    """Feature order and category codes learnt from a reference; encodes windows."""

    feature_names: tuple[str, ...]
    categorical: frozenset[str]
    categories: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def numeric_indices(self) -> list[int]:
        return [i for i, n in enumerate(self.feature_names) if n not in self.categorical]

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, n in enumerate(self.feature_names) if n in self.categorical]

    def n_codes(self, feature: str) -> int:
        """Codes a categorical feature can take: its reference categories plus 'unseen'."""
        return len(self.categories[feature]) + 1

    @classmethod
    def learn(
        cls,
        reference: TableLike,
        feature_names: Sequence[str] | None = None,
        categorical: Iterable[str] = (),
    ) -> FeatureSchema:
        frame = _as_frame(reference, feature_names, what="reference")
        names = tuple(str(c) for c in frame.columns)
        if len(set(names)) != len(names):
            raise DetectorConfigError(f"feature names must be unique, got {list(names)}")
        cat = frozenset(categorical)
        unknown = sorted(cat - set(names))
        if unknown:
            raise DetectorConfigError(
                f"categorical features {unknown} are not among the features {list(names)}"
            )
        categories = {
            name: tuple(_sorted_categories(frame[name].dropna().unique()))
            for name in names
            if name in cat
        }
        return cls(feature_names=names, categorical=cat, categories=categories)

    def encode(self, data: TableLike, *, what: str = "window") -> np.ndarray:
        """Validated (n, d) float64 matrix; raises :class:`InvalidWindowError`."""
        frame = _as_frame(data, list(self.feature_names), what=what)
        columns = [self._encode_column(frame[name], name, what) for name in self.feature_names]
        return np.column_stack(columns).astype(np.float64, copy=False)

    def encode_reference(self, reference: TableLike) -> tuple[np.ndarray, int]:
        """The reference as a matrix, with rows holding a null dropped (and their count).

        Training snapshots legitimately have a few nulls; the null-rate check watches those,
        the distribution tests compare the rows that are complete.
        """
        frame = _as_frame(reference, list(self.feature_names), what="reference")
        complete = frame.notna().all(axis=1)
        numeric = [n for n in self.feature_names if n not in self.categorical]
        if numeric:
            values = _numeric_block(frame[numeric], "reference")
            complete &= np.isfinite(values).all(axis=1)
        kept = frame[complete.to_numpy()]
        if len(kept) < 2:
            raise InvalidWindowError(
                "empty", f"reference has {len(kept)} complete rows; at least 2 are needed"
            )
        return self.encode(kept, what="reference"), int(len(frame) - len(kept))

    def _encode_column(self, column: pd.Series, name: str, what: str) -> np.ndarray:
        if name in self.categorical:
            if column.isna().any():
                raise InvalidWindowError(
                    "null", f"{what} feature {name!r} has {int(column.isna().sum())} null values"
                )
            codes = {value: code for code, value in enumerate(self.categories[name])}
            unseen = len(codes)
            return np.array([_lookup(codes, v, unseen) for v in column.tolist()], dtype=float)
        values = _numeric_block(column.to_frame(), what)[:, 0]
        bad = ~np.isfinite(values)
        if bad.any():
            raise InvalidWindowError(
                "non-finite",
                f"{what} feature {name!r} has {int(bad.sum())} NaN/inf/null values",
            )
        return values


def _lookup(codes: dict[Any, int], value: Any, unseen: int) -> int:
    try:
        return codes.get(value, unseen)
    except TypeError:  # unhashable value (a list in a JSON payload): never a known category
        return unseen


def _sorted_categories(values: np.ndarray) -> list[Any]:
    items = [v.item() if isinstance(v, np.generic) else v for v in values]
    try:
        return sorted(items)
    except TypeError:  # mixed types: a stable, deterministic order is all that matters
        return sorted(items, key=lambda v: (type(v).__name__, str(v)))


def _numeric_block(frame: pd.DataFrame, what: str) -> np.ndarray:
    try:
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as error:
        raise InvalidWindowError(
            "type", f"{what} numeric features {list(frame.columns)} hold non-numbers: {error}"
        ) from None


def _as_frame(data: TableLike, names: Sequence[str] | None, *, what: str) -> pd.DataFrame:
    """A DataFrame holding exactly the named columns, in order."""
    if isinstance(data, pd.DataFrame):
        return _select_columns(data, names, what)
    if isinstance(data, pd.Series):
        data = data.to_numpy()
    if not isinstance(data, np.ndarray):
        try:
            data = np.asarray(data, dtype=object)
        except (TypeError, ValueError) as error:
            raise InvalidWindowError("shape", f"{what} is not a table: {error}") from None
    matrix = _as_matrix(data, len(names) if names is not None else None, what)
    columns = list(names) if names is not None else [f"f{i}" for i in range(matrix.shape[1])]
    return pd.DataFrame(matrix, columns=columns)


def _as_matrix(data: np.ndarray, width: int | None, what: str) -> np.ndarray:
    if data.ndim == 1 and (width is None or width == 1):
        data = data.reshape(-1, 1)
    if data.ndim != 2:
        raise InvalidWindowError(
            "shape", f"{what} must be a 2-D (rows, features) table, got shape {data.shape}"
        )
    if data.shape[0] == 0:
        raise InvalidWindowError("empty", f"{what} has no rows")
    if width is not None and data.shape[1] != width:
        raise InvalidWindowError(
            "shape", f"{what} has {data.shape[1]} columns, expected {width} features"
        )
    return data


def _select_columns(frame: pd.DataFrame, names: Sequence[str] | None, what: str) -> pd.DataFrame:
    if names is None:
        names = [str(c) for c in frame.columns]
        frame = frame.set_axis(names, axis=1)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidWindowError("missing-feature", f"{what} lacks features {missing}")
    if len(frame) == 0:
        raise InvalidWindowError("empty", f"{what} has no rows")
    return frame.loc[:, list(names)]

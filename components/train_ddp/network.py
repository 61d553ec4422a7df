"""The model: a small MLP (or logistic regression) over standardized tabular features.

Training works on standardized features; for serving, the standardization is folded into the
first linear layer and a sigmoid is appended, so the served model is a plain
`torch.nn.Sequential` of built-in layers: any MLflow/KServe server with torch can load it
without kubeloop installed, and it maps raw feature values to probabilities.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def build_mlp(n_features: int, hidden_units: Sequence[int]) -> nn.Sequential:
    """Logits model; no hidden units means logistic regression."""
    layers: list[nn.Module] = []
    width = n_features
    for units in hidden_units:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature mean and scale from the training set; NaN is imputed with the mean."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, features: np.ndarray) -> Standardizer:
        mean = np.nan_to_num(np.nanmean(features.astype(np.float64), axis=0))
        std = np.nan_to_num(np.nanstd(features.astype(np.float64), axis=0))
        # A constant column would divide by zero; leaving it unscaled is harmless.
        scale = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean.astype(np.float32), scale=scale.astype(np.float32))

    def apply(self, features: np.ndarray) -> np.ndarray:
        standardized = (features - self.mean) / self.scale
        return np.nan_to_num(standardized, nan=0.0).astype(np.float32)

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Standardizer:
        return cls(
            mean=np.asarray(data["mean"], dtype=np.float32),
            scale=np.asarray(data["scale"], dtype=np.float32),
        )


def serving_model(trained: nn.Sequential, standardizer: Standardizer) -> nn.Sequential:
    """Raw features -> probability: W((x-m)/s)+b == (W/s)x + (b - W(m/s))."""
    model = copy.deepcopy(trained).cpu().eval()
    first = model[0]
    assert isinstance(first, nn.Linear)
    mean = torch.from_numpy(standardizer.mean)
    scale = torch.from_numpy(standardizer.scale)
    with torch.no_grad():
        bias = first.bias - first.weight @ (mean / scale)
        weight = first.weight / scale
        first.bias.copy_(bias)
        first.weight.copy_(weight)
    return nn.Sequential(*model, nn.Sigmoid())

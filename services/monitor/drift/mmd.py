"""Apache-2.0 MMD drift test in PyTorch, with every permutation in one matrix product.

Alibi Detect's ``MMDDrift`` re-indexes the whole kernel matrix once per permutation; here a
permutation is a column of an indicator matrix ``A`` (1 for rows labelled 'reference'), so
all of them cost one ``K @ A`` product, and the reference-reference block of ``K`` is
computed once at fit. The statistic is the unbiased MMD^2 with a Gaussian kernel whose
bandwidth comes from the reference (median heuristic); the p-value is the permutation
p-value ``(1 + #{permuted >= observed}) / (1 + n_permutations)``, which keeps the
false-alarm rate at or below ``p_value``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from services.monitor.drift.multivariate import PermutationDetector, Standardiser, subsample
from services.monitor.drift.result import DriftResult

#: Permutations per matrix product; bounds the indicator matrix to rows x chunk floats.
PERMUTATION_CHUNK = 256


class MMDDetector(PermutationDetector):
    """Maximum mean discrepancy with a permutation test (PyTorch, CPU or CUDA). Options: those
    of :class:`PermutationDetector`, and ``seed`` for the subsample and the permutations."""

    name: ClassVar[str] = "mmd"

    def __init__(self, *, seed: int = 0, **options: Any) -> None:
        super().__init__(**options)
        self.seed = seed

    def _fit_matrix(self, reference: np.ndarray) -> None:
        import torch

        reference = subsample(reference, self.max_reference_rows, self.seed)
        self.reference_size = len(reference)
        self._standardiser = Standardiser.learn(self.schema, reference)
        self._x = torch.from_numpy(self._standardiser.transform(reference)).to(self.device)
        squared = torch.cdist(self._x, self._x).pow(2)
        off_diagonal = squared[~torch.eye(len(self._x), dtype=torch.bool, device=self.device)]
        median = float(off_diagonal.median())
        self._gamma = 1.0 / max(median, 1e-12)  # exp(-d^2 / (2 sigma^2)), sigma^2 = median / 2
        self._k_xx = torch.exp(-self._gamma * squared)
        self._generator = torch.Generator().manual_seed(self.seed)

    def _check_matrix(self, window: np.ndarray) -> DriftResult:
        import torch

        y = torch.from_numpy(self._standardiser.transform(window)).to(self.device)
        kernel = self._kernel_matrix(y)
        n, m = len(self._x), len(y)
        observed = self._mmd2(kernel, self._labels_identity(n, m))[0]
        exceed = 0
        for start in range(0, self.n_permutations, PERMUTATION_CHUNK):
            count = min(PERMUTATION_CHUNK, self.n_permutations - start)
            exceed += int(
                (self._mmd2(kernel, self._labels_permuted(n, m, count)) >= observed).sum()
            )
        p_value = (1 + exceed) / (1 + self.n_permutations)
        return DriftResult(
            detector=self.name,
            license=self.license,
            is_drift=p_value < self.p_value,
            p_value=p_value,
            distance=float(observed),
            threshold=self.p_value,
            threshold_kind="p-value",
            configured_p_value=self.p_value,
            correction="none",
            window_size=m,
            reference_size=n,
        )

    def _kernel_matrix(self, y: Any) -> Any:
        import torch

        k_xy = torch.exp(-self._gamma * torch.cdist(self._x, y).pow(2))
        k_yy = torch.exp(-self._gamma * torch.cdist(y, y).pow(2))
        kernel = torch.cat(
            [torch.cat([self._k_xx, k_xy], dim=1), torch.cat([k_xy.T, k_yy], dim=1)], dim=0
        )
        return kernel.fill_diagonal_(0.0)  # unbiased estimate: no self-similarity terms

    def _labels_identity(self, n: int, m: int) -> Any:
        import torch

        labels = torch.zeros(n + m, 1, device=self.device)
        labels[:n] = 1.0
        return labels

    def _labels_permuted(self, n: int, m: int, count: int) -> Any:
        """(n + m, count) indicators; each column marks a random n rows as 'reference'."""
        import torch

        order = torch.rand(count, n + m, generator=self._generator).argsort(dim=1)
        labels = torch.zeros(count, n + m)
        labels.scatter_(1, order[:, :n], 1.0)
        return labels.T.contiguous().to(self.device)

    @staticmethod
    def _mmd2(kernel: Any, a: Any) -> Any:
        """Unbiased MMD^2 for each labelling column of ``a`` (1 = reference, 0 = window)."""
        n = a[:, 0].sum()
        m = a.shape[0] - n
        ka = kernel @ a
        total = kernel.sum()
        xx = (a * ka).sum(dim=0)
        xy = ((1 - a) * ka).sum(dim=0)
        yy = total - xx - 2 * xy
        return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)

"""The one batch type that flows from data to models.

Shapes: B = batch size, N = total ids of one feature over the batch, T = number of tasks,
D = dense feature width.

Raw 64-bit ids stay on the host: the dynamic embedding tables resolve them to rows with a
host-side hash map and move only the row numbers to the device. `Batch.to(device)` therefore
moves dense features and labels, not the raw sparse ids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass(frozen=True)
class Jagged:
    """Variable-length id lists for one feature: `values` (N,) int64, `lengths` (B,) int64.

    Example::

        # three rows: [7], [], [3, 3, 9]
        Jagged(values=tensor([7, 3, 3, 9]), lengths=tensor([1, 0, 3]))
    """

    values: Tensor
    lengths: Tensor

    def __post_init__(self) -> None:
        if self.values.dim() != 1 or self.lengths.dim() != 1:
            raise ValueError("Jagged values and lengths must be 1-D")

    @classmethod
    def from_dense(cls, ids: Tensor) -> Jagged:
        """One id per row: (B,) -> lengths of ones."""
        return cls(values=ids.reshape(-1), lengths=torch.ones(ids.numel(), dtype=torch.int64))

    def offsets(self) -> Tensor:
        """(B + 1,) start of each row in `values`."""
        return torch.cat([self.lengths.new_zeros(1), torch.cumsum(self.lengths, 0)])

    def __len__(self) -> int:
        return int(self.lengths.numel())


@dataclass(frozen=True)
class KeyedJagged:
    """Named `Jagged` features over the same batch (TorchRec's KeyedJaggedTensor, simplified)."""

    features: dict[str, Jagged]

    def keys(self) -> list[str]:
        return list(self.features)

    def __getitem__(self, key: str) -> Jagged:
        return self.features[key]

    def __contains__(self, key: object) -> bool:
        return key in self.features

    def get_or_none(self, key: str) -> Jagged | None:
        return self.features.get(key)


@dataclass
class Batch:
    """dense (B, D) float32, sparse ids, labels (B, T) float32 or None, request_ids (B,)."""

    dense: Tensor
    sparse: KeyedJagged
    labels: Tensor | None = None
    request_ids: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.int64))

    def __len__(self) -> int:
        return int(self.dense.shape[0])

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        labels = (
            self.labels.to(device, non_blocking=non_blocking) if self.labels is not None else None
        )
        return Batch(
            dense=self.dense.to(device, non_blocking=non_blocking),
            sparse=self.sparse,
            labels=labels,
            request_ids=self.request_ids,
        )

    def labels_or_none(self) -> Tensor | None:
        return self.labels

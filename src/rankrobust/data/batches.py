"""Batching and augmentation of in-memory sets: whole batches by one fancy-index, DDP shards."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from rankrobust.data.sets import ImageSet


class TensorBatches(Dataset):
    """Indexable by a list of indices: one fancy-index per batch instead of per-sample collation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx_t = torch.as_tensor(idx, device=self.labels.device)
        return self.images[idx_t], self.labels[idx_t]


class ShardedBatches(DistributedSampler):
    """Batches of indices for this process: shuffled per epoch (seed + epoch), sharded for DDP.

    A DistributedSampler, so Lightning neither replaces it nor wraps it; it calls `set_epoch`
    every epoch, which makes the order a function of (seed, epoch) alone: a resumed run sees the
    same batches as an uninterrupted one. Training shards are padded to equal length (DDP needs
    the same number of steps on every process); test shards are contiguous and unpadded, so
    synced metrics cover each test image exactly once.
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        epoch_fn=None,
    ):
        dist = torch.distributed
        if num_replicas is None:
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = dist.get_world_size() if ready else 1
            rank = dist.get_rank() if ready else 0
        super().__init__(
            range(n), num_replicas=num_replicas, rank=rank or 0, shuffle=shuffle, seed=seed
        )
        self.n, self.batch_size = n, batch_size
        # epoch_fn (trainer.current_epoch), read when the first batch is drawn, is exact; on a
        # resume Lightning calls set_epoch only after it has created the epoch's iterator.
        self.epoch_fn = epoch_fn

    def _indices(self) -> list[int]:
        if not self.shuffle:
            per = -(-self.n // self.num_replicas)
            return list(range(self.rank * per, min(self.n, (self.rank + 1) * per)))
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        g = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        order += order[: self.total_size - self.n]  # pad as DistributedSampler does
        return order[self.rank : self.total_size : self.num_replicas]

    def __iter__(self):
        # A generator: the order is drawn at the first batch, not when iter() is called. After
        # a resume from an end-of-epoch checkpoint, Lightning creates the training iterator
        # (FitLoop.setup_data) *before* it advances current_epoch to the next epoch, and does
        # not create it again; an eager order would replay the finished epoch's batches.
        idx = self._indices()
        for i in range(0, len(idx), self.batch_size):
            yield idx[i : i + self.batch_size]

    def __len__(self) -> int:
        return -(-len(self._indices()) // self.batch_size)


def batch_loader(
    data: ImageSet, batch_size: int, shuffle: bool, seed: int = 0, epoch_fn=None
) -> DataLoader:
    """A DataLoader yielding whole batches of an in-memory set (works with tensors on a GPU)."""
    ds = TensorBatches(data.images, data.labels)
    sampler = ShardedBatches(len(ds), batch_size, shuffle=shuffle, seed=seed, epoch_fn=epoch_fn)
    return DataLoader(ds, sampler=sampler, batch_size=None, num_workers=0)


def random_crop_flip(x: torch.Tensor, padding: int = 4, generator=None) -> torch.Tensor:
    """Batched augmentation on the device: reflect-pad, random crop back to size, random flip."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4, mode="reflect")
    dx = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    dy = torch.randint(0, 2 * padding + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)

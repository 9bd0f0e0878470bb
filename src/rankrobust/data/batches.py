"""Batching and augmentation of in-memory sets: whole batches by one fancy-index, DDP shards."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from rankrobust.data.sets import ImageSet
from rankrobust.errors import ConfigError
from rankrobust.inputs import check_images, check_int, check_number


class TensorBatches(Dataset):
    """Indexable by a batch of indices: one fancy-index per batch, no per-sample collation.

    Best given an int64 index tensor already on the data's device (what `ShardedBatches` yields
    when told the device): a list of ints costs a host-to-device copy, and a sync, per batch.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: torch.Tensor | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx_t = torch.as_tensor(idx, device=self.labels.device)  # no copy when already there
        return self.images[idx_t], self.labels[idx_t]


def _to_device(order: torch.Tensor, device: torch.device) -> torch.Tensor:
    """One copy per epoch; from pinned memory, asynchronous (no host-device sync)."""
    if device.type == "cuda":
        return order.pin_memory().to(device, non_blocking=True)
    return order.to(device)


class ShardedBatches(DistributedSampler):
    """Batches of indices for this process: shuffled per epoch (seed + epoch), sharded for DDP.

    A DistributedSampler, so Lightning neither replaces it nor wraps it; it calls `set_epoch`
    every epoch, which makes the order a function of (seed, epoch) alone: a resumed run sees the
    same batches as an uninterrupted one. Training shards are padded to equal length (DDP needs
    the same number of steps on every process); test shards are contiguous and unpadded, so
    synced metrics cover each test image exactly once.

    With `device` None the batches are lists of ints; with a device they are int64 tensors on
    it, slices of the epoch's order copied there once per epoch (the permutation is always drawn
    on the CPU, so the order is the same on every device).
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
        device: torch.device | str | None = None,
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
        self.device = torch.device(device) if device is not None else None

    def _test_shard(self) -> tuple[int, int]:
        """[start, stop) of this process's contiguous share of an unshuffled set."""
        per = -(-self.n // self.num_replicas)
        return min(self.n, self.rank * per), min(self.n, (self.rank + 1) * per)

    def _order(self) -> torch.Tensor:
        """This process's indices for the current epoch, int64 on the CPU."""
        if not self.shuffle:
            return torch.arange(*self._test_shard())
        epoch = self.epoch_fn() if self.epoch_fn is not None else self.epoch
        g = torch.Generator().manual_seed(self.seed + epoch)
        order = torch.randperm(self.n, generator=g)
        order = torch.cat([order, order[: self.total_size - self.n]])  # pad as DistributedSampler
        return order[self.rank : self.total_size : self.num_replicas]

    def _indices(self) -> list[int]:
        return self._order().tolist()

    def __iter__(self):
        # A generator: the order is drawn at the first batch, not when iter() is called. After
        # a resume from an end-of-epoch checkpoint, Lightning creates the training iterator
        # (FitLoop.setup_data) *before* it advances current_epoch to the next epoch, and does
        # not create it again; an eager order would replay the finished epoch's batches.
        if self.device is None:
            idx = self._indices()
        elif not self.shuffle:  # built on the device: no copy at all
            idx = torch.arange(*self._test_shard(), device=self.device)
        else:
            idx = _to_device(self._order(), self.device)
        for i in range(0, len(idx), self.batch_size):
            yield idx[i : i + self.batch_size]

    def __len__(self) -> int:
        if self.shuffle:
            count = self.num_samples  # ceil(n / num_replicas): padded shards
        else:
            start, stop = self._test_shard()
            count = stop - start
        return -(-count // self.batch_size)


def batch_loader(
    data: ImageSet, batch_size: int, shuffle: bool, seed: int = 0, epoch_fn=None
) -> DataLoader:
    """A DataLoader yielding whole batches of an in-memory set (works with tensors on a GPU).

    The sampler yields index tensors on the data's device, so a step costs no host-to-device
    copy and no sync.
    """
    ds = TensorBatches(data.images, data.labels)
    device = data.labels.device
    sampler = ShardedBatches(len(ds), batch_size, shuffle, seed, epoch_fn=epoch_fn, device=device)
    return DataLoader(ds, sampler=sampler, batch_size=None, num_workers=0)


CROP_PADDING = 4  # random_crop_flip's default: training's augmentation (dataset.augment)


def random_crop_flip(x: torch.Tensor, padding: int = CROP_PADDING, generator=None) -> torch.Tensor:
    """Batched augmentation on the device: reflect-pad, random crop back to size, random flip.

    x: (N, C, H, W) floats (type, dtype and shape checked, not the values: no device sync);
    padding: an integer >= 0, smaller than H and W (a reflection needs that many pixels)."""
    check_images(x, "x", unit_range=False, values=False)
    padding = check_int(padding, "padding", 0)
    n, _, h, w = x.shape
    if padding >= min(h, w) and padding > 0:
        raise ConfigError(
            f"padding={padding} is not valid for {h}x{w} images: a reflect padding must be "
            f"smaller than the image's height and width (use padding <= {min(h, w) - 1})."
        )
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


def random_brightness_contrast(
    x: torch.Tensor, brightness: float, contrast: float, generator=None
) -> torch.Tensor:
    """Per image, x' = m + c (x - m) + b with m the image's mean over C, H, W,
    c ~ U(1 - contrast, 1 + contrast) and b ~ U(-brightness, brightness) (pixel units).

    Not clamped: x' may leave [0, 1], as the high-rank residual H_k(x) does (mean 0, about 0.28
    of the image's contrast at k = 4 on CIFAR-10), so training attacks on these images must not
    clamp either (build._pixels). torchvision's ColorJitter scales brightness and clamps; an
    additive shift that can go below 0 is what lets a natural model see H_k(x) as a dark image
    with the same fine detail rather than a new kind of input. x: (N, C, H, W); brightness >= 0,
    contrast in [0, 1]; both 0: x itself."""
    check_images(x, "x", unit_range=False, values=False)
    brightness = check_number(brightness, "brightness", low=0)
    contrast = check_number(contrast, "contrast", low=0, high=1)
    if brightness == 0 and contrast == 0:
        return x
    n, ones = x.shape[0], (1, 1, 1)
    c = 1 + contrast * (2 * torch.rand(n, *ones, device=x.device, generator=generator) - 1)
    b = brightness * (2 * torch.rand(n, *ones, device=x.device, generator=generator) - 1)
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (m + c * (x - m) + b).to(x.dtype)

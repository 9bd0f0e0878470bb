"""Data: image sets as pixel tensors in [0, 1], the rank transform hook, and LightningDataModules.

Three families share one module, `ImageDataModule`:
- in memory (`cifar10`, `image_folder` with small images, `synthetic`): the whole set is held as
  a float tensor (on the training device when `on_device`), the rank transform is computed once
  per set and cached, and training batches are augmented on the device (random crop + flip);
- streamed (`image_folder` / `imagenet` with `in_memory: false`): torchvision ImageFolder with
  resize / centre crop, the rank transform applied batch by batch on the device.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from rankrobust.errors import ConfigError
from rankrobust.svd import RankTransform

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass
class ImageSet:
    """A labelled image set: `images` float32 (N, C, H, W) in [0, 1], `labels` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def subset(self, n: int | None, seed: int = 0) -> ImageSet:
        """A class-balanced-in-expectation random subset of n images (all when n is None)."""
        if n is None or n >= len(self.labels):
            return self
        idx = torch.randperm(len(self.labels), generator=torch.Generator().manual_seed(seed))[:n]
        return ImageSet(self.images[idx], self.labels[idx], self.classes)


# ---------------------------------------------------------------------------------------------
# Loaders: each returns (train, test) ImageSets.


def synthetic_sets(
    n_train: int,
    n_test: int,
    num_classes: int = 10,
    image_size: int = 32,
    channels: int = 3,
    robust_amplitude: float = 0.25,
    nonrobust_amplitude: float = 0.02,
    noise: float = 0.08,
    seed: int = 0,
) -> tuple[ImageSet, ImageSet]:
    """Deterministic synthetic images with a robust and a non-robust feature per class.

    x = 0.5 + a_r * s * P_y + a_n * Q_y + noise, clamped to [0, 1], where P_y is a smooth rank-1
    pattern (large, low-rank: the robust feature, its strength s ~ U(0.3, 1) varies per image) and
    Q_y a +-1 high-frequency pattern (small, high-rank, perfectly predictive: the non-robust
    feature, smaller than a typical eps). Natural training can lean on Q; adversarial training
    with eps > a_n cannot, which mirrors the paper's story at toy scale.
    """
    g = torch.Generator().manual_seed(seed)
    grid = torch.linspace(0, 1, image_size)
    freq = torch.randint(1, 3, (num_classes, 2), generator=g).float()
    phase = torch.rand(num_classes, 2, generator=g) * 2 * torch.pi
    u = torch.sin(2 * torch.pi * freq[:, :1] * grid + phase[:, :1])
    v = torch.cos(2 * torch.pi * freq[:, 1:] * grid + phase[:, 1:])
    colour = torch.rand(num_classes, channels, generator=g) * 2 - 1
    robust = colour[:, :, None, None] * (u[:, None, :, None] * v[:, None, None, :])
    nonrobust = torch.randint(0, 2, (num_classes, channels, image_size, image_size), generator=g)
    nonrobust = nonrobust.float() * 2 - 1

    def make(n: int) -> ImageSet:
        y = torch.randint(0, num_classes, (n,), generator=g)
        strength = 0.3 + 0.7 * torch.rand(n, 1, 1, 1, generator=g)
        x = (
            0.5
            + robust_amplitude * strength * robust[y]
            + nonrobust_amplitude * nonrobust[y]
            + noise * torch.randn(n, channels, image_size, image_size, generator=g)
        )
        classes = tuple(f"class{i}" for i in range(num_classes))
        return ImageSet(x.clamp(0, 1), y, classes)

    return make(n_train), make(n_test)


def cifar10_sets(root: str | Path, download: bool) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 through torchvision (downloads into `root` where a network exists)."""
    from torchvision.datasets import CIFAR10

    sets = []
    for train in (True, False):
        try:
            ds = CIFAR10(str(root), train=train, download=download)
        except RuntimeError as err:  # torchvision: "Dataset not found or corrupted"
            raise ConfigError(
                f"CIFAR-10 was not found under '{root}' ({err}). Set dataset.download=true on a "
                "machine with network access, point dataset.root at a folder holding "
                "'cifar-10-batches-py', or use the ImageFolder copy: dataset=image_folder "
                "dataset.root=<path to cifar10-jpeg.tar.gz or its extraction>."
            ) from err
        except OSError as err:  # URLError and friends: no network
            raise ConfigError(
                f"Downloading CIFAR-10 into '{root}' failed ({err}). This machine has no network "
                "access to the CIFAR-10 host: download it elsewhere and copy "
                "'cifar-10-batches-py' into dataset.root, or use dataset=image_folder "
                "dataset.root=<path to cifar10-jpeg.tar.gz or its extraction>."
            ) from err
        x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).float().div_(255)
        sets.append(ImageSet(x, torch.tensor(ds.targets), tuple(ds.classes)))
    return sets[0], sets[1]


def _decode(data: bytes, size: int | None) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    if size is not None and img.size != (size, size):
        img = _resize_center_crop(img, size)
    return np.asarray(img, dtype=np.uint8)


def _resize_center_crop(img, size: int):
    """Resize the short side to size * 8/7 (256 for 224) and centre-crop size x size."""
    from torchvision.transforms import functional as F

    img = F.resize(img, round(size * 8 / 7))
    return F.center_crop(img, size)


def _split_member(name: str) -> tuple[str, str] | None:
    """'…/train/<class>/<file>.jpg' -> ('train', '<class>'), else None."""
    parts = Path(name).parts
    if len(parts) < 3 or not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    split, cls = parts[-3], parts[-2]
    return (split, cls) if split in ("train", "test", "val") else None


def _collect(items: Iterator[tuple[str, str, bytes]], size: int | None) -> dict:
    """Group decoded images by split: {split: (list of HWC uint8 arrays, list of class names)}."""
    out: dict[str, tuple[list, list]] = {}
    for split, cls, data in items:
        imgs, names = out.setdefault("test" if split == "val" else split, ([], []))
        imgs.append(_decode(data, size))
        names.append(cls)
    return out


def _tar_items(path: Path) -> Iterator[tuple[str, str, bytes]]:
    with tarfile.open(path, "r|gz" if path.name.endswith("gz") else "r|") as tf:
        for member in tf:
            key = _split_member(member.name) if member.isfile() else None
            if key is not None:
                yield key[0], key[1], tf.extractfile(member).read()


def _folder_items(root: Path) -> Iterator[tuple[str, str, bytes]]:
    for path in sorted(root.rglob("*")):
        key = _split_member(str(path.relative_to(root))) if path.is_file() else None
        if key is not None:
            yield key[0], key[1], path.read_bytes()


def _cache_file(root: Path, size: int | None) -> Path:
    stat = root.stat()
    key = f"{root.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{size}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    base = Path(os.environ.get("RANKROBUST_CACHE", Path.home() / ".cache" / "rankrobust"))
    return base / f"imagefolder-{digest}.npz"


def image_folder_sets(root: str | Path, image_size: int | None = None) -> tuple[ImageSet, ImageSet]:
    """An ImageFolder tree (`train/<class>/*`, `test/<class>/*` or `val/<class>/*`) held in memory.

    `root` is a folder or a .tar / .tar.gz of one, read sequentially. Decoded images are cached
    as a .npz under $RANKROBUST_CACHE (default ~/.cache/rankrobust), keyed by path, size and
    modification time, so a second run starts in a second.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(
            f"dataset.root '{root}' does not exist. Point dataset.root at an ImageFolder tree "
            "(train/<class>/*.jpg and test/<class>/*.jpg) or a .tar.gz of one; for the CIFAR-10 "
            "copy shipped with this project's shared folder use "
            "dataset.root=../shared/data/cifar10-jpeg.tar.gz."
        )
    cache = _cache_file(root, image_size)
    if cache.exists():
        with np.load(cache) as z:
            arrays = {k: z[k] for k in z.files}
    else:
        items = _tar_items(root) if root.is_file() else _folder_items(root)
        try:
            groups = _collect(items, image_size)
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ConfigError(f"Could not read images from '{root}': {err}.") from err
        missing = {"train", "test"} - set(groups)
        if missing:
            raise ConfigError(
                f"'{root}' holds no {' or '.join(sorted(missing))} images: an ImageFolder root "
                "needs train/<class>/ and test/<class>/ (or val/<class>/) folders of images."
            )
        classes = sorted(set(groups["train"][1]))
        arrays = {"classes": np.array(classes)}
        for split, (imgs, names) in groups.items():
            sizes = {a.shape for a in imgs}
            if len(sizes) > 1:
                raise ConfigError(
                    f"'{root}' holds images of several sizes ({sorted(sizes)[:3]}…): set "
                    "dataset.image_size to resize and centre-crop them to one size."
                )
            index = {c: i for i, c in enumerate(classes)}
            unknown = set(names) - set(index)
            if unknown:
                raise ConfigError(
                    f"{split} classes {sorted(unknown)} are not in train/ under '{root}'."
                )
            arrays[f"{split}_x"] = np.stack(imgs)
            arrays[f"{split}_y"] = np.array([index[c] for c in names], dtype=np.int64)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(cache)
    classes = tuple(str(c) for c in arrays["classes"])

    def to_set(split: str) -> ImageSet:
        x = torch.from_numpy(arrays[f"{split}_x"]).permute(0, 3, 1, 2).float().div_(255)
        return ImageSet(x.contiguous(), torch.from_numpy(arrays[f"{split}_y"]), classes)

    return to_set("train"), to_set("test")


def _random_subset(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """n images of ds drawn at random (seeded), in file order; all of ds when n is None."""
    if n is None or n >= len(ds):
        return ds
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n]
    return torch.utils.data.Subset(ds, sorted(idx.tolist()))


def read_images(
    root: str | Path,
    n: int,
    splits: Sequence[str] = ("test", "val"),
    one_per_class: bool = False,
    classes: Sequence[str] | None = None,
) -> ImageSet:
    """The first n images of the given splits of an ImageFolder tree or tarball, read in order.

    Stops reading as soon as it has n images (no cache, no full decode): for tests, benchmarks
    and figures. `one_per_class` keeps only the first image of each class met. Labels index
    `classes` (default: the sorted class names met, ImageFolder's convention).
    """
    root = Path(root).expanduser()
    items = _tar_items(root) if root.is_file() else _folder_items(root)
    images, names = [], []
    for split, cls, data in items:
        if split not in splits or (one_per_class and cls in names):
            continue
        images.append(_decode(data, None))
        names.append(cls)
        if len(images) >= n:
            break
    if not images:
        raise ConfigError(f"'{root}' holds no {' or '.join(splits)} images.")
    classes = tuple(classes) if classes is not None else tuple(sorted(set(names)))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return ImageSet(x.contiguous(), torch.tensor([classes.index(c) for c in names]), classes)


# ---------------------------------------------------------------------------------------------
# Batching and augmentation.


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


# ---------------------------------------------------------------------------------------------
# The LightningDataModule.


class ImageDataModule(pl.LightningDataModule):
    """Train / test image sets, optionally rank-transformed, for any dataset family.

    `transform` (a RankTransform) is applied to the splits named in `apply_to`: for in-memory
    sets once at setup (the SVD of each set computed once and cached), for streamed sets per
    batch on the device.
    """

    def __init__(
        self,
        name: str,
        batch_size: int = 128,
        eval_batch_size: int = 500,
        root: str | None = None,
        download: bool = False,
        image_size: int | None = None,
        num_classes: int = 10,
        n_train: int | None = None,
        n_test: int | None = None,
        augment: bool = True,
        in_memory: bool = True,
        on_device: bool = True,
        num_workers: int = 0,
        synthetic: dict | None = None,
        transform: RankTransform | None = None,
        apply_to: Sequence[str] | None = None,
        seed: int = 0,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ):
        super().__init__()
        self.name = name
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.root, self.download, self.image_size = root, download, image_size
        self.num_classes = num_classes
        self.n_train, self.n_test = n_train, n_test
        self.augment, self.in_memory, self.on_device = augment, in_memory, on_device
        self.num_workers = num_workers
        self.synthetic = dict(synthetic or {})
        self.transform = transform or RankTransform(mode="low", rank=None)
        # None: the transform's own apply_to (conf/transform/*.yaml)
        self.apply_to = tuple(self.transform.apply_to if apply_to is None else apply_to)
        # The normalisation the model applies inside (models.Normalize); kept for readers.
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None
        self.seed = seed
        self.train_set: ImageSet | None = None
        self.test_set: ImageSet | None = None
        self._streams = None

    # -- loading ---------------------------------------------------------------------------
    def check(self) -> None:
        """Fail fast on configuration errors, before any long work starts."""
        if self.name in ("image_folder", "imagenet") and not self.root:
            raise ConfigError(
                f"dataset={self.name} needs dataset.root: an ImageFolder tree with train/<class>/ "
                "and test/<class>/ (or val/<class>/) folders, or a .tar.gz of one."
            )
        if self.root and self.name in ("image_folder", "imagenet"):
            if not Path(self.root).expanduser().exists():
                image_folder_sets(self.root)  # raises the missing-root error
        bad_split = set(self.apply_to) - {"train", "test"}
        if bad_split:
            raise ConfigError(
                f"transform.apply_to has {sorted(bad_split)}: use train, test or [train, test]."
            )

    def load(self) -> tuple[ImageSet, ImageSet]:
        """The raw (untransformed) train and test sets, in memory."""
        if self.name == "synthetic":
            train, test = synthetic_sets(
                self.n_train or 2000,
                self.n_test or 500,
                num_classes=self.num_classes,
                image_size=self.image_size or 32,
                seed=self.seed,
                **self.synthetic,
            )
        elif self.name == "cifar10":
            train, test = cifar10_sets(self.root or "data/cifar10", self.download)
        elif self.name in ("image_folder", "imagenet"):
            train, test = image_folder_sets(self.root, self.image_size)
        else:
            raise ConfigError(
                f"Unknown dataset '{self.name}': use cifar10, image_folder, imagenet or synthetic."
            )
        return train.subset(self.n_train, self.seed), test.subset(self.n_test, self.seed + 1)

    def prepare_data(self) -> None:
        if self.name == "cifar10" and self.download:
            cifar10_sets(self.root or "data/cifar10", download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if not self.in_memory:
            self._setup_streams()
            return
        train, test = self.load()
        self._check_classes(test.classes)
        self.full_rank = min(train.images.shape[-2:])
        self.transform.validate(self.full_rank)
        device = self._device()
        self.raw_test_set = ImageSet(test.images.to(device), test.labels.to(device), test.classes)
        self.train_set = self._maybe_transform(train, "train", device)
        self.test_set = self._maybe_transform(test, "test", device)

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        if self.on_device and trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _maybe_transform(self, data: ImageSet, split: str, device: torch.device) -> ImageSet:
        images = data.images.to(device)
        if split in self.apply_to and self.transform.rank is not None:
            chunks = [self.transform(c) for c in images.split(2048)]
            images = torch.cat(chunks)
        return ImageSet(images, data.labels.to(device), data.classes)

    def _setup_streams(self) -> None:
        from torchvision import datasets, transforms

        size = self.image_size or 224
        tf = transforms.Compose(
            [
                transforms.Resize(round(size * 8 / 7)),
                transforms.CenterCrop(size),
                transforms.ToTensor(),
            ]
        )
        root = Path(self.root).expanduser()
        splits = {}
        for split in ("train", "test", "val"):
            if (root / split).is_dir():
                splits["test" if split == "val" else split] = datasets.ImageFolder(
                    str(root / split), tf
                )
        if "test" not in splits:
            raise ConfigError(
                f"'{root}' has no test/ or val/ folder of class folders (found: "
                f"{sorted(p.name for p in root.iterdir())[:5] if root.is_dir() else 'no folder'})."
                " ImageNet's validation set must be sorted into val/<wnid>/*.JPEG folders."
            )
        if "train" in splits and splits["train"].classes != splits["test"].classes:
            raise ConfigError(
                f"'{root}': train/ and {'val' if (root / 'val').is_dir() else 'test'}/ hold "
                "different class folders, so their labels would not agree."
            )
        classes = tuple(splits["test"].classes)
        self._check_classes(classes)
        for split, n, offset in (("train", self.n_train, 0), ("test", self.n_test, 1)):
            if split in splits:
                splits[split] = _random_subset(splits[split], n, self.seed + offset)
        self._streams = splits
        self.full_rank = size
        self.transform.validate(size)
        empty = torch.empty(0)
        self.train_set = ImageSet(empty, empty, classes)
        self.test_set = ImageSet(empty, empty, classes)

    def _check_classes(self, classes: Sequence[str]) -> None:
        if len(classes) != self.num_classes:
            shown = ", ".join(list(classes)[:5]) + (", ..." if len(classes) > 5 else "")
            raise ConfigError(
                f"dataset={self.name} at '{self.root}' has {len(classes)} classes ({shown}) but "
                f"dataset.num_classes={self.num_classes} (the model's output size). Set "
                f"dataset.num_classes={len(classes)} for a model trained on these classes, or "
                "give the folder all the classes the model was trained on (labels are the "
                "class folders in sorted order, as torchvision's ImageFolder assigns them)."
            )

    # -- loaders ---------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        if self._streams is not None:
            if "train" not in self._streams:
                raise ConfigError(f"'{self.root}' has no train/ folder: use train=false.")
            return self._stream_loader(self._streams["train"], shuffle=True)
        epoch = (lambda: self.trainer.current_epoch) if self.trainer is not None else None
        return batch_loader(self.train_set, self.batch_size, True, self.seed, epoch_fn=epoch)

    def test_dataloader(self) -> DataLoader:
        if self._streams is not None:
            return self._stream_loader(self._streams["test"], shuffle=False)
        return batch_loader(self.test_set, self.eval_batch_size, shuffle=False)

    def _stream_loader(self, ds, shuffle: bool) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """On the device: the per-batch rank transform (streamed sets) and train augmentation."""
        x, y = batch
        training = self.trainer is not None and self.trainer.training
        split = "train" if training else "test"
        if self._streams is not None and split in self.apply_to and self.transform.rank is not None:
            x = self.transform(x)
        if training and self.augment:  # seeded by (seed, step, rank): exact after a resume
            g = torch.Generator(device=x.device)
            t = self.trainer
            g.manual_seed(self.seed * 1_000_003 + t.global_step * 7919 + t.global_rank * 104_729)
            x = random_crop_flip(x, generator=g)
        return x, y

    def test_tensors(
        self, raw: bool = False, n: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n test images and labels as tensors (raw: before the rank transform)."""
        if self._streams is None:
            data = self.raw_test_set if raw else self.test_set
            return data.images[:n], data.labels[:n]
        # ImageFolder lists images class by class: take a seeded random subset, not the first n.
        ds = _random_subset(self._streams["test"], n, self.seed + 2)
        xs, ys, count = [], [], 0
        device = self._device()
        for x, y in self._stream_loader(ds, False):
            x, y = x.to(device), y.to(device)
            if not raw and "test" in self.apply_to and self.transform.rank is not None:
                x = self.transform(x)
            xs.append(x)
            ys.append(y)
            count += len(y)
            if n is not None and count >= n:
                break
        return torch.cat(xs)[:n], torch.cat(ys)[:n]

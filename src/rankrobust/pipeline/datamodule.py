"""The LightningDataModule: train / test sets of any family, the rank-transform hook, loaders."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Subset

from rankrobust.data.batches import (
    CROP_PADDING,
    batch_loader,
    random_brightness_contrast,
    random_crop_flip,
)
from rankrobust.data.cifar10 import cifar10_sets, locate_cifar10
from rankrobust.data.folder import image_folder_sets
from rankrobust.data.imagenet import class_index, readable_classes
from rankrobust.data.sets import ImageSet, synthetic_sets
from rankrobust.data.streaming import random_subset, stream_loader, stream_sets, subset_indices
from rankrobust.errors import ConfigError
from rankrobust.pipeline.seeding import step_seed
from rankrobust.svd import RankTransform

log = logging.getLogger("rankrobust")


class ImageDataModule(pl.LightningDataModule):
    """Train / test image sets, optionally rank-transformed, for any dataset family.

    `transform` (a RankTransform) is applied to the splits named in its `apply_to`: for in-memory
    sets once at setup (the SVD of each set computed once and cached), for streamed sets per
    batch on the device. With `augment`, training batches get a random crop and flip and, when
    `augment_brightness` or `augment_contrast` > 0, a random brightness shift and contrast
    change, not clamped (data.batches.random_brightness_contrast), seeded per step.
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
        augment_brightness: float = 0.0,
        augment_contrast: float = 0.0,
        in_memory: bool = True,
        on_device: bool = True,
        num_workers: int | None = 0,
        synthetic: dict | None = None,
        transform: RankTransform | None = None,
        seed: int = 0,
        local_copy: bool = True,
        test_split: str = "auto",
    ):
        super().__init__()
        self.name = name
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.root, self.download, self.image_size = root, download, image_size
        self.num_classes = num_classes
        self.n_train, self.n_test = n_train, n_test
        self.augment, self.in_memory, self.on_device = augment, in_memory, on_device
        self.augment_brightness, self.augment_contrast = augment_brightness, augment_contrast
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.classes_evaluated: int | None = None  # class folders in the test set (wnid subsets)
        self.synthetic = dict(synthetic or {})
        # the splits it is applied to are the transform's own (transform.apply_to)
        self.transform = transform or RankTransform(mode="low", rank=None)
        self.apply_to = self.transform.apply_to
        self.seed = seed
        # cifar10: also look for $RANKROBUST_CIFAR10 and ../shared/data before downloading
        self.local_copy = local_copy
        # image folders: the test set's split (data.folder.pick_test_split: auto, test or val)
        self.test_split = test_split
        self.train_set: ImageSet | None = None
        self.test_set: ImageSet | None = None
        self._streams = None
        self._test_pick: torch.Tensor | None = None  # positions of the used test images
        self._eval_only = False
        # images each split uses (set at setup): n_train / n_test, or fewer if the data is smaller
        self.n_train_used: int | None = None
        self.n_test_used: int | None = None
        # checks of other settings against the images' size (H, W), run when it is first known
        self.size_checks: list = []

    # -- loading ---------------------------------------------------------------------------
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
            train, test = cifar10_sets(self.cifar10_root, self.download, self.local_copy)
        elif self.name in ("image_folder", "imagenet"):
            train, test = image_folder_sets(self.root, self.image_size, self.test_split)
        else:
            raise ConfigError(
                f"Unknown dataset '{self.name}': use cifar10, image_folder, imagenet or synthetic."
            )
        self._note_counts(len(train.labels), len(test.labels))
        # ImageSet.subset's pick of the test split, kept for the per-image records' indices
        self._test_pick = (
            _pick(len(test.labels), self.n_test, self.seed + 1)
            if (self.n_test is not None and self.n_test < len(test.labels))
            else None
        )
        return train.subset(self.n_train, self.seed), test.subset(self.n_test, self.seed + 1)

    def _note_counts(self, n_train: int, n_test: int) -> None:
        """Record how many images each split uses (`n_train_used`, `n_test_used`: the task
        writes them to metrics.json and the run's identity) and say when dataset.n_train /
        n_test asked for more than the data holds (then all of it is used)."""
        used = {"train": n_train, "test": n_test}
        for split, asked, have in (("train", self.n_train, n_train), ("test", self.n_test, n_test)):
            if asked is not None and asked < have:
                used[split] = asked
            elif asked is not None and asked > have and not (split == "train" and self._eval_only):
                log.warning(
                    "[rankrobust] dataset.n_%s=%d but %s has only %d %s images: all %d are "
                    "used (metrics.json and the run's identity record %d).",
                    split, asked, self.root or self.name, have, split, have, have,
                )  # fmt: skip
        self.n_train_used, self.n_test_used = used["train"], used["test"]

    @property
    def cifar10_root(self) -> str:
        return self.root or "data/cifar10"

    def prepare_data(self) -> None:
        """Download CIFAR-10 once (Lightning calls this on one process) unless a copy exists."""
        if self.name == "cifar10" and self.download:
            locate_cifar10(self.cifar10_root, download=True, local_copy=self.local_copy)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        self._eval_only = stage == "test"  # train=false: the training split is not used
        if not self.in_memory:
            self._setup_streams()
            return
        train, test = self.load()
        relabel = self._check_classes(test.classes)
        if relabel is not None:  # wnid folders: their ImageNet-1k indices
            train, test = (_relabelled(d, relabel) for d in (train, test))
        self.full_rank = min(train.images.shape[-2:])
        self._check_size(*test.images.shape[-2:])
        self.transform.validate(self.full_rank)
        device = self._device()
        self.raw_test_set = ImageSet(test.images.to(device), test.labels.to(device), test.classes)
        self.train_set = self._maybe_transform(train, "train", device)
        self.test_set = self._maybe_transform(test, "test", device)

    def _check_size(self, H: int, W: int) -> None:
        """Settings that need larger images, checked once the images are read (before any
        training): the augmentation's reflect padding, then `size_checks`."""
        if self.augment and not self._eval_only and min(H, W) <= CROP_PADDING:
            where = f"dataset={self.name}" + (f" at '{self.root}'" if self.root else "")
            raise ConfigError(
                f"{where} holds {H}x{W} images, and dataset.augment=true reflect-pads training "
                f"images by {CROP_PADDING} pixels, which needs images larger than "
                f"{CROP_PADDING}x{CROP_PADDING}: set dataset.augment=false or use larger images."
            )
        for check in self.size_checks:
            check(H, W)

    def _device(self) -> torch.device:
        trainer = getattr(self, "trainer", None)
        if self.on_device and trainer is not None:
            return trainer.strategy.root_device
        return torch.device("cpu")

    def _maybe_transform(self, data: ImageSet, split: str, device: torch.device) -> ImageSet:
        images = data.images.to(device)
        if split in self.apply_to and not self.transform.is_identity:
            chunks = [self.transform(c) for c in images.split(2048)]
            images = torch.cat(chunks)
        return ImageSet(images, data.labels.to(device), data.classes)

    def _setup_streams(self) -> None:
        size = self.image_size or 224
        splits = stream_sets(self.root, size, self.test_split)
        classes = tuple(splits["test"].classes)
        relabel = self._check_classes(classes)
        if relabel is not None:  # wnid folders: labels are their ImageNet-1k indices
            for ds in splits.values():
                ds.target_transform = relabel.__getitem__  # picklable for DataLoader workers
            classes = readable_classes()
        self._note_counts(len(splits.get("train", ())), len(splits["test"]))
        for split, n, offset in (("train", self.n_train, 0), ("test", self.n_test, 1)):
            if split in splits:
                splits[split] = random_subset(splits[split], n, self.seed + offset)
        test = splits["test"]
        self._test_pick = torch.tensor(test.indices) if hasattr(test, "indices") else None
        self._streams = splits
        self.full_rank = size
        self._check_size(size, size)
        self.transform.validate(size)
        empty = torch.empty(0)
        self.train_set = ImageSet(empty, empty, classes)
        self.test_set = ImageSet(empty, empty, classes)

    def _check_classes(self, classes: Sequence[str]) -> list[int] | None:
        """Check the class folders against num_classes; return each folder's label when they
        are ImageNet wnids of a 1000-class model (all or a subset), else None (sorted order)."""
        self.classes_evaluated = len(classes)
        relabel = class_index(classes, self.num_classes, f"dataset={self.name} at '{self.root}'")
        if relabel is not None:
            return relabel
        if len(classes) < 2:  # a classifier needs two classes (num_classes=1 cannot train)
            raise ConfigError(
                f"dataset={self.name} at '{self.root}' has {len(classes)} class folder(s) "
                f"({', '.join(classes) or 'none'}): a classifier needs at least 2. Add the other "
                "classes' folders (train/<class>/ and test/<class>/ or val/<class>/)."
            )
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
        batch_size = self.batch_size if shuffle else self.eval_batch_size
        return stream_loader(ds, batch_size, shuffle, self.num_workers)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """On the device: the per-batch rank transform (streamed sets) and train augmentation."""
        x, y = batch
        training = self.trainer is not None and self.trainer.training
        split = "train" if training else "test"
        if self._streams is not None and split in self.apply_to and not self.transform.is_identity:
            x = self.transform(x)
        if training and self.augment:  # seeded by (seed, step, rank): exact after a resume
            g = torch.Generator(device=x.device)
            t = self.trainer
            g.manual_seed(step_seed(self.seed, t.global_step, t.global_rank))
            x = random_crop_flip(x, generator=g)
            x = random_brightness_contrast(
                x, self.augment_brightness, self.augment_contrast, generator=g
            )
        return x, y

    def test_tensors(
        self, raw: bool = False, n: int | None = None, seed: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """n test images and their labels as tensors on the data's device (raw: before the
        rank transform); all of them when n is None.

        seed None: a seeded random subset of n (`random_subset`, seed dataset seed + 2), in set
        order, in memory or streamed; a smaller n picks a subset of a larger n's images.
        seed given: a seeded pick, `randperm(len(test set), seed)[:n]` in that order; the same
        pick whether the set is in memory or streamed (analyses such as RIG use it).
        Streamed sets read only the images returned, never the whole validation set.
        """
        pick = self._positions(n, seed)
        if self._streams is None:
            data = self.raw_test_set if raw else self.test_set
            if pick is None:
                return data.images, data.labels
            pick = pick.to(data.labels.device)
            return data.images[pick], data.labels[pick]
        ds = self._streams["test"]
        return self._read_stream(ds if pick is None else Subset(ds, pick.tolist()), raw)

    def _positions(self, n: int | None, seed: int | None) -> torch.Tensor | None:
        """The positions in the test set that test_tensors(n=n, seed=seed) returns (None: all,
        in order); the one rule for both the images and their indices."""
        size = (
            len(self._streams["test"]) if self._streams is not None else len(self.test_set.labels)
        )
        if seed is not None:
            return _pick(size, n, seed)
        if n is None or n >= size:
            return None
        # the streamed rule (random_subset): n at random, seeded, in set order. Not the first
        # n: a full ImageFolder test set lists class by class, and its first 1,000 CIFAR-10
        # images are all one class.
        return torch.tensor(subset_indices(size, n, self.seed + 2))

    def test_index(self, n: int | None = None, seed: int | None = None) -> np.ndarray:
        """The test-set indices (positions in the full test split as loaded, before
        dataset.n_test's subset) of the images test_tensors(n=n, seed=seed) returns: two runs
        on the same data pair their per-image outcomes by them. n=None: every test image."""
        size = (
            len(self._streams["test"]) if self._streams is not None else len(self.test_set.labels)
        )
        pick = self._positions(n, seed)
        here = np.arange(size) if pick is None else pick.numpy()
        full = getattr(self, "_test_pick", None)
        return here if full is None else np.asarray(full)[here]

    def _read_stream(self, ds, raw: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image of a (small) streamed subset, on the device, rank-transformed unless raw."""
        device = self._device()
        if len(ds) == 0:
            size = self.full_rank
            return torch.empty(0, 3, size, size, device=device), torch.empty(0, dtype=torch.long)
        xs, ys = [], []
        for x, y in self._stream_loader(ds, False):
            x, y = x.to(device), y.to(device)
            if not raw and "test" in self.apply_to and not self.transform.is_identity:
                x = self.transform(x)
            xs.append(x)
            ys.append(y)
        return torch.cat(xs), torch.cat(ys)


def default_workers(cap: int = 8) -> int:
    """DataLoader workers when dataset.num_workers is null: the CPU cores this process may use,
    less one for the main process, at most `cap` (0 on a one-core machine)."""
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(cap, cores - 1))


def _relabelled(data: ImageSet, relabel: list[int]) -> ImageSet:
    """An in-memory set with labels mapped through relabel and the 1000 ImageNet names."""
    labels = torch.tensor(relabel, device=data.labels.device)[data.labels]
    return ImageSet(data.images, labels, readable_classes())


def _pick(size: int, n: int | None, seed: int) -> torch.Tensor:
    """n indices of range(size) drawn without replacement: randperm(size, seed)[:n]."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:n]

"""Data: image sets as pixel tensors in [0, 1] (no Lightning here).

Three families, which `rankrobust.pipeline.datamodule.ImageDataModule` serves:
- in memory (`cifar10`, `image_folder` with small images, `synthetic`): the whole set is held as
  a float tensor (on the training device when `on_device`), the rank transform is computed once
  per set and cached, and training batches are augmented on the device (random crop + flip);
- streamed (`image_folder` / `imagenet` with `in_memory: false`): torchvision ImageFolder with
  resize / centre crop, the rank transform applied batch by batch on the device.

Modules: `sets` (ImageSet, synthetic images), `cifar10` (CIFAR-10 from a local copy or a
download; `load_cifar10`), `folder` (ImageFolder trees and tarballs), `cache` (their decoded
arrays on disk), `batches` (in-memory batching, DDP shards, augmentation), `streaming`
(torchvision ImageFolder streams), `photos` (real sample photographs for tests and
benchmarks). The LightningDataModule lives in `rankrobust.pipeline.datamodule`.
"""

from rankrobust.data.batches import (
    ShardedBatches,
    TensorBatches,
    batch_loader,
    random_brightness_contrast,
    random_crop_flip,
)
from rankrobust.data.cifar10 import cifar10_sets, find_cifar10, load_cifar10
from rankrobust.data.folder import IMAGE_SUFFIXES, check_source, image_folder_sets, read_images
from rankrobust.data.sets import CIFAR10_CLASSES, ImageSet, synthetic_sets

__all__ = [
    "CIFAR10_CLASSES",
    "IMAGE_SUFFIXES",
    "ImageSet",
    "ShardedBatches",
    "TensorBatches",
    "batch_loader",
    "check_source",
    "cifar10_sets",
    "find_cifar10",
    "load_cifar10",
    "image_folder_sets",
    "random_brightness_contrast",
    "random_crop_flip",
    "read_images",
    "synthetic_sets",
]

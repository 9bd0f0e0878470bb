"""The one step-seed rule, shared by training-step reseeding and on-device augmentation."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from rankrobust.data import random_brightness_contrast, random_crop_flip
from rankrobust.pipeline.datamodule import ImageDataModule
from rankrobust.pipeline.seeding import SEED_MODULUS, step_seed


def test_step_seed_is_a_valid_torch_seed_and_depends_on_each_argument():
    seeds = {step_seed(s, t, r) for s in (0, 1) for t in (0, 1) for r in (0, 1)}
    assert len(seeds) == 8
    huge = step_seed(2**62, 10**12, 7)
    assert 0 <= huge < SEED_MODULUS
    torch.Generator().manual_seed(huge)  # accepted


def test_augmentation_is_seeded_by_step_seed_even_for_huge_run_seeds():
    seed = 2**62  # seed * 1_000_003 overflows a 64-bit seed without the modulus
    dm = ImageDataModule("synthetic", augment=True, seed=seed)
    dm.trainer = SimpleNamespace(training=True, global_step=5, global_rank=1)
    x, y = torch.rand(8, 3, 16, 16), torch.arange(8)
    out, labels = dm.on_after_batch_transfer((x, y), 0)
    want = random_crop_flip(x, generator=torch.Generator().manual_seed(step_seed(seed, 5, 1)))
    assert torch.equal(out, want) and torch.equal(labels, y)


def test_brightness_contrast_augmentation_follows_the_crop_with_the_same_step_generator():
    dm = ImageDataModule(
        "synthetic", augment=True, augment_brightness=0.3, augment_contrast=0.5, seed=3
    )
    dm.trainer = SimpleNamespace(training=True, global_step=2, global_rank=0)
    x, y = torch.rand(8, 3, 16, 16), torch.arange(8)
    out, _ = dm.on_after_batch_transfer((x, y), 0)
    g = torch.Generator().manual_seed(step_seed(3, 2, 0))
    want = random_brightness_contrast(random_crop_flip(x, generator=g), 0.3, 0.5, generator=g)
    assert torch.equal(out, want)
    dm.trainer = SimpleNamespace(training=False, global_step=2, global_rank=0)
    assert torch.equal(dm.on_after_batch_transfer((x, y), 0)[0], x)  # never at test time

"""Data sets, the rank transform hook and batching, on synthetic and tiny on-disk image trees."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from rankrobust.data import (
    ShardedBatches,
    batch_loader,
    random_brightness_contrast,
    random_crop_flip,
    synthetic_sets,
)
from rankrobust.errors import ConfigError
from rankrobust.pipeline.datamodule import ImageDataModule
from rankrobust.svd import RankTransform, high_rank, low_rank


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))


def test_synthetic_sets_are_deterministic_and_in_range():
    a_train, a_test = synthetic_sets(64, 32, seed=3)
    b_train, _ = synthetic_sets(64, 32, seed=3)
    assert torch.equal(a_train.images, b_train.images)
    assert a_train.images.shape == (64, 3, 32, 32) and a_test.images.shape == (32, 3, 32, 32)
    assert a_train.images.min() >= 0 and a_train.images.max() <= 1
    assert set(a_train.labels.tolist()) <= set(range(10))


@pytest.mark.parametrize("mode", ["low", "high"])
@pytest.mark.parametrize("apply_to", [("train",), ("test",), ("train", "test")])
def test_rank_transform_applies_to_the_named_splits_only(mode, apply_to):
    clamp = mode == "low"
    dm = ImageDataModule(
        "synthetic",
        n_train=40,
        n_test=20,
        image_size=16,
        transform=RankTransform(mode=mode, rank=3, clamp=clamp, apply_to=apply_to),
    )
    dm.setup("fit")
    raw_train, raw_test = dm.load()
    expect = {"low": lambda x: low_rank(x, 3), "high": lambda x: high_rank(x, 3)}[mode]
    for split, raw, got in (
        ("train", raw_train, dm.train_set),
        ("test", raw_test, dm.test_set),
    ):
        want = expect(raw.images) if split in apply_to else raw.images
        assert torch.allclose(got.images, want, atol=1e-5), split
    # the sweep always sees the raw test images
    assert torch.equal(dm.test_tensors(raw=True)[0], raw_test.images)


def test_bad_rank_for_the_image_size_fails_at_setup():
    dm = ImageDataModule("synthetic", image_size=16, transform=RankTransform("low", rank=17))
    with pytest.raises(ConfigError, match="1 <= rank <= 16"):
        dm.setup("fit")


def test_batch_loader_covers_every_image_once_per_epoch():
    train, _ = synthetic_sets(70, 1)
    loader = batch_loader(train, batch_size=16, shuffle=True)
    seen = torch.cat([y for _, y in loader])
    assert len(seen) == 70
    xs = torch.cat([x for x, _ in loader])
    assert torch.allclose(xs.sum(), train.images.sum(), rtol=1e-5)


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("replicas", [1, 2, 4])
def test_device_index_batches_match_the_list_order_for_every_epoch_and_shard(shuffle, replicas):
    for n in (3, 9, 70):
        for rank in range(replicas):
            plain = ShardedBatches(n, 4, shuffle, seed=5, num_replicas=replicas, rank=rank)
            on_dev = ShardedBatches(
                n, 4, shuffle, seed=5, num_replicas=replicas, rank=rank, device="cpu"
            )
            for epoch in (0, 1):
                plain.set_epoch(epoch)
                on_dev.set_epoch(epoch)
                got = list(on_dev)
                assert all(isinstance(b, torch.Tensor) and b.dtype == torch.int64 for b in got)
                assert [b.tolist() for b in got] == list(plain)
                assert len(on_dev) == len(got) == len(plain)


def test_batch_loader_indexes_with_tensors_on_the_data_device():
    train, _ = synthetic_sets(20, 1)
    loader = batch_loader(train, batch_size=8, shuffle=True, seed=2)
    assert loader.sampler.device == train.labels.device
    (idx, *_) = list(loader.sampler)
    assert isinstance(idx, torch.Tensor) and idx.device == train.labels.device
    x, y = next(iter(loader))
    assert torch.equal(x, train.images[idx]) and torch.equal(y, train.labels[idx])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batch_loader_on_cuda_never_syncs_with_the_host():
    train, _ = synthetic_sets(64, 1)
    data = type(train)(train.images.cuda(), train.labels.cuda(), train.classes)
    loader = batch_loader(data, batch_size=16, shuffle=True, seed=1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host-device sync raises
    try:
        batches = [x.sum() for x, _ in loader]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(batches) == 4
    assert torch.stack(batches).sum().item() == pytest.approx(data.images.sum().item(), rel=1e-4)


def test_random_crop_flip_keeps_shape_and_content_range():
    x = torch.rand(32, 3, 16, 16)
    out = random_crop_flip(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert out.min() >= x.min() and out.max() <= x.max()
    assert not torch.equal(out, x)  # something moved
    # the centre crop with no flip is the identity: padding 0 gives x or its mirror
    same = random_crop_flip(x, padding=0, generator=torch.Generator().manual_seed(1))
    assert all(
        torch.equal(s, a) or torch.equal(s, a.flip(-1)) for s, a in zip(same, x, strict=True)
    )


def test_random_brightness_contrast_scales_about_the_mean_and_shifts_within_its_ranges():
    x = torch.rand(256, 3, 8, 8)
    out = random_brightness_contrast(x, 0.4, 0.5, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    # x' = m + c (x - m) + b per image: the centred image scales by c, the mean moves by b
    centred_in = x - x.mean(dim=(1, 2, 3), keepdim=True)
    centred_out = out - out.mean(dim=(1, 2, 3), keepdim=True)
    c = (centred_out * centred_in).sum(dim=(1, 2, 3)) / centred_in.pow(2).sum(dim=(1, 2, 3))
    torch.testing.assert_close(centred_out, c[:, None, None, None] * centred_in)
    b = out.mean(dim=(1, 2, 3)) - x.mean(dim=(1, 2, 3))
    assert c.min() >= 0.5 - 1e-5 and c.max() <= 1.5 + 1e-5 and c.min() < 0.6 and c.max() > 1.4
    assert b.abs().max() <= 0.4 + 1e-5 and b.min() < -0.3 and b.max() > 0.3
    assert out.min() < 0 and out.max() > 1  # not clamped: like H_k(x), it leaves [0, 1]
    again = random_brightness_contrast(x, 0.4, 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded: exact after a resume
    assert random_brightness_contrast(x, 0.0, 0.0) is x


def test_streamed_test_tensors_read_only_the_seeded_pick(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog", "emu"):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(4):
                pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    common = dict(root=str(tmp_path), image_size=32, num_classes=3, augment=False)
    streamed = ImageDataModule("image_folder", in_memory=False, **common)
    streamed.setup("test")
    folder = streamed._streams["test"]
    loads = []
    loader = folder.loader
    folder.loader = lambda path: loads.append(path) or loader(path)
    x, y = streamed.test_tensors(raw=True, n=5, seed=7)
    assert x.shape == (5, 3, 32, 32) and len(loads) == 5  # not the 12 test images
    # the same pick, and the same pixels, as the in-memory copy of the tree
    in_memory = ImageDataModule("image_folder", in_memory=True, **common)
    in_memory.setup("test")
    x_mem, y_mem = in_memory.test_tensors(raw=True, n=5, seed=7)
    assert torch.equal(y, y_mem) and torch.allclose(x, x_mem, atol=1e-6)
    pick = torch.randperm(12, generator=torch.Generator().manual_seed(7))[:5]
    assert torch.equal(y_mem, in_memory.raw_test_set.labels[pick])
    # n=None with a seed: every image, shuffled by the seed
    _, y_all = streamed.test_tensors(raw=True, seed=7)
    assert sorted(y_all.tolist()) == [0] * 4 + [1] * 4 + [2] * 4 and torch.equal(y_all[:5], y)


def test_unseeded_test_tensors_are_a_random_subset_of_every_class_in_memory_or_streamed(tmp_path):
    """A full ImageFolder test set lists class by class: `sweep.n_images=1000` on the whole
    CIFAR-10 copy once swept 1,000 images of one class (the first n), with exit 0."""
    rng = np.random.default_rng(1)
    for cls in ("cat", "dog", "emu"):
        (tmp_path / "test" / cls).mkdir(parents=True)
        (tmp_path / "train" / cls).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
            tmp_path / "train" / cls / "0.png"
        )
        for i in range(10):
            pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "test" / cls / f"{i}.png")
    common = dict(root=str(tmp_path), image_size=32, num_classes=3, augment=False, seed=4)
    in_memory = ImageDataModule("image_folder", in_memory=True, **common)
    in_memory.setup("test")
    assert in_memory.test_set.labels[:10].tolist() == [0] * 10  # the set is class-ordered
    x, y = in_memory.test_tensors(raw=True, n=9)
    assert len(set(y.tolist())) == 3  # not the first 9 (all cats)
    pick = torch.randperm(30, generator=torch.Generator().manual_seed(4 + 2))[:9].sort().values
    assert torch.equal(x, in_memory.raw_test_set.images[pick])
    _, small = in_memory.test_tensors(raw=True, n=4)  # a smaller n: a subset of the same pick
    assert set(small.tolist()) <= set(y.tolist())
    streamed = ImageDataModule("image_folder", in_memory=False, **common)
    streamed.setup("test")
    xs, ys = streamed.test_tensors(raw=True, n=9)
    assert torch.equal(ys, y) and torch.allclose(xs, x, atol=1e-6)  # one rule for both
    x_all, _ = in_memory.test_tensors(raw=True)
    assert torch.equal(x_all, in_memory.raw_test_set.images)


def test_training_attacks_do_not_clamp_brightness_augmented_images():
    """A brightness-shifted training image lies outside [0, 1]: FGSM-RS clamping it back would
    add far more than eps (build._pixels); the test-time attack still clamps clean pixels."""
    from helpers import make_cfg

    from rankrobust.pipeline import build, checks

    def attacks(*overrides):
        cfg = make_cfg("experiment=smoke", "attack=fgsm_rs", *overrides)
        module = build.module(spec := checks.check_config(cfg), build.model(spec))
        return getattr(module.train_attack, "keywords", {}), getattr(
            module.eval_attack, "keywords", {}
        )

    train, test = attacks("dataset.augment=true", "dataset.augment_brightness=0.4")
    assert train.get("pixels") is False and "pixels" not in test
    train, _ = attacks("dataset.augment=true", "dataset.augment_contrast=0.5")
    assert train.get("pixels") is False
    train, _ = attacks("dataset.augment=true")  # crop and flip keep pixels in [0, 1]
    assert "pixels" not in train
    train, _ = attacks("dataset.augment=false", "dataset.augment_brightness=0.4")  # no augment
    assert "pixels" not in train

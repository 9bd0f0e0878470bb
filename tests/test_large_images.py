"""Rank transforms and sweeps at 224x224 on real photographs, through the whole task: the
truncated SVD route and the streamed ImageNet-style folder, which CIFAR-sized tests never reach.

The images are scikit-image's and matplotlib's bundled sample photos, written as a tiny
ImageNet-style folder (train/<class>/, val/<class>/) and streamed as dataset=imagenet streams.
"""

from __future__ import annotations

import pytest
import torch
from helpers import make_cfg

from rankrobust.pipeline import task
from rankrobust.svd import RankTransform, factorize

photos = pytest.importorskip("rankrobust.data.photos")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    from PIL import Image

    try:
        crops = photos.center_crops(256)
    except Exception as err:  # pragma: no cover - a machine without the sample photos
        pytest.skip(f"sample photos unavailable: {err}")
    root = tmp_path_factory.mktemp("photos")
    for i, crop in enumerate(crops):
        for split in ("train", "val"):
            folder = root / split / ("even" if i % 2 == 0 else "odd")
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (crop.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
            Image.fromarray(pixels).save(folder / f"photo{i}.png")
    return root


def test_low_rank_transform_of_224_photos_takes_the_truncated_route_and_matches_lapack():
    x = photos.center_crops(224)[:3]
    transform = RankTransform(mode="low", rank=8)
    out = transform(x)
    assert transform.needed_rank == 8
    ref = factorize(x.double(), method="svd").low_rank(8, clamp=True)  # float64 LAPACK
    assert (out.double() - ref).abs().max() < 1e-3


def test_imagenet_folder_of_photos_trains_on_rank_k_and_sweeps(photo_folder, tmp_path):
    cfg = make_cfg(
        "dataset=imagenet",
        f"dataset.root={photo_folder}",
        "dataset.num_classes=2",
        "dataset.num_workers=0",
        "dataset.batch_size=4",
        "dataset.eval_batch_size=4",
        "model=small_cnn",
        "model.width=4",
        "trainer=cpu",
        "trainer.max_epochs=1",
        "logger=none",
        "transform=low",
        "rank=4",
        "analysis.for_rank_trained=all",  # a rank-trained run that still sweeps
        "eval.n_robust=2",
        "attack.eval.steps=1",
        "sweep.ranks=[1,4,32]",
        "sweep.n_images=4",
        "analysis.perturbation_spectrum=false",
    )
    metrics = task.run(cfg, tmp_path)
    assert metrics["status"] == "ok", metrics.get("error")
    assert metrics["n_test"] == len(list(photo_folder.glob("val/*/*.png")))
    sweep = metrics["rank_sweep"]
    assert sorted(sweep["low"]) == [1, 4, 32] and set(sweep) == {"low", "high"}
    assert all(0.0 <= a <= 1.0 for accs in sweep.values() for a in accs.values())
    assert torch.tensor(list(sweep["low"].values())).isfinite().all()

"""The image-folder reader reads what torchvision's ImageFolder reads:
16-bit PNGs scaled by 65535 (not clipped to white), .tif/.tiff, images in nested subfolders of
a class; anything skipped is counted and named."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from rankrobust.data.folder import image_folder_sets


@pytest.fixture()
def tree(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            folder = root / split / cls
            (folder / "nested" / "deeper").mkdir(parents=True)
            Image.new("RGB", (8, 8), (200, c * 50, 0)).save(folder / "a.png")
            # 16-bit grey: 32768 / 65535 = 0.5 (PIL's convert("RGB") clips it to 255: white)
            Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(folder / "grey16.png")
            Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "b.tif")
            Image.new("RGB", (8, 8), (40, 50, 60)).save(folder / "nested" / "deeper" / "c.tiff")
            (folder / "notes.txt").write_text("not an image")
    return root


def test_reads_what_imagefolder_reads(tree):
    train, test = image_folder_sets(tree)
    reference = ImageFolder(str(tree / "train"))
    assert len(train.labels) == len(reference) == 8
    assert train.classes == tuple(reference.classes)
    assert sorted(train.labels.tolist()) == sorted(t for _, t in reference.samples)
    assert len(test.labels) == 8


def test_16_bit_png_is_scaled_not_white(tree):
    train, _ = image_folder_sets(tree)
    means = train.images.mean(dim=(1, 2, 3))
    grey = [m for m in means.tolist() if abs(m - 0.5) < 0.01]
    assert len(grey) == 2, means  # one per class, at 32768 / 65535
    assert (train.images < 0.99).float().mean() > 0.9  # nothing is turned white


def test_skipped_files_are_counted_and_named(tree):
    with pytest.warns(UserWarning, match=r"skipped 4 files.*notes\.txt"):
        image_folder_sets(tree)

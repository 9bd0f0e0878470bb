"""ImageFolder trees and tarballs: reading, the content-keyed cache, and error messages."""

from __future__ import annotations

import io
import multiprocessing
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from rankrobust.data import image_folder_sets, read_images
from rankrobust.data.cache import cache_dir
from rankrobust.errors import ConfigError


def write_tree(root, splits=("train", "test"), classes=("cat", "dog"), n=3, size=8):
    rng = np.random.default_rng(0)
    for split in splits:
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(n):
                pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    return root


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))


def test_image_folder_reads_a_tree_and_its_tarball_identically(tmp_path):
    tree = write_tree(tmp_path / "tree")
    train, test = image_folder_sets(tree)
    assert train.images.shape == (6, 3, 8, 8) and test.images.shape == (6, 3, 8, 8)
    assert train.classes == ("cat", "dog")
    assert sorted(train.labels.tolist()) == [0, 0, 0, 1, 1, 1]
    archive = tmp_path / "tree.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(tree, arcname="cifar")
    t_train, _ = image_folder_sets(archive)
    order = lambda s: s.images.flatten(1).sum(1).argsort()  # noqa: E731 - archive order differs
    assert torch.allclose(train.images[order(train)], t_train.images[order(t_train)])
    # the decoded arrays are cached: a second read gives the same tensors
    again, _ = image_folder_sets(archive)
    assert torch.equal(again.images, t_train.images)


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        image_folder_sets(tmp_path / "missing")
    only_train = write_tree(tmp_path / "only_train", splits=("train",))
    with pytest.raises(ConfigError, match="no test images"):
        image_folder_sets(only_train)


def png_bytes(size: int, seed: int = 1) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def add_member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def test_cache_sees_edits_deep_inside_the_tree(tmp_path):
    tree = write_tree(tmp_path / "tree", size=32)
    train, _ = image_folder_sets(tree)
    assert len(train.labels) == 6
    (tree / "train" / "cat" / "extra.png").write_bytes(png_bytes(32))  # top folder unchanged
    train, _ = image_folder_sets(tree)
    assert len(train.labels) == 7
    (tree / "train" / "dog" / "odd.png").write_bytes(png_bytes(16))
    with pytest.raises(ConfigError, match="several sizes"):
        image_folder_sets(tree)


def test_damaged_cache_is_rebuilt_with_a_notice(tmp_path, capsys):
    tree = write_tree(tmp_path / "tree")
    want, _ = image_folder_sets(tree)
    (cached,) = cache_dir().glob("imagefolder-*.npz")
    cached.write_bytes(cached.read_bytes()[:100])  # truncated, e.g. by a full disk
    again, _ = image_folder_sets(tree)
    assert torch.equal(again.images, want.images)
    err = capsys.readouterr().err
    assert str(cached) in err and "damaged" in err and len(err.strip().splitlines()) == 1
    image_folder_sets(tree)  # the rebuilt file reads back silently
    assert capsys.readouterr().err == ""


def _build_in_child(tree, barrier, results) -> None:
    """Build the cache; both processes finish writing before either publishes its file."""
    import rankrobust.data.cache as cache_mod

    savez = cache_mod.np.savez

    def savez_then_wait(*args, **kwargs):
        savez(*args, **kwargs)
        barrier.wait(timeout=60)

    cache_mod.np.savez = savez_then_wait
    try:
        train, _ = image_folder_sets(tree)
        results.put(("ok", int(train.labels.numel())))
    except Exception as err:  # reported to the parent, which asserts on it
        results.put(("error", repr(err)))


def test_two_first_runs_building_the_cache_at_once_both_succeed(tmp_path):
    tree = write_tree(tmp_path / "tree")
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(tree, barrier, results)) for _ in "ab"]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert got == [("ok", 6), ("ok", 6)]
    files = [p.name for p in cache_dir().iterdir()]
    assert len(files) == 1 and ".tmp" not in files[0]  # one cache file, no temporary left


def test_undecodable_images_are_named(tmp_path):
    tree = write_tree(tmp_path / "tree")
    bad = tree / "test" / "dog" / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ConfigError, match="broken.png") as err:
        image_folder_sets(tree)
    assert str(bad) in str(err.value) and "BytesIO" not in str(err.value)
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as tf:
        add_member(tf, "train/cat/0.png", png_bytes(8))
        add_member(tf, "test/cat/broken.jpg", b"\xff\xd8 truncated")
    with pytest.raises(ConfigError, match="test/cat/broken.jpg") as err:
        image_folder_sets(archive)
    assert str(archive) in str(err.value)


def test_tar_members_leaving_the_root_are_ignored_with_a_warning(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        add_member(tf, "cifar/train/cat/0.png", png_bytes(8, 1))
        add_member(tf, "cifar/test/cat/0.png", png_bytes(8, 2))
        add_member(tf, "../train/cat/up.png", png_bytes(8, 3))
        add_member(tf, "/train/cat/absolute.png", png_bytes(8, 4))
        add_member(tf, "cifar/../../test/cat/escape.png", png_bytes(8, 5))
        add_member(tf, "cifar/x/../train/cat/1.png", png_bytes(8, 6))  # stays inside: kept
    with pytest.warns(UserWarning, match=r"\.\./train/cat/up\.png"):
        train, test = image_folder_sets(archive)
    assert len(train.labels) == 2 and len(test.labels) == 1


def test_read_images_reads_in_order_or_per_class(tmp_path):
    tree = write_tree(tmp_path / "tree", classes=("cat", "dog", "emu"), n=3)
    in_order = read_images(tree, 4, splits=("test",))
    assert in_order.labels.tolist() == [0, 0, 0, 1]  # sorted paths: class by class
    balanced = read_images(tree, 100, splits=("test",), per_class=2, classes=("cat", "dog", "emu"))
    assert balanced.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(balanced.images[:2], in_order.images[:2])
    assert read_images(tree, 100, one_per_class=True).labels.tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="not one of"):
        read_images(tree, 10, classes=("cat", "dog"))


def _png_with_header(width: int, height: int) -> bytes:
    """A small PNG whose header claims width x height (CRC fixed): what a decompression bomb's
    reader sees before decoding anything."""
    import struct
    import zlib

    data = bytearray(png_bytes(8))
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17])) & 0xFFFFFFFF
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    return bytes(data)


UNREADABLE = {  # name -> (bytes, what the message says)
    "bomb.png": (_png_with_header(40_000, 40_000), "too large to decode safely"),
    "bomb-warning.png": (_png_with_header(10_000, 10_000), "too large to decode safely"),
    "truncated.png": (png_bytes(8)[:60], "Could not decode"),
    "empty.png": (b"", "not a known image format"),
    "text.jpg": (b"hello, not an image", "not a known image format"),
}


@pytest.mark.parametrize("name", sorted(UNREADABLE))
@pytest.mark.parametrize("reader", ["tree", "tarball", "read_images", "stream"])
def test_unreadable_images_are_one_paragraph_naming_the_file(tmp_path, name, reader):
    from rankrobust.data.streaming import stream_sets

    data, said = UNREADABLE[name]
    tree = write_tree(tmp_path / "tree")
    (tree / "test" / "dog" / name).write_bytes(data)
    root = tree
    if reader == "tarball":
        root = tmp_path / "tree.tar"
        with tarfile.open(root, "w") as tf:
            tf.add(tree, arcname=".")
    with pytest.raises(ConfigError) as err:
        if reader == "stream":
            test = stream_sets(tree, 8)["test"]
            [test[i] for i in range(len(test))]
        elif reader == "read_images":
            read_images(root, 100)
        else:
            image_folder_sets(root)
    message = str(err.value)
    assert name in message and said in message and "\n" not in message, message

"""CIFAR-10: local copies before the download, the offline error, and the balanced loader."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch
from conftest import CIFAR_TARBALL

import rankrobust.data.cifar10 as cifar10
from rankrobust.data import CIFAR10_CLASSES, cifar10_sets, load_cifar10
from rankrobust.data.cifar10 import ENV, balanced_indices, find_cifar10, local_data_dirs
from rankrobust.errors import ConfigError
from rankrobust.pipeline.datamodule import ImageDataModule


@pytest.fixture(autouse=True)
def no_local_copies(monkeypatch, tmp_path):
    """Each test decides which copies exist: none by default, and never the network."""
    import urllib.error

    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "urlopen", offline, raising=False)
    monkeypatch.setattr(tv_utils.urllib.request, "urlopen", offline)
    monkeypatch.delenv(ENV, raising=False)
    monkeypatch.setattr(cifar10, "local_data_dirs", lambda: [])
    monkeypatch.setenv("RANKROBUST_CACHE", str(tmp_path / "cache"))


def fake_batches(per_batch: int = 10, n_test: int = 20, seed: int = 0) -> dict[str, dict]:
    """CIFAR-10's python batches in miniature: {name: {'data': (N, 3072) uint8, 'labels'}}."""
    rng = np.random.default_rng(seed)

    def batch(n: int) -> dict:
        labels = rng.permutation(np.arange(n) % 10).tolist()
        return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": labels}

    out = {f"data_batch_{i}": batch(per_batch) for i in range(1, 6)}
    out["test_batch"] = batch(n_test)
    return out


def write_python_archive(path, batches: dict[str, dict]):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tf:
        folder = tarfile.TarInfo("cifar-10-batches-py")
        folder.type = tarfile.DIRTYPE
        tf.addfile(folder)
        meta = {"label_names": list(CIFAR10_CLASSES)}
        for name, entry in {**batches, "batches.meta": meta}.items():
            data = pickle.dumps(entry)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def pixels(entry: dict) -> torch.Tensor:
    return torch.from_numpy(entry["data"].reshape(-1, 3, 32, 32)).float() / 255


def test_offline_without_any_copy_is_one_clear_paragraph(tmp_path):
    with pytest.raises(ConfigError, match="Downloading CIFAR-10 into") as err:
        cifar10_sets(tmp_path / "cifar10", download=True)
    message = str(err.value)
    assert "\n" not in message and ENV in message and "dataset=image_folder" in message
    with pytest.raises(ConfigError, match="was not found under") as err:
        cifar10_sets(tmp_path / "cifar10", download=False)
    assert ENV in str(err.value)


def test_a_missing_env_path_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere.tar.gz"))
    with pytest.raises(ConfigError, match="nowhere.tar.gz"):
        cifar10_sets(tmp_path / "cifar10", download=True)
    (tmp_path / "notes.txt").write_text("not an archive")
    monkeypatch.setenv(ENV, str(tmp_path / "notes.txt"))
    with pytest.raises(ConfigError, match="notes.txt' is neither a folder nor"):
        cifar10_sets(tmp_path / "cifar10", download=True)


def test_python_archive_named_by_the_env_var_is_read_before_any_download(
    tmp_path, monkeypatch, capsys
):
    batches = fake_batches()
    archive = write_python_archive(tmp_path / "elsewhere" / "cifar-10-python.tar.gz", batches)
    monkeypatch.setenv(ENV, str(archive))
    train, test = cifar10_sets(tmp_path / "cifar10", download=True)  # offline: no download
    assert train.images.shape == (50, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert torch.equal(test.images, pixels(batches["test_batch"]))
    assert test.labels.tolist() == batches["test_batch"]["labels"]
    assert train.classes == CIFAR10_CLASSES
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and str(archive) in out[0] and ENV in out[0]
    # local_copy=False ignores the variable
    with pytest.raises(ConfigError, match="was not found under"):
        cifar10_sets(tmp_path / "cifar10", download=False, local_copy=False)


def test_torchvision_files_under_root_come_first(tmp_path, monkeypatch):
    root = tmp_path / "cifar10"
    root.mkdir()
    with tarfile.open(write_python_archive(tmp_path / "a.tar.gz", fake_batches(seed=1))) as tf:
        tf.extractall(root, filter="data")
    monkeypatch.setenv(ENV, str(write_python_archive(tmp_path / "b.tar.gz", fake_batches(seed=2))))
    source = find_cifar10(root)
    assert source.kind == "torchvision" and source.path == root
    _, test = cifar10_sets(root, download=False)
    assert torch.equal(test.images, pixels(fake_batches(seed=1)["test_batch"]))
    # torchvision's archive in root, not yet extracted, counts too
    other = tmp_path / "other"
    write_python_archive(other / "cifar-10-python.tar.gz", fake_batches(seed=3))
    assert find_cifar10(other).found_by == "dataset.root"


def test_balanced_indices_take_the_first_of_each_class_interleaved():
    labels = torch.tensor([3, 3, 0, 1, 3, 0, 2, 1, 2, 0])
    pick = balanced_indices(labels, 7, num_classes=4)
    # quotas 2, 2, 2, 1 (the first 7 % 4 classes get one more); order: rank in class, class
    assert pick.tolist() == [2, 3, 6, 0, 5, 7, 8]
    with pytest.raises(ValueError, match="n_examples=10"):
        balanced_indices(labels, 10, num_classes=4)  # class 1 has 2 < 3


def test_load_cifar10_from_the_python_archive_is_balanced(tmp_path, monkeypatch):
    batches = fake_batches(n_test=30)
    write_python_archive(tmp_path / "root" / "cifar-10-python.tar.gz", batches)
    x, y = load_cifar10(20, root=tmp_path / "root")
    assert x.shape == (20, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == list(range(10)) * 2
    test = batches["test_batch"]
    first_cat = test["labels"].index(3)
    assert torch.equal(x[3], pixels(test)[first_cat])
    with pytest.raises(ValueError, match="split='val'"):
        load_cifar10(10, split="val", root=tmp_path / "root")


def test_local_data_dirs_include_shared_data_beside_the_working_directory(tmp_path, monkeypatch):
    # local_data_dirs was imported before the fixture patched the module: the real lookup
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert (tmp_path / "shared" / "data").resolve() in local_data_dirs()


needs_copy = pytest.mark.skipif(not CIFAR_TARBALL.is_file(), reason="CIFAR-10 JPEG copy absent")


@needs_copy
def test_shared_folder_copy_is_found_and_load_cifar10_reads_few_images(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "local_data_dirs", lambda: [CIFAR_TARBALL.parent])
    source = find_cifar10(tmp_path / "cifar10")
    assert source.path == CIFAR_TARBALL and "local data folder" in source.found_by
    x, y = load_cifar10(30, root=tmp_path / "cifar10")
    assert x.shape == (30, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == list(range(10)) * 3


@needs_copy
@pytest.mark.e2e
def test_datamodule_reads_the_jpeg_copy_named_by_the_env_var_offline(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(ENV, str(CIFAR_TARBALL))
    dm = ImageDataModule(
        "cifar10", root=str(tmp_path / "cifar10"), download=True, n_train=100, n_test=50
    )
    dm.prepare_data()  # finds the copy: no download (the network is patched away)
    dm.setup("fit")
    assert dm.train_set.images.shape == (100, 3, 32, 32) and len(dm.test_set.labels) == 50
    assert dm.train_set.classes == CIFAR10_CLASSES
    assert f"CIFAR-10: reading {CIFAR_TARBALL} (${ENV})" in capsys.readouterr().out


class WritesAFile:
    """A planted batch: unpickling it with pickle.load would create `target`."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def planted_root(tmp_path, entry, protocol: int = 2):
    """A torchvision folder whose data_batch_1 is `entry` pickled; the others are real-layout."""
    root = tmp_path / "cifar10"
    root.mkdir()
    with tarfile.open(write_python_archive(tmp_path / "a.tar.gz", fake_batches())) as tf:
        tf.extractall(root, filter="data")
    (root / "cifar-10-batches-py" / "data_batch_1").write_bytes(pickle.dumps(entry, protocol))
    return root


@pytest.mark.parametrize(
    "make",
    [
        lambda target: WritesAFile(target),  # the whole file is the payload
        lambda target: {"data": WritesAFile(target), "labels": [0]},  # a payload inside the dict
        lambda target: {b"data": [WritesAFile(target)], b"labels": [0]},
    ],
    ids=["top-level", "in-the-dict", "in-a-list"],
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_a_planted_batch_runs_no_code_and_the_error_names_it(tmp_path, make, protocol):
    target = tmp_path / "planted-was-run"
    root = planted_root(tmp_path, make(target), protocol)
    with pytest.raises(ConfigError) as err:
        cifar10_sets(root, download=False)
    assert not target.exists()
    message = str(err.value)
    assert "data_batch_1" in message and "global 'io.open'" in message and "\n" not in message
    pickle.loads((root / "cifar-10-batches-py" / "data_batch_1").read_bytes())  # plain pickle
    assert target.exists()  # ... would have run it


@pytest.mark.parametrize(
    "entry, reason",
    [
        ({"labels": [0]}, "KeyError"),  # no pixels
        ({"data": np.zeros((2, 3072), np.uint8), "labels": [0]}, "2 images but 1 labels"),
        ([1, 2, 3], "AttributeError"),  # not a dict
    ],
)
def test_a_batch_of_the_wrong_layout_is_named(tmp_path, entry, reason):
    with pytest.raises(ConfigError, match=reason) as err:
        cifar10_sets(planted_root(tmp_path, entry), download=False)
    assert "data_batch_1" in str(err.value)


def test_truncated_batch_in_the_archive_is_named(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    batches = fake_batches()
    with tarfile.open(archive, "w:gz") as tf:
        for name, entry in batches.items():
            data = pickle.dumps(entry)[: 100 if name == "test_batch" else None]
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(ConfigError, match="test_batch") as err:
        cifar10_sets(tmp_path, download=False)
    assert str(archive) in str(err.value)


@pytest.mark.parametrize("keys", ["bytes", "str", "numpy1"])
def test_a_real_layout_batch_still_loads(tmp_path, keys):
    """Protocol 2, numpy arrays, latin1 bytes keys (as the real files read) or str keys; numpy
    1's name of the array reconstructor (the real files were written by numpy 1)."""
    batches = fake_batches()
    key = (lambda k: k.encode("latin1")) if keys == "bytes" else str
    entry = {
        key("batch_label"): b"training batch 1 of 5",
        key("data"): batches["data_batch_1"]["data"],
        key("labels"): batches["data_batch_1"]["labels"],
        key("filenames"): [b"a.png"] * 10,
    }
    root = planted_root(tmp_path, entry)
    if keys == "numpy1":
        batch = root / "cifar-10-batches-py" / "data_batch_1"
        data = batch.read_bytes()
        assert b"numpy._core.multiarray\n_reconstruct" in data
        batch.write_bytes(data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    train, _ = cifar10_sets(root, download=False)
    assert torch.equal(train.images[:10], pixels(batches["data_batch_1"]))
    assert train.labels[:10].tolist() == batches["data_batch_1"]["labels"]

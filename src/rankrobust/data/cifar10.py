"""CIFAR-10 from the first local copy found, else torchvision's download.

Search order (the first hit is read, and one line names it):
1. torchvision's files under `root` (`root/cifar-10-batches-py/`), or its archive
   `root/cifar-10-python.tar.gz`;
2. the path in $RANKROBUST_CIFAR10: the python archive `cifar-10-python.tar.gz`, a folder holding
   `cifar-10-batches-py/`, or an ImageFolder tree or .tar(.gz) of one (the JPEG copy);
3. the local data folders `../shared/data/` next to the repository and next to the current
   directory: `cifar-10-python.tar.gz`, then `cifar10-jpeg.tar.gz`;
4. torchvision's download into `root` (when `download`).
Without any, a ConfigError says where it looked and what to do offline.
"""

from __future__ import annotations

import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

try:  # numpy >= 2; numpy 1 names it numpy.core.multiarray
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core.multiarray import _reconstruct

from rankrobust.data.folder import image_folder_sets, read_images
from rankrobust.data.sets import CIFAR10_CLASSES, ImageSet
from rankrobust.errors import ConfigError

ENV = "RANKROBUST_CIFAR10"
BATCHES = "cifar-10-batches-py"
PYTHON_ARCHIVE = "cifar-10-python.tar.gz"
LOCAL_NAMES = (PYTHON_ARCHIVE, "cifar10-jpeg.tar.gz")
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Cifar10Source:
    """Where CIFAR-10 will be read from. kind: 'torchvision' (a root holding
    cifar-10-batches-py/), 'python_archive' (cifar-10-python.tar.gz) or 'image_folder'."""

    kind: str
    path: Path
    found_by: str


def local_data_dirs() -> list[Path]:
    """The documented local data folders: ../shared/data beside the repository and the cwd."""
    repo = Path(__file__).resolve().parents[3]  # src/rankrobust/data/cifar10.py -> repository
    dirs = [repo.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    return list(dict.fromkeys(d.resolve() for d in dirs))


def _kind(path: Path) -> str:
    """What a user-named CIFAR-10 copy is, from its layout (archives: their first members)."""
    if path.is_dir():
        if (path / BATCHES).is_dir():
            return "torchvision"
        return "torchvision_dir" if path.name == BATCHES else "image_folder"
    try:
        with tarfile.open(path, "r|*") as tf:
            for _, member in zip(range(3), tf, strict=False):
                if member.name.lstrip("./").startswith(BATCHES):
                    return "python_archive"
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ConfigError(
            f"${ENV}='{path}' is neither a folder nor a readable .tar / .tar.gz ({err})."
        ) from err
    return "image_folder"


def find_cifar10(root: str | Path | None, local_copy: bool = True) -> Cifar10Source | None:
    """The first CIFAR-10 copy of the search order (module docstring), or None: no download."""
    if root is not None:
        root = Path(root).expanduser()
        if (root / BATCHES / "test_batch").is_file():
            return Cifar10Source("torchvision", root, "dataset.root")
        if (root / PYTHON_ARCHIVE).is_file():
            return Cifar10Source("python_archive", root / PYTHON_ARCHIVE, "dataset.root")
    if not local_copy:
        return None
    named = os.environ.get(ENV)
    if named:
        path = Path(named).expanduser()
        if not path.exists():
            raise ConfigError(
                f"${ENV} is '{named}', which does not exist. Point it at cifar-10-python.tar.gz, "
                "a folder holding cifar-10-batches-py/, or an ImageFolder tree or .tar.gz of "
                "CIFAR-10 (such as cifar10-jpeg.tar.gz), or unset it."
            )
        kind = _kind(path)
        if kind == "torchvision_dir":
            return Cifar10Source("torchvision", path.parent, f"${ENV}")
        return Cifar10Source(kind, path, f"${ENV}")
    for folder in local_data_dirs():
        for name in LOCAL_NAMES:
            if (folder / name).is_file():
                kind = "python_archive" if name == PYTHON_ARCHIVE else "image_folder"
                return Cifar10Source(kind, folder / name, f"local data folder {folder}")
    return None


def _download(root: Path) -> Cifar10Source:
    """torchvision's download into root; a ConfigError (one paragraph) when it fails."""
    from torchvision.datasets import CIFAR10

    print(f"[rankrobust] CIFAR-10: no local copy found; downloading into {root}", flush=True)
    try:
        for train in (True, False):
            CIFAR10(str(root), train=train, download=True)
    except (RuntimeError, OSError) as err:  # URLError and friends: no network
        raise ConfigError(
            f"Downloading CIFAR-10 into '{root}' failed ({err}). This machine has no network "
            "access to the CIFAR-10 host and no local copy was found (looked in dataset.root, "
            f"${ENV} and {', '.join(str(d) for d in local_data_dirs())}). Download "
            f"{PYTHON_ARCHIVE} elsewhere and set {ENV}=<its path> (or copy "
            "'cifar-10-batches-py' into dataset.root), or use the JPEG copy: "
            f"{ENV}=<path to cifar10-jpeg.tar.gz> or dataset=image_folder "
            "dataset.root=<path to cifar10-jpeg.tar.gz or its extraction>."
        ) from err
    return Cifar10Source("torchvision", root, "download")


def locate_cifar10(root: str | Path, download: bool, local_copy: bool = True) -> Cifar10Source:
    """The copy `cifar10_sets` reads: found locally, else downloaded, else a ConfigError."""
    root = Path(root).expanduser()
    source = find_cifar10(root, local_copy)
    if source is not None:
        return source
    if download:
        return _download(root)
    looked = f"no '{BATCHES}' or {PYTHON_ARCHIVE} there"
    if local_copy:
        looked += f", ${ENV} unset, nothing in {', '.join(str(d) for d in local_data_dirs())}"
    raise ConfigError(
        f"CIFAR-10 was not found under '{root}' ({looked}). Set dataset.download=true on a "
        f"machine with network access, point dataset.root at a folder holding '{BATCHES}', "
        f"set {ENV}=<path to {PYTHON_ARCHIVE} or cifar10-jpeg.tar.gz>, or use the ImageFolder "
        "copy: dataset=image_folder dataset.root=<path to cifar10-jpeg.tar.gz or its extraction>."
    )


def _latin1_bytes(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """`_codecs.encode` as protocol-2 pickles of bytes use it, limited to latin1."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not a CIFAR-10 batch")
    return text.encode("latin1", errors)


# Every global a CIFAR-10 python batch names: numpy's array reconstruction (numpy 1 and 2 names)
# and the latin1 encoder protocol-2 pickles of bytes use. Dicts, lists, str, bytes and ints are
# opcodes, not globals. Anything else is refused: unpickling may call what a file names.
_BATCH_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that admits only what a CIFAR-10 batch holds (`_BATCH_GLOBALS`)."""

    def find_class(self, module: str, name: str):
        found = _BATCH_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it names the global '{module}.{name}'")
        return found


def _unpickle(fileobj, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: (N, 32, 32, 3) uint8 pixels, (N,) int64 labels.

    Read with `_BatchUnpickler` (latin1, as torchvision reads the format): a file naming any other
    global, or not of the batch layout, is a ConfigError naming `where`; its code never runs.
    """
    try:
        entry = _BatchUnpickler(fileobj, encoding="latin1").load()
        entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
        labels = entry.get("labels", entry.get("fine_labels"))
        x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        y = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(y) != len(x):
            raise ValueError(f"{len(x)} images but {len(y)} labels")
    except Exception as err:  # noqa: BLE001 - any malformed or hostile file: one paragraph
        raise ConfigError(
            f"'{where}' is not a CIFAR-10 python batch ({type(err).__name__}: {err}); it was not "
            "run or used. Replace it with the file from the official cifar-10-python.tar.gz, or "
            "delete it so that CIFAR-10 is found elsewhere."
        ) from None
    return x, y


def _python_batches(source: Cifar10Source, names: tuple[str, ...]) -> dict[str, tuple]:
    """The named batches of a torchvision folder or of the python archive (read sequentially)."""
    out = {}
    if source.kind == "torchvision":
        for name in names:
            with open(source.path / BATCHES / name, "rb") as f:
                out[name] = _unpickle(f, str(source.path / BATCHES / name))
        return out
    with tarfile.open(source.path, "r|*") as tf:
        for member in tf:
            name = Path(member.name).name
            if member.isfile() and name in names:
                out[name] = _unpickle(tf.extractfile(member), f"{source.path}:{member.name}")
    missing = set(names) - set(out)
    if missing:
        raise ConfigError(f"'{source.path}' lacks the CIFAR-10 batches {sorted(missing)}.")
    return out


def _to_set(x: np.ndarray, y: np.ndarray) -> ImageSet:
    images = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(255).contiguous()
    return ImageSet(images, torch.from_numpy(y), CIFAR10_CLASSES)


def _read_sets(source: Cifar10Source) -> tuple[ImageSet, ImageSet]:
    if source.kind == "image_folder":
        train, test = image_folder_sets(source.path)
        if train.classes != CIFAR10_CLASSES or train.images.shape[1:] != (3, 32, 32):
            raise ConfigError(
                f"'{source.path}' (from {source.found_by}) is not CIFAR-10: classes "
                f"{train.classes[:4]}..., images {tuple(train.images.shape[1:])}; expected the "
                f"10 classes {CIFAR10_CLASSES[:3]}... of 3x32x32 images."
            )
        return train, test
    batches = _python_batches(source, (*TRAIN_BATCHES, "test_batch"))
    train_x = np.concatenate([batches[b][0] for b in TRAIN_BATCHES])
    train_y = np.concatenate([batches[b][1] for b in TRAIN_BATCHES])
    return _to_set(train_x, train_y), _to_set(*batches["test_batch"])


def cifar10_sets(
    root: str | Path, download: bool, local_copy: bool = True
) -> tuple[ImageSet, ImageSet]:
    """CIFAR-10 (train, test) from the first local copy found, else downloaded into `root`.

    See the module docstring for the search order; `local_copy=False` skips $RANKROBUST_CIFAR10
    and the local data folders. Prints one line naming the copy read.
    """
    source = locate_cifar10(root, download, local_copy)
    print(f"[rankrobust] CIFAR-10: reading {source.path} ({source.found_by})", flush=True)
    return _read_sets(source)


def balanced_indices(labels: torch.Tensor, n: int, num_classes: int) -> torch.Tensor:
    """Indices of the first n // C images of each class (the first n % C classes one more),
    interleaved as (image 0 of each class, image 1 of each class, ...): every prefix is
    balanced too."""
    quota = [n // num_classes + (c < n % num_classes) for c in range(num_classes)]
    picked = []
    for c in range(num_classes):
        idx = (labels == c).nonzero().flatten()[: quota[c]]
        if len(idx) < quota[c]:
            raise ValueError(
                f"n_examples={n} needs {quota[c]} images of class {c}; the source has {len(idx)}."
            )
        picked.append(idx)
    rank = torch.cat([torch.arange(len(p)) for p in picked])  # position within its class
    cls = torch.cat([torch.full((len(p),), c) for c, p in enumerate(picked)])
    order = torch.argsort(rank * num_classes + cls)
    return torch.cat(picked)[order]


def load_cifar10(
    n_examples: int,
    split: str = "test",
    root: str | Path | None = None,
    download: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A class-balanced CIFAR-10 subset, like RobustBench's loader: the first n_examples / 10
    images of each class in the source's order, interleaved by class (see `balanced_indices`).

    Returns (images float32 (N, 3, 32, 32) in [0, 1], labels int64 (N,)). Reads the same local
    copies as `cifar10_sets` (root: default $RANKROBUST_DATA/cifar10, i.e. data/cifar10), and
    from an archive only the images it returns. The JPEG copy is lossy: its pixels differ a
    little from the original's.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: expected 'train' or 'test'.")
    if not isinstance(n_examples, int) or n_examples < 1:
        raise ValueError(f"n_examples={n_examples!r}: expected a positive int.")
    root = Path(root or Path(os.environ.get("RANKROBUST_DATA", "data")) / "cifar10")
    source = locate_cifar10(root, download)
    print(f"[rankrobust] CIFAR-10 ({split}): reading {source.path} ({source.found_by})", flush=True)
    n_classes = len(CIFAR10_CLASSES)
    if source.kind == "image_folder":
        k = -(-n_examples // n_classes)  # read just k per class, then trim to the quotas
        splits = ("train",) if split == "train" else ("test", "val")
        data = read_images(source.path, k * n_classes, splits, per_class=k, classes=CIFAR10_CLASSES)
        pick = balanced_indices(data.labels, n_examples, n_classes)
        return data.images[pick].contiguous(), data.labels[pick]
    names = TRAIN_BATCHES if split == "train" else ("test_batch",)
    batches = _python_batches(source, names)
    x = np.concatenate([batches[b][0] for b in names])
    y = np.concatenate([batches[b][1] for b in names])
    pick = balanced_indices(torch.from_numpy(y), n_examples, n_classes).numpy()
    data = _to_set(x[pick], y[pick])  # uint8 until picked: float only for what is returned
    return data.images, data.labels

"""ImageFolder trees and tarballs (train/<class>/*, test/ and / or val/<class>/*) read into memory.

``val`` is a split of its own, never merged into ``test``: the test set is ``test/`` when the
tree has one, else ``val/`` (ImageNet's layout), or the one named by ``test_split``
(`pick_test_split`, the one rule, shared with the streamed sets).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from rankrobust.data.cache import cache_file, cached_arrays
from rankrobust.data.sets import ImageSet
from rankrobust.errors import ConfigError

# What torchvision's ImageFolder reads (torchvision.datasets.folder.IMG_EXTENSIONS).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "test", "val")
# dataset.test_split: "auto" = test/ when there is one, else val/
TEST_SPLITS = ("auto", "test", "val")
ARRAY_KEYS = {"classes", "train_x", "train_y"}


def pick_test_split(present: set[str] | list[str], asked: str | None, where: object) -> str:
    """The split a tree's test set is read from: ``asked`` ("test" / "val"), or for "auto" /
    None ``test`` when present, else ``val``. Raises ConfigError naming dataset.test_split for
    a value not in TEST_SPLITS or a split the tree lacks (and listing what it holds)."""
    asked = asked or "auto"
    if asked not in TEST_SPLITS:
        raise ConfigError(
            f"dataset.test_split={asked!r} is not valid: use auto (test/, else val/), test or val."
        )
    split = ("test" if "test" in present else "val") if asked == "auto" else asked
    if split not in present:
        holds = ", ".join(f"{p}/" for p in SPLITS if p in present) or "no split folders"
        raise ConfigError(
            f"'{where}' holds no {split}/ images (it holds {holds}): "
            + ("set dataset.test_split to a split it has." if asked != "auto" else
               "an ImageFolder root needs train/<class>/ and test/<class>/ (or val/<class>/) "
               "folders of images.")
        )  # fmt: skip
    return split


# (split, class, encoded bytes, a name for messages: the file's path or archive:member)
Item = tuple[str, str, bytes, str]


def open_image(source, name: str):
    """The 8-bit RGB PIL image in `source` (a path or a file object) named `name`; ConfigError
    naming it when it cannot be read: truncated, empty, not an image, or a decompression bomb
    (a header of more pixels than PIL's Image.MAX_IMAGE_PIXELS: never decoded)."""
    from PIL import Image, UnidentifiedImageError

    bombs = (Image.DecompressionBombError, Image.DecompressionBombWarning)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(source)
            return _to_rgb8(img)
    except bombs as err:
        why = f"{err}".split(" could be decompression bomb")[0]
        raise ConfigError(
            f"The image {name} is too large to decode safely ({why}; PIL's limit is "
            f"{Image.MAX_IMAGE_PIXELS} pixels: a decompression bomb, or a huge image): resize "
            "or remove it, or point dataset.root at a tree or archive of ordinary images."
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        why = "not a known image format" if isinstance(err, UnidentifiedImageError) else err
        raise ConfigError(
            f"Could not decode the image {name} ({why}): replace or remove it, or point "
            "dataset.root at a tree or archive of readable images."
        ) from err


def _decode(data: bytes, size: int | None, name: str) -> np.ndarray:
    """HWC uint8 RGB pixels of one encoded image, resized + centre-cropped to size if given."""
    img = open_image(io.BytesIO(data), name)
    if size is not None and img.size != (size, size):
        img = _resize_center_crop(img, size)
    return np.asarray(img, dtype=np.uint8)


def _to_rgb8(img):
    """8-bit RGB of any PIL image. 16-bit and 32-bit grey ("I;16*", "I": PNG / TIFF) are scaled
    by 65535 (PIL's convert("RGB") clips them at 255: white), float grey ("F") by 1."""
    from PIL import Image

    if img.mode.startswith("I;16") or img.mode == "I" or img.mode == "F":
        scale = 1.0 if img.mode == "F" else 65535.0
        grey = np.asarray(img, dtype=np.float64) / scale
        grey = np.clip(np.rint(grey * 255.0), 0, 255).astype(np.uint8)
        img = Image.fromarray(grey, mode="L")
    return img.convert("RGB")


def _resize_center_crop(img, size: int):
    """Resize the short side to size * 8/7 (256 for 224) and centre-crop size x size."""
    from torchvision.transforms import functional as F

    img = F.resize(img, round(size * 8 / 7))
    return F.center_crop(img, size)


def _place(name: str) -> tuple[str, str] | None:
    """'…/train/<class>/[sub/…/]<file>' -> ('train', '<class>') (ImageFolder: the class is the
    first folder under the split, images anywhere below it), else None."""
    parts = PurePosixPath(name).parts
    for i, part in enumerate(parts[:-2]):
        if part in SPLITS:
            return part, parts[i + 1]
    return None


def _split_member(name: str) -> tuple[str, str] | None:
    """(split, class) of an image file under a split's class folder, else None."""
    if not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    return _place(name)


class _Skipped:
    """Files inside a split's class folders that are not images ImageFolder reads: counted,
    and named in one warning at the end."""

    def __init__(self, where: Path):
        self.where, self.names = where, []

    def see(self, name: str) -> None:
        if _place(name) is not None and not PurePosixPath(name).name.startswith("."):
            self.names.append(name)

    def report(self) -> None:
        if self.names:
            warnings.warn(
                f"'{self.where}': skipped {len(self.names)} files that are not images "
                f"({', '.join(IMAGE_SUFFIXES)}), e.g. {self.names[:3]}.",
                stacklevel=3,
            )


def _inside(name: str) -> str | None:
    """An archive member's normalised path, or None when it leaves the archive's root."""
    norm = posixpath.normpath(name)
    if norm.startswith("/") or norm == ".." or norm.startswith("../"):
        return None
    return norm


def _tar_items(path: Path) -> Iterator[Item]:
    """Images of a .tar / .tar.gz read sequentially (random access into gzip is quadratic)."""
    outside: list[str] = []
    skipped = _Skipped(path)
    with tarfile.open(path, "r|gz" if path.name.endswith("gz") else "r|") as tf:
        try:
            for member in tf:
                if not member.isfile():
                    continue
                name = _inside(member.name)
                if name is None:
                    if not outside:
                        warnings.warn(
                            f"'{path}': ignoring member '{member.name}', whose path leaves the "
                            "archive's root (and any others like it).",
                            stacklevel=2,
                        )
                    outside.append(member.name)
                    continue
                key = _split_member(name)
                if key is not None:
                    data = tf.extractfile(member).read()
                    yield key[0], key[1], data, f"'{member.name}' in '{path}'"
                else:
                    skipped.see(name)
        finally:
            skipped.report()
            if len(outside) > 1:
                warnings.warn(
                    f"'{path}': ignored {len(outside)} members whose paths leave the archive's "
                    f"root, e.g. {outside[:3]}.",
                    stacklevel=2,
                )


def _folder_items(root: Path) -> Iterator[Item]:
    skipped = _Skipped(root)
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(root).as_posix()
        key = _split_member(name)
        if key is not None:
            yield key[0], key[1], path.read_bytes(), f"'{path}'"
        else:
            skipped.see(name)
    skipped.report()


def image_items(root: Path) -> Iterator[Item]:
    """(split, class, bytes, name) of every image under an ImageFolder tree or archive, in order:
    sorted paths for a folder, archive order for a tarball."""
    return _tar_items(root) if root.is_file() else _folder_items(root)


def _collect(items: Iterator[Item], size: int | None) -> dict:
    """Group decoded images by split: {split: (list of HWC uint8 arrays, list of class names)}."""
    out: dict[str, tuple[list, list]] = {}
    for split, cls, data, name in items:
        imgs, names = out.setdefault(split, ([], []))
        imgs.append(_decode(data, size, name))
        names.append(cls)
    return out


def _build_arrays(root: Path, image_size: int | None) -> dict[str, np.ndarray]:
    """Decode every image of root: {classes, <split>_x, <split>_y} for each split it holds
    (train, test, val; x: NHWC uint8)."""
    try:
        groups = _collect(image_items(root), image_size)
    except (tarfile.TarError, OSError, EOFError) as err:
        raise ConfigError(f"Could not read images from '{root}': {err}.") from err
    missing = ["train"] if "train" not in groups else []
    missing += ["test"] if not {"test", "val"} & set(groups) else []
    if missing:
        raise ConfigError(
            f"'{root}' holds no {' or '.join(missing)} images: an ImageFolder root "
            "needs train/<class>/ and test/<class>/ (or val/<class>/) folders of images."
        )
    classes = sorted(set(groups["train"][1]))
    index = {c: i for i, c in enumerate(classes)}
    arrays = {"classes": np.array(classes)}
    for split, (imgs, names) in groups.items():
        sizes = {a.shape for a in imgs}
        if len(sizes) > 1:
            raise ConfigError(
                f"'{root}' holds images of several sizes ({sorted(sizes)[:3]}…): set "
                "dataset.image_size to resize and centre-crop them to one size."
            )
        unknown = set(names) - set(index)
        if unknown:
            raise ConfigError(
                f"{split} classes {sorted(unknown)} are not in train/ under '{root}'."
            )
        arrays[f"{split}_x"] = np.stack(imgs)
        arrays[f"{split}_y"] = np.array([index[c] for c in names], dtype=np.int64)
    return arrays


def _check_one_size(root: Path, arrays: dict[str, np.ndarray], test: str = "test") -> None:
    """Train and test images of one size (H, W, C), else a ConfigError naming
    dataset.image_size: a model trained at one size and tested at another runs without a word
    (global pooling accepts any size) and its accuracies mean nothing."""
    train, test = arrays["train_x"].shape[1:], arrays[f"{test}_x"].shape[1:]
    if train != test:
        raise ConfigError(
            f"'{root}' holds training images of {train[0]}x{train[1]} pixels and test images "
            f"of {test[0]}x{test[1]}: a model must be trained and tested at one size. Set "
            f"dataset.image_size={min(train[0], test[0])} (or another size) to resize and "
            "centre-crop both splits to it."
        )


def image_folder_sets(
    root: str | Path, image_size: int | None = None, test_split: str | None = None
) -> tuple[ImageSet, ImageSet]:
    """An ImageFolder tree (`train/<class>/*`, `test/<class>/*` and / or `val/<class>/*`) held
    in memory: (train, test), the test set from `pick_test_split(..., test_split)` (test/ when
    the tree has one, else val/; "val" / "test" to choose).

    `root` is a folder or a .tar / .tar.gz of one, read sequentially. Decoded images are cached
    as a .npz under $RANKROBUST_CACHE (default ~/.cache/rankrobust), keyed by the tree's
    contents (every file's relative path, size and mtime; an archive's size and mtime), so a
    second run starts in a second and any edit is seen (see `rankrobust.data.cache`).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise ConfigError(
            f"dataset.root '{root}' does not exist. Point dataset.root at an ImageFolder tree "
            "(train/<class>/*.jpg and test/<class>/*.jpg) or a .tar.gz of one; for the CIFAR-10 "
            "copy shipped with this project's shared folder use "
            "dataset.root=../shared/data/cifar10-jpeg.tar.gz."
        )
    # reader=3 is the reader's version in the cache key: it reads 16-bit, .tif and nested
    # images and keeps val/ apart from test/; a cache another reader wrote is never reused
    cache = cache_file(root, f"size={image_size},reader=3")
    arrays = cached_arrays(cache, lambda: _build_arrays(root, image_size), ARRAY_KEYS)
    classes = tuple(str(c) for c in arrays["classes"])
    present = {split for split in SPLITS if f"{split}_x" in arrays}
    test = pick_test_split(present, test_split, root)
    _check_one_size(root, arrays, test)

    def to_set(split: str) -> ImageSet:
        x = torch.from_numpy(arrays[f"{split}_x"]).permute(0, 3, 1, 2).float().div_(255)
        return ImageSet(x.contiguous(), torch.from_numpy(arrays[f"{split}_y"]), classes)

    return to_set("train"), to_set(test)


def read_images(
    root: str | Path,
    n: int,
    splits: Sequence[str] = ("test", "val"),
    one_per_class: bool = False,
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
) -> ImageSet:
    """The first n images of one split of an ImageFolder tree or tarball, read in order: the
    first of `splits` the source holds (by default test/, else val/; splits are never mixed).

    The order is the source's: sorted paths for a folder, archive order for a tarball, which
    usually stores a class's images together (the CIFAR-10 JPEG copy's first 1,000 test images
    are all birds). For a class-balanced pick, `per_class=k` keeps only the first k images of
    each class (`one_per_class` is per_class=1), and reading stops once every class of
    `classes` has k. Stops as soon as the first split has n images (no cache, no full decode):
    for tests, benchmarks and figures. Labels index `classes` (default: the sorted class names
    met, ImageFolder's convention).
    """
    if per_class is None:
        per_class = 1 if one_per_class else n
    if n < 1 or per_class < 1:
        raise ValueError(f"read_images: n={n}, per_class={per_class}: expected positive ints.")
    root = Path(root).expanduser()
    wanted = set(classes) if classes is not None else None
    # per split, the (class, bytes, name) picked so far, decoded only for the split returned
    picked: dict[str, list[tuple[str, bytes, str]]] = {s: [] for s in splits}
    counts: dict[str, dict[str, int]] = {s: {} for s in splits}
    for split, cls, data, name in image_items(root):
        if split not in picked or counts[split].get(cls, 0) >= per_class:
            continue
        if len(picked[split]) >= n:
            continue
        if wanted is not None and cls not in wanted:
            raise ConfigError(f"{name} is of class '{cls}', not one of {sorted(wanted)}.")
        picked[split].append((cls, data, name))
        counts[split][cls] = counts[split].get(cls, 0) + 1
        full = wanted is not None and all(counts[split].get(c, 0) >= per_class for c in wanted)
        if split == splits[0] and (len(picked[split]) >= n or full):
            break
    chosen = next((picked[s] for s in splits if picked[s]), None)
    if not chosen:
        raise ConfigError(f"'{root}' holds no {' or '.join(splits)} images.")
    images = [_decode(data, None, name) for _, data, name in chosen]
    names = [cls for cls, _, _ in chosen]
    classes = tuple(classes) if classes is not None else tuple(sorted(set(names)))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div_(255)
    return ImageSet(x.contiguous(), torch.tensor([classes.index(c) for c in names]), classes)


def check_source(name: str, root: str | Path | None) -> None:
    """The dataset's source exists (pipeline/rules.py runs this before anything is built)."""
    if name in ("image_folder", "imagenet") and not root:
        raise ConfigError(
            f"dataset={name} needs dataset.root: an ImageFolder tree with train/<class>/ "
            "and test/<class>/ (or val/<class>/) folders, or a .tar.gz of one."
        )
    if root and name in ("image_folder", "imagenet"):
        if not Path(root).expanduser().exists():
            image_folder_sets(root)  # raises the missing-root error

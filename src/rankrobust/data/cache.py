"""A disk cache of decoded image arrays (.npz), keyed by the source's contents, safe to share.

The key covers every file of a folder tree (relative path, size, mtime_ns) or an archive's own
size and mtime_ns, so editing any image invalidates it. Writes go to a per-process temporary
name and are published with an atomic `os.replace`, so concurrent first runs never clash; a
damaged cache file is rebuilt with a one-line notice; a cache folder that cannot be written
(RANKROBUST_CACHE a file, HOME unusable, a full disk) is said in one line and the run goes on.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rankrobust.files import save_npz

CACHE_VERSION = 2  # bump when the arrays' layout changes


def cache_dir() -> Path:
    """$RANKROBUST_CACHE, default ~/.cache/rankrobust (a temporary folder when no home folder
    can be determined)."""
    if os.environ.get("RANKROBUST_CACHE"):
        return Path(os.environ["RANKROBUST_CACHE"])
    try:
        home = Path.home()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry
        return Path(tempfile.gettempdir()) / "rankrobust-cache"
    return home / ".cache" / "rankrobust"


def source_fingerprint(root: Path) -> str:
    """sha1 over the resolved path and, for a folder, every file's (relative path, size, mtime_ns);
    for a file (an archive), its own size and mtime_ns."""
    root = root.resolve()
    h = hashlib.sha1(f"v{CACHE_VERSION}|{root}".encode())
    if root.is_file():
        st = root.stat()
        h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()  # os.walk descends in this order: a stable key
        rel = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            st = os.stat(os.path.join(dirpath, name))
            h.update(f"|{rel}/{name}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def cache_file(root: Path, tag: str, prefix: str = "imagefolder") -> Path:
    """The cache path for `root` read with options `tag` (e.g. the image size)."""
    digest = hashlib.sha1(f"{source_fingerprint(root)}|{tag}".encode()).hexdigest()[:16]
    return cache_dir() / f"{prefix}-{digest}.npz"


def _load(path: Path, keys: set[str]) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        missing = keys - set(z.files)
        if missing:
            raise KeyError(f"missing arrays {sorted(missing)}")
        return {k: z[k] for k in z.files}


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a name unique to this process, then publish it atomically (files.py)."""
    save_npz(path, compressed=False, **arrays)


def cached_arrays(
    path: Path, build: Callable[[], dict[str, np.ndarray]], keys: set[str]
) -> dict[str, np.ndarray]:
    """The arrays stored at `path`, else `build()`'s, stored there for the next run.

    A file that cannot be read back whole (truncated, not a zip, missing one of `keys`) is
    rebuilt and replaced, with a one-line notice naming it.
    """
    if path.exists():
        try:
            return _load(path, keys)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as err:
            reason = f"{type(err).__name__}: {err}".splitlines()[0]
            print(
                f"[rankrobust] the image cache {path} is damaged ({reason}); rebuilding it.",
                file=sys.stderr,
                flush=True,
            )
    arrays = build()
    try:
        _save(path, arrays)
    except OSError as err:  # the images are read; only the next run's head start is lost
        reason = f"{type(err).__name__}: {err.strerror or err}"
        print(
            f"[rankrobust] the image cache folder {path.parent} cannot be written ({reason}): "
            "the images are read without a cache, and read again by the next run. Set "
            "RANKROBUST_CACHE to a writable folder (default ~/.cache/rankrobust) to keep them.",
            file=sys.stderr,
            flush=True,
        )
    return arrays

"""The one writer of output files: atomic, so a kill or a full disk never destroys a good file.

Every file the project writes (metrics.json, runs.json / runs.csv, report.md, figures, .npz side
files, checkpoints) goes through `atomic_open`: the bytes go to a temporary file in the target's
own folder (same file system: the rename is atomic; never $TMPDIR, whose rename across file
systems is a copy that a kill truncates), are flushed and fsync'ed, and only then replace the
target with `os.replace`. Killed at any moment, the target holds the old file or the new one,
never a part. A failed write (a full disk: ENOSPC) removes its temporary file and raises an
OSError naming the target, not the temporary file.

Temporary files are named `.<name>.<host>-<pid>-<random>.tmp`: hidden, and no reader's pattern
(metrics.json, *.png, last.ckpt, ...) matches them. One left by a killed process is removed by
the next write of the same target on the same machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_HOST = socket.gethostname().replace("-", "_").replace("/", "_") or "host"
_SUFFIX = ".tmp"


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: someone else's process
        return True
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Remove the temporary files that a process on this machine, now dead, left while writing
    `path` (a kill -9 mid-write); return them. Those of live processes or other hosts stay."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.{_HOST}-*{_SUFFIX}"):
        pid = tmp.name[len(f".{path.name}.{_HOST}-") :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (a power cut after os.replace keeps the new name)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder: the rename is still atomic
    finally:
        os.close(fd)


def _os_error(err: BaseException) -> OSError | None:
    """The OSError behind `err` (torch.save turns a failed write into a RuntimeError)."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        if not isinstance(seen, Exception):  # a kill or Ctrl-C: raised as it is
            return None
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open a temporary file beside `path` for writing (mode "w" or "wb"; `kwargs` as for
    open()); on a normal exit flush, fsync and move it onto `path` in one step.

    On any error the temporary file is removed, `path` is left as it was, and the error raised;
    a failed write (a full disk: an OSError, also when a writer such as torch.save wraps it) is
    raised as an OSError naming `path`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode={mode!r}: atomic_open writes a whole file ('w' or 'wb')")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    tmp = _temp_name(path)
    if mode == "w":
        kwargs.setdefault("encoding", "utf-8")
    try:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        cause = _os_error(err)
        if cause is not None and cause.filename in (None, str(tmp), tmp):
            raise type(cause)(cause.errno, cause.strerror or str(cause), str(path)) from err
        raise
    _fsync_dir(path.parent)


def write_text(path: str | Path, text: str) -> Path:
    """`path` <- text (UTF-8), atomically."""
    with atomic_open(path, "w") as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """`path` <- data, atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: str | Path, obj: Any, **dumps: Any) -> Path:
    """`path` <- json.dumps(obj, **dumps), atomically (serialised first: a value that cannot be
    written raises before anything is touched)."""
    return write_text(path, json.dumps(obj, **dumps))


def save_figure(fig, path: str | Path, **kwargs: Any) -> Path:
    """fig.savefig to `path` (format from its suffix), atomically."""
    path = Path(path)
    kwargs.setdefault("format", path.suffix.lstrip(".") or None)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, **kwargs)
    return path


def save_npz(path: str | Path, compressed: bool = True, **arrays: Any) -> Path:
    """numpy's savez(_compressed) to `path`, atomically (no `.npz` appended: the name is kept)."""
    import numpy as np

    save = np.savez_compressed if compressed else np.savez
    with atomic_open(path, "wb") as fh:
        save(fh, **arrays)
    return Path(path)


def torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save(obj) to `path`, atomically (a checkpoint a kill cannot truncate)."""
    import torch

    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)
    return Path(path)

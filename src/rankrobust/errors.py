"""User-facing errors: bad configuration or input, reported as one paragraph without a traceback."""

from __future__ import annotations

import errno

# OSError numbers that mean "this machine cannot store the run's files": a full disk, a quota,
# a read-only file system. Not a bug to show a traceback for: one paragraph.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


class ConfigError(ValueError):
    """A problem with the user's configuration or input; the message names it and the fix."""


class StorageError(ConfigError):
    """The run's files cannot be written (disk full, quota, read-only or forbidden folder): one
    paragraph naming the file, the system's reason and what to do, like a ConfigError."""


class FolderBusy(ConfigError):
    """The run folder is held by another process (pipeline/run_folder.held): this one writes
    nothing there; one paragraph naming the folder and the holder."""


def storage_error(err: OSError, what: str | None = None) -> StorageError:
    """A StorageError for `err`, naming `what` (else the file the OSError names)."""
    target = what or (f"'{err.filename}'" if err.filename else "a run file")
    reason = err.strerror or str(err)
    return StorageError(
        f"{target} could not be written ({type(err).__name__}, errno {err.errno}: {reason}). "
        "Free space (or choose a writable folder: hydra.run.dir=..., "
        "callbacks.last_checkpoint.dirpath=...), then run the resume command again."
    )


def as_config_error(err: BaseException) -> BaseException:
    """The ConfigError behind `err`, if it is a configuration problem; else `err` itself.

    Hydra wraps constructor errors in InstantiationException (a TypeError inside: an unknown or
    missing argument of a `_target_`) and Lightning reports bad Trainer arguments as
    MisconfigurationException: both are the user's configuration, so they become one paragraph
    instead of a traceback; so does an OSError of `STORAGE_ERRNOS` (a full disk while writing a
    checkpoint: StorageError). Other errors stay errors (with their traceback).
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ConfigError):
            return seen
        if type(seen).__name__ == "MisconfigurationException":
            return ConfigError(f"{seen} (a trainer.* setting)")
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return storage_error(seen)
        seen = seen.__cause__ or seen.__context__
    cause = err.__cause__
    if type(err).__name__ == "InstantiationException" and isinstance(cause, TypeError):
        first = str(err).strip().splitlines()
        return ConfigError(" ".join(line.strip() for line in first if line.strip()))
    return err

"""User-facing errors: bad configuration or input, reported as one paragraph without a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """A problem with the user's configuration or input; the message names it and the fix."""


def as_config_error(err: BaseException) -> BaseException:
    """The ConfigError behind `err`, if it is a configuration problem; else `err` itself.

    Hydra wraps constructor errors in InstantiationException (a TypeError inside: an unknown or
    missing argument of a `_target_`) and Lightning reports bad Trainer arguments as
    MisconfigurationException: both are the user's configuration, so they become one paragraph
    instead of a traceback. Other errors stay errors (with their traceback).
    """
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ConfigError):
            return seen
        if type(seen).__name__ == "MisconfigurationException":
            return ConfigError(f"{seen} (a trainer.* setting)")
        seen = seen.__cause__ or seen.__context__
    cause = err.__cause__
    if type(err).__name__ == "InstantiationException" and isinstance(cause, TypeError):
        first = str(err).strip().splitlines()
        return ConfigError(" ".join(line.strip() for line in first if line.strip()))
    return err

"""User-facing errors: bad configuration or input, reported as one paragraph without a traceback."""


class ConfigError(ValueError):
    """A problem with the user's configuration or input; the message names it and the fix."""

"""The training area's error type, below every module that raises it (no import circles)."""


class ConfigError(ValueError):
    """An impossible or unreadable training setting, found before the first step."""

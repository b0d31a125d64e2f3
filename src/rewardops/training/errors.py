"""The training area's error type: `rewardops.errors.ConfigError`, named here for the training
modules that raise it (below every one of them, so no import circles)."""

from rewardops.errors import ConfigError

__all__ = ["ConfigError"]

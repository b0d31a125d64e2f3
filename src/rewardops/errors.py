"""The one error family of RewardOps: what a user can fix, told in one line.

Every error a user can act on (a bad setting, a missing or damaged input, an output that cannot be
written, an outside service that refuses) is a `RewardOpsError`. The CLI (`rewardops.cli`) catches it
in one place and prints `error: <message>` plus, when there is one, a `hint:` line, and exits with
`exit_code` (2). Anything else that escapes a command is a bug and keeps its traceback.

The four families below are what a caller may catch; each area's own classes (`SettingsError`,
`SourceFault`, `CheckpointError`, ...) sit under one of them or directly under the root, and keep a
built-in base (`ValueError`, `FileNotFoundError`, ...) where library code already catches that.
This module is the lowest layer: it imports nothing from RewardOps.
"""

from __future__ import annotations

EXIT_CODE = 2  # bad input or a state the user can fix (click's usage errors exit 2 too)


class RewardOpsError(Exception):
    """An error the user can fix. `hint`, when set, says what to do; the message says what is wrong."""

    exit_code: int = EXIT_CODE
    label: str = "error"  # the word the CLI prints before the message
    hint: str | None = None

    def with_hint(self, hint: str) -> RewardOpsError:
        """This error with `hint` (what to do) set; returns self, for `raise exc.with_hint(...)`."""
        self.hint = hint
        return self


class ConfigError(RewardOpsError, ValueError):
    """A setting that cannot work (training config, curation settings, pipeline parameters, a part
    to build), found before any work starts; the message names the setting and what to use."""


class DataError(RewardOpsError, ValueError):
    """Input data that cannot be used: a file, a row or a dataset folder; the message names it."""


class ServiceError(RewardOpsError, RuntimeError):
    """An outside service (MLflow, the DVC remote, Label Studio, the cluster, an LLM server) is
    unreachable, misconfigured or refused the request."""


class NotFoundError(DataError, FileNotFoundError):
    """A file, folder, dataset or model the user named does not exist where it was looked for."""

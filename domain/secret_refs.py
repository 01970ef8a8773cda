"""Secrets named by the config: a file (relative to the config file) or an environment variable, never a value.

A table of the file names a secret with ``<stem>_file`` or ``<stem>_env`` (``api_key_file``, ``secret_env``,
``evm_private_key_file``); :func:`take_secret_ref` turns the pair into a :class:`SecretRef`, which knows
where the secret lives and reads it only when asked. Neither ever shows the value.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from domain.config_schema import Issue, Load
from domain.config_values import ENV_NAME

__all__ = ["SecretRef", "SecretUnavailable", "take_secret_ref"]


class SecretUnavailable(RuntimeError):
    """A referenced secret could not be read (missing file, unset variable, empty value)."""


@dataclass(frozen=True)
class SecretRef:
    """Where a secret lives: an absolute file path or an environment variable name. Never the value."""

    file: str | None = None
    env: str | None = None

    @property
    def source(self) -> str:
        return f"file:{self.file}" if self.file else f"env:{self.env}"

    def key(self, stem: str) -> str:
        """The config key that named it: ``<stem>_file`` or ``<stem>_env``."""
        return f"{stem}_file" if self.file else f"{stem}_env"

    def read(self) -> str:
        """The secret, stripped; SecretUnavailable (naming only the source) if it cannot be had."""
        if self.file:
            try:
                value = Path(self.file).read_text(encoding="utf-8")
            except OSError as exc:
                raise SecretUnavailable(f"cannot read {self.source}: {exc.strerror or type(exc).__name__}") from None
            except UnicodeDecodeError:
                raise SecretUnavailable(f"{self.source} is not a text (UTF-8) file") from None
        else:
            value = os.environ.get(self.env or "")
            if value is None:
                raise SecretUnavailable(f"{self.source} is not set")
        value = value.strip()
        if not value:
            raise SecretUnavailable(f"{self.source} is empty")
        return value

    def __repr__(self) -> str:
        return f"SecretRef({self.source})"


def take_secret_ref(table: dict[str, Any], stem: str, load: Load, *,
                    env_problem: str) -> tuple[SecretRef | None, list[Issue]]:
    """Remove ``<stem>_file`` / ``<stem>_env`` from a table of the file: the reference they make (None when
    neither is given), or the issues. ``env_problem``: what is said of a value that is no variable name."""
    file_key, env_key = f"{stem}_file", f"{stem}_env"
    file_value, env_value = table.pop(file_key, None), table.pop(env_key, None)
    if file_value is not None and env_value is not None:
        return None, [Issue((file_key,), f"give {file_key} or {env_key}, not both")]
    if file_value is not None:
        if not isinstance(file_value, str) or not file_value.strip() or "\x00" in file_value:
            return None, [Issue((file_key,), "must be a file path")]
        return SecretRef(file=str(load.resolve(file_value))), []
    if env_value is not None:
        if not isinstance(env_value, str) or not ENV_NAME.match(env_value):
            # never echoed: a value that is no variable name may be the secret itself, pasted in the wrong place
            return None, [Issue((env_key,), env_problem)]
        return SecretRef(env=env_value), []
    return None, []

"""The ``[archive]`` config section (cold storage of finished orders), declared once as a pydantic v2 model.

    [archive]
    retention = "30d"         # settled/refunded orders closed longer ago than this leave the hot tables
    directory = "archive"     # where the segments go (relative to the config file); default: next to
                              # the SQLite database (required with PostgreSQL)
    interval = "1h"           # the service archives this often ("0": only `run.py archive run`)
    batch_size = 1000         # orders per segment write (and per delete transaction)

Durations are a number of seconds or a quoted number with a unit: ``s``, ``m``, ``h``, ``d``. Problems
read like every other config problem (``archive.retention: …``) and are appended to the caller's list, so
``run.py`` prints ``error: <file>: archive.<key>: <problem>`` and exits 2. Absent table: no archiving (the
commands say so; archived orders already in the index stay readable).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from domain.config_schema import table_problems
from domain.config_values import MAX_SECONDS, show

SECTION = "archive"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def duration_seconds(value: Any, *, allow_zero: bool = False) -> float:
    """``"30d"``, ``"12h"``, ``"90m"``, ``"45s"``, ``"3600"`` or a TOML number of seconds; ValueError saying why."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be a duration like \"30d\", \"12h\" or a number of seconds, got {show(value)}")
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"must be a duration like \"30d\", \"12h\", \"90m\" or \"45s\", got {show(value)}")
        seconds = float(match.group(1)) * UNITS[match.group(2) or "s"]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"must be {'>= 0' if allow_zero else '> 0'}, got {show(value)}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"must be at most ten years, got {show(value)}")
    return seconds


class ArchiveSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    retention: float            # seconds; required: archiving moves money records, so no silent default
    directory: Path | None = None
    interval: float = 3600.0     # 0: the service does not archive by itself
    batch_size: int = 1000

    @field_validator("retention", mode="before")
    @classmethod
    def _retention(cls, value: Any) -> float:
        return duration_seconds(value)

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> float:
        return duration_seconds(value, allow_zero=True)

    @field_validator("directory", mode="before")
    @classmethod
    def _directory(cls, value: Any) -> Path:
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise ValueError(f"must be a directory path, got {show(value)}")
        return Path(value)

    @field_validator("batch_size", mode="before")
    @classmethod
    def _batch(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
            raise ValueError(f"must be a whole number from 1 to 100000, got {show(value)}")
        return value


def parse_archive_settings(raw: Any, problems: list[str], base_dir: Path, database_url: str | None
                           ) -> ArchiveSettings | None:
    """The ``[archive]`` table (None: absent, no archiving); each problem appended as ``archive.<key>: …``.

    A relative ``directory`` is relative to the config file; without one the archive lives in ``archive/``
    next to the SQLite database (a PostgreSQL database has no "next to": the key is then required)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{SECTION}: must be a table ([{SECTION}])")
        return None
    try:
        settings = ArchiveSettings(**raw)
    except ValidationError as exc:
        problems += table_problems(SECTION, ArchiveSettings, exc)
        return None
    if settings.directory is not None:
        directory = settings.directory if settings.directory.is_absolute() else base_dir / settings.directory
    elif database_url and database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        directory = Path(database_url[len("sqlite:///"):]).parent / "archive"
    else:
        problems.append(f"{SECTION}.directory: is required with this database (the archive goes next to an "
                        "SQLite file by default)")
        return None
    return settings.model_copy(update={"directory": directory})

"""The ``[kpi]`` config section (per-order KPI sampling), declared once as a pydantic v2 model.

    [kpi]
    enabled = true            # run the sampler (a child of the root supervisor)
    sample_interval = 60      # seconds between samples (1 .. 86400); samples land on multiples of it

Problems read like every other config problem (``kpi.sample_interval: must be >= 1, got 0``) and
are appended to the caller's list, so ``run.py`` prints ``error: <file>: kpi.<key>: <problem>`` and exits 2.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from domain.config_schema import table_problems
from domain.config_values import number_or_raise, show

SECTION = "kpi"
MIN_INTERVAL = 1.0
MAX_INTERVAL = 86400.0   # a day: samples never span more (they are cut at UTC midnight anyway)


class KpiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    sample_interval: float = 60.0

    @field_validator("enabled", mode="before")
    @classmethod
    def _strict_bool(cls, value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false (unquoted), got {show(value)}")
        return value

    @field_validator("sample_interval", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> float:
        return number_or_raise(value, minimum=MIN_INTERVAL, maximum=MAX_INTERVAL, unit=" seconds (a day)")


def parse_kpi_settings(raw: Any, problems: list[str]) -> KpiSettings:
    """The ``[kpi]`` table (None: absent, defaults); each problem appended as ``kpi.<key>: <what is wrong>``."""
    if raw is None:
        return KpiSettings()
    if not isinstance(raw, dict):
        problems.append(f"{SECTION}: must be a table ([{SECTION}])")
        return KpiSettings()
    try:
        return KpiSettings(**raw)
    except ValidationError as exc:
        problems += table_problems(SECTION, KpiSettings, exc)
        return KpiSettings()

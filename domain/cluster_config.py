"""The ``[cluster]`` config section (several ``serve`` instances on one PostgreSQL), a pydantic v2 model.

    [cluster]
    lease_ttl = 10            # seconds a lease (membership, a role, an exchange account) lives without renewal
    heartbeat = 3             # seconds between renewals (default lease_ttl / 3; must be < lease_ttl)
    instance_id = "web-1"     # optional: this instance's name in the cluster (default host-pid-random)

Without the table the service is exactly one instance (no leases, no fencing). The table needs a PostgreSQL
database: on SQLite it is one clear problem (``cluster: needs a postgresql:// database``).
Problems read like every other config problem and are appended to the caller's list.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from domain.config_schema import table_problems
from domain.config_values import number_or_raise, show

SECTION = "cluster"
MIN_TTL = 0.5        # below this a loaded machine misses renewals
MAX_TTL = 3600.0
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$")   # it names the instance's sessions (63 bytes)


class ClusterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lease_ttl: float = 10.0
    heartbeat: float | None = None
    instance_id: str = ""

    @field_validator("lease_ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> float:
        return number_or_raise(value, minimum=MIN_TTL, maximum=MAX_TTL, unit=" seconds")

    @field_validator("heartbeat", mode="before")
    @classmethod
    def _heartbeat(cls, value: Any) -> float | None:
        if value is None:
            return None
        return number_or_raise(value, minimum=0.0, exclusive=True, maximum=MAX_TTL, unit=" seconds")

    @field_validator("instance_id", mode="before")
    @classmethod
    def _instance_id(cls, value: Any) -> str:
        if not isinstance(value, str) or (value and not _ID.match(value)):
            raise ValueError(f"must be letters, digits, '.', '_', ':' or '-' (at most 40), got {show(value)}")
        return value

    @model_validator(mode="after")
    def _heartbeat_below_ttl(self) -> ClusterSettings:
        if self.heartbeat is not None and self.heartbeat >= self.lease_ttl:
            raise ValueError(f"heartbeat ({self.heartbeat:g}) must be shorter than lease_ttl ({self.lease_ttl:g})")
        return self

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat if self.heartbeat is not None else self.lease_ttl / 3


def parse_cluster_settings(raw: Any, problems: list[str], database_url: str = "") -> ClusterSettings | None:
    """The ``[cluster]`` table (None: absent, one instance); each problem appended as ``cluster.<key>: …``."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{SECTION}: must be a table ([{SECTION}])")
        return None
    if database_url and not database_url.startswith(("postgresql://", "postgres://")):
        problems.append(f"{SECTION}: needs a postgresql:// database (several instances share one; "
                        "SQLite is one instance only)")
    try:
        return ClusterSettings(**raw)
    except ValidationError as exc:
        problems += table_problems(SECTION, ClusterSettings, exc)
        return None

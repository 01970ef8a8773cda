"""Orders: list, detail, statement, instructions, and the commands on one order."""
from __future__ import annotations

from api.routing import Router


def register(router: Router) -> None:
    pass

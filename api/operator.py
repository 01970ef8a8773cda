"""Operator operations: attention queue, alerts, commands, halt, accounts, campaigns."""
from __future__ import annotations

from api.routing import Router


def register(router: Router) -> None:
    pass

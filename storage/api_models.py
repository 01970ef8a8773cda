"""Tables of the HTTP API: operator API tokens and users' refresh tokens (new tables only).

Neither table holds a usable credential: each stores the sha256 of the token, so a copy of the
database logs nobody in. Created by ``storage.db.ensure_schema`` with every other table.
"""
from __future__ import annotations

import peewee as pw

from storage.models import BaseModel


class ApiToken(BaseModel):
    """An operator's API token (`python run.py tokens create`): role viewer or operator."""
    name = pw.CharField(default="")
    role = pw.CharField()
    token_hash = pw.CharField(unique=True)
    created_at = pw.FloatField()
    expires_at = pw.FloatField(null=True)
    revoked_at = pw.FloatField(null=True)
    last_used_at = pw.FloatField(null=True)

    class Meta:
        table_name = "api_token"


class RefreshToken(BaseModel):
    """A user's refresh token. Each use rotates it (``rotated_at`` set, a new one issued in the same
    ``family``); a rotated token presented again means it was copied: the whole family is revoked."""
    token_hash = pw.CharField(primary_key=True)
    family = pw.CharField(index=True)      # one login: every token rotated from the first one
    user_id = pw.CharField(index=True)
    created_at = pw.FloatField()
    expires_at = pw.FloatField()
    rotated_at = pw.FloatField(null=True)
    revoked_at = pw.FloatField(null=True)

    class Meta:
        table_name = "api_refresh_token"


API_MODELS = [ApiToken, RefreshToken]

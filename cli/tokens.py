"""`python run.py tokens create|list|revoke`: API tokens for operators (role viewer or operator).

The plain token is printed once, by create, on stdout (alone on its line, so a script can capture it);
the database keeps only its sha256. Exit codes: 0 done; 2 bad input (one ``error: …`` line).
"""
from __future__ import annotations

import math
import sys
import time

from ops.reads import iso

EXIT_BAD_INPUT = 2
MAX_DAYS = 3650


def _err(text: str) -> int:
    print(f"error: {text}", file=sys.stderr)
    return EXIT_BAD_INPUT


def tokens_create(config, args) -> int:
    from storage.api_auth import create_api_token

    days = args.expires_in
    if days is not None and (not math.isfinite(days) or days <= 0 or days > MAX_DAYS):
        return _err(f"--expires-in must be a number of days > 0 and at most {MAX_DAYS}, got {days:g}")
    name = (args.name or "").strip()
    if len(name) > 100 or any(ord(c) < 32 for c in name):
        return _err("--name must be one line of at most 100 characters")
    now = time.time()
    row, plain = create_api_token(args.role, name, now, now + days * 86400 if days is not None else None)
    print(plain)
    print(f"token {row.id} created: role {row.role}{', name ' + repr(name) if name else ''}, "
          f"{'expires ' + iso(row.expires_at) if row.expires_at else 'no expiry'}. It is shown only now: keep it "
          f"(use it as 'Authorization: Bearer <token>'; revoke with `tokens revoke {row.id}`)", file=sys.stderr)
    return 0


def _state(row, now: float) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


def tokens_list(config, args) -> int:
    from storage.api_auth import api_tokens

    now = time.time()
    rows = api_tokens()
    print(f"{'ID':>5}  {'ROLE':<8}  {'STATE':<7}  {'CREATED (UTC)':<20}  {'EXPIRES (UTC)':<20}  {'LAST USED (UTC)':<20}"
          f"  NAME")
    for row in rows:
        print(f"{row.id:>5}  {row.role:<8}  {_state(row, now):<7}  {iso(row.created_at):<20}  "
              f"{iso(row.expires_at) or '-':<20}  {iso(row.last_used_at) or '-':<20}  {row.name}")
    print(f"{len(rows)} tokens", file=sys.stderr)
    return 0


def tokens_revoke(config, args) -> int:
    from storage.api_auth import revoke_api_token

    now = time.time()
    row = revoke_api_token(args.token_id, now)
    if row is None:
        return _err(f"no API token {args.token_id}")
    if row.revoked_at < now:
        print(f"token {row.id} was already revoked ({iso(row.revoked_at)})")
    else:
        print(f"token {row.id} revoked ({row.role}{', ' + row.name if row.name else ''}): it no longer opens the API")
    return 0

"""Orders written straight into a database, in bulk, as the stages would have left them — so a bench can start
from 100,000 orders in seconds instead of paying for each through the fakes.

Rows are the real tables' (the schema from ``storage.db.open_database``): the ``orders`` row, its state history
along the legal path (``domain/states.py``), and for a funded order its payment tallies and its ledger's
deposit entries (what the exchange credited). The exchange side (the account's balance) is the caller's: fund
the fake with at least ``base`` and ``quote`` per funded order.
"""
from __future__ import annotations

import json
from decimal import Decimal

FUNDED_PATH = ("payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed", "deposit_confirming",
               "deposit_confirmed", "joining_campaign", "campaign_joined")
STATES = {"payment_pending": FUNDED_PATH[:1], "campaign_joined": FUNDED_PATH,
          "running": FUNDED_PATH + ("running",)}
CHUNK = 5000


def order_id_of(i: int, salt: int = 0) -> str:
    return f"{i:08x}-0000-4000-8000-{salt:012x}"


def seed_orders(db, order_ids, pair, fees, now: float, *, state: str, overrides: dict | None = None,
                base: Decimal = Decimal(0), quote: Decimal = Decimal(0), timeout: float = 600.0,
                user_id: str | None = None) -> None:
    """``pair``: the config's PairRules (asset ids and exchange symbols); ``state``: one of STATES. Call inside
    a transaction (``with db.atomic():``)."""
    path = STATES[state]
    funded = len(path) > 1
    p = db.param
    order_rows, history, tallies, ledger = [], [], [], []
    strategy = json.dumps(overrides, sort_keys=True) if overrides else None
    for order_id in order_ids:
        order_rows.append((order_id, pair.pair_id, user_id, state, f"bench seed: {state}", fees.base_fee_asset_id,
                           format(fees.base_fee_amount, "f"), fees.quote_fee_asset_id,
                           format(fees.quote_fee_amount, "f"), format(fees.market_making_fee_percent, "f"), strategy,
                           now + timeout, now if funded else None, now if funded else None,
                           now if state == "running" else None, now, now))
        previous = None
        for to_state in path:
            history.append((order_id, previous, to_state, f"bench seed: {to_state}", now))
            previous = to_state
        if funded:
            tallies.append((order_id, pair.base_asset_id, format(base, "f"), 1))
            tallies.append((order_id, pair.quote_asset_id, format(quote, "f"), 1))
            ledger.append((order_id, pair.base_symbol, format(base, "f"), "deposit credited (base)",
                           f"deposit:{order_id}:base", now))
            ledger.append((order_id, pair.quote_symbol, format(quote, "f"), "deposit credited (quote)",
                           f"deposit:{order_id}:quote", now))
    cursor = db.cursor()
    statements = (
        ("INSERT INTO orders (order_id, pair_id, user_id, state, state_reason, base_fee_asset_id, base_fee_amount, "
         "quote_fee_asset_id, quote_fee_amount, market_making_fee_percent, strategy_overrides, deadline_at, "
         f"first_payment_at, completed_at, started_at, created_at, updated_at) VALUES ({', '.join([p] * 17)})",
         order_rows),
        (f"INSERT INTO order_state_change (order_id, from_state, to_state, reason, at) VALUES ({', '.join([p] * 5)})",
         history),
        (f"INSERT INTO payment_tally (order_id, asset_id, amount, payments) VALUES ({', '.join([p] * 4)})", tallies),
        (f"INSERT INTO ledger_entry (order_id, asset, delta, reason, ref, at) VALUES ({', '.join([p] * 6)})", ledger),
    )
    for sql, rows in statements:
        for start in range(0, len(rows), CHUNK):
            cursor.executemany(sql, rows[start:start + CHUNK])

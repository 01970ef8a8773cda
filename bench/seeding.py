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
                user_id: str | None = None, funds=None) -> None:
    """``pair``: the config's PairRules (asset ids and exchange symbols); ``state``: one of STATES. Call inside
    a transaction (``with db.atomic():``). ``funds(order_id) -> (base, quote)``: each funded order's own amounts
    (default: ``base`` and ``quote`` for every one)."""
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
            if funds is not None:
                base, quote = funds(order_id)
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


def ladder_of(order_id: str, prices: dict[str, Decimal], amount: Decimal) -> list[dict]:
    """The exchange orders a running order would have placed: one per side at ``prices[side]``, level 0, with
    the client ids its first two reservations take (``domain.exchange_orders.client_order_id``)."""
    from domain.exchange_orders import client_order_id

    return [{"order_id": order_id, "cid": client_order_id(order_id, seq), "side": side, "price": str(prices[side]),
             "amount": str(amount)} for seq, side in enumerate(("buy", "sell"), start=1)]


def seed_ladders(db, ladders: list[dict], account: str, symbol: str, now: float,
                 opening_price: Decimal | None = None) -> None:
    """Running orders' resting ladders as the strategy's units leave them once the exchange acknowledged them:
    each ``exchange_order`` row ACCEPTED with its exchange id (``ladders``: ``ladder_of``'s dicts plus
    ``exchange_order_id``, placed on the exchange by the caller), the orders' next sequence numbers, the KPI
    quote spans opened, and the orders' opening price (their first tick records it). Call inside a
    transaction."""
    p = db.param
    rows, spans, next_seq = [], [], {}
    for o in ladders:
        rows.append((o["cid"], o["order_id"], account, symbol, o["side"], o["price"], o["amount"], "0", "accepted",
                     str(o["exchange_order_id"]), 0, now, now, now, None))
        spans.append((o["cid"], o["order_id"], now))
        next_seq[o["order_id"]] = next_seq.get(o["order_id"], 1) + 1
    cursor = db.cursor()
    statements = [
        ("INSERT INTO exchange_order (client_order_id, order_id, exchange_account, symbol, side, price, amount, "
         f"filled, state, exchange_order_id, level, created_at, submitted_at, updated_at, hanging) VALUES "
         f"({', '.join([p] * 15)})", rows),
        (f"INSERT INTO kpi_quote_span (client_order_id, order_id, acked_at) VALUES ({p}, {p}, {p})", spans),
        (f"INSERT INTO exchange_order_sequence (order_id, next_seq) VALUES ({p}, {p})", list(next_seq.items())),
    ]
    if opening_price is not None:
        statements.append((f"UPDATE orders SET opening_price = {p} WHERE order_id = {p}",
                           [(format(opening_price, "f"), order_id) for order_id in next_seq]))
    for sql, batch in statements:
        for start in range(0, len(batch), CHUNK):
            cursor.executemany(sql, batch[start:start + CHUNK])

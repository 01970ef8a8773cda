"""peewee models. Amounts are stored as TEXT decimals (SQLite's NUMERIC would be a float)."""
from __future__ import annotations

import threading
from decimal import Decimal

import peewee as pw


class ModelDatabase(pw.DatabaseProxy):
    """The database every model (and storage/sql.py) uses: the one ``storage.db.open_database`` opened —
    or, for one greenlet (a thread-local is greenlet-local under gevent) inside ``storage.archive_view``, a
    scratch copy of one archived order. Only that greenlet sees the scratch database, so an archived order
    is read by the very same read code as a hot one while every other greenlet keeps the real database."""
    __slots__ = ("_opened", "_scratch", "_scratching")

    def __init__(self) -> None:
        object.__setattr__(self, "_scratch", threading.local())
        object.__setattr__(self, "_opened", None)
        object.__setattr__(self, "_scratching", 0)   # greenlets reading a scratch copy right now
        super().__init__()

    def __setattr__(self, attr, value) -> None:
        object.__setattr__(self, "_opened" if attr == "obj" else attr, value)

    @property
    def obj(self):
        # Every statement asks; the greenlet-local is looked at only while some greenlet has a scratch copy (a
        # first look from a greenlet builds its local state: pooled order actors run each message in a new one)
        if not self._scratching:
            return self._opened
        scratch = getattr(self._scratch, "db", None)
        return self._opened if scratch is None else scratch

    def use_scratch(self, db) -> None:
        """This greenlet reads ``db`` from now on (None: the opened database again)."""
        had = getattr(self._scratch, "db", None) is not None
        self._scratch.db = db
        object.__setattr__(self, "_scratching", self._scratching + (db is not None) - had)


database_proxy = ModelDatabase()

SCHEMA_VERSION = 5  # storage/migrations.py upgrades older databases in place


class DecimalText(pw.Field):
    """Exact decimal stored as text; the same on SQLite and PostgreSQL."""
    field_type = "TEXT"

    def db_value(self, value):
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("refusing to store a float amount; use Decimal")
        return format(Decimal(value), "f")

    def python_value(self, value):
        return None if value is None else Decimal(value)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = pw.IntegerField(primary_key=True)
    applied_at = pw.FloatField()


class PollCursor(BaseModel):
    """Where the snapshot poller resumes: Mixin's created_at of the newest snapshot stored."""
    name = pw.CharField(primary_key=True)
    offset = pw.CharField()
    offset_ns = pw.BigIntegerField()
    updated_at = pw.FloatField()


class Snapshot(BaseModel):
    """Every snapshot Mixin ever showed us, kept raw (msgpack), with what we did with it.

    outcome: None until routed; then 'order' (handed to an OrderActor), 'refund',
    'ignored', 'topup' or 'attention'. applied: the order actor has consumed it
    (tallied or refunded) — a replay of an applied snapshot is a no-op.
    """
    snapshot_id = pw.CharField(primary_key=True)
    created_at = pw.CharField()
    created_ns = pw.BigIntegerField(index=True)
    asset_id = pw.CharField()
    amount = DecimalText()
    opponent_id = pw.CharField(default="")
    memo = pw.TextField(default="")
    raw = pw.BlobField()
    outcome = pw.CharField(null=True)  # indexed only while not applied (snapshot_waiting, below)
    reason = pw.TextField(null=True)
    order_id = pw.CharField(null=True, index=True)
    pair_id = pw.CharField(null=True)
    applied = pw.BooleanField(default=False)
    # What an applied snapshot is to its order: payment (the tally), top_up (funds added to a running order),
    # exit (sent with an exit request; comes back with the settlement). NULL on rows older than schema 2: payment.
    purpose = pw.CharField(null=True)
    top_up_batch = pw.IntegerField(null=True)  # the top-up batch that took this snapshot to the exchange
    inserted_at = pw.FloatField()
    routed_at = pw.FloatField(null=True)
    applied_at = pw.FloatField(null=True)


# The snapshots still waiting for something — unrouted (outcome NULL), routed to an order not applied yet, awaiting
# their return's hash, needing an operator — by outcome and order: a partial index, so the snapshots stored applied
# (nearly all: the ingest routes and applies a page as it stores it) are not indexed by outcome at all (schema 5;
# an index of every snapshot's outcome cost ~a tenth of the ingest). Queries name `applied = FALSE` literally:
# only then can the planner use it (SQLite proves a partial index's WHERE from the query's own terms).
Snapshot.add_index(Snapshot.index(Snapshot.outcome, Snapshot.order_id, name="snapshot_waiting",
                                  where=pw.SQL("applied = FALSE")))
WAITING = pw.SQL("applied = FALSE")  # the term that lets a query use snapshot_waiting


class Order(BaseModel):
    """A market-making order: its owner, state and the fee requirements fixed at creation."""
    order_id = pw.CharField(primary_key=True)
    pair_id = pw.CharField(index=True)
    user_id = pw.CharField(null=True)
    state = pw.CharField(index=True)
    state_reason = pw.TextField(default="")
    base_fee_asset_id = pw.CharField()
    base_fee_amount = DecimalText()
    quote_fee_asset_id = pw.CharField()
    quote_fee_amount = DecimalText()
    market_making_fee_percent = DecimalText()
    breakdown = pw.TextField(null=True)  # JSON of the PaymentBreakdown at completion
    strategy_overrides = pw.TextField(null=True)  # JSON: this order's parameters over the pair's defaults
    strategy_params = pw.TextField(null=True)     # JSON: the effective parameters it started with
    opening_price = DecimalText(null=True)        # reference price at the first quote: values the opening inventory
    # The way back: an exit asked by the owner (memo), an operator or the end time; remembered while funds
    # are in flight and carried out once they are on the exchange.
    exit_requested_at = pw.FloatField(null=True)
    exit_source = pw.CharField(null=True)         # memo | operator | owner (API) | end_time
    exit_reason = pw.TextField(null=True)
    end_at = pw.FloatField(null=True)             # per-order end time (set-params end_at); exits when reached
    started_at = pw.FloatField(null=True)         # first time running: a pair's max_duration counts from here
    exit_price = DecimalText(null=True)           # mid price when the funds started back: values the inventory
    statement = pw.TextField(null=True)           # JSON, frozen when the order became final
    closed_at = pw.FloatField(null=True)
    created_at = pw.FloatField()
    first_payment_at = pw.FloatField(null=True)
    deadline_at = pw.FloatField(null=True)
    completed_at = pw.FloatField(null=True)
    updated_at = pw.FloatField()

    class Meta:
        table_name = "orders"


class PaymentTally(BaseModel):
    """What one order has received in one asset (sum of its applied snapshots)."""
    order_id = pw.CharField()
    asset_id = pw.CharField()
    amount = DecimalText()
    payments = pw.IntegerField(default=0)

    class Meta:
        primary_key = pw.CompositeKey("order_id", "asset_id")


class OrderStateChange(BaseModel):
    """History: every state transition of every order."""
    order_id = pw.CharField(index=True)
    from_state = pw.CharField(null=True)
    to_state = pw.CharField()
    reason = pw.TextField(default="")
    at = pw.FloatField()


class MoneyMovement(BaseModel):
    """The outbox: a money movement written down before it is sent.

    request_id is derived from the cause, so the same cause can never produce two
    movements (cause is unique too) and a retry sends the same request to Mixin.
    state: queued → prepared (raw transaction built and stored, inputs locked) →
    sent (broadcast) → confirmed (final on Mixin); failed is for definitive errors.
    Once prepared, only the stored bytes are ever submitted, so a retry after a
    crash is byte-identical and Mixin sees the same request.
    """
    request_id = pw.CharField(primary_key=True)
    kind = pw.CharField()
    cause = pw.CharField(unique=True)
    order_id = pw.CharField(null=True, index=True)
    snapshot_id = pw.CharField(null=True)
    asset_id = pw.CharField()
    amount = DecimalText()
    recipient_id = pw.CharField()
    memo = pw.TextField(default="")
    state = pw.CharField(index=True)
    attempts = pw.IntegerField(default=0)
    last_error = pw.TextField(null=True)
    destination = pw.CharField(null=True)   # withdrawals: external address
    tag = pw.CharField(null=True)           # withdrawals: memo/tag of the address (in the output, not the extra)
    prepared = pw.TextField(null=True)      # PreparedTransaction JSON: what is (re)submitted
    input_ids = pw.TextField(null=True)     # JSON list of UTXO ids this movement spends (locked)
    fee_asset_id = pw.CharField(null=True)
    fee_amount = DecimalText(null=True)
    transaction_hash = pw.CharField(null=True)
    mixin_snapshot_id = pw.CharField(null=True)
    withdrawal_hash = pw.CharField(null=True)
    # Withdrawals to an exchange: where they should show up as a deposit, and the deposit once matched.
    leg = pw.CharField(null=True)                 # "base" | "quote"
    exchange_account = pw.CharField(null=True)
    exchange_code = pw.CharField(null=True)       # currency code on the exchange
    network = pw.CharField(null=True)             # ccxt network code
    deposit_id = pw.CharField(null=True, unique=True)  # one exchange deposit credits one movement, ever
    credited_amount = DecimalText(null=True)
    credited_at = pw.FloatField(null=True)
    top_up_batch = pw.IntegerField(null=True)     # withdrawals of added funds: their batch
    # Returns (kind "return": exchange → the bot's Mixin deposit address). `attempt` numbers the exchange
    # withdrawals tried for this movement; `client_id` is the current attempt's withdrawal client id,
    # written before the request is sent, so an unknown outcome is looked up, never sent blind again.
    client_id = pw.CharField(null=True)
    attempt = pw.IntegerField(default=0)
    rejections = pw.IntegerField(default=0)
    requested_at = pw.FloatField(null=True)
    next_try_at = pw.FloatField(null=True)
    exchange_withdrawal_id = pw.CharField(null=True)
    exchange_txid = pw.CharField(null=True)
    arrival_snapshot_id = pw.CharField(null=True, unique=True)  # one Mixin deposit credits one return, ever
    arrived_amount = DecimalText(null=True)
    arrived_at = pw.FloatField(null=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()
    sent_at = pw.FloatField(null=True)
    confirmed_at = pw.FloatField(null=True)


class LedgerEntry(BaseModel):
    """One order's own funds on the exchange: a journal (never updated), keyed by what caused each entry.

    Many orders share one exchange account; an order quotes only with the sum of
    its own entries. `ref` is unique, so crediting the same deposit twice is
    impossible."""
    order_id = pw.CharField(index=True)
    asset = pw.CharField()                 # exchange currency code
    delta = DecimalText()
    reason = pw.CharField()
    ref = pw.CharField(unique=True)
    at = pw.FloatField()


class OrderCommand(BaseModel):
    """An operator's command for one order (pause, resume, exit, set-params, resolve), written by the CLI,
    executed by the service.

    The database is the channel: it works whether the service runs or not, survives restarts, and
    records what was done with each command: `result` is "done: …" or "refused: …", written by the
    order's actor when it carried the command out (a command is delivered again after a crash until then;
    every command is idempotent)."""
    order_id = pw.CharField(index=True)
    command = pw.CharField()
    args = pw.TextField(default="{}")
    created_at = pw.FloatField()
    processed_at = pw.FloatField(null=True, index=True)
    result = pw.TextField(null=True)


class OrderTopUp(BaseModel):
    """One batch of funds added to a running order: what goes to the exchange and what it cost."""
    order_id = pw.CharField()
    batch = pw.IntegerField()
    state = pw.CharField()          # withdrawing | credited | attention
    breakdown = pw.TextField()      # JSON of domain.topup.TopUpEvaluation
    created_at = pw.FloatField()
    updated_at = pw.FloatField()

    class Meta:
        table_name = "order_top_up"
        primary_key = pw.CompositeKey("order_id", "batch")


class Alert(BaseModel):
    """Something an operator must look at that belongs to no order (or to many)."""
    kind = pw.CharField(index=True)
    subject = pw.CharField()
    message = pw.TextField()
    created_at = pw.FloatField()
    resolved = pw.BooleanField(default=False)
    acked_at = pw.FloatField(null=True)      # an operator acknowledged it (`alerts ack ID`)

    class Meta:
        indexes = ((("kind", "subject"), True),)


class TradingHalt(BaseModel):
    """No quoting where a halt is in force: on every account (scope "all") or one (scope = account id).
    kind: "operator" (`halt`), "rejections" (the account's rejection breaker). It survives restarts until
    lifted (`halt --lift [--account ID]`)."""
    scope = pw.CharField()
    kind = pw.CharField()
    reason = pw.TextField()
    created_at = pw.FloatField()
    lifted_at = pw.FloatField(null=True, index=True)
    lifted_reason = pw.TextField(null=True)


class ClusterMember(BaseModel):
    """A running ``serve`` instance of a cluster ([cluster]): alive while ``expires_at`` (the database's clock,
    epoch seconds) is ahead; it renews the row every heartbeat."""
    instance_id = pw.CharField(primary_key=True)
    host = pw.CharField(default="")
    pid = pw.IntegerField(default=0)
    started_at = pw.FloatField()
    heartbeat_at = pw.FloatField()
    expires_at = pw.FloatField(index=True)


class ClusterLease(BaseModel):
    """One thing only one instance may do at a time: a role (``role:ingest``, ``role:treasury``, …) or an exchange
    account (``account:<id>``). Taking it over increments ``epoch``; the holder's writes check (holder, epoch) in
    their own transaction, so a stale holder's writes are refused (fencing)."""
    name = pw.CharField(primary_key=True)
    holder = pw.CharField(null=True)
    epoch = pw.BigIntegerField(default=0)
    expires_at = pw.FloatField(default=0)
    acquired_at = pw.FloatField(default=0)

    class Meta:
        # (name, epoch) unique makes epoch a key column: a takeover (epoch + 1) waits for the fenced writes holding
        # FOR KEY SHARE on the row, while a renewal (expires_at only) never does (storage/cluster.py)
        indexes = ((("name", "epoch"), True),)


ALL_MODELS = [TradingHalt, SchemaVersion, PollCursor, Snapshot, Order, PaymentTally, OrderStateChange, MoneyMovement,
              LedgerEntry, OrderCommand, OrderTopUp, Alert, ClusterMember, ClusterLease]

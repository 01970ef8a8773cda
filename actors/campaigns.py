"""CampaignActor: every order gets a campaign participation record; matching HuFi campaigns get joined.

For each ``JoinForOrder`` the actor, at once and without any network call:

1. matches the order's exchange and pair against the cached list of active HuFi
   campaigns (``LauncherClient``, refreshed every ``hufi.refresh_interval``);
2. writes the local ``CampaignParticipation`` record — always: the HuFi campaign
   key ``{chain_id}-{address}`` when one matched, else the local id
   ``mm_<exchange>_<BASEQUOTE>`` (see ``local_campaign_id``);
3. replies ``CampaignJoined`` (to ``reply_to``, and to the asker when asked).

Joining HuFi happens in the background, once per (exchange account, campaign):
a worker greenlet enrolls the account's *read-only* exchange API key with the
recording oracle (once; again only if the key or the wallet changes), checks the
join status and joins. Failures (HuFi down, timeouts, 5xx, refusals that may
clear) are logged and retried with exponential backoff (``retry_delay`` doubling
up to ``retry_max_delay``); the order is never blocked and its record is
updated (``joined_hufi``) when the join lands. Campaigns that can never be joined
(finished, cancelled, full) are marked ``closed`` and not retried.

Without the EVM signing library (the ``hufi`` extra) or without a readable EVM
key, joining is skipped with one clear log line; records are still written.
Orders recorded before the campaign list could ever be loaded are matched when
it loads (their record then names the campaign; no second reply is sent).

No network call is made inside a handler: the list is fetched by a spawned
greenlet and joins run on the worker greenlet; both report back by message.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from dataclasses import dataclass
from typing import Any

import gevent
import pykka
from gevent.queue import Queue
from loguru import logger

from actors.supervisor import SupervisedActor, describe
from actors.timers import Timer, send_after, send_every
from domain.hufi_config import ApiKeyRef, HufiConfig, SecretUnavailable
from integrations.hufi.client import (MARKET_MAKING_TYPES, Campaign, HufiAlreadyJoined, HufiApiError, HufiError,
                                      HufiJoinRefused, LauncherClient, OracleClient, hufi_exchange_name)
from integrations.hufi.signer import INSTALL_HINT, EvmSigner, SigningUnavailable, signing_available
from storage import campaign_models as cm

__all__ = ["CampaignActor", "CampaignJoined", "JoinForOrder", "RefreshCampaigns", "default_signer_factory",
           "local_campaign_id"]

NO_SIGNER_REASON = f"the EVM signing library eth-account is not installed ({INSTALL_HINT})"


def local_campaign_id(ccxt_id: str, symbol: str) -> str:
    """``mm_<exchange>_<BASEQUOTE>``: ccxt id lower-cased, pair upper-cased without the slash.

    ``("binance", "BTC/USDT")`` → ``mm_binance_BTCUSDT``. A ccxt settle suffix
    (``BTC/USDT:USDT``) is dropped; characters other than letters and digits go.
    """
    pair = (symbol or "").partition(":")[0]
    base, _, quote = pair.partition("/")
    clean = re.sub(r"[^0-9A-Za-z]", "", base + quote).upper()
    return f"mm_{(ccxt_id or '').strip().lower()}_{clean}"


def _pair(symbol: str) -> str:
    return (symbol or "").partition(":")[0].strip().upper()


# ------------------------------------------------------------------ messages


@dataclass(frozen=True)
class JoinForOrder:
    """Tell or ask → CampaignActor: record the order's campaign participation and join HuFi if a campaign matches.

    ``exchange_account`` is the configured account id, ``ccxt_id`` its exchange,
    ``symbol`` the ccxt pair ``BASE/QUOTE``. The actor answers at once with a
    ``CampaignJoined`` told to ``reply_to`` (and returned to an asker); the HuFi
    join itself runs in the background and never delays that answer.
    Idempotent per ``order_id``.
    """

    order_id: str
    exchange_account: str
    ccxt_id: str
    symbol: str
    reply_to: pykka.ActorRef | None = None


@dataclass(frozen=True)
class CampaignJoined:
    """CampaignActor → the order: its participation record is written.

    ``campaign_id`` is the HuFi campaign key ``{chain_id}-{address}`` or the local
    ``mm_<exchange>_<BASEQUOTE>``; ``hufi_campaign`` is the HuFi key or None;
    ``note`` says what happened (joined, joining in the background, skipped, no campaign).
    """

    order_id: str
    campaign_id: str
    hufi_campaign: str | None
    note: str


@dataclass(frozen=True)
class RefreshCampaigns:
    """Timer → CampaignActor: fetch the active campaign list again (in the background)."""


@dataclass(frozen=True)
class _CampaignsFetched:
    """Fetch greenlet → CampaignActor: the launcher's active campaigns, or why they could not be had."""

    campaigns: tuple[Campaign, ...] | None
    error: str | None
    leaderboards: tuple[dict, ...] = ()  # summaries of the joined campaigns' leaderboards (store rows)


@dataclass(frozen=True)
class _LeaderboardsRead:
    """Leaderboard greenlet → CampaignActor: summaries to store (read right after a join)."""

    rows: tuple[dict, ...]


@dataclass(frozen=True)
class _JoinJob:
    account: str
    key: str
    chain_id: int
    address: str
    hufi_exchange: str
    api_key: ApiKeyRef


@dataclass(frozen=True)
class _JoinAttempted:
    """Worker → CampaignActor: outcome of one join attempt: joined | closed | skipped | retry."""

    account: str
    key: str
    outcome: str
    detail: str
    hufi_join_id: str | None = None
    enrolled: tuple[str, str, str, str | None] | None = None  # (account, hufi exchange, fingerprint, key id)
    forget_key: bool = False
    missing_permissions: tuple[str, ...] = ()  # what HuFi says the read-only key lacks (an operator fixes it)


@dataclass(frozen=True)
class _RetryJoin:
    """Timer → CampaignActor: the backoff of a failed join is over."""

    account: str
    key: str


# ------------------------------------------------------------------ signer


def default_signer_factory(cfg: HufiConfig) -> EvmSigner | None:
    """The operator's signer from ``[hufi]``: None without eth-account; raises if the key is unreadable or bad."""
    if not signing_available():
        return None
    if cfg.evm_private_key is None:
        raise SecretUnavailable("no evm_private_key_file / evm_private_key_env in [hufi]")
    return EvmSigner.from_private_key(cfg.evm_private_key.read())


def key_fingerprint(wallet: str, api_key: str) -> str:
    return hashlib.sha256(f"{wallet.lower()}|{api_key}".encode()).hexdigest()[:16]


# ------------------------------------------------------------------ the actor


class CampaignActor(SupervisedActor):
    def __init__(self, services: Any, *, supervisor: pykka.ActorRef | None = None, child_id: str | None = None,
                 signer_factory: Callable[[HufiConfig], EvmSigner | None] | None = None,
                 launcher: LauncherClient | None = None, oracle: OracleClient | None = None) -> None:
        super().__init__(supervisor=supervisor, child_id=child_id)
        self.services = services
        self.cfg: HufiConfig | None = getattr(services.config, "hufi", None)
        self.enabled = self.cfg is not None and self.cfg.enabled
        self._signer_factory = signer_factory or default_signer_factory
        self._launcher = launcher
        self._oracle = oracle
        self._owned: list[Any] = []
        self.signer: EvmSigner | None = None
        self._no_join_reason = ""
        self._cache: tuple[Campaign, ...] = ()
        self.cache_loaded = False
        self._fetching = False
        self._fetch_greenlet: gevent.Greenlet | None = None
        self._refresh_timer: Timer | None = None
        self._refetch_timer: Timer | None = None
        self._awaiting: dict[str, tuple[str, str, str]] = {}  # order id → (account, ccxt id, symbol)
        self._joins: dict[tuple[str, str], str] = {}           # (account, campaign key) → state
        self._notes: dict[tuple[str, str], str] = {}
        self._attempts: dict[tuple[str, str], int] = {}
        self._jobs: dict[tuple[str, str], _JoinJob] = {}
        self._timers: dict[tuple[str, str], Timer] = {}
        self._queue: Queue = Queue()
        self._worker: gevent.Greenlet | None = None
        self._worker_keys: dict[str, tuple[str, str]] = {}     # worker-owned: account → (hufi exchange, fingerprint)

    # -------------------------------------------------------------- lifecycle

    def setup(self) -> None:
        if not self.enabled:
            logger.info("campaigns: HuFi is disabled ([hufi] absent or enabled = false); "
                        "orders get local campaign records only")
            return
        cfg = self.cfg
        assert cfg is not None
        self._make_signer()
        if self._launcher is None:
            self._launcher = LauncherClient(cfg.launcher_url, timeout=cfg.request_timeout,
                                            max_attempts=cfg.max_attempts)
            self._owned.append(self._launcher)
        if self.signer is not None and self._oracle is None:
            self._oracle = OracleClient(cfg.oracle_url, self.signer, timeout=cfg.request_timeout,
                                        max_attempts=cfg.max_attempts, clock=self.services.clock)
            self._owned.append(self._oracle)
        if self._oracle is None and not self._no_join_reason:
            self._no_join_reason = "no recording-oracle client"

        for key_row in cm.load_api_keys():
            self._worker_keys[key_row.exchange_account] = (key_row.hufi_exchange, key_row.fingerprint)
        resume = []
        for row in cm.load_enrollments():
            k = (row.exchange_account, row.campaign_key)
            self._joins[k] = row.state
            self._notes[k] = row.last_error or ""
            self._attempts[k] = row.attempts
            if row.state in ("pending", "retrying") or (row.state == "skipped" and self._oracle is not None):
                resume.append(row)
        for view in cm.awaiting_participations():
            self._awaiting[view.order_id] = (view.exchange_account, view.exchange, view.symbol)

        self._worker = gevent.spawn(self._work)
        for row in resume:
            k = (row.exchange_account, row.campaign_key)
            if self._oracle is None:  # left pending by a run that could sign: say why nothing happens now
                self._skip(k, row.chain_id, row.address, row.hufi_exchange,
                           f"HuFi join skipped: {self._no_join_reason}")
                continue
            api_key = cfg.api_key_for(row.exchange_account)
            if api_key is None:
                self._skip(k, row.chain_id, row.address, row.hufi_exchange, self._no_key_reason(row.exchange_account))
                continue
            self._joins[k] = "pending"
            self._enqueue(_JoinJob(row.exchange_account, row.campaign_key, row.chain_id, row.address,
                                   row.hufi_exchange, api_key))
        if resume:
            logger.info("campaigns: resuming {} unfinished HuFi joins", len(resume))
        self.actor_ref.tell(RefreshCampaigns())
        self._refresh_timer = send_every(self.actor_ref, cfg.refresh_interval, RefreshCampaigns())
        logger.info("campaigns: HuFi enabled on chain {} (launcher {}, oracle {}, wallet {})", cfg.chain_id,
                    cfg.launcher_url, cfg.oracle_url, self.signer.address if self.signer else "none")

    def teardown(self) -> None:
        for timer in (self._refresh_timer, self._refetch_timer, *self._timers.values()):
            if timer is not None:
                timer.cancel()
        self._timers.clear()
        for greenlet in (self._worker, self._fetch_greenlet):
            if greenlet is not None:
                greenlet.kill(block=False)
        for client in self._owned:
            client.close()

    def _make_signer(self) -> None:
        try:
            self.signer = self._signer_factory(self.cfg)
        except (SigningUnavailable, SecretUnavailable, ValueError) as exc:
            self.signer = None
            self._no_join_reason = f"the EVM key cannot be used: {exc}"
        except Exception as exc:  # a broken factory must not stop the records
            self.signer = None
            self._no_join_reason = f"the EVM signer failed: {describe(exc)}"
        else:
            if self.signer is None:
                self._no_join_reason = NO_SIGNER_REASON
        if self.signer is None:
            logger.error("campaigns: joining HuFi campaigns is SKIPPED: {}. Orders are not affected: "
                         "each still gets its local campaign record.", self._no_join_reason)

    # -------------------------------------------------------------- messages

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, JoinForOrder):
            return self._join_for_order(message)
        if isinstance(message, RefreshCampaigns):
            self._refresh()
        elif isinstance(message, _CampaignsFetched):
            self._on_fetched(message)
        elif isinstance(message, _JoinAttempted):
            self._on_attempted(message)
        elif isinstance(message, _RetryJoin):
            self._on_retry(message)
        elif isinstance(message, _LeaderboardsRead):
            self._store_leaderboards(message.rows)
        else:
            logger.warning("campaigns: unexpected message {!r}", message)
        return None

    def _join_for_order(self, msg: JoinForOrder) -> CampaignJoined:
        now = self.services.clock()
        log = logger.bind(order_id=msg.order_id)
        campaign: Campaign | None = None
        awaiting = False
        cfg = self.cfg
        if not self.enabled:
            note = "HuFi disabled: local campaign record only"
        elif not self.cache_loaded:
            awaiting = True
            note = ("HuFi campaign list not loaded yet (launcher unreachable?): recorded locally, "
                    "matched when the list loads")
        else:
            campaign = self._match(msg.exchange_account, msg.ccxt_id, msg.symbol, now)
            if campaign is None:
                note = (f"no active HuFi campaign for {hufi_exchange_name(msg.ccxt_id)} {_pair(msg.symbol)} "
                        f"on chain {cfg.chain_id}")
        if campaign is not None:
            joined, note = self._begin_join(msg.exchange_account, campaign, now)
            view = self.services.writer.run(cm.record_participation, msg.order_id, campaign.key, campaign.chain_id,
                                            campaign.address, msg.exchange_account, msg.ccxt_id, msg.symbol, joined,
                                            note, False, now)
        else:
            view = self.services.writer.run(cm.record_participation, msg.order_id,
                                            local_campaign_id(msg.ccxt_id, msg.symbol), None, None,
                                            msg.exchange_account, msg.ccxt_id, msg.symbol, False, note, awaiting, now)
            if view.awaiting_list:
                self._awaiting[msg.order_id] = (msg.exchange_account, msg.ccxt_id, msg.symbol)
        reply = CampaignJoined(msg.order_id, view.campaign_id, view.hufi_campaign, view.note)
        log.info("campaigns: order {} recorded in campaign {} ({})", msg.order_id, view.campaign_id, view.note)
        if msg.reply_to is not None:
            try:
                msg.reply_to.tell(reply)
            except pykka.ActorDeadError:
                log.warning("campaigns: order {} is gone; CampaignJoined not delivered (the record is written)",
                            msg.order_id)
        return reply

    # -------------------------------------------------------------- matching

    def _match(self, account: str, ccxt_id: str, symbol: str, now: float) -> Campaign | None:
        exchange = hufi_exchange_name(ccxt_id)
        pair = _pair(symbol)
        chain = self.cfg.chain_id
        found = [c for c in self._cache
                 if c.chain_id == chain and c.exchange_name == exchange and c.symbol == pair
                 and c.type in MARKET_MAKING_TYPES and c.is_running(now)]
        if not found:
            return None
        # Stay with a campaign this account already joined; else plain market making, the biggest fund first.
        found.sort(key=lambda c: (self._joins.get((account, c.key)) != "joined", c.type != "MARKET_MAKING",
                                  -c.fund_amount, c.end_date, c.address.lower()))
        return found[0]

    def _begin_join(self, account: str, campaign: Campaign, now: float) -> tuple[bool, str]:
        """Make sure (account, campaign) is joined or being joined; (joined, note for the order)."""
        k = (account, campaign.key)
        state = self._joins.get(k)
        if state == "joined":
            return True, f"joined HuFi campaign {campaign.key}"
        if state in ("closed", "skipped"):
            return False, self._notes.get(k) or f"HuFi join {state}"
        if state in ("pending", "retrying"):
            return False, f"joining HuFi campaign {campaign.key} in the background"
        if self._oracle is None:
            return False, self._skip(k, campaign.chain_id, campaign.address, campaign.exchange_name,
                                     f"HuFi join skipped: {self._no_join_reason}")
        api_key = self.cfg.api_key_for(account)
        if api_key is None:
            return False, self._skip(k, campaign.chain_id, campaign.address, campaign.exchange_name,
                                     self._no_key_reason(account))
        stored = self.services.writer.run(cm.ensure_enrollment, account, campaign.key, campaign.chain_id,
                                          campaign.address, campaign.exchange_name, "pending", None, now)
        if stored == "joined":
            self._joins[k] = "joined"
            return True, f"joined HuFi campaign {campaign.key}"
        self._joins[k] = "pending"
        self._enqueue(_JoinJob(account, campaign.key, campaign.chain_id, campaign.address, campaign.exchange_name,
                               api_key))
        return False, f"joining HuFi campaign {campaign.key} in the background"

    @staticmethod
    def _no_key_reason(account: str) -> str:
        return (f"HuFi join skipped: no read-only API key for exchange account {account} "
                f"in [hufi.exchange_api_keys]")

    def _skip(self, k: tuple[str, str], chain_id: int, address: str, hufi_exchange: str, reason: str) -> str:
        if self._joins.get(k) != "skipped":
            logger.warning("campaigns: {} / {}: {}", k[0], k[1], reason)
        self._joins[k] = "skipped"
        self._notes[k] = reason
        now = self.services.clock()
        self.services.writer.run(cm.ensure_enrollment, k[0], k[1], chain_id, address, hufi_exchange, "skipped",
                                 reason, now)
        self.services.writer.run(cm.mark_enrollment, k[0], k[1], "skipped", reason, None, reason, now)
        return reason

    # -------------------------------------------------------------- campaign list

    def _refresh(self) -> None:
        if not self.enabled or self._fetching or self._launcher is None:
            return
        self._fetching = True
        joined = sorted({key for (_account, key), state in self._joins.items() if state == "joined"})
        self._fetch_greenlet = gevent.spawn(self._fetch, self._launcher, self.cfg.chain_id, self._oracle,
                                            self.signer.address if self.signer else None, joined)

    def _fetch(self, launcher: LauncherClient, chain_id: int, oracle: OracleClient | None = None,
               wallet: str | None = None, joined: Sequence[str] = ()) -> None:
        """Fetch greenlet: no actor state touched; the result goes back as a message."""
        try:
            # Every type is listed (HOLDING and THRESHOLD are shown to the operator); only market-making
            # campaigns are matched and joined.
            found = tuple(launcher.iter_campaigns(chain_id, statuses=("active",)))
            result = _CampaignsFetched(found, None, self._leaderboards(oracle, wallet, joined))
        except Exception as exc:  # HufiError, or anything else: the actor decides
            result = _CampaignsFetched(None, describe(exc))
        try:
            self.actor_ref.tell(result)
        except pykka.ActorDeadError:
            pass

    @staticmethod
    def _leaderboards(oracle: OracleClient | None, wallet: str | None, keys: Sequence[str]) -> tuple[dict, ...]:
        """Fetch greenlet: the leaderboard of each joined campaign, summed up for estimates (one failing
        leaderboard costs only its own estimate's precision: it stays an upper bound, and says so)."""
        if oracle is None or wallet is None:
            return ()
        rows = []
        for key in keys:
            chain_id, _, address = key.partition("-")
            try:
                board = oracle.leaderboard(int(chain_id), address)
            except Exception as exc:  # noqa: BLE001 - HufiError or a bad reply: skip this one
                logger.info("campaigns: leaderboard of {} not read: {}", key, describe(exc))
                continue
            others = board.others(wallet)
            ours = board.entry_of(wallet)
            rows.append({"key": key, "data": json.dumps({
                "others_score": str(sum((e.score for e in others), Decimal(0))),
                "others_volume": str(sum((e.result for e in others), Decimal(0))),
                "participants": len(board.entries), "updated_at": board.updated_at,
                "ours": None if ours is None else {
                    "score": str(ours.score), "volume": str(ours.result),
                    "estimated_reward": None if ours.estimated_reward is None else str(ours.estimated_reward)}})})
        return tuple(rows)

    def _store_leaderboards(self, rows: Sequence[dict]) -> None:
        if not rows:
            return
        try:
            self.services.writer.run(cm.store_leaderboards, list(rows), self.services.clock())
        except Exception as exc:  # estimates fall back to upper bounds; nothing else depends on it
            logger.warning("campaigns: could not store {} leaderboards: {}", len(rows), describe(exc))

    def _read_leaderboards_now(self, keys: Sequence[str]) -> None:
        """A greenlet reads these leaderboards and reports back: a fresh join's estimate need not wait for
        the next listing."""
        oracle, wallet = self._oracle, self.signer.address if self.signer else None
        actor_ref = self.actor_ref

        def read() -> None:
            rows = self._leaderboards(oracle, wallet, keys)
            try:
                actor_ref.tell(_LeaderboardsRead(rows))
            except pykka.ActorDeadError:
                pass
        gevent.spawn(read)

    def _on_fetched(self, msg: _CampaignsFetched) -> None:
        self._fetching = False
        self._fetch_greenlet = None
        if msg.campaigns is None:
            delay = self.cfg.retry_delay
            logger.warning("campaigns: HuFi campaign list not refreshed ({}); keeping {} cached campaigns; "
                           "retrying in {:.3g}s", msg.error, len(self._cache), delay)
            if self._refetch_timer is None or not self._refetch_timer.active:
                self._refetch_timer = send_after(self.actor_ref, delay, RefreshCampaigns())
            return
        self._store_leaderboards(msg.leaderboards)
        first = not self.cache_loaded
        self._cache = tuple(c for c in msg.campaigns if c.is_market_making)
        self.cache_loaded = True
        try:
            self.services.writer.run(cm.store_campaigns, [campaign_row(c) for c in msg.campaigns],
                                     self.services.clock())
        except Exception as exc:  # the listing still serves joins from memory
            logger.warning("campaigns: could not store the campaign list: {}", describe(exc))
        if first:
            logger.info("campaigns: {} active HuFi market-making campaigns on chain {}", len(self._cache),
                        self.cfg.chain_id)
        self._rematch_awaiting()

    def _rematch_awaiting(self) -> None:
        if not self._awaiting:
            return
        now = self.services.clock()
        unmatched = []
        for order_id, (account, ccxt_id, symbol) in list(self._awaiting.items()):
            campaign = self._match(account, ccxt_id, symbol, now)
            if campaign is None:
                unmatched.append(order_id)
                continue
            joined, note = self._begin_join(account, campaign, now)
            self.services.writer.run(cm.attach_campaign, order_id, campaign.key, campaign.chain_id, campaign.address,
                                     joined, note, now)
            logger.bind(order_id=order_id).info("campaigns: order {} now in HuFi campaign {} ({})", order_id,
                                                campaign.key, note)
        if unmatched:
            self.services.writer.run(cm.settle_awaiting, unmatched, "no active HuFi campaign for this exchange and "
                                     "pair when the campaign list loaded", now)
        self._awaiting.clear()

    # -------------------------------------------------------------- joins

    def _enqueue(self, job: _JoinJob) -> None:
        self._jobs[(job.account, job.key)] = job
        self._queue.put(job)

    def _work(self) -> None:
        """Worker greenlet: one join attempt at a time (the oracle client's tokens are not shared)."""
        while True:
            job = self._queue.get()
            try:
                result = self._attempt(job)
            except Exception as exc:  # never let the worker die silently
                logger.opt(exception=exc).error("campaigns: join attempt {} / {} crashed", job.account, job.key)
                result = _JoinAttempted(job.account, job.key, "retry", describe(exc))
            try:
                self.actor_ref.tell(result)
            except pykka.ActorDeadError:
                return

    def _attempt(self, job: _JoinJob) -> _JoinAttempted:
        """Runs on the worker greenlet: HTTP only, no actor state but the worker-owned key map."""
        oracle = self._oracle
        assert oracle is not None
        try:
            secret = job.api_key.read()
        except SecretUnavailable as exc:
            return _JoinAttempted(job.account, job.key, "retry",
                                  f"read-only API key of {job.account} unreadable: {exc}")
        fingerprint = key_fingerprint(oracle.address, secret.api_key)
        owner = next((a for a, (exchange, _) in self._worker_keys.items()
                      if exchange == job.hufi_exchange and a != job.account), None)
        if owner is not None:
            return _JoinAttempted(job.account, job.key, "skipped",
                                  f"HuFi join skipped: HuFi keeps one API key per exchange per wallet and "
                                  f"{job.hufi_exchange} is enrolled for exchange account {owner}")
        enrolled = None
        try:
            if self._worker_keys.get(job.account) != (job.hufi_exchange, fingerprint):
                key_id = oracle.enroll_api_key(job.hufi_exchange, secret.api_key, secret.secret_key,
                                               secret.extras or None)
                self._worker_keys[job.account] = (job.hufi_exchange, fingerprint)
                enrolled = (job.account, job.hufi_exchange, fingerprint, key_id)
                logger.info("campaigns: read-only API key of {} enrolled with HuFi for {}", job.account,
                            job.hufi_exchange)
            status = oracle.join_status(job.chain_id, job.address)
            if status.status == "already_joined":
                return _JoinAttempted(job.account, job.key, "joined", f"already joined since {status.joined_at}",
                                      None, enrolled)
            if status.status in ("join_closed", "not_available"):
                return _JoinAttempted(job.account, job.key, "closed",
                                      f"HuFi campaign {job.key} does not accept joins ({status.status}: "
                                      f"{status.reason or 'no reason given'})", None, enrolled)
            join_id = oracle.join_campaign(job.chain_id, job.address)
            return _JoinAttempted(job.account, job.key, "joined", "joined", join_id, enrolled)
        except HufiAlreadyJoined:
            return _JoinAttempted(job.account, job.key, "joined", "already joined", None, enrolled)
        except HufiJoinRefused as exc:
            missing = _missing_permissions(exc)
            if missing:
                self._worker_keys.pop(job.account, None)
                return _JoinAttempted(job.account, job.key, "retry",
                                      f"HuFi refuses the read-only API key of {job.account}: it lacks "
                                      f"{', '.join(missing)} — grant them on {job.hufi_exchange} (HuFi needs "
                                      f"VIEW_SPOT_TRADING_HISTORY and VIEW_DEPOSIT_ADDRESS)",
                                      None, enrolled, missing_permissions=missing)
            if exc.closed:
                return _JoinAttempted(job.account, job.key, "closed",
                                      f"HuFi campaign {job.key} refused the join: {exc.message}", None, enrolled)
            forget = "api key" in exc.message.lower()  # the oracle lost or rejects our key: enroll it again
            if forget:
                self._worker_keys.pop(job.account, None)
            return _JoinAttempted(job.account, job.key, "retry", f"refused: {exc.message}", None, enrolled, forget)
        except HufiApiError as exc:
            if exc.path == "/exchange-api-keys":
                self._worker_keys.pop(job.account, None)
            return _JoinAttempted(job.account, job.key, "retry", f"{type(exc).__name__}: {exc}", None, enrolled)
        except HufiError as exc:
            return _JoinAttempted(job.account, job.key, "retry", f"{type(exc).__name__}: {exc}", None, enrolled)

    def _on_attempted(self, msg: _JoinAttempted) -> None:
        k = (msg.account, msg.key)
        now = self.services.clock()
        writer = self.services.writer
        if msg.enrolled is not None:
            writer.run(cm.record_api_key, *msg.enrolled, now)
        if msg.forget_key:
            writer.run(_forget_api_key, msg.account)
        attempts = self._attempts.get(k, 0) + 1
        self._attempts[k] = attempts
        if msg.missing_permissions:
            from storage.repo import raise_alert
            writer.run(raise_alert, "hufi_key_permissions", msg.account, msg.detail)
        if msg.outcome == "joined":
            note = f"joined HuFi campaign {msg.key}"
            count = writer.run(cm.mark_joined, msg.account, msg.key, msg.hufi_join_id, attempts, note, now)
            self._joins[k] = "joined"
            self._notes[k] = note
            self._jobs.pop(k, None)
            logger.success("campaigns: {} joined HuFi campaign {} ({}; {} order(s) updated)", msg.account, msg.key,
                           msg.detail, count)
            self._read_leaderboards_now([msg.key])
        elif msg.outcome in ("closed", "skipped"):
            writer.run(cm.mark_enrollment, msg.account, msg.key, msg.outcome, msg.detail, attempts, msg.detail, now)
            self._joins[k] = msg.outcome
            self._notes[k] = msg.detail
            self._jobs.pop(k, None)
            logger.warning("campaigns: {} / {}: {}", msg.account, msg.key, msg.detail)
        else:
            delay = min(self.cfg.retry_delay * 2 ** min(attempts - 1, 20), self.cfg.retry_max_delay)
            note = (f"HuFi join failed ({msg.detail}); retrying in {delay:.3g}s "
                    f"(attempt {attempts}; the order is not affected)")
            writer.run(cm.mark_enrollment, msg.account, msg.key, "retrying", msg.detail, attempts, note, now)
            self._joins[k] = "retrying"
            self._notes[k] = note
            logger.warning("campaigns: {} / {}: {}", msg.account, msg.key, note)
            old = self._timers.pop(k, None)
            if old is not None:
                old.cancel()
            self._timers[k] = send_after(self.actor_ref, delay, _RetryJoin(msg.account, msg.key))

    def _on_retry(self, msg: _RetryJoin) -> None:
        k = (msg.account, msg.key)
        self._timers.pop(k, None)
        job = self._jobs.get(k)
        if job is None or self._joins.get(k) != "retrying":
            return
        self._joins[k] = "pending"
        self._queue.put(job)


def _missing_permissions(exc: Exception) -> tuple[str, ...]:
    """The permissions HuFi says an enrolled read-only key lacks (its error details), if any."""
    details = getattr(exc, "details", None)
    missing = details.get("missing_permissions") if isinstance(details, dict) else None
    return tuple(map(str, missing)) if isinstance(missing, list) else ()


def campaign_row(c: Campaign) -> dict:
    """A launcher campaign as stored for estimates and listings (amounts as decimal text)."""
    import json

    data = {"chain_id": c.chain_id, "address": c.address, "start_date": c.start_date.isoformat(),
            "end_date": c.end_date.isoformat(), "fund_amount": format(c.fund_amount, "f"),
            "fund_token_symbol": c.fund_token_symbol, "fund_token_decimals": c.fund_token_decimals,
            "details": {k: (format(v, "f") if isinstance(v, Decimal) else v) for k, v in (c.details or {}).items()}}
    return {"key": c.key, "type": c.type, "exchange_name": c.exchange_name, "symbol": c.symbol,
            "status": c.status, "data": json.dumps(data, sort_keys=True)}


def _forget_api_key(account: str) -> None:
    """Unit: the oracle no longer has our key for this account; the next attempt enrolls it again."""
    cm.HufiApiKey.delete().where(cm.HufiApiKey.exchange_account == account).execute()

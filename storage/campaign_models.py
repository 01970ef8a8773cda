"""Campaign participation (stage 7): the local record of every order, and HuFi joins.

- ``CampaignParticipation``: one row per order, always written. ``campaign_id`` is
  the HuFi campaign key ``{chain_id}-{address}`` when an active campaign matched
  the order's exchange and pair, else the local id ``mm_<exchange>_<BASEQUOTE>``.
- ``HufiEnrollment``: one row per (exchange account, HuFi campaign): has the
  operator's wallet joined it for that account. state: ``pending`` (queued) →
  ``joined``; ``retrying`` after a failure; ``closed`` (HuFi will never accept:
  finished, cancelled, full, unknown); ``skipped`` (no signer or no read-only
  key here: tried again at the next start).
- ``HufiApiKey``: which read-only API key was enrolled for an exchange account
  (a fingerprint, never the key), so it is enrolled once, and again only when
  the configured key or the wallet changes.

Units are plain functions run by the writer (DB statements only, no I/O, no
yields); reads are plain functions called by the actor.
"""
from __future__ import annotations

from dataclasses import dataclass

import peewee as pw

from storage.models import BaseModel

__all__ = ["CAMPAIGN_MODELS", "CampaignParticipation", "HufiApiKey", "HufiCampaign", "HufiEnrollment",
           "HufiLeaderboard", "store_leaderboards",
           "ParticipationView", "store_campaigns",
           "attach_campaign", "awaiting_participations", "ensure_enrollment", "get_participation",
           "load_api_keys", "load_enrollments", "mark_enrollment", "mark_joined", "record_api_key",
           "record_participation", "settle_awaiting"]

ENROLLMENT_STATES = ("pending", "retrying", "joined", "closed", "skipped")


class CampaignParticipation(BaseModel):
    order_id = pw.CharField(primary_key=True)
    campaign_id = pw.CharField(index=True)
    hufi_chain_id = pw.IntegerField(null=True)
    hufi_address = pw.CharField(null=True)
    exchange_account = pw.CharField(index=True)
    exchange = pw.CharField(default="")  # ccxt id of the account's exchange
    symbol = pw.CharField()
    joined_hufi = pw.BooleanField(default=False)
    awaiting_list = pw.BooleanField(default=False)  # recorded before the campaign list could be loaded
    note = pw.TextField(default="")
    created_at = pw.FloatField()
    updated_at = pw.FloatField()


class HufiEnrollment(BaseModel):
    exchange_account = pw.CharField()
    campaign_key = pw.CharField()  # {chain_id}-{address}
    chain_id = pw.IntegerField()
    address = pw.CharField()
    hufi_exchange = pw.CharField()
    state = pw.CharField(index=True)
    attempts = pw.IntegerField(default=0)
    hufi_join_id = pw.CharField(null=True)
    last_error = pw.TextField(null=True)
    joined_at = pw.FloatField(null=True)
    created_at = pw.FloatField()
    updated_at = pw.FloatField()

    class Meta:
        indexes = ((("exchange_account", "campaign_key"), True),)


class HufiApiKey(BaseModel):
    exchange_account = pw.CharField(primary_key=True)
    hufi_exchange = pw.CharField(index=True)
    fingerprint = pw.CharField()  # sha256(wallet|api_key)[:16]: tells a changed key, reveals nothing
    hufi_key_id = pw.CharField(null=True)
    enrolled_at = pw.FloatField()


class HufiCampaign(BaseModel):
    """The last listing of each HuFi campaign (all types; market-making ones are joined, the others only
    listed): what reward estimates and the `campaigns` command read."""
    key = pw.CharField(primary_key=True)  # {chain_id}-{address}
    type = pw.CharField()
    exchange_name = pw.CharField(index=True)
    symbol = pw.CharField()
    status = pw.CharField()
    data = pw.TextField()                 # JSON: dates, fund, token, details
    seen_at = pw.FloatField()


class HufiLeaderboard(BaseModel):
    """The last leaderboard read of a joined campaign, reduced to what an estimate needs: the other
    participants' total score and volume, and our wallet's own line (HuFi's view of us, to compare)."""
    key = pw.CharField(primary_key=True)  # {chain_id}-{address}
    data = pw.TextField()                 # JSON: others_score, others_volume, participants, ours, updated_at
    seen_at = pw.FloatField()


CAMPAIGN_MODELS = [CampaignParticipation, HufiEnrollment, HufiApiKey, HufiCampaign, HufiLeaderboard]


def store_leaderboards(rows: list[dict], now: float) -> None:
    """Upsert leaderboard summaries (each: key, data)."""
    for r in rows:
        HufiLeaderboard.insert(key=r["key"], data=r["data"], seen_at=now).on_conflict(
            conflict_target=[HufiLeaderboard.key],
            update={HufiLeaderboard.data: r["data"], HufiLeaderboard.seen_at: now}).execute()


def store_campaigns(campaigns: list[dict], now: float) -> None:
    """Upsert the campaigns of one listing (each: key, type, exchange_name, symbol, status, data)."""
    for c in campaigns:
        HufiCampaign.insert(key=c["key"], type=c["type"], exchange_name=c["exchange_name"], symbol=c["symbol"],
                            status=c["status"], data=c["data"], seen_at=now).on_conflict(
            conflict_target=[HufiCampaign.key],
            update={HufiCampaign.type: c["type"], HufiCampaign.status: c["status"], HufiCampaign.data: c["data"],
                    HufiCampaign.seen_at: now}).execute()


@dataclass(frozen=True)
class ParticipationView:
    order_id: str
    campaign_id: str
    hufi_chain_id: int | None
    hufi_address: str | None
    exchange_account: str
    exchange: str
    symbol: str
    joined_hufi: bool
    awaiting_list: bool
    note: str

    @property
    def hufi_campaign(self) -> str | None:
        return self.campaign_id if self.hufi_address else None

    @classmethod
    def of(cls, row: CampaignParticipation) -> "ParticipationView":
        return cls(row.order_id, row.campaign_id, row.hufi_chain_id, row.hufi_address, row.exchange_account,
                   row.exchange, row.symbol, bool(row.joined_hufi), bool(row.awaiting_list), row.note)


# ------------------------------------------------------------------ units (run by the writer)

def record_participation(order_id: str, campaign_id: str, hufi_chain_id: int | None, hufi_address: str | None,
                         exchange_account: str, exchange: str, symbol: str, joined_hufi: bool, note: str,
                         awaiting_list: bool, now: float) -> ParticipationView:
    """Write the order's record; idempotent. Returns what is stored.

    A record that already names a HuFi campaign is kept as it is (a replayed
    request never downgrades it); a local one is replaced by the new facts.
    """
    row = CampaignParticipation.get_or_none(CampaignParticipation.order_id == order_id)
    if row is None:
        row = CampaignParticipation.create(
            order_id=order_id, campaign_id=campaign_id, hufi_chain_id=hufi_chain_id, hufi_address=hufi_address,
            exchange_account=exchange_account, exchange=exchange, symbol=symbol, joined_hufi=joined_hufi,
            awaiting_list=awaiting_list,
            note=note, created_at=now, updated_at=now)
        return ParticipationView.of(row)
    if row.hufi_address and row.campaign_id != campaign_id and not hufi_address:
        return ParticipationView.of(row)
    if row.hufi_address and row.campaign_id == campaign_id:
        joined_hufi = joined_hufi or bool(row.joined_hufi)
    CampaignParticipation.update(campaign_id=campaign_id, hufi_chain_id=hufi_chain_id, hufi_address=hufi_address,
                                 exchange_account=exchange_account, exchange=exchange, symbol=symbol,
                                 joined_hufi=joined_hufi,
                                 awaiting_list=awaiting_list, note=note, updated_at=now) \
        .where(CampaignParticipation.order_id == order_id).execute()
    return ParticipationView.of(CampaignParticipation.get(CampaignParticipation.order_id == order_id))


def attach_campaign(order_id: str, campaign_id: str, hufi_chain_id: int, hufi_address: str, joined_hufi: bool,
                    note: str, now: float) -> bool:
    """The campaign list arrived after the order was recorded: name the matched campaign. Only while awaiting."""
    return CampaignParticipation.update(
        campaign_id=campaign_id, hufi_chain_id=hufi_chain_id, hufi_address=hufi_address, joined_hufi=joined_hufi,
        awaiting_list=False, note=note, updated_at=now,
    ).where((CampaignParticipation.order_id == order_id) & CampaignParticipation.awaiting_list).execute() > 0


def settle_awaiting(order_ids: list[str], note: str, now: float) -> int:
    """The campaign list arrived and nothing matched these orders: they stay local, no longer awaiting."""
    if not order_ids:
        return 0
    return CampaignParticipation.update(awaiting_list=False, note=note, updated_at=now).where(
        CampaignParticipation.order_id.in_(order_ids) & CampaignParticipation.awaiting_list).execute()


def ensure_enrollment(exchange_account: str, campaign_key: str, chain_id: int, address: str, hufi_exchange: str,
                      state: str, last_error: str | None, now: float) -> str:
    """Create the (account, campaign) row if missing; returns its state (the existing one if there was a row)."""
    row = HufiEnrollment.get_or_none((HufiEnrollment.exchange_account == exchange_account)
                                     & (HufiEnrollment.campaign_key == campaign_key))
    if row is not None:
        return row.state
    HufiEnrollment.create(exchange_account=exchange_account, campaign_key=campaign_key, chain_id=chain_id,
                          address=address, hufi_exchange=hufi_exchange, state=state, last_error=last_error,
                          created_at=now, updated_at=now)
    return state


def mark_enrollment(exchange_account: str, campaign_key: str, state: str, last_error: str | None,
                    attempts: int | None, order_note: str | None, now: float) -> None:
    """Record a join attempt's outcome (not joined), and say so on the orders waiting for it."""
    fields = {"state": state, "last_error": last_error, "updated_at": now}
    if attempts is not None:
        fields["attempts"] = attempts
    HufiEnrollment.update(**fields).where((HufiEnrollment.exchange_account == exchange_account)
                                          & (HufiEnrollment.campaign_key == campaign_key)).execute()
    if order_note is not None:
        CampaignParticipation.update(note=order_note, updated_at=now).where(
            (CampaignParticipation.exchange_account == exchange_account)
            & (CampaignParticipation.campaign_id == campaign_key)
            & ~CampaignParticipation.joined_hufi).execute()


def mark_joined(exchange_account: str, campaign_key: str, hufi_join_id: str | None, attempts: int | None,
                order_note: str, now: float) -> int:
    """The wallet is in the campaign for this account: the row and every order of it. Returns orders updated."""
    fields = {"state": "joined", "hufi_join_id": hufi_join_id, "last_error": None, "joined_at": now,
              "updated_at": now}
    if attempts is not None:
        fields["attempts"] = attempts
    HufiEnrollment.update(**fields).where((HufiEnrollment.exchange_account == exchange_account)
                                          & (HufiEnrollment.campaign_key == campaign_key)).execute()
    return CampaignParticipation.update(joined_hufi=True, note=order_note, updated_at=now).where(
        (CampaignParticipation.exchange_account == exchange_account)
        & (CampaignParticipation.campaign_id == campaign_key)
        & ~CampaignParticipation.joined_hufi).execute()


def record_api_key(exchange_account: str, hufi_exchange: str, fingerprint: str, hufi_key_id: str | None,
                   now: float) -> None:
    HufiApiKey.insert(exchange_account=exchange_account, hufi_exchange=hufi_exchange, fingerprint=fingerprint,
                      hufi_key_id=hufi_key_id, enrolled_at=now).on_conflict(
        conflict_target=[HufiApiKey.exchange_account],
        update={HufiApiKey.hufi_exchange: hufi_exchange, HufiApiKey.fingerprint: fingerprint,
                HufiApiKey.hufi_key_id: hufi_key_id, HufiApiKey.enrolled_at: now}).execute()


# ------------------------------------------------------------------ reads

def get_participation(order_id: str) -> ParticipationView | None:
    row = CampaignParticipation.get_or_none(CampaignParticipation.order_id == order_id)
    return None if row is None else ParticipationView.of(row)


def awaiting_participations() -> list[ParticipationView]:
    return [ParticipationView.of(r) for r in
            CampaignParticipation.select().where(CampaignParticipation.awaiting_list).order_by(
                CampaignParticipation.created_at)]


def load_enrollments() -> list[HufiEnrollment]:
    return list(HufiEnrollment.select())


def load_api_keys() -> list[HufiApiKey]:
    return list(HufiApiKey.select())

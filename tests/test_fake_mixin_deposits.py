"""Deposit entries and on-chain deposits on the fake Mixin, through the real MixinClient over loopback HTTP:
``POST /safe/deposit/entries``, ``GET /safe/deposits`` and ``fake.external_deposit`` (pending, then a
deposit snapshot the bot can spend)."""
from __future__ import annotations

import re
from decimal import Decimal

import pytest

from domain.ids import unique_object_id
from integrations.mixin.client import DepositEntry, MixinClient, PendingDeposit
from integrations.mixin.errors import MixinApiError, MixinBadResponse, MixinNotFound
from integrations.mixin.keystore import generate_keystore, parse_keystore
from integrations.mixin.safe_wallet import SafeWallet
from sim.fake_mixin import FakeMixin
from sim.world import BTC, BTC_CHAIN, ETH, ETH_CHAIN, USDT_ERC20, build_world
from tests.support import wait_until

XRP = "23dfb5a5-5d7b-48b6-905f-3970e3176e27"  # native: asset id == chain id
TRON_CHAIN = "25dabac5-056a-48ff-b9f9-f67395dc407c"
USDT_TRC20 = "b91e18ff-a9ae-3dc7-8679-e935d9a4b34b"
HASH = "0x" + "ab" * 32


@pytest.fixture
def world():
    w = build_world()
    try:
        yield w
    finally:
        w.fake.stop()


@pytest.fixture
def client(world):
    c = MixinClient(world.fake.url, world.keystore, max_attempts=1, timeout=5)
    yield c
    c.close()


def second_bot(fake: FakeMixin) -> MixinClient:
    d = generate_keystore()
    fake.register_bot(d)
    return MixinClient(fake.url, parse_keystore(d), max_attempts=1, timeout=5)


def deposit_snapshots(client: MixinClient, asset_id: str) -> list[dict]:
    return [s for s in client.safe_snapshots(asset=asset_id, order="ASC") if s.get("deposit")]


# --------------------------------------------------------------------------- entries


def test_deposit_entries_are_deterministic_and_repeatable(world, client):
    bot = world.bot_id
    [entry] = client.deposit_entries(ETH_CHAIN)
    assert isinstance(entry, DepositEntry)
    assert entry.chain_id == ETH_CHAIN and entry.members == (bot,) and entry.threshold == 1 and entry.is_primary
    assert re.fullmatch(r"0x[0-9a-f]{40}", entry.destination) and entry.tag == ""
    assert client.deposit_entries(ETH_CHAIN) == [entry]
    assert client.primary_deposit_entry(ETH_CHAIN) == entry
    assert world.fake.deposit_entries[(entry.destination, "")] == {
        "entry_id": entry.entry_id, "chain_id": ETH_CHAIN, "members": [bot], "threshold": 1}

    btc = client.primary_deposit_entry(BTC_CHAIN)
    assert btc.destination.startswith("bc1q") and btc.destination != entry.destination and btc.tag == ""
    world.fake.add_asset(USDT_TRC20, "USDT", TRON_CHAIN, precision=6)
    tron = client.primary_deposit_entry(TRON_CHAIN)
    assert re.fullmatch(r"T[1-9A-HJ-NP-Za-km-z]{33}", tron.destination)

    # a 2-of-2 with a user is another entry; the order of the members does not matter
    user = world.new_user()
    [multi] = client.deposit_entries(ETH_CHAIN, members=[user, bot], threshold=2)
    assert multi.destination != entry.destination and multi.threshold == 2 and set(multi.members) == {bot, user}
    assert client.deposit_entries(ETH_CHAIN, members=[bot, user], threshold=2) == [multi]

    other = second_bot(world.fake)
    try:
        assert other.primary_deposit_entry(ETH_CHAIN).destination != entry.destination
    finally:
        other.close()

    # deterministic across fakes: the same bot on a fresh fake gets the same address
    fresh = build_world()
    try:
        fresh.fake.register_bot(world.keystore_dict)
        with MixinClient(fresh.fake.url, world.keystore, max_attempts=1, timeout=5) as again:
            assert again.primary_deposit_entry(ETH_CHAIN) == entry
    finally:
        fresh.fake.stop()


def test_tag_only_on_tag_required_chains(world, client):
    fake = world.fake
    fake.add_asset(XRP, "XRP", XRP, price_usd="0.5")
    assert not fake.chain_tag_required(XRP)
    fake.set_chain_tag_required(XRP, True)
    assert fake.chain_tag_required(XRP)
    tagged = client.primary_deposit_entry(XRP)
    assert re.fullmatch(r"[1-9][0-9]{8}", tagged.tag) and tagged.destination.startswith("r")
    assert client.primary_deposit_entry(XRP) == tagged  # repeatable
    assert client.primary_deposit_entry(ETH_CHAIN).tag == ""  # other chains are untouched
    assert client.primary_deposit_entry(BTC_CHAIN).tag == ""
    other = second_bot(fake)
    try:
        theirs = other.primary_deposit_entry(XRP)
    finally:
        other.close()
    # one shared destination, told apart by the tag
    assert theirs.destination == tagged.destination and theirs.tag != tagged.tag
    assert fake.deposit_entries[(tagged.destination, tagged.tag)]["members"] == [world.bot_id]


def test_entry_requests_are_validated(world, client):
    with pytest.raises(MixinNotFound):  # no asset lives on that chain
        client.deposit_entries("11111111-2222-4333-8444-555555555555")
    with pytest.raises(MixinApiError, match="members"):  # not the caller's own entry
        client.deposit_entries(ETH_CHAIN, members=[world.new_user()])
    with pytest.raises(MixinApiError, match="threshold"):
        client.request("POST", "/safe/deposit/entries",
                       body={"members": [world.bot_id], "threshold": 2, "chain_id": ETH_CHAIN})
    with pytest.raises(ValueError):
        client.deposit_entries(ETH_CHAIN, threshold=0)
    assert world.fake.deposit_entries == {}


# --------------------------------------------------------------------------- deposits


def test_pending_deposit_becomes_a_snapshot_after_the_delay(world, client):
    fake, safe, bot = world.fake, world.safe, world.bot_id
    entry = client.primary_deposit_entry(ETH_CHAIN)
    unspent_before = safe.unspent_total(bot, USDT_ERC20)
    pending = fake.external_deposit(bot, USDT_ERC20, "25.5", destination=entry.destination, deposit_hash=HASH,
                                    confirmations_needed=6, delay=0.6, sender="0x" + "cd" * 20)
    assert pending["state"] == "pending" and pending["transaction_hash"] == HASH

    [p] = client.pending_deposits()
    assert isinstance(p, PendingDeposit)
    assert (p.transaction_hash, p.amount, p.threshold, p.asset_id, p.destination, p.tag) == (
        HASH, Decimal("25.5"), 6, USDT_ERC20, entry.destination, "")
    assert 0 <= p.confirmations < 6 and p.deposit_id == pending["deposit_id"]
    [same] = client.pending_deposits(asset_id=USDT_ERC20, destination=entry.destination, limit=1)
    assert same.deposit_id == p.deposit_id
    assert client.pending_deposits(asset_id=BTC) == []
    assert client.pending_deposits(destination="0x" + "00" * 20) == []
    assert deposit_snapshots(client, USDT_ERC20) == []
    assert fake.balance(bot, USDT_ERC20) == 0 and safe.unspent_total(bot, USDT_ERC20) == unspent_before

    # confirmed by the fake's own timer: nobody calls the API while waiting
    wait_until(lambda: not fake.pending_deposits(bot), timeout=5, message="deposit confirmed")
    assert client.pending_deposits() == []
    [snap] = deposit_snapshots(client, USDT_ERC20)
    assert snap["opponent_id"] == "" and snap["withdrawal"] is None and Decimal(snap["amount"]) == Decimal("25.5")
    assert snap["deposit"] == {"deposit_hash": HASH, "deposit_index": 0, "sender": "0x" + "cd" * 20,
                               "destination": entry.destination, "tag": ""}
    assert client.read_snapshot(snap["snapshot_id"])["deposit"]["deposit_hash"] == HASH
    assert fake.balance(bot, USDT_ERC20) == Decimal("25.5")
    assert safe.unspent_total(bot, USDT_ERC20) == unspent_before + Decimal("25.5")
    assert fake.deposit_errors == []


def test_pending_confirmations_count_up_and_offset_pages_forward(world, client):
    fake, bot = world.fake, world.bot_id
    entry = client.primary_deposit_entry(ETH_CHAIN)
    for i in range(3):
        fake.external_deposit(bot, USDT_ERC20, str(10 + i), destination=entry.destination,
                              deposit_hash=f"0x{i:064x}", confirmations_needed=100, delay=30)
    newest_first = client.pending_deposits()
    assert [d.amount for d in newest_first] == [Decimal(12), Decimal(11), Decimal(10)]
    oldest = newest_first[-1]
    forward = client.pending_deposits(offset=newest_first[1].created_at)
    assert [d.amount for d in forward] == [Decimal(11), Decimal(12)]
    assert [d.amount for d in client.pending_deposits(limit=1)] == [Decimal(12)]
    first = oldest.confirmations
    wait_until(lambda: client.pending_deposits(offset=oldest.created_at, limit=1)[0].confirmations > first,
               timeout=5, message="confirmations counting up")
    assert fake.confirm_pending_deposits() == 3
    assert client.pending_deposits() == [] and len(deposit_snapshots(client, USDT_ERC20)) == 3


def test_the_bot_can_spend_a_confirmed_deposit(world, client):
    fake, safe, bot = world.fake, world.safe, world.bot_id
    entry = client.primary_deposit_entry(ETH_CHAIN)
    snap = fake.external_deposit(bot, USDT_ERC20, "40", destination=entry.destination, deposit_hash=HASH)
    assert snap["type"] == "snapshot" and snap["deposit"]["deposit_hash"] == HASH  # delay 0: at once
    assert safe.unspent_total(bot, USDT_ERC20) == Decimal("40")

    user = world.new_user()
    wallet = SafeWallet(client, world.keystore)
    request_id = unique_object_id("test-deposits:", "spend")
    prepared = wallet.prepare_transfer(request_id, USDT_ERC20, Decimal("15"), user, b"")
    [status] = wallet.submit(prepared)
    assert status.state == "spent"
    assert fake.balance(user, USDT_ERC20) == Decimal("15")
    assert safe.unspent_total(bot, USDT_ERC20) == Decimal("25")


def test_external_deposit_is_idempotent(world, client):
    fake, bot = world.fake, world.bot_id
    entry = client.primary_deposit_entry(ETH_CHAIN)
    first = fake.external_deposit(bot, USDT_ERC20, "5", destination=entry.destination, deposit_hash=HASH)
    again = fake.external_deposit(bot, USDT_ERC20, "5", destination=entry.destination.upper().replace("0X", "0x"),
                                  deposit_hash=HASH)
    assert again["snapshot_id"] == first["snapshot_id"]
    assert fake.balance(bot, USDT_ERC20) == Decimal("5") and len(deposit_snapshots(client, USDT_ERC20)) == 1

    slow_hash = "0x" + "ef" * 32
    p1 = fake.external_deposit(bot, USDT_ERC20, "7", destination=entry.destination, deposit_hash=slow_hash, delay=30)
    p2 = fake.external_deposit(bot, USDT_ERC20, "7", destination=entry.destination, deposit_hash=slow_hash, delay=30)
    assert p1["deposit_id"] == p2["deposit_id"] and len(client.pending_deposits()) == 1
    fake.confirm_pending_deposits()
    done = fake.external_deposit(bot, USDT_ERC20, "7", destination=entry.destination, deposit_hash=slow_hash, delay=30)
    assert done["type"] == "snapshot" and done["deposit"]["deposit_hash"] == slow_hash
    assert fake.balance(bot, USDT_ERC20) == Decimal("12") and len(deposit_snapshots(client, USDT_ERC20)) == 2

    # the same hash to another asset of the chain is another deposit (ERC20 transfers share a tx)
    fake.external_deposit(bot, ETH, "0.1", destination=entry.destination, deposit_hash=HASH)
    assert fake.balance(bot, ETH) == Decimal("0.1")


def test_external_deposit_refuses_what_is_not_the_bots_entry(world, client):
    fake, bot = world.fake, world.bot_id
    entry = client.primary_deposit_entry(ETH_CHAIN)
    with pytest.raises(ValueError, match="not a deposit entry"):
        fake.external_deposit(bot, USDT_ERC20, "1", destination="0x" + "12" * 20, deposit_hash=HASH)
    with pytest.raises(ValueError, match="chain"):  # BTC is not on the Ethereum chain
        fake.external_deposit(bot, BTC, "1", destination=entry.destination, deposit_hash=HASH)
    other = second_bot(fake)
    try:
        theirs = other.primary_deposit_entry(ETH_CHAIN)
    finally:
        other.close()
    with pytest.raises(ValueError, match="not the bot's"):
        fake.external_deposit(bot, USDT_ERC20, "1", destination=theirs.destination, deposit_hash=HASH)
    with pytest.raises(KeyError):
        fake.external_deposit("11111111-2222-4333-8444-555555555555", USDT_ERC20, "1",
                              destination=entry.destination, deposit_hash=HASH)
    with pytest.raises(ValueError):
        fake.external_deposit(bot, USDT_ERC20, "0.000000001", destination=entry.destination, deposit_hash=HASH)
    assert fake.external_deposits == {} and fake.balance(bot, USDT_ERC20) == 0


def test_plain_deposit_still_works(world, client):
    snap = world.fake.deposit(world.bot_id, BTC, "0.5")
    assert snap["opponent_id"] == "" and snap["deposit"]["deposit_hash"]
    assert world.safe.unspent_total(world.bot_id, BTC) == Decimal("0.5")


# --------------------------------------------------------------------------- malformed replies


@pytest.mark.parametrize("body", [
    b'{"data":{}}',
    b'{"data":[{"type":"deposit_entry"}]}',
    b'{"data":[{"type":"deposit_entry","entry_id":"e","chain_id":"' + BTC_CHAIN.encode()
    + b'","members":["m"],"threshold":1,"destination":"x","tag":"","is_primary":true}]}',  # another chain
    b'{"data":[{"type":"deposit_entry","entry_id":"e","chain_id":"' + ETH_CHAIN.encode()
    + b'","members":["m"],"threshold":1,"destination":"","tag":"","is_primary":true}]}',  # no destination
    b'{"data":[{"type":"deposit_entry","entry_id":"e","chain_id":"' + ETH_CHAIN.encode()
    + b'","members":["m"],"threshold":2,"destination":"0x1","tag":"","is_primary":true}]}',  # 2 of 1
    b'{"data":[{"type":"deposit_entry","entry_id":"e","chain_id":"' + ETH_CHAIN.encode()
    + b'","members":["m"],"threshold":1,"destination":"0x1","tag":7,"is_primary":true}]}',  # tag not a string
    b'{"data":[]}',  # no entry at all: primary_deposit_entry has nothing to pick
    b'not json',
])
def test_malformed_entry_replies_raise_bad_response(world, client, body):
    world.fake.inject("/safe/deposit/entries", status=200, body=body)
    with pytest.raises(MixinBadResponse):
        client.primary_deposit_entry(ETH_CHAIN)


@pytest.mark.parametrize("item", [
    '{"deposit_id":"d","transaction_hash":"h","amount":"abc","confirmations":1,"threshold":2,"created_at":"t",'
    '"asset_id":"a","destination":"x","tag":""}',
    '{"deposit_id":"d","transaction_hash":"h","amount":"-1","confirmations":1,"threshold":2,"created_at":"t",'
    '"asset_id":"a","destination":"x","tag":""}',
    '{"transaction_hash":"h","amount":"1","confirmations":1,"threshold":2,"created_at":"t",'
    '"asset_id":"a","destination":"x","tag":""}',
    '{"deposit_id":"d","transaction_hash":"h","amount":"1","confirmations":"many","threshold":2,"created_at":"t",'
    '"asset_id":"a","destination":"x","tag":""}',
    '{"deposit_id":"d","transaction_hash":"h","amount":"1","confirmations":1.5,"threshold":2,"created_at":"t",'
    '"asset_id":"a","destination":"x","tag":""}',
    '"a string"',
])
def test_malformed_pending_deposit_replies_raise_bad_response(world, client, item):
    world.fake.inject("/safe/deposits", status=200, body='{"data":[' + item + ']}')
    with pytest.raises(MixinBadResponse):
        client.pending_deposits()
    world.fake.inject("/safe/deposits", status=200, body='{"data":{"deposits":[]}}')
    with pytest.raises(MixinBadResponse):
        client.pending_deposits()
    assert client.pending_deposits() == []  # faults used up: the real reply parses


def test_a_restarted_fake_resumes_pending_deposits(world, client):
    fake, bot = world.fake, world.bot_id
    entry = client.primary_deposit_entry(ETH_CHAIN)
    fake.external_deposit(bot, USDT_ERC20, "3", destination=entry.destination, deposit_hash=HASH, delay=0.3)
    fake.stop()
    [record] = fake.pending_deposits(bot)
    assert record.timer is None and record.state == "pending"
    fake.start()
    wait_until(lambda: not fake.pending_deposits(bot), timeout=5, message="confirmed after the restart")
    assert fake.balance(bot, USDT_ERC20) == Decimal("3") and fake.deposit_errors == []

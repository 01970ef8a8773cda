"""Matching exchange deposits to Mixin withdrawals (pure)."""
from decimal import Decimal

from domain.deposits import DepositRecord, match_deposit, normalize_hash

D = Decimal


def rec(i, txid=None, address="addr", tag="", amount="1.5", status="ok"):
    return DepositRecord(str(i), txid, address, tag, D(amount), status)


def test_matches_by_transaction_hash_case_and_prefix_insensitive():
    deposits = [rec(1, "0xABC"), rec(2, "def")]
    m = match_deposit(deposits, withdrawal_hash="abc", address="other", tag=None, amount=D("9"), claimed=frozenset())
    assert (m.deposit.deposit_id, m.how) == ("1", "txid")


def test_hash_match_ignores_deposits_claimed_by_other_orders():
    m = match_deposit([rec(1, "abc")], withdrawal_hash="abc", address="addr", tag="", amount=D("1.5"),
                      claimed=frozenset({"1"}))
    assert m.deposit is None


def test_falls_back_to_address_tag_amount_only_when_unambiguous():
    deposits = [rec(1, None, tag="7"), rec(2, None, tag="8")]
    m = match_deposit(deposits, withdrawal_hash=None, address="addr", tag="8", amount=D("1.5"), claimed=frozenset())
    assert (m.deposit.deposit_id, m.how) == ("2", "address+amount")
    twins = [rec(1, None), rec(2, None)]
    m = match_deposit(twins, withdrawal_hash=None, address="addr", tag="", amount=D("1.5"), claimed=frozenset())
    assert m.deposit is None and "ambiguous" in m.how


def test_a_deposit_with_another_hash_is_not_taken_by_address():
    m = match_deposit([rec(1, "zzz")], withdrawal_hash="abc", address="addr", tag="", amount=D("1.5"),
                      claimed=frozenset())
    assert m.deposit is None


def test_failed_and_wrong_amount_deposits_never_match():
    deposits = [rec(1, "abc", status="failed"), rec(2, None, amount="1.4")]
    m = match_deposit(deposits, withdrawal_hash="abc", address="addr", tag="", amount=D("1.5"), claimed=frozenset())
    assert m.deposit is None


def test_pending_deposit_is_matched_but_reported_pending():
    m = match_deposit([rec(1, "abc", status="pending")], withdrawal_hash="abc", address="a", tag="", amount=D("1"),
                      claimed=frozenset())
    assert m.deposit.status == "pending"


def test_normalize_hash():
    assert normalize_hash(" 0xAbC ") == "abc" and normalize_hash(None) == ""

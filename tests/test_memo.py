"""Worked examples for domain/memo.py: Mr.Market's market-making memo codec.

Vectors come from mrmarket-flow.md §1.4 / §1.5; checksums and byte layouts are
re-derived here with hashlib so the tests do not lean on the code under test.
"""
from __future__ import annotations

import hashlib
import json
import random
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from domain.memo import (
    ACTION_CREATE,
    ACTION_DEPOSIT,
    ALPHABET,
    MarketMakingMemo,
    MemoError,
    b58decode,
    b58encode,
    decode_any,
    decode_market_making,
    decode_snapshot_memo,
    decoded_memo,
    encode_market_making,
    memo_text_to_hex,
    snapshot_memo_to_text,
)

ROOT = Path(__file__).resolve().parent.parent

# --- reference vector (mrmarket-flow.md §1.4) -------------------------------------------------
REF_PAIR = "0776b00f-95c0-46f9-85e4-7b8e7ca51e94"
REF_ORDER = "b0177350-ae29-43ec-a26e-d46f821e416e"
REF_RAW_HEX = "010101" "0776b00f95c046f985e47b8e7ca51e94" "b0177350ae2943eca26ed46f821e416e" "4592ef40"
REF_B58 = "f243yJSNnb9QQ7azcKFd5tzKQS8xX62VVYkk8KWwDAAkuFVXBwvw"
REF_HEX = ("66323433794a534e6e6239515137617a634b466435747a4b515338785836325656596b6b384b"
           "57774441416b7546565842777677")

# --- vectors that must be refused (§1.5) --------------------------------------------------------
SIMPLY_GROW_1 = "5JkNjkChhHjzsFr6cm4yAbJPUGVDST6tk9Cxdapvvq9kFgBmJuQVoahd8v"
SIMPLY_GROW_2 = "5JkQ2HgrejnStAJyD1UyH3p5t2EfNH4yqvkqP54Bf4ZxFt9QhB7JGVSo8f"
G1_MARKET_MAKING = "3MeYVTmBgmvTWQr8q9LKscJs1zr8qeG3vkFPk17hqueCyUesJDBPRTyBoh4frse7DKSrisBYfci34bjm"
G1_ARBITRAGE = "3NB9J7yT6msdnWVto4W5LxRyQndoLfzwA8TJcuBtKcTWLqG5n8S3pUBBiVjVLR9PekLU8sRo6h7MFgy3"


def checksum(payload: bytes) -> bytes:
    """Independent re-derivation: first 4 bytes of SHA256(SHA256(payload))."""
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def memo_from_payload(payload: bytes) -> str:
    """Base58 text of payload + its (correct) checksum."""
    return b58encode(payload + checksum(payload))


def mm_payload(version=1, trading_type=1, action=1, pair=REF_PAIR, order=REF_ORDER) -> bytes:
    return bytes([version, trading_type, action]) + uuid.UUID(pair).bytes + uuid.UUID(order).bytes


def code_of(fn, *args) -> str:
    with pytest.raises(MemoError) as info:
        fn(*args)
    return info.value.code


# ================================ reference vector ================================


def test_reference_vector_encodes_to_the_published_base58():
    assert encode_market_making(REF_PAIR, REF_ORDER) == REF_B58


def test_reference_vector_raw_bytes_and_checksum_match_the_reference():
    raw = bytes.fromhex(REF_RAW_HEX)
    assert len(raw) == 39
    assert checksum(raw[:35]) == bytes.fromhex("4592ef40")
    assert b58decode(REF_B58) == raw
    assert b58encode(raw) == REF_B58


def test_reference_vector_hex_form_is_the_snapshot_memo():
    assert memo_text_to_hex(REF_B58) == REF_HEX
    assert snapshot_memo_to_text(REF_HEX) == REF_B58
    assert snapshot_memo_to_text(REF_HEX.upper()) == REF_B58


def test_reference_vector_decodes_to_pair_then_order():
    memo = decode_market_making(REF_B58)
    assert memo == MarketMakingMemo(version=1, trading_type=1, action=ACTION_CREATE,
                                    pair_id=REF_PAIR, order_id=REF_ORDER)
    assert memo.as_dict() == {"version": 1, "trading_type": 1, "action": 1, "action_name": "create",
                              "pair_id": REF_PAIR, "order_id": REF_ORDER}


def test_decoded_memo_is_decode_snapshot_memo_with_none_for_a_bad_memo():
    assert decoded_memo(REF_HEX) == decode_snapshot_memo(REF_HEX) == decode_market_making(REF_B58)
    for bad in ("", "zz", memo_text_to_hex("not a memo"), REF_HEX[:-2]):
        assert decoded_memo(bad) is None
        with pytest.raises(MemoError):
            decode_snapshot_memo(bad)


def test_decode_any_accepts_base58_hex_and_uppercase_hex():
    expected = decode_market_making(REF_B58)
    assert decode_any(REF_B58) == expected
    assert decode_any(REF_HEX) == expected
    assert decode_any(REF_HEX.upper()) == expected
    assert decode_any(f"  {REF_HEX}\n") == expected


def test_decode_strips_surrounding_whitespace():
    assert decode_market_making(f" {REF_B58}\n").order_id == REF_ORDER


def test_uppercase_uuid_input_decodes_to_lowercase_canonical_form():
    memo = decode_market_making(encode_market_making(REF_PAIR.upper(), REF_ORDER.upper()))
    assert (memo.pair_id, memo.order_id) == (REF_PAIR, REF_ORDER)
    assert encode_market_making(REF_PAIR.upper(), REF_ORDER.upper()) == REF_B58


def test_deposit_action_round_trips():
    text = encode_market_making(REF_PAIR, REF_ORDER, action=ACTION_DEPOSIT)
    assert b58decode(text)[:3] == b"\x01\x01\x02"
    assert decode_market_making(text).action == 2


# ================================ round trips ================================


def test_round_trip_random_uuids():
    rng = random.Random(20240601)
    for _ in range(300):
        pair = str(uuid.UUID(int=rng.getrandbits(128)))
        order = str(uuid.UUID(int=rng.getrandbits(128)))
        action = rng.choice((ACTION_CREATE, ACTION_DEPOSIT))
        text = encode_market_making(pair, order, action=action)
        assert set(text) <= set(ALPHABET)
        # independent packing: the base58 payload is exactly our hand-built bytes
        assert b58decode(text) == mm_payload(action=action, pair=pair, order=order) + checksum(
            mm_payload(action=action, pair=pair, order=order))
        memo = decode_market_making(text)
        assert (memo.pair_id, memo.order_id, memo.action) == (pair, order, action)
        assert decode_any(memo_text_to_hex(text)) == memo


def test_round_trip_extreme_uuids_all_zero_and_all_ff():
    zero = "00000000-0000-0000-0000-000000000000"
    ones = "ffffffff-ffff-ffff-ffff-ffffffffffff"
    for pair, order in ((zero, zero), (ones, ones), (zero, ones), (ones, zero)):
        memo = decode_market_making(encode_market_making(pair, order))
        assert (memo.pair_id, memo.order_id) == (pair, order)


def test_base58_leading_zero_bytes_become_ones_and_come_back():
    assert b58encode(b"\x00") == "1"
    assert b58encode(b"\x00\x00\x00") == "111"
    assert b58decode("111") == b"\x00\x00\x00"
    assert b58encode(b"\x00\x00\x01") == "112"
    assert b58decode("112") == b"\x00\x00\x01"
    assert b58encode(b"\x00\x39") == "1z"          # 57 -> last alphabet letter
    assert b58encode(b"\x3a") == "21"              # 58 -> "10" in base58 digits
    assert b58encode(b"") == ""


def test_base58_round_trip_random_bytes_with_leading_zeros():
    rng = random.Random(7)
    for _ in range(300):
        zeros = rng.randint(0, 5)
        body = bytes(rng.getrandbits(8) for _ in range(rng.randint(0 if zeros else 1, 45)))
        data = b"\x00" * zeros + body
        text = b58encode(data)
        leading = len(data) - len(data.lstrip(b"\x00"))
        assert text.startswith("1" * leading)
        assert not text[leading:].startswith("1")
        assert b58decode(text) == data


def test_base58_decodes_as_digit_by_digit_horner_reading():
    # the C-level sum of digit x place value reads every text as n = n * 58 + digit does, long ones too
    rng = random.Random(11)
    for length in (1, 2, 52, 53, 120):
        for _ in range(50):
            text = "".join(rng.choice(ALPHABET) for _ in range(length))
            n = 0
            for ch in text:
                n = n * 58 + ALPHABET.index(ch)
            body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
            assert b58decode(text) == b"\x00" * (len(text) - len(text.lstrip("1"))) + body


def test_decoded_ids_are_the_uuid_texts():
    memo = decode_market_making(encode_market_making(REF_PAIR.upper(), REF_ORDER.upper()))
    assert (memo.pair_id, memo.order_id) == (str(uuid.UUID(REF_PAIR)), str(uuid.UUID(REF_ORDER)))
    assert memo == MarketMakingMemo(1, 1, 1, str(uuid.UUID(REF_PAIR)), str(uuid.UUID(REF_ORDER)))
    assert hash(memo) == hash(MarketMakingMemo(1, 1, 1, str(uuid.UUID(REF_PAIR)), str(uuid.UUID(REF_ORDER))))


def test_leading_zero_payload_keeps_its_checksum_then_fails_on_version():
    """A version-0 memo starts with a zero byte; it must survive base58 (checksum OK) and be refused
    as bad_version, not as a checksum error."""
    text = encode_market_making(REF_PAIR, REF_ORDER, version=0)
    assert text.startswith("1")
    assert b58decode(text)[0] == 0
    assert code_of(decode_market_making, text) == "bad_version"


# ================================ every MemoError code ================================


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_memo(text):
    assert code_of(decode_market_making, text) == "empty"


def test_empty_snapshot_memo():
    assert code_of(snapshot_memo_to_text, "") == "empty"
    assert code_of(b58decode, "") == "empty"


@pytest.mark.parametrize("text", ["0", "O", "I", "l", "hello", REF_B58[:-1] + "0", REF_B58 + "+", "f2é3"])
def test_not_base58(text):
    assert code_of(decode_market_making, text) == "not_base58"


@pytest.mark.parametrize("memo_hex", ["zz", "abc", "6g", "hello"])
def test_not_hex(memo_hex):
    assert code_of(snapshot_memo_to_text, memo_hex) == "not_hex"


@pytest.mark.parametrize("memo_hex", ["ff", "c3", "80", "66ff"])
def test_not_utf8(memo_hex):
    assert code_of(snapshot_memo_to_text, memo_hex) == "not_utf8"


def test_bad_length_too_short_to_hold_header_and_checksum():
    for size in range(1, 7):
        text = b58encode(bytes(range(1, size + 1)))
        assert code_of(decode_market_making, text) == "bad_length"


def test_bad_length_header_only_with_valid_checksum():
    assert code_of(decode_market_making, memo_from_payload(b"\x01\x01\x01")) == "bad_length"


def test_bad_length_truncated_order_id_with_valid_checksum():
    assert code_of(decode_market_making, memo_from_payload(mm_payload()[:34])) == "bad_length"


def test_bad_length_trailing_bytes_with_valid_checksum():
    """Mr.Market ignored trailing bytes; mmflow refuses them (e.g. a G1-style reward address)."""
    with_address = mm_payload() + bytes(20)
    assert code_of(decode_market_making, memo_from_payload(with_address)) == "bad_length"
    assert code_of(decode_market_making, memo_from_payload(mm_payload() + b"\x00")) == "bad_length"


def test_bad_checksum_one_flipped_payload_bit():
    raw = bytearray(bytes.fromhex(REF_RAW_HEX))
    raw[20] ^= 0x01
    assert code_of(decode_market_making, b58encode(bytes(raw))) == "bad_checksum"


def test_bad_checksum_changed_last_character():
    assert code_of(decode_market_making, REF_B58[:-1] + "x") == "bad_checksum"


def test_bad_checksum_truncated_reference():
    assert code_of(decode_market_making, REF_B58[:-2]) == "bad_checksum"


@pytest.mark.parametrize("version", [0, 2, 255])
def test_bad_version(version):
    assert code_of(decode_market_making, memo_from_payload(mm_payload(version=version))) == "bad_version"
    assert code_of(decode_market_making, encode_market_making(REF_PAIR, REF_ORDER, version=version)) \
        == "bad_version"


@pytest.mark.parametrize("trading_type,name", [(0, "spot"), (2, "simply grow"), (3, "G1 market making"),
                                               (4, "G1 arbitrage")])
def test_bad_trading_type(trading_type, name):
    text = memo_from_payload(mm_payload(trading_type=trading_type))
    with pytest.raises(MemoError) as info:
        decode_market_making(text)
    assert info.value.code == "bad_trading_type"
    assert f"trading type {trading_type}" in str(info.value)


def test_simply_grow_create_layout_is_not_market_making():
    """G2/G3 Simply Grow create: ver | 2 | action | orderId (19 bytes)."""
    payload = bytes([1, 2, 1]) + uuid.UUID(REF_ORDER).bytes
    assert code_of(decode_market_making, memo_from_payload(payload)) == "bad_trading_type"


@pytest.mark.parametrize("text", [SIMPLY_GROW_1, SIMPLY_GROW_2])
def test_reference_simply_grow_vectors_are_refused_as_not_market_making(text):
    raw = b58decode(text)
    assert raw[:3] == b"\x01\x02\x01"
    assert checksum(raw[:-4]) == raw[-4:]        # genuine memos, valid checksum
    assert code_of(decode_market_making, text) == "bad_trading_type"
    assert code_of(decode_any, text) == "bad_trading_type"


def test_reference_simply_grow_vector_bytes():
    assert b58decode(SIMPLY_GROW_1).hex() == (
        "010201" "b0177350ae2943eca26ed46f821e416e" "7dfa0e4456cb794d1f46cc8e0e5882dc3ad6d6d3" "c947e16b")


@pytest.mark.parametrize("text,trading_type", [(G1_MARKET_MAKING, 3), (G1_ARBITRAGE, 4)])
def test_g1_legacy_vectors_are_refused_with_bad_trading_type(text, trading_type):
    raw = b58decode(text)
    assert len(raw) == 59                          # 35 + 20-byte reward address + 4
    assert raw[1] == trading_type
    assert checksum(raw[:-4]) == raw[-4:]
    with pytest.raises(MemoError) as info:
        decode_market_making(text)
    assert info.value.code == "bad_trading_type"
    assert "not market making" in str(info.value)


@pytest.mark.parametrize("suffix", ["sRo6h", "sRo6h7M"])
def test_g1_invalid_checksum_strings_from_the_specs(suffix):
    """The specs' "invalid checksum" strings are truncations of the G1 arbitrage memo."""
    text = G1_ARBITRAGE[:G1_ARBITRAGE.index("sRo6h")] + suffix
    assert G1_ARBITRAGE.startswith(text) and text != G1_ARBITRAGE
    assert code_of(decode_market_making, text) == "bad_checksum"


@pytest.mark.parametrize("action", [0, 4, 255])
def test_bad_action(action):
    assert code_of(decode_market_making, memo_from_payload(mm_payload(action=action))) == "bad_action"
    assert code_of(decode_market_making, encode_market_making(REF_PAIR, REF_ORDER, action=action)) \
        == "bad_action"


def test_memo_error_is_a_value_error_with_code_and_message():
    with pytest.raises(ValueError) as info:
        decode_market_making("0")
    assert isinstance(info.value, MemoError)
    assert info.value.code == "not_base58"
    assert str(info.value) == "character '0' is not in the base58 alphabet"


def test_encode_refuses_a_non_uuid():
    with pytest.raises(ValueError):
        encode_market_making("not-a-uuid", REF_ORDER)


def test_decode_any_reports_the_checksum_error_of_a_bad_base58_memo():
    assert code_of(decode_any, REF_B58[:-1] + "x") == "bad_checksum"
    assert code_of(decode_any, "hello") == "not_base58"
    assert code_of(decode_any, "") == "empty"


def test_decode_any_hex_form_reports_the_real_error():
    bad_action = encode_market_making(REF_PAIR, REF_ORDER, action=4)
    assert code_of(decode_market_making, bad_action) == "bad_action"
    assert code_of(decode_any, memo_text_to_hex(bad_action)) == "bad_action"


# ================================ CLI ================================


CLI_CALLS = {
    "encode": ("encode", "--pair", REF_PAIR, "--order", REF_ORDER),
    "decode_hex": ("decode", REF_HEX),
    "decode_bad": ("decode", REF_B58[:-1] + "x"),
    "encode_exit": ("encode", "--pair", REF_PAIR, "--order", REF_ORDER, "--action", "exit"),
    "encode_3": ("encode", "--pair", REF_PAIR, "--order", REF_ORDER, "--action", "3"),
    "encode_bad_action": ("encode", "--pair", REF_PAIR, "--order", REF_ORDER, "--action", "withdraw"),
}


@pytest.fixture(scope="module")
def cli():
    """Run every CLI invocation once, all at the same time (keeps the suite fast)."""
    procs = {name: subprocess.Popen([sys.executable, "run.py", "memo", *args], cwd=ROOT, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in CLI_CALLS.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


def test_cli_encode_prints_base58_then_hex(cli):
    result = cli["encode"]
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [REF_B58, REF_HEX]


def test_cli_decode_hex_prints_json(cli):
    """The hex (snapshot) form goes through decode_any; the base58 form is covered in-process above."""
    result = cli["decode_hex"]
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"version": 1, "trading_type": 1, "action": 1, "action_name": "create",
                                         "pair_id": REF_PAIR, "order_id": REF_ORDER}


def test_cli_decode_malformed_exits_2_with_reason_on_stderr(cli):
    result = cli["decode_bad"]
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot decode memo (bad_checksum)")


def test_cli_encode_exit_by_name_or_number_and_decode_shows_it(cli):
    for name in ("encode_exit", "encode_3"):
        result = cli[name]
        assert result.returncode == 0, result.stderr
        text = result.stdout.splitlines()[0]
        memo = decode_market_making(text)
        assert memo.action == 3 and memo.action_name == "exit"
    assert cli["encode_exit"].stdout == cli["encode_3"].stdout


def test_cli_encode_unknown_action_is_one_line_exit_2(cli):
    result = cli["encode_bad_action"]
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert "withdraw" in result.stderr and "exit (3)" in result.stderr


@pytest.mark.parametrize("value, code", [("create", 1), ("deposit", 2), ("exit", 3), ("EXIT", 3), ("3", 3), (2, 2)])
def test_parse_action(value, code):
    from domain.memo import parse_action
    assert parse_action(value) == code


@pytest.mark.parametrize("value", ["", "4", "0", "stop", "-1"])
def test_parse_action_refuses(value):
    from domain.memo import parse_action
    with pytest.raises(ValueError):
        parse_action(value)


def test_memo_action_of_a_snapshot_memo():
    from domain.memo import memo_action
    assert memo_action(memo_text_to_hex(encode_market_making(REF_PAIR, REF_ORDER, action=3))) == 3
    assert memo_action(memo_text_to_hex("hello")) is None
    assert memo_action("") is None

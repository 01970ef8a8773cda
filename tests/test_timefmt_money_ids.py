"""RFC3339Nano timestamps (domain/timefmt.py), amounts (domain/money.py), deterministic ids (domain/ids.py)."""
from __future__ import annotations

import calendar
import hashlib
import random
import re
import uuid
from decimal import Decimal as D

import pytest

from domain.ids import refund_request_id, unique_object_id
from domain.money import MIXIN_STEP, ZERO, BadAmount, floor8, fmt, to_decimal
from domain.timefmt import BadTimestamp, format_ns, parse_ns

NS = 1_000_000_000
# 2024-05-06T07:08:09Z, derived independently of the code under test
BASE_S = calendar.timegm((2024, 5, 6, 7, 8, 9))
assert BASE_S == 1714979289


# ================================ parse_ns ================================


@pytest.mark.parametrize("text,expected", [
    ("2024-05-06T07:08:09Z", BASE_S * NS),
    ("2024-05-06T07:08:09z", BASE_S * NS),
    ("2024-05-06t07:08:09Z", BASE_S * NS),
    ("2024-05-06T07:08:09.5Z", BASE_S * NS + 500_000_000),
    ("2024-05-06T07:08:09.12Z", BASE_S * NS + 120_000_000),
    ("2024-05-06T07:08:09.123Z", BASE_S * NS + 123_000_000),
    ("2024-05-06T07:08:09.1234Z", BASE_S * NS + 123_400_000),
    ("2024-05-06T07:08:09.123456Z", BASE_S * NS + 123_456_000),
    ("2024-05-06T07:08:09.1234567Z", BASE_S * NS + 123_456_700),
    ("2024-05-06T07:08:09.123456789Z", BASE_S * NS + 123_456_789),
    ("2024-05-06T07:08:09.000000001Z", BASE_S * NS + 1),
    ("2024-05-06T07:08:09.000000000Z", BASE_S * NS),
    ("2024-05-06T15:08:09+08:00", BASE_S * NS),
    ("2024-05-06T01:38:09.25-05:30", BASE_S * NS + 250_000_000),
    ("2024-05-06T07:08:09+00:00", BASE_S * NS),
    ("2024-05-06T07:08:09-00:00", BASE_S * NS),
    ("2024-05-07T00:08:09+17:00", BASE_S * NS),
    ("1970-01-01T00:00:00Z", 0),
    ("1970-01-01T00:00:00.000000001Z", 1),
    ("1969-12-31T23:59:59.999999999Z", -1),
    ("2000-02-29T00:00:00Z", 951782400 * NS),
])
def test_parse_ns(text, expected):
    assert parse_ns(text) == expected


@pytest.mark.parametrize("text", [
    "", None, "2024-05-06", "2024-05-06T07:08:09", "2024-05-06 07:08:09Z", "2024-05-06T07:08Z",
    "2024-05-06T07:08:09.Z", "2024-05-06T07:08:09.1234567890Z", "2024-5-6T07:08:09Z",
    "2024-05-06T07:08:09+0800", "2024-05-06T07:08:09+08", "2024-05-06T07:08:09UTC", " 2024-05-06T07:08:09Z",
    "1714979289",
])
def test_parse_ns_refuses_non_rfc3339(text):
    with pytest.raises(BadTimestamp, match="not an RFC3339 timestamp"):
        parse_ns(text)


@pytest.mark.parametrize("text", ["2024-13-01T00:00:00Z", "2024-00-10T00:00:00Z", "2024-01-32T00:00:00Z",
                                  "2023-02-29T00:00:00Z", "2024-01-01T25:00:00Z", "2024-01-01T00:61:00Z"])
def test_parse_ns_refuses_out_of_range_fields(text):
    with pytest.raises(BadTimestamp):
        parse_ns(text)


@pytest.mark.parametrize("text", [
    "2024-05-06T07:08:09.12345678xZ", "2024-05-06T07:08:09.-12345678Z", "2024-05-06T07:08:09.\u0661\u0662345678Z",
    "2024-05-06X07:08:09.123456789Z", "2024-05-06T07:08:9.1234567890Z", "2024-05-06T07:08:09 123456789Z",
    "2023-02-29T00:00:00.000000000Z", "2024-01-01T25:00:00.000000000Z", "2024-1-01T00:00:00.0000000000Z",
])
def test_the_full_nanosecond_shape_is_checked_like_any_other(text):
    """Mixin's own shape (30 characters, nine digits, Z) takes a shorter road: it refuses what the regex does."""
    with pytest.raises(BadTimestamp):
        parse_ns(text)


def test_the_full_nanosecond_shape_reads_like_the_general_one():
    for ns in (0, 1, 999_999_999, 1_714_979_289_123_456_789, 4_102_444_799_999_999_999):
        text = format_ns(ns)
        assert len(text) == 30 and parse_ns(text) == ns
        assert parse_ns(text.replace("Z", "+00:00")) == ns  # the general road, same instant


def test_ordering_is_numeric_where_string_comparison_is_wrong():
    # Mixin drops trailing zeros of the fraction; string comparison then misorders instants.
    pairs = [
        ("2024-05-06T07:08:09Z", "2024-05-06T07:08:09.5Z"),          # 'Z' > '.' as text
        ("2024-05-06T07:08:09.1Z", "2024-05-06T07:08:09.123Z"),      # 'Z' > '2' as text
        ("2024-05-06T07:08:09.9Z", "2024-05-06T07:08:09.95Z"),
    ]
    for earlier, later in pairs:
        assert earlier > later                      # the string comparison gets it wrong...
        assert parse_ns(earlier) < parse_ns(later)  # ...integer nanoseconds do not


def test_half_second_is_after_123_milliseconds():
    assert parse_ns("2024-05-06T07:08:09.5Z") - parse_ns("2024-05-06T07:08:09.123Z") == 377_000_000
    assert parse_ns("2024-05-06T07:08:10Z") - parse_ns("2024-05-06T07:08:09.999999999Z") == 1


def test_offset_instant_orders_by_time_not_by_text():
    assert parse_ns("2024-05-06T08:00:00+02:00") < parse_ns("2024-05-06T07:00:00Z")


# ================================ format_ns ================================


@pytest.mark.parametrize("ns,text", [
    (0, "1970-01-01T00:00:00.000000000Z"),
    (1, "1970-01-01T00:00:00.000000001Z"),
    (-1, "1969-12-31T23:59:59.999999999Z"),
    (BASE_S * NS + 500_000_000, "2024-05-06T07:08:09.500000000Z"),
    (BASE_S * NS + 123_456_789, "2024-05-06T07:08:09.123456789Z"),
])
def test_format_ns(ns, text):
    assert format_ns(ns) == text


def test_format_parse_round_trip():
    rng = random.Random(99)
    for _ in range(500):
        ns = rng.randint(0, 4_102_444_800 * NS)  # up to 2100
        text = format_ns(ns)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z", text)
        assert parse_ns(text) == ns


def test_parse_format_normalises_offsets_and_short_fractions():
    assert format_ns(parse_ns("2024-05-06T15:08:09.5+08:00")) == "2024-05-06T07:08:09.500000000Z"


def test_formatted_strings_sort_like_their_instants():
    rng = random.Random(5)
    values = [rng.randint(0, 2_000_000_000 * NS) for _ in range(200)]
    assert sorted(values, key=format_ns) == sorted(values)


# ================================ money ================================


@pytest.mark.parametrize("value,expected", [
    ("1.5", D("1.5")), (" 0.00000001 ", D("0.00000001")), (7, D(7)), ("-2", D(-2)), (D("3.25"), D("3.25")),
    ("1e-8", D("0.00000001")), ("0", ZERO),
])
def test_to_decimal_accepts(value, expected):
    result = to_decimal(value)
    assert isinstance(result, D)
    assert result == expected


@pytest.mark.parametrize("value,fragment", [
    (0.1, "0.1 is a float"),
    (1.0, "1.0 is a float"),
    (True, "True is a bool"),
    (False, "False is a bool"),
    ("NaN", "is not finite"),
    ("nan", "is not finite"),
    ("sNaN", "is not finite"),
    (D("NaN"), "is not finite"),
    ("Infinity", "is not finite"),
    ("-inf", "is not finite"),
    ("", "is not a decimal number"),
    ("1,5", "is not a decimal number"),
    ("abc", "is not a decimal number"),
    (None, "is not a decimal number"),
    ([1], "is not a decimal number"),
])
def test_to_decimal_refuses(value, fragment):
    with pytest.raises(BadAmount) as info:
        to_decimal(value, field="payments.fee")
    assert str(info.value).startswith("payments.fee: ")
    assert fragment in str(info.value)


def test_bad_amount_is_a_value_error():
    assert issubclass(BadAmount, ValueError)


@pytest.mark.parametrize("value,expected", [
    ("1.123456789", "1.12345678"),
    ("1.999999999999", "1.99999999"),
    ("0.000000009", "0E-8"),
    ("5", "5.00000000"),
    ("0.1", "0.10000000"),
    ("-1.123456789", "-1.12345678"),
])
def test_floor8(value, expected):
    result = floor8(D(value))
    assert str(result) == expected
    assert result.as_tuple().exponent == -8


def test_floor8_never_rounds_up():
    rng = random.Random(3)
    for _ in range(500):
        value = D(rng.randint(0, 10 ** 20)) / D(10) ** rng.randint(0, 14)
        floored = floor8(value)
        assert floored <= value < floored + MIXIN_STEP


@pytest.mark.parametrize("value,text", [
    (D("1.50000000"), "1.5"), (D("100"), "100"), (D("1E+2"), "100"), (D("0E-8"), "0"), (D("-0"), "0"),
    (D("-0.00"), "0"), (D("0.00000001"), "0.00000001"), (D("1e-8"), "0.00000001"), (D("-2.50"), "-2.5"),
    (D("50050.00000000"), "50050"), (D("123456789.12345678"), "123456789.12345678"),
])
def test_fmt(value, text):
    assert fmt(value) == text


def test_mixin_step():
    assert MIXIN_STEP == D("0.00000001")


# ================================ ids ================================


def uoid_by_hand(*parts: str) -> str:
    """Mixin's UniqueObjectId derived directly: md5 of the concatenation, version nibble 3, variant 10."""
    digest = bytearray(hashlib.md5("".join(parts).encode("utf-8")).digest())
    digest[6] = (digest[6] & 0x0F) | 0x30
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


def test_unique_object_id_known_value():
    # md5("ab") = 187ef443 6122 d1cc 2f40 dc2b92f0eba0
    #   byte 6: 0xd1 -> 0x31 (version 3); byte 8: 0x2f -> 0xaf (variant 10)
    assert hashlib.md5(b"ab").hexdigest() == "187ef4436122d1cc2f40dc2b92f0eba0"
    assert unique_object_id("a", "b") == "187ef443-6122-31cc-af40-dc2b92f0eba0"
    assert uoid_by_hand("a", "b") == "187ef443-6122-31cc-af40-dc2b92f0eba0"


def test_unique_object_id_matches_hand_derivation():
    rng = random.Random(11)
    for _ in range(200):
        parts = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(rng.randint(1, 4))]
        value = unique_object_id(*parts)
        assert value == uoid_by_hand(*parts)
        parsed = uuid.UUID(value)
        assert parsed.version == 3
        assert parsed.variant == uuid.RFC_4122
        assert value[14] == "3" and value[19] in "89ab"


def test_unique_object_id_non_ascii_is_utf8():
    assert unique_object_id("é") == uoid_by_hand("é")
    assert unique_object_id("é") != unique_object_id("e")


def test_unique_object_id_is_deterministic_and_concatenative():
    assert unique_object_id("x", "y") == unique_object_id("x", "y")
    assert unique_object_id("ab", "c") == unique_object_id("a", "bc") == unique_object_id("abc")
    assert unique_object_id("x", "y") != unique_object_id("y", "x")


def test_refund_request_id_is_stable():
    snap = "a1f4e4a0-7c8e-4a5e-9d3c-0f8c5b0f4c11"
    assert refund_request_id(snap) == uoid_by_hand("mmflow:refund:" + snap)
    assert refund_request_id(snap) == "d6865bae-6ecd-3d79-8ebf-5aa271e2313c"
    assert refund_request_id(snap) == refund_request_id(snap)


def test_refund_request_id_is_distinct_per_snapshot_and_not_the_snapshot_id():
    rng = random.Random(17)
    snaps = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(1000)]
    ids = {refund_request_id(s) for s in snaps}
    assert len(ids) == 1000
    assert ids.isdisjoint(snaps)
    assert all(uuid.UUID(i).version == 3 for i in ids)

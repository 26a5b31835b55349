"""The PII guard: checksums, recognizers, look-alikes, overlaps, streaming, caps, targets."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ombud.guards import _checksums as checks
from ombud.guards._recognizers import RECOGNIZERS, SCAN_REACH, PiiFinding, resolve
from ombud.guards.pii import (
    MAX_HOLD_BACK,
    PiiRedactor,
    StreamRedactor,
    cap_items,
    cap_text,
    detect,
    redact,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("check", "valid", "invalid"),
    [
        (checks.luhn_valid, "4111111111111111", "4111111111111112"),
        (checks.card_valid, "378282246310005", "378282246310006"),
        (checks.card_valid, "5555555555554444", "9555555555554444"),  # 9x: no issuer
        (checks.iban_valid, "GB82WEST12345698765432", "GB82WEST12345698765433"),
        (checks.iban_valid, "DE89370400440532013000", "DE8937040044053201300"),  # length
        (checks.verhoeff_valid, "2363", "2364"),
        (checks.aadhaar_valid, "234123412346", "134123412346"),  # may not start with 1
        (checks.bsn_valid, "111222333", "111222334"),
        (checks.ssn_valid, "123456789", "666456789"),
        (checks.ssn_valid, "123456789", "123006789"),
        (checks.nino_valid, "AB123456C", "QQ123456C"),
        (checks.nino_valid, "AB123456C", "AB123456E"),
        (checks.steuer_id_valid, "86095742719", "86095742718"),
        (checks.steuer_id_valid, "47036892816", "12345678903"),  # no repeated digit
        (checks.nir_valid, "255081416802538", "255081416802539"),
        (checks.nir_valid, "185057800608491", "185057800608492"),
        (checks.dni_valid, "12345678Z", "12345678A"),
        (checks.dni_valid, "X1234567L", "X1234567A"),
        (checks.codice_fiscale_valid, "RSSMRA85T10A562S", "RSSMRA85T10A562T"),
    ],
)
def test_checksums(check: object, valid: str, invalid: str) -> None:
    assert callable(check)
    assert check(valid)
    assert not check(invalid)


def test_nir_key_for_corsica() -> None:
    # Departments 2A and 2B count as 19 and 18 in the key.
    assert checks.nir_valid("185052A00608435")
    assert checks.nir_valid("185052B00608462")
    assert not checks.nir_valid("185052A00608462")


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("write to jane.doe+news@mail.example.co.uk today", "EMAIL"),
        ("card 4111 1111 1111 1111 please", "CARD"),
        ("amex 3782-822463-10005", "CARD"),
        ("IBAN GB82 WEST 1234 5698 7654 32.", "IBAN"),
        ("IBAN: FR1420041010050500013M02606", "IBAN"),
        ("call +1 (415) 555-2671 now", "PHONE"),
        ("ring 020 7946 0958", "PHONE"),
        ("Telefon 030 12345678", "PHONE"),
        ("appelez le 01 23 45 67 89", "PHONE"),
        ("llámame al 612 345 678", "PHONE"),
        ("chiamami al 333 123 4567", "PHONE"),
        ("bel 06-12345678", "PHONE"),
        ("mobile 98765 43210", "PHONE"),
        ("from 203.0.113.42 at noon", "IP"),
        ("from 2001:db8::8a2e:370:7334 at noon", "IP"),
        ("SSN 123-45-6789", "SSN"),
        ("NI number AB 12 34 56 C", "NINO"),
        ("Steuer-ID 86 095 742 719", "DE_TAX_ID"),
        ("NIR 2 55 08 14 168 025 38", "FR_NIR"),
        ("DNI 12345678-Z", "ES_DNI"),
        ("codice fiscale RSSMRA85T10A562S", "IT_FISCAL_CODE"),
        ("BSN 111222333", "NL_BSN"),
        ("Aadhaar 2341 2341 2346", "IN_AADHAAR"),
    ],
)
def test_each_recognizer(text: str, category: str) -> None:
    findings = detect(text)
    assert [f.category for f in findings] == [category]
    assert redact(text).count(f"[{category}]") == 1


@pytest.mark.parametrize(
    "text",
    [
        "Invoice INV-2023-004512 is due on 2023-04-15.",
        "Order 4107774145 shipped on 15.03.2024; tracking 1Z999AA10123456784.",
        "USPS 9400 1000 0000 0000 0000 00 arrives Monday.",
        "The total was $1,234,567.89, or 1.234.567,89 € or 1 234 567,89 €.",
        "Upgrade to version 10.0.19045.2965 or v2.14.3; firmware 4.2.1.0 is fine.",
        "Build failed at 2023-04-15 10:30:45 (unix 1681554645).",
        "The test card 4111 1111 1111 1112 fails Luhn.",
        "ISBN 978-3-16-148410-0 and ISBN 0-306-40615-2.",
        "EAN 4006381333931 at the till.",
        "Request 123e4567-e89b-12d3-a456-426614174000 timed out at 10:42:07.",
        "MAC 00:1A:2B:3C:4D:5E rebooted.",
        "Call me after 15:30 on 04/15/2023, room 1204.",
        "The IBAN GB83WEST12345698765432 has a wrong check digit.",
        "Population 2,500,000 in 2023; coordinates 52.5200, 13.4050.",
        "Call about order 4155550123 tomorrow.",
    ],
)
def test_lookalikes_are_not_redacted(text: str) -> None:
    assert redact(text) == text


def test_context_word_decides_weak_numbers() -> None:
    assert redact("my SSN is 123456789") == "my SSN is [SSN]"
    assert redact("my BSN is 111222333") == "my BSN is [NL_BSN]"
    assert redact("reference 123456789") == "reference 123456789"
    assert redact("SSN 123-45-6789 and BSN 111222333") == "SSN [SSN] and BSN [NL_BSN]"


def test_overlaps_keep_the_best_finding() -> None:
    low = PiiFinding("PHONE", 0, 10, 0.6)
    high = PiiFinding("NL_BSN", 2, 11, 0.8)
    longer = PiiFinding("CARD", 20, 40, 0.8)
    inner = PiiFinding("PHONE", 22, 30, 0.8)
    assert resolve([low, high, longer, inner]) == [high, longer]


def test_finding_never_shows_the_value() -> None:
    text = "mail jane.doe@example.com"
    (finding,) = detect(text)
    assert "jane" not in repr(finding)
    assert (finding.start, finding.end) == (5, len(text))


def test_redactor_categories_and_blocked() -> None:
    text = "card 4111 1111 1111 1111, mail a.b@example.com"
    only_email = PiiRedactor(categories={"EMAIL"})
    assert only_email.redact(text) == "card 4111 1111 1111 1111, mail [EMAIL]"
    blocking = PiiRedactor(categories={"EMAIL"}, blocked={"CARD"})
    assert blocking.contains_blocked(text)
    assert not blocking.contains_blocked("mail a.b@example.com")
    assert blocking.redact(text) == "card [CARD], mail [EMAIL]"
    assert not PiiRedactor().contains_blocked(text)
    with pytest.raises(ValueError, match="unknown PII categories"):
        PiiRedactor(categories={"NAME"})


def test_caps() -> None:
    assert cap_text("abcdef", 4) == ("abcd", True)
    assert cap_text("abc", 4) == ("abc", False)
    assert cap_items([[0.1, 0.2]] * 5, 2) == ([[0.1, 0.2]] * 2, True)
    assert cap_items((1, 2), 3) == ([1, 2], False)
    with pytest.raises(ValueError, match="negative"):
        cap_text("x", -1)
    with pytest.raises(ValueError, match="negative"):
        cap_items([1], -1)


@pytest.mark.parametrize(
    "text",
    [
        "7" * 102_400,
        "12 " * 34_133,
        "4111 " * 20_480,
        "a@" * 51_200,
        "1." * 51_200,
        ":" * 102_400,
        "+(" * 51_200,
        "AB12 " * 20_480,
        "DE89 3704 0044 0532 0130 00 " * 3_700,
    ],
)
def test_adversarial_input_is_fast(text: str) -> None:
    start = time.perf_counter()
    redact(text)
    assert time.perf_counter() - start < 2.0


def test_emails_stay_within_the_scan_reach() -> None:
    # Streaming relies on no match (plus look-ahead) reaching past SCAN_REACH from its start.
    too_long = "x" * 42 + "@" + "y" * 10 + ".com"
    assert detect(too_long) == []
    assert [f.category for f in detect(too_long[1:])] == ["EMAIL"]
    assert all(r.pattern.groups <= 1 for r in RECOGNIZERS)


# Text made of PII items, look-alikes and filler, so splits land inside items often.
_PIECES = st.sampled_from(
    [
        "jane.doe@example.com",
        "+44 20 7946 0958",
        "4111 1111 1111 1111",
        "DE89 3704 0044 0532 0130 00",
        "GB82WEST12345698765432",
        "203.0.113.42",
        "2001:db8::8a2e:370:7334",
        "SSN 123-45-6789",
        "AB 12 34 56 C",
        "RSSMRA85T10A562S",
        "BSN 111222333",
        "06 12 34 56 78",
        "2023-04-15 10:30",
        "v1.2.3",
        "INV-2023-0045",
        "$1,234.56",
        " ",
        ", ",
        ". ",
        "call ",
        "order ",
        "7",
        "12",
        "-",
        ":",
        "(",
        "@",
    ]
)
_TEXTS = st.lists(_PIECES | st.text(alphabet="0123456789 .-+:@()ABx", max_size=6), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=_TEXTS, cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12))
def test_streaming_equals_redact_for_any_split(pieces: list[str], cuts: list[int]) -> None:
    text = "".join(pieces)
    bounds = sorted({0, len(text), *(c % (len(text) + 1) for c in cuts)})
    stream = StreamRedactor()
    out = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        out.append(stream.feed(text[start:end]))
        assert stream.held_back <= MAX_HOLD_BACK
    out.append(stream.flush())
    assert "".join(out) == redact(text)


@settings(max_examples=50, deadline=None)
@given(pieces=_TEXTS)
def test_streaming_char_by_char(pieces: list[str]) -> None:
    text = "".join(pieces)
    stream = PiiRedactor().stream()
    out = "".join(stream.feed(char) for char in text) + stream.flush()
    assert out == redact(text)


def test_stream_holds_back_a_split_item() -> None:
    stream = StreamRedactor()
    first = stream.feed("Please refund " + "to my account without delay, " * 3 + "IBAN DE89 3704")
    assert "DE89" not in first
    rest = stream.feed(" 0044 0532 0130 00 thanks") + stream.flush()
    assert (first + rest).endswith("IBAN [IBAN] thanks")
    assert SCAN_REACH <= MAX_HOLD_BACK


def _load_eval() -> ModuleType:
    spec = importlib.util.spec_from_file_location("eval_pii", ROOT / "bench" / "eval_pii.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["eval_pii"] = module
    spec.loader.exec_module(module)
    return module


def test_dev_split_meets_the_targets() -> None:
    evaluation = _load_eval()
    tally = evaluation.evaluate("dev")
    assert evaluation.failures(tally) == []
    assert tally.clean > 300
    assert sum(tally.spans[k] for k in evaluation.TARGET_GROUPS) > 800

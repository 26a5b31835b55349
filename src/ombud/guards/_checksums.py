"""Check-digit and structure rules for the identifiers the PII guard recognises.

Every function takes the compact identifier (separators already removed) and answers ``True``
only when the value could have been issued. A pattern alone matches far too much ordinary text
(order numbers, amounts, timestamps); these rules are what keeps false positives low.
"""

from __future__ import annotations

import string

_DIGITS = frozenset(string.digits)

# ISO 13616 registry: total IBAN length per country code.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip

# Card issuer ranges: (lowest prefix, highest prefix, allowed lengths). Prefixes are compared
# on as many leading digits as they have, so "51".."55" covers every Mastercard 51xx-55xx.
_CARD_RANGES: tuple[tuple[str, str, frozenset[int]], ...] = (
    ("4", "4", frozenset({13, 16, 19})),  # Visa
    ("51", "55", frozenset({16})),  # Mastercard
    ("2221", "2720", frozenset({16})),  # Mastercard 2-series
    ("34", "34", frozenset({15})),  # American Express
    ("37", "37", frozenset({15})),
    ("300", "305", frozenset(range(14, 20))),  # Diners Club
    ("36", "36", frozenset(range(14, 20))),
    ("38", "39", frozenset(range(14, 20))),
    ("6011", "6011", frozenset(range(16, 20))),  # Discover
    ("644", "649", frozenset(range(16, 20))),
    ("65", "65", frozenset(range(16, 20))),
    ("3528", "3589", frozenset(range(16, 20))),  # JCB
    ("2131", "2131", frozenset({15})),
    ("1800", "1800", frozenset({15})),
    ("62", "62", frozenset(range(16, 20))),  # UnionPay
    ("2200", "2204", frozenset(range(16, 20))),  # Mir
    ("50", "50", frozenset(range(13, 20))),  # Maestro
    ("56", "69", frozenset(range(13, 20))),
)

_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)

_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})
_NINO_BAD_FIRST = frozenset("DFIQUV")
_NINO_BAD_SECOND = frozenset("DFIOQUV")

# Codice fiscale: value of a character in an odd (1st, 3rd, ...) position; digits map like
# the letter with the same index (0 -> A, 1 -> B, ...).
_CF_ODD = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25,
           24, 23)  # fmt: skip
_CF_OMOCODE = "LMNPQRSTUV"  # letters that replace digits in disambiguated codes
_CF_DIGIT_POSITIONS = (6, 7, 9, 10, 12, 13, 14)


def _is_digits(value: str) -> bool:
    return bool(value) and all(ch in _DIGITS for ch in value)


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` passes the Luhn (mod 10) check used by payment cards."""
    if not _is_digits(digits):
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_iin_valid(digits: str) -> bool:
    """Whether ``digits`` starts with a known issuer prefix and has that network's length."""
    for low, high, lengths in _CARD_RANGES:
        if len(digits) in lengths and low <= digits[: len(low)] <= high:
            return True
    return False


def card_valid(digits: str) -> bool:
    """A payment card number: 13-19 digits, a known issuer range and a Luhn check digit."""
    return 13 <= len(digits) <= 19 and card_iin_valid(digits) and luhn_valid(digits)


def iban_valid(compact: str) -> bool:
    """ISO 13616: the country's registered length and the ISO 7064 mod 97-10 check."""
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is None or len(compact) != expected or not _is_digits(compact[2:4]):
        return False
    if not compact.isascii() or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(char, 36)) for char in rearranged)
    return int(numeric) % 97 == 1


def verhoeff_valid(digits: str) -> bool:
    """Whether ``digits`` ends in a valid Verhoeff check digit (Aadhaar uses it)."""
    if not _is_digits(digits):
        return False
    check = 0
    for index, char in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[index % 8][ord(char) - 48]]
    return check == 0


def aadhaar_valid(digits: str) -> bool:
    """Indian Aadhaar: 12 digits, never starting with 0 or 1, Verhoeff check digit."""
    return len(digits) == 12 and digits[0] not in "01" and verhoeff_valid(digits)


def bsn_valid(digits: str) -> bool:
    """Dutch BSN: 9 digits passing the "11-proof" (weights 9..2 and -1)."""
    if len(digits) != 9 or not _is_digits(digits) or digits == "000000000":
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


def ssn_valid(digits: str) -> bool:
    """US SSN: area 001-899 but not 666, group 01-99, serial 0001-9999."""
    if len(digits) != 9 or not _is_digits(digits):
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in {"000", "666"} and area[0] != "9" and group != "00" and serial != "0000"


def nino_valid(compact: str) -> bool:
    """UK National Insurance number: two allocated prefix letters, six digits, suffix A-D."""
    if len(compact) != 9 or not _is_digits(compact[2:8]) or compact[8] not in "ABCD":
        return False
    first, second = compact[0], compact[1]
    if not (first.isalpha() and second.isalpha() and first.isupper() and second.isupper()):
        return False
    if first in _NINO_BAD_FIRST or second in _NINO_BAD_SECOND:
        return False
    return compact[:2] not in _NINO_BAD_PREFIXES


def steuer_id_valid(digits: str) -> bool:
    """German tax id (Steuer-IdNr.): digit-frequency rule and ISO 7064 MOD 11,10 check digit.

    In the first ten digits exactly one digit occurs twice or three times; the id never starts
    with 0.
    """
    if len(digits) != 11 or not _is_digits(digits) or digits[0] == "0":
        return False
    counts = sorted((digits[:10].count(d) for d in set(digits[:10])), reverse=True)
    if counts[0] not in (2, 3) or (len(counts) > 1 and counts[1] > 1):
        return False
    product = 10
    for char in digits[:10]:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    check = (11 - product) % 10
    return check == int(digits[10])


def nir_valid(compact: str) -> bool:
    """French NIR (numéro de sécurité sociale): structure plus the 97 - (N mod 97) key.

    Corsican departments 2A and 2B count as 19 and 18 for the key.
    """
    if len(compact) != 15 or compact[0] not in "12":
        return False
    department = compact[5:7]
    body = compact[:13]
    if department in ("2A", "2B"):
        body = compact[:5] + ("19" if department == "2A" else "18") + compact[7:13]
    if not _is_digits(body) or not _is_digits(compact[13:]):
        return False
    month = int(compact[3:5])
    if month == 0 or 13 <= month <= 19:
        return False
    return 97 - int(body) % 97 == int(compact[13:])


def dni_valid(compact: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter): mod-23 letter."""
    if len(compact) != 9:
        return False
    number = compact[:8]
    if number[0] in "XYZ":
        number = str("XYZ".index(number[0])) + number[1:]
    if not _is_digits(number):
        return False
    return _DNI_LETTERS[int(number) % 23] == compact[8]


def codice_fiscale_valid(code: str) -> bool:
    """Italian codice fiscale: 16 characters whose last one is the check character."""
    if len(code) != 16 or not code.isascii() or not code.isalnum() or not code.isupper():
        return False
    for position in _CF_DIGIT_POSITIONS:
        if not (code[position].isdigit() or code[position] in _CF_OMOCODE):
            return False
    total = 0
    for index, char in enumerate(code[:15]):
        value = int(char) if char.isdigit() else ord(char) - 65
        total += _CF_ODD[value] if index % 2 == 0 else value
    return chr(65 + total % 26) == code[15]

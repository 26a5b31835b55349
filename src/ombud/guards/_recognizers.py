"""The recognizers: a precompiled pattern, a validator and context words per category.

A recognizer proposes candidates with its pattern; its validator turns the matched text into a
base confidence (checksums, issuer ranges, numbering-plan shapes) or rejects it; words just
before the match raise or lower that confidence. :func:`scan` returns every candidate at or
above the threshold, :func:`resolve` keeps the best of overlapping ones, :func:`render` writes
the placeholders.

Streaming depends on two bounds kept here: no pattern examines more than :data:`SCAN_REACH`
characters from where its match starts, and context words are looked for only in the
:data:`CONTEXT_CHARS` characters before it.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from ombud.guards import _checksums as checks
from ombud.guards._phones import PHONE_PATTERN, phone_score

SCAN_REACH = 60
"""No pattern reads further than this from the start of its match (lookarounds included)."""
CONTEXT_CHARS = 40
"""How far before a candidate context words are looked for."""
POSITIVE_BOOST = 0.3
NEGATIVE_PENALTY = 0.4


class PiiCategory(StrEnum):
    """What a finding is; the placeholder written for it is ``[<value>]``."""

    EMAIL = "EMAIL"
    CARD = "CARD"
    IBAN = "IBAN"
    PHONE = "PHONE"
    IP = "IP"
    SSN = "SSN"
    NINO = "NINO"
    DE_TAX_ID = "DE_TAX_ID"
    FR_NIR = "FR_NIR"
    ES_DNI = "ES_DNI"
    IT_FISCAL_CODE = "IT_FISCAL_CODE"
    NL_BSN = "NL_BSN"
    IN_AADHAAR = "IN_AADHAAR"


NATIONAL_ID_CATEGORIES: frozenset[str] = frozenset(
    {
        PiiCategory.SSN,
        PiiCategory.NINO,
        PiiCategory.DE_TAX_ID,
        PiiCategory.FR_NIR,
        PiiCategory.ES_DNI,
        PiiCategory.IT_FISCAL_CODE,
        PiiCategory.NL_BSN,
        PiiCategory.IN_AADHAAR,
    }
)


@dataclass(frozen=True, slots=True)
class PiiFinding:
    """One detected item: where it is and what it is, never the value itself.

    Attributes:
        category: A :class:`PiiCategory` value.
        start: Offset of the first character.
        end: Offset just past the last character.
        score: Confidence in ``[0, 1]``.
    """

    category: str
    start: int
    end: int
    score: float


Validator = Callable[[str], float | None]


class Scope(StrEnum):
    """Where a recognizer's pattern is run; all three give what a scan of the whole text would.

    ``RUN``: only on maximal digit-group runs (its matches are exactly such runs, given the
    number boundaries). ``WINDOW``: only within :data:`SCAN_REACH` of a digit (every match
    holds one). ``TEXT``: over the whole text, when it contains ``requires``; such patterns
    begin with a character class rather than a look-behind, so the regex engine skips ahead
    to the next possible first character quickly.
    """

    RUN = "run"
    WINDOW = "window"
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Recognizer:
    """A candidate pattern, its validator, and the words that make a match more or less likely."""

    category: PiiCategory
    pattern: re.Pattern[str]
    validate: Validator
    positive: re.Pattern[str] | None = None
    negative: re.Pattern[str] | None = None
    scope: Scope = Scope.WINDOW
    requires: str = ""


def _words(*words: str) -> re.Pattern[str]:
    """Whole words, case-insensitive; a trailing ``*`` also accepts inflections (``chiam*``)."""
    alternatives = (w[:-1] + r"\w*" if w.endswith("*") else w for w in words)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


# A number is not glued to a word or to another digit group one separator away.
_NUM_START = r"(?<![\w+\-/.])(?<!\d[ .\-/])"
_NUM_END = r"(?!\w)(?![ .\-/]\d)"
_SEPARATORS = re.compile(r"[ .\-/]")
_DIGITS = re.compile(r"\d+")
_DIGIT_RUN = re.compile(_NUM_START + r"\d(?:[ .\-/]?\d)*+" + _NUM_END)

_NEGATIVE = _words(
    "order", "invoice", "tracking", "ref", "reference", "ticket", "isbn", "ean", "gtin",
    "barcode", "serial", "sku", "booking", "transaction", "version", "build", "release",
    "firmware", "item", "part", "article", "artikel", "bestellung", "rechnung", "auftrag",
    "kundennummer", "commande", "facture", "pedido", "factura", "ordine", "fattura",
    "bestelling", "factuur", "customer no",
)  # fmt: skip
_PHONE_WORDS = _words(
    "phone*", "telephone*", "tel", "mobile", "cell", "call*", "text", "sms", "whatsapp", "fax",
    "reach", "contact", "dial", "ring", "hotline", "telefon*", "handy", "mobil*", "rufnummer",
    "anruf*", "erreich*", "rückruf", "téléphone", "tél", "portable", "appel*", "joindre",
    "teléfono", "móvil", "llam*", "cellulare", "chiam*", "telefoon*", "mobiel*", "bel",
    "bellen",
)  # fmt: skip
_CARD_WORDS = _words(
    "card", "credit", "debit", "visa", "mastercard", "amex", "kreditkarte", "karte", "carte",
    "tarjeta", "carta", "kaart", "pan",
)  # fmt: skip
_SSN_WORDS = _words("ssn", "social security", "ss#")
_TAX_ID_WORDS = _words(
    "steuer-id", "steuerid", "steuer-idnr", "steueridentifikationsnummer", "idnr",
    "identifikationsnummer", "steuernummer", "tax id", "tax identification", "tin",
)  # fmt: skip
_BSN_WORDS = _words("bsn", "burgerservicenummer", "sofinummer", "citizen service number")
_AADHAAR_WORDS = _words("aadhaar", "aadhar", "uidai", "uid")


def _compact(text: str) -> str:
    return _SEPARATORS.sub("", text)


def _card(text: str) -> float | None:
    groups = re.split(r"[ \-]", text)
    if len(groups) > 1 and (len(set(re.findall(r"[ \-]", text))) > 1 or len(groups[0]) != 4):
        return None  # cards are printed in 4-digit leading groups with one kind of separator
    return 0.8 if checks.card_valid("".join(groups)) else None


def _iban(text: str) -> float | None:
    return 0.95 if checks.iban_valid(text.replace(" ", "")) else None


def _email(text: str) -> float | None:
    local, _, domain = text.rpartition("@")
    if local.startswith(".") or ".." in text or domain.startswith("-"):
        return None
    return 0.95


def _ip(text: str) -> float | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return None
    return 0.8


def _ssn(text: str) -> float | None:
    if not checks.ssn_valid(_compact(text)):
        return None
    return 0.3 if text.isdigit() else 0.7


def _nino(text: str) -> float | None:
    return 0.8 if checks.nino_valid(text.replace(" ", "")) else None


def _tax_id(text: str) -> float | None:
    if not checks.steuer_id_valid(_compact(text)):
        return None
    return 0.35 if text.isdigit() else 0.6


def _nir(text: str) -> float | None:
    return 0.75 if checks.nir_valid(text.replace(" ", "")) else None


def _dni(text: str) -> float | None:
    return 0.75 if checks.dni_valid(_compact(text)) else None


def _fiscal_code(text: str) -> float | None:
    return 0.9 if checks.codice_fiscale_valid(text) else None


def _bsn(text: str) -> float | None:
    if not checks.bsn_valid(_compact(text)):
        return None
    # "1234.56.782" is how BSNs are printed; nine bare digits could be anything.
    return 0.3 if text.isdigit() else 0.5


def _aadhaar(text: str) -> float | None:
    if not checks.aadhaar_valid(_compact(text)):
        return None
    return 0.35 if text.isdigit() else 0.6


_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-@])(?=[A-Za-z0-9._%+\-@]{6,56}(?![A-Za-z0-9._%+\-@]))"
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,24}"
    r"(?![A-Za-z0-9\-])"
)
_IPV6_HEX = r"[0-9A-Fa-f]"
_IPV6 = re.compile(
    r"(?<![\w:.])(?:(?:" + _IPV6_HEX + r"{0,4}:){2,7}(?:" + _IPV6_HEX + r"{1,4}"
    r"|\d{1,3}(?:\.\d{1,3}){3})|(?:" + _IPV6_HEX + r"{1,4}:){1,7}:)(?![\w:]|\.\d)"
)

RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(PiiCategory.EMAIL, _EMAIL, _email, scope=Scope.TEXT, requires="@"),
    Recognizer(
        PiiCategory.CARD,
        re.compile(_NUM_START + r"(?:\d[ \-]?){12,18}\d" + _NUM_END),
        _card,
        _CARD_WORDS,
        _NEGATIVE,
        Scope.RUN,
    ),
    Recognizer(
        PiiCategory.IBAN,
        re.compile(
            r"[A-Z]{2}(?<![A-Za-z0-9][A-Z]{2})\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?"
            r"(?![A-Za-z0-9])"
        ),
        _iban,
        scope=Scope.TEXT,
    ),
    Recognizer(PiiCategory.PHONE, PHONE_PATTERN, phone_score, _PHONE_WORDS, _NEGATIVE),
    Recognizer(
        PiiCategory.IP,
        re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)"),
        _ip,
        None,
        _NEGATIVE,
    ),
    Recognizer(PiiCategory.IP, _IPV6, _ip, scope=Scope.TEXT, requires=":"),
    Recognizer(
        PiiCategory.SSN,
        re.compile(_NUM_START + r"(?:\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4}|\d{9})" + _NUM_END),
        _ssn,
        _SSN_WORDS,
        _NEGATIVE,
        Scope.RUN,
    ),
    Recognizer(
        PiiCategory.NINO,
        re.compile(r"[A-Z]{2}(?<![A-Za-z0-9][A-Z]{2}) ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])"),
        _nino,
        scope=Scope.TEXT,
    ),
    Recognizer(
        PiiCategory.DE_TAX_ID,
        re.compile(_NUM_START + r"(?:\d{2} \d{3} \d{3} \d{3}|\d{11})" + _NUM_END),
        _tax_id,
        _TAX_ID_WORDS,
        _NEGATIVE,
        Scope.RUN,
    ),
    Recognizer(
        PiiCategory.FR_NIR,
        re.compile(
            _NUM_START + r"[12] ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}" + _NUM_END
        ),
        _nir,
    ),
    Recognizer(
        PiiCategory.ES_DNI,
        re.compile(r"(?<![\w\-])(?:\d{8}|[XYZ][ \-]?\d{7})[ \-]?[A-Z](?![\w\-])"),
        _dni,
    ),
    Recognizer(
        PiiCategory.IT_FISCAL_CODE,
        re.compile(
            r"[A-Z]{6}(?<![A-Za-z0-9][A-Z]{6})[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}"
            r"[A-Z][0-9LMNPQRSTUV]{3}[A-Z](?![A-Za-z0-9])"
        ),
        _fiscal_code,
        scope=Scope.TEXT,
    ),
    Recognizer(
        PiiCategory.NL_BSN,
        re.compile(_NUM_START + r"(?:\d{4}\.\d{2}\.\d{3}|\d{3} \d{3} \d{3}|\d{9})" + _NUM_END),
        _bsn,
        _BSN_WORDS,
        _NEGATIVE,
        Scope.RUN,
    ),
    Recognizer(
        PiiCategory.IN_AADHAAR,
        re.compile(_NUM_START + r"(?:[2-9]\d{3}([ \-])\d{4}\1\d{4}|[2-9]\d{11})" + _NUM_END),
        _aadhaar,
        _AADHAAR_WORDS,
        _NEGATIVE,
        Scope.RUN,
    ),
)


def _context_score(recognizer: Recognizer, text: str, start: int, base: float) -> float:
    """Adjust ``base`` by the words in the :data:`CONTEXT_CHARS` before ``start``.

    A nearer positive word counts slightly more, so "SSN ... BSN 111222333" goes to the BSN.
    """
    if recognizer.positive is None and recognizer.negative is None:
        return base
    before = text[max(0, start - CONTEXT_CHARS) : start]
    score = base
    if recognizer.positive is not None:
        matches = list(recognizer.positive.finditer(before))
        if matches:
            last = matches[-1]
            score += POSITIVE_BOOST + 0.05 * (1 - (len(before) - last.end()) / CONTEXT_CHARS)
    if recognizer.negative is not None and recognizer.negative.search(before):
        score -= NEGATIVE_PENALTY
    return min(1.0, max(0.0, score))


def scan(text: str, recognizers: Iterable[Recognizer], threshold: float) -> list[PiiFinding]:
    """Every validated candidate scoring at least ``threshold``; overlaps are not resolved."""
    chosen = tuple(recognizers)
    matches: list[tuple[Recognizer, re.Match[str]]] = []
    for recognizer in chosen:
        if recognizer.scope is Scope.TEXT and recognizer.requires in text:
            matches.extend((recognizer, m) for m in recognizer.pattern.finditer(text))
    windowed = [r for r in chosen if r.scope is Scope.WINDOW]
    for start, end in _digit_windows(text) if windowed else ():
        for recognizer in windowed:
            matches.extend((recognizer, m) for m in recognizer.pattern.finditer(text, start, end))
    runs = [r for r in chosen if r.scope is Scope.RUN]
    for run in _DIGIT_RUN.finditer(text) if runs else ():
        for recognizer in runs:
            match = recognizer.pattern.match(text, run.start(), run.end())
            if match is not None and match.end() == run.end():
                matches.append((recognizer, match))
    found: list[PiiFinding] = []
    for recognizer, match in matches:
        base = recognizer.validate(match.group())
        if base is None:
            continue
        score = round(_context_score(recognizer, text, match.start(), base), 3)
        if score >= threshold:
            found.append(PiiFinding(recognizer.category.value, match.start(), match.end(), score))
    return found


def _digit_windows(text: str) -> list[tuple[int, int]]:
    """Merged spans reaching :data:`SCAN_REACH` either side of every run of digits.

    Every windowed pattern's match holds a digit and reads at most ``SCAN_REACH`` from its
    start, so it lies inside one of these; scanning only them skips plain prose cheaply.
    """
    windows: list[tuple[int, int]] = []
    for digits in _DIGITS.finditer(text):
        start = max(0, digits.start() - SCAN_REACH)
        end = min(len(text), digits.end() + SCAN_REACH)
        if windows and start <= windows[-1][1]:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
    return windows


def resolve(candidates: Iterable[PiiFinding]) -> list[PiiFinding]:
    """Keep non-overlapping findings: the highest score wins, then the longest, then the first."""
    ordered = sorted(candidates, key=lambda f: (-f.score, f.start - f.end, f.start))
    starts: list[int] = []
    kept: list[PiiFinding] = []
    for finding in ordered:
        index = bisect.bisect_right(starts, finding.start)
        if index and kept[index - 1].end > finding.start:
            continue
        if index < len(kept) and kept[index].start < finding.end:
            continue
        starts.insert(index, finding.start)
        kept.insert(index, finding)
    return kept


def placeholder(category: str) -> str:
    """The text written in place of an item of ``category``."""
    return f"[{category}]"


def render(
    text: str, findings: Iterable[PiiFinding], start: int = 0, end: int | None = None
) -> str:
    """``text[start:end]`` with each finding (sorted, non-overlapping, inside it) replaced."""
    stop = len(text) if end is None else end
    parts: list[str] = []
    position = start
    for finding in findings:
        parts.append(text[position : finding.start])
        parts.append(placeholder(finding.category))
        position = finding.end
    parts.append(text[position:stop])
    return "".join(parts)

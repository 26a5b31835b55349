"""Telephone numbers: one permissive candidate pattern, then a shape check per numbering plan.

Phone numbers carry no check digit, so what separates ``020 7946 0958`` from an order number,
a date or an amount is their *shape*: an international prefix, a national trunk ``0``, or the
digit grouping a country writes them in. Shapes that ordinary numbers share (a bare run of ten
digits) score below the reporting threshold and need a context word such as "phone".

Covered: E.164 (``+`` or ``00``) for any country; national formats of the US/Canada, the UK,
Germany, France, Spain, Italy, the Netherlands and India.
"""

from __future__ import annotations

import re

# Why each boundary: a number glued to a word, ``+``, ``/``, ``.`` or ``-`` is part of
# something else (a reference, a URL, a version); a digit group one separator away means a
# longer grouped number (a card, a tracking number) that this is only a piece of.
PHONE_PATTERN = re.compile(
    r"(?<![\w+/.\-])(?<!\d[ .\-/])"
    r"\(?\+?\(?\d[\d ().\-/]{5,22}\d"
    r"(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,5})?"
    r"(?!\w)(?![ .\-/]\d)"
)

STRONG = 0.9  # an explicit "+" country prefix
INTERNATIONAL = 0.7  # "00" international prefix
NATIONAL = 0.75  # a trunk "0" with a plausible grouping
SHAPED = 0.65  # a national grouping without trunk prefix (US 3-3-4, ES 3-3-3, IN 5-5)
WEAK = 0.35  # a bare digit run: only with a context word

_EXTENSION = re.compile(r"[ ]?(?:x|ext\.?|extension)[ ]?\d{1,5}$")
_TRUNK_MARK = re.compile(r"\(\s?0\s?\)")
_GROUP = re.compile(r"\d+")
_DATE_SEPARATORS = frozenset("./-")
_NANP_FIRST = frozenset("23456789")
_MOBILE_FIRST_ES_IN = frozenset("6789")


def phone_score(candidate: str) -> float | None:
    """Score a candidate matched by :data:`PHONE_PATTERN`; ``None`` when it is no phone number.

    Args:
        candidate: The matched text, extension included.

    Returns:
        The base confidence (before context words), or ``None``.
    """
    main = _EXTENSION.sub("", candidate)
    if main.count("(") != main.count(")") or main.count("(") > 2:
        return None
    stripped = main.lstrip("(")
    if stripped.startswith("+"):
        return _international(_TRUNK_MARK.sub(" ", stripped[1:]), STRONG)
    if stripped.startswith("00"):
        return _international(stripped[2:], INTERNATIONAL)
    groups = _GROUP.findall(main)
    separators = set(re.sub(r"[\d()]", "", main))
    if _looks_like_date(groups, separators):
        return None
    digits = "".join(groups)
    if digits[0] == "0":
        return _national_trunk(groups, digits)
    return _national_shape(groups, digits)


def _international(rest: str, score: float) -> float | None:
    digits = "".join(_GROUP.findall(rest))
    if not 8 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return score


def _looks_like_date(groups: list[str], separators: set[str]) -> bool:
    """``15.04.2023``, ``2023-04-15`` or ``04/15/2023 10`` followed by more digits."""
    if len(groups) < 3 or not separators & _DATE_SEPARATORS:
        return False
    lengths = tuple(len(group) for group in groups[:3])
    return lengths[:3] in {(2, 2, 4), (1, 2, 4), (2, 1, 4), (1, 1, 4), (4, 2, 2)}


def _national_trunk(groups: list[str], digits: str) -> float | None:
    """Numbers dialled with a trunk ``0``: UK, DE, FR, IT, NL and IN landlines and mobiles."""
    if not 9 <= len(digits) <= 12 or digits[1] == "0":
        return None
    if len(groups) == 1:
        return NATIONAL - 0.15
    if not 2 <= len(groups[0]) <= 6 or any(len(group) < 2 for group in groups[1:]):
        return None
    return NATIONAL


def _national_shape(groups: list[str], digits: str) -> float | None:
    """Numbers written without a trunk prefix: recognised by their grouping alone."""
    lengths = tuple(len(group) for group in groups)
    first = digits[0]
    if lengths == (3, 3, 4) and (first == "3" or (first in _NANP_FIRST and digits[3] != "0")):
        return SHAPED  # US/Canada NPA-NXX-XXXX, Italian mobiles 3xx xxx xxxx
    if lengths == (1, 3, 3, 4) and first == "1" and digits[1] in _NANP_FIRST:
        return SHAPED  # US with the "1" long-distance prefix
    if lengths in {(3, 3, 3), (3, 2, 2, 2)} and first in _MOBILE_FIRST_ES_IN:
        return SHAPED  # Spain
    if lengths == (5, 5) and first in _MOBILE_FIRST_ES_IN:
        return SHAPED  # India
    if lengths == (3, 7) and first == "3":
        return SHAPED  # Italian mobiles 3xx xxxxxxx
    if len(groups) == 1 and len(digits) == 10 and first in _NANP_FIRST:
        return WEAK
    if len(groups) == 1 and len(digits) == 9 and first in _MOBILE_FIRST_ES_IN:
        return WEAK
    if len(groups) == 1 and len(digits) in (9, 10) and first == "3":
        return WEAK  # Italian mobiles
    return None

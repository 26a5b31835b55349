"""Normalization: the views of a text that the signatures are matched against.

Attackers hide instructions from pattern matchers with tricks that a language model still reads
through: invisible characters between letters, look-alike letters from other scripts, letters
spaced apart, digits in place of letters, full-width or "mathematical bold" forms. Each trick is
undone here once, so every signature only needs to be written in plain lower-case form.

Two views are produced: ``text`` (Unicode-normalized, case-folded, invisible characters removed,
diacritics stripped) and ``folded`` (additionally with look-alikes, letter spacing and leetspeak
undone). ``compact`` is ``folded`` with everything but letters removed, for the few key phrases
that must survive any separator. What was undone is counted: the tricks themselves are evidence.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

# Characters with no visible glyph that are never needed inside words: zero-width space, word
# joiner and invisible operators, bidi embeddings/overrides/isolates, Hangul fillers, the combining
# grapheme joiner, and the Unicode tag block (used to smuggle ASCII, see ``tag_payload``).
_STRONG_INVISIBLE = (
    "\u034f\u115f\u1160\u180e\u200b\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\uffa0"
    "\U000e0000-\U000e007f"
)
# Invisible characters with legitimate uses: joiners in emoji and Indic/Persian scripts,
# direction marks in right-to-left text, soft hyphens, variation selectors. They are removed
# too, but only count as evidence where they sit between two Latin letters.
_WEAK_INVISIBLE = "\u00ad\u200c-\u200f\ufe00-\ufe0f\ufeff\U000e0100-\U000e01ef"

_INVISIBLE = re.compile(f"[{_STRONG_INVISIBLE}{_WEAK_INVISIBLE}]+")
_STRONG = re.compile(f"[{_STRONG_INVISIBLE}]")
_WEAK_IN_WORD = re.compile(f"(?<=[A-Za-z])[{_WEAK_INVISIBLE}]+(?=[A-Za-z])")
_TAGS = re.compile("[\U000e0020-\U000e007e]+")
_MARKS = re.compile(
    "[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f\u3099\u309a]"
)
_NON_LETTERS = re.compile(r"[\W\d_]+")
# Deleting ASCII non-letters with ``str.translate`` is much cheaper than a regex over the text.
_ASCII_NON_LETTERS = str.maketrans(
    dict.fromkeys(c for c in map(chr, range(128)) if not c.isalpha())
)

# Look-alikes of Latin letters in Cyrillic, Greek and Armenian (lower case: this runs after
# case folding). Full-width and mathematical alphanumerics are already folded by NFKC.
_CONFUSABLES = str.maketrans(
    {
        look_alike: latin
        for pair in [
            "аa",
            "вb",
            "сc",
            "ԁd",
            "еe",
            "ёe",
            "ɡg",
            "һh",
            "іi",
            "јj",
            "кk",
            "ӏl",
            "мm",
            "нh",
            "оo",
            "рp",
            "ԛq",
            "ѕs",
            "тt",
            "уy",
            "ԝw",
            "хx",
            "ոn",
            "սu",
            "օo",
            "αa",
            "βb",
            "εe",
            "ηn",
            "ιi",
            "κk",
            "νv",
            "οo",
            "ρp",
            "τt",
            "υu",
            "χx",
            "γy",
            "ωw",
            "ıi",
            "ȷj",
        ]
        for look_alike, latin in [tuple(pair)]
    }
)
_NON_LATIN_LETTER = re.compile("[\u0370-\u03ff\u0400-\u04ff\u0530-\u058f\u0131\u0237\u0261]")
_MIXED_TOKEN = re.compile(
    "(?<![\\w])(?=[\\w]*[a-z])(?=[\\w]*[\u0370-\u03ff\u0400-\u04ff\u0530-\u058f])[\\w]+"
)

_LEET = str.maketrans(dict(zip("0134579@$!|", "oieastgasil", strict=True)))
# A token that mixes letters with leet digits ("1gn0re", "h4x0r"); pure numbers are left alone.
# "@" and "$" are folded in ``compact`` only: in ``folded`` they would break e-mail addresses.
_LEET_TOKEN = re.compile(r"(?<!\w)\w*[0134579]\w*")
_LEET_HINT = re.compile(r"[a-z][0134579]|[0134579][a-z]")

_SEPARATORS = " .\\-_*/|+~,"
# Five or more single letters (or digits, apostrophes) each followed by a short separator:
# "i g n o r e", "i.g.n.o.r.e". The unit and separator classes are disjoint: matching is linear.
_UNIT = "(?:[^\\W_]|')"
_SPACED = re.compile(f"(?<![^\\W_])(?:{_UNIT}[{_SEPARATORS}]{{1,3}}){{4,}}[^\\W_](?![^\\W_])")
_SEPARATOR_RUN = re.compile(f"([{_SEPARATORS}]{{1,3}})")


@dataclass(frozen=True, slots=True)
class Normalized:
    """The views of one text and the counts of the tricks undone to build them.

    Attributes:
        text: NFKC, case-folded, invisible characters removed, diacritics stripped, runs of
            spaces collapsed (line breaks kept: role markers are line-oriented).
        folded: ``text`` with look-alike letters, letter spacing and leetspeak undone.
        compact: ``folded`` with every non-letter removed.
        invisible: invisible characters counted as suspicious.
        mixed_script: words mixing Latin letters with Cyrillic, Greek or Armenian ones.
        spaced: runs of spaced-out letters found.
        leet: whether leetspeak was undone.
        scripts_folded: whether letters of other scripts were folded to Latin (``folded``
            then no longer reads as the original language).
        tag_payload: ASCII smuggled in Unicode tag characters, decoded.
    """

    text: str
    folded: str
    compact: str
    invisible: int = 0
    mixed_script: int = 0
    spaced: int = 0
    leet: int = 0
    tag_payload: str = ""
    scripts_folded: bool = False


def strip_marks(text: str) -> str:
    """Decompose ``text`` and drop combining marks ("précédentes" → "precedentes").

    Signature sources go through this too, so both sides agree even for scripts where a mark
    changes the letter (Japanese voicing marks, the Cyrillic short i).
    """
    if text.isascii():
        return text
    return _MARKS.sub("", unicodedata.normalize("NFKD", text))


def _count_invisible(text: str) -> int:
    strong = len(_STRONG.findall(text))
    return strong + sum(len(m) for m in _WEAK_IN_WORD.findall(text))


def _tag_payload(text: str) -> str:
    return "".join(chr(ord(c) - 0xE0000) for run in _TAGS.findall(text) for c in run)


def _unspace(match: re.Match[str]) -> str:
    """Join a spaced-out run; a separator unlike the usual one marks a word gap."""
    parts = _SEPARATOR_RUN.split(match.group(0))
    letters, separators = parts[0::2], parts[1::2]
    usual = Counter(separators).most_common(1)[0][0]
    out = [letters[0]]
    for sep, letter in zip(separators, letters[1:], strict=True):
        out.append(letter if sep == usual else " " + letter)
    return "".join(out)


def _unleet(match: re.Match[str]) -> str:
    token = match.group(0)
    if not any(c.isalpha() for c in token):
        return token
    return token.translate(_LEET)


def _fold(text: str) -> tuple[str, int, int, int]:
    """Undo look-alikes, letter spacing and leetspeak; return the text and what was undone."""
    mixed = 0
    if not text.isascii() and _NON_LATIN_LETTER.search(text):
        mixed = len(_MIXED_TOKEN.findall(text))
        text = text.translate(_CONFUSABLES)
    text, spaced = _SPACED.subn(_unspace, text)
    leet = 0
    if _LEET_HINT.search(text):
        folded = _LEET_TOKEN.sub(_unleet, text)
        leet = 0 if folded == text else 1
        text = folded
    return text, mixed, spaced, leet


def _collapse(text: str) -> str:
    """Runs of spaces become one space and blank lines go; line breaks stay."""
    if "\n" not in text:
        return " ".join(text.split())
    return "\n".join(filter(None, (" ".join(line.split()) for line in text.split("\n"))))


def normalize(raw: str) -> Normalized:
    """Build the views of ``raw`` (see :class:`Normalized`).

    Args:
        raw: Untrusted text of any length; callers cap its size.

    Returns:
        The views and counts.
    """
    invisible, tags = 0, ""
    text = raw
    if not raw.isascii():
        invisible = _count_invisible(raw)
        tags = _tag_payload(raw)
        text = _INVISIBLE.sub("", raw)
        text = strip_marks(unicodedata.normalize("NFKC", text).casefold())
    else:
        text = text.casefold()
    # Fold before collapsing spaces: a wider gap is what separates spaced-out words.
    folded, mixed, spaced, leet = _fold(text)
    text, folded = _collapse(text), _collapse(folded)
    compact = folded.translate(_LEET).translate(_ASCII_NON_LETTERS)
    if not compact.isascii():
        compact = _NON_LETTERS.sub("", compact)
    scripts_folded = not text.isascii() and _NON_LATIN_LETTER.search(text) is not None
    return Normalized(text, folded, compact, invisible, mixed, spaced, leet, tags, scripts_folded)

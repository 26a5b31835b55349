"""Decoders: find payloads hidden in an encoding and return them as text.

Each decoder looks for one encoding (base64, hex, URL-encoding, HTML entities, ``\\u`` escapes,
ROT13, reversed text) and returns what it decodes to, if that is readable text. The caller scans
decoded text like any other input, recursively, under a :class:`Budget` so that adversarial input
(huge blobs, deeply nested encodings) costs bounded time and memory.
"""

from __future__ import annotations

import binascii
import html
import re
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Long enough to carry an instruction, short runs are identifiers and words.
# Each starts only where a run of its alphabet starts, so a long word is not re-scanned from
# every one of its letters.
_B64 = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{16,}={0,2}")
# Hex with separators ("49 67 6e", "49:67:6e"); unseparated hex is a base64 candidate too.
_HEX = re.compile(r"(?<![0-9a-fA-F])(?:[0-9a-fA-F]{2}[ :,\-]){9,}[0-9a-fA-F]{2}")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_HEX_ESCAPES = re.compile(r"(?:\\x[0-9a-fA-F]{2}){6,}")
_PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
_ENTITY = re.compile(r"&#(?:x[0-9a-fA-F]{1,6}|[0-9]{1,7});")
_U_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")
_PUNCTUATION = str.maketrans(dict.fromkeys(".,;:!?'\"()[]{}<>", " "))
_ROT13 = str.maketrans(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "nopqrstuvwxyzabcdefghijklmNOPQRSTUVWXYZABCDEFGHIJKLM",
)

# Common English words, and the vocabulary of instructions to a model. A ROT13 or reversed
# payload is recognised by how many of them appear once it is decoded.
_VOCABULARY = frozenset(
    [
        "the",
        "and",
        "you",
        "your",
        "are",
        "for",
        "with",
        "this",
        "that",
        "what",
        "from",
        "have",
        "not",
        "all",
        "any",
        "now",
        "was",
        "were",
        "will",
        "can",
        "tell",
        "say",
        "give",
        "show",
        "print",
        "reveal",
        "repeat",
        "output",
        "write",
        "send",
        "ignore",
        "forget",
        "disregard",
        "previous",
        "prior",
        "above",
        "instructions",
        "instruction",
        "rules",
        "prompt",
        "system",
        "message",
        "password",
        "secret",
        "pretend",
        "act",
        "new",
        "task",
        "must",
        "only",
        "answer",
        "everything",
        "mode",
        "developer",
        "assistant",
        "user",
        "admin",
        "delete",
        "follow",
        "obey",
        "text",
        "words",
        "verbatim",
        "restrictions",
        "filters",
    ]
)

_PRINTABLE_RATIO = 0.85
_MIN_RUN = 16
_MIN_HEX_DIGITS = 8
_MIN_DECODED = 8


@dataclass(slots=True)
class Budget:
    """Limits for one scan's decoding, spent as it goes (owned by one scan, never shared).

    Attributes:
        depth: how many nested layers may still be decoded.
        chars: how many decoded characters may still be produced in total.
        candidates: how many encoded candidates may still be tried in total.
    """

    depth: int = 3
    chars: int = 65_536
    candidates: int = 32

    def take(self, size: int) -> bool:
        """Spend one candidate of ``size`` characters; False once the budget is used up."""
        if self.candidates <= 0 or self.chars < size:
            return False
        self.candidates -= 1
        self.chars -= size
        return True


def _readable(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < _MIN_DECODED:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return text if printable >= _PRINTABLE_RATIO * len(text) else None


def _blob(blob: str) -> str | None:
    """Decode one run of the base64 alphabet: as hex when it is all hex digits, else base64."""
    if _HEX_DIGITS.issuperset(blob):
        return _readable(binascii.unhexlify(blob[: len(blob) - len(blob) % 2]))
    return _readable_base64(blob)


def _readable_base64(blob: str) -> str | None:
    blob = blob.replace("-", "+").replace("_", "/")
    blob = blob[: len(blob) - len(blob) % 4] if len(blob) % 4 == 1 else blob
    try:
        return _readable(binascii.a2b_base64(blob + "=" * (-len(blob) % 4)))
    except (binascii.Error, ValueError):
        return None


def _base64(text: str, budget: Budget) -> Iterator[str]:
    """Base64 (standard and URL-safe) and unseparated hex runs."""
    # Only whitespace-free stretches of 16+ characters can hold a candidate: find those with
    # ``split`` (in C) and run the expression on them alone.
    long_tokens = [token for token in text.split() if len(token) >= _MIN_RUN]
    for match in (m for token in long_tokens for m in _B64.finditer(token)):
        blob = match.group(0).rstrip("=")
        if blob.isalpha() and (blob.islower() or blob.isupper()):
            continue  # an ordinary long word or identifier, not an encoding
        if not budget.take(len(blob)):
            return
        decoded = _blob(blob)
        if decoded is not None:
            yield decoded


def _hex(text: str, budget: Budget) -> Iterator[str]:
    """Hex with separators, and ``\\x41`` escapes."""
    # Hex of ASCII text has a 4, 5, 6 or 7 in every other digit; prose has few of them.
    hinted = sum(text.count(d) for d in "4567") >= _MIN_HEX_DIGITS
    runs = [m.group(0) for m in _HEX.finditer(text)] if hinted else []
    if "\\x" in text:
        runs += [m.group(0).replace("\\x", "") for m in _HEX_ESCAPES.finditer(text)]
    for run in runs:
        digits = _NOT_HEX.sub("", run)
        digits = digits[: len(digits) - len(digits) % 2]
        if not budget.take(len(digits)):
            return
        decoded = _readable(binascii.unhexlify(digits))
        if decoded is not None:
            yield decoded


def _escapes(text: str, budget: Budget) -> Iterator[str]:
    """URL-encoding, HTML character references and ``\\uXXXX`` escapes, decoded in place."""
    decoded = text
    if "%" in text and len(_PERCENT.findall(text, 0, 4096)) >= 3:
        decoded = urllib.parse.unquote(decoded)
    if "&#" in text and len(_ENTITY.findall(text, 0, 4096)) >= 3:
        decoded = html.unescape(decoded)
    if "\\u" in text and len(_U_ESCAPE.findall(text, 0, 4096)) >= 3:
        decoded = _U_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), decoded)
    if decoded != text and budget.take(len(decoded)):
        yield decoded


def _vocabulary_hits(text: str) -> int:
    # ``translate`` and ``split`` run in C; a regex over the text would cost several times more.
    return len([word for word in text.translate(_PUNCTUATION).split() if word in _VOCABULARY])


def _rot13(text: str) -> str:
    return text.translate(_ROT13)


def _reversed(text: str) -> str:
    return text[::-1]


def _shifted(text: str, budget: Budget) -> Iterator[str]:
    """ROT13 and reversed text, tried only when decoding makes more words readable."""
    sample = text[:4096].lower()
    plain = _vocabulary_hits(sample)
    for decode in (_rot13, _reversed):
        hits = _vocabulary_hits(decode(sample))
        if hits >= 2 and hits * 4 >= plain and budget.take(len(text)):
            yield decode(text)


_DECODERS: tuple[tuple[str, Callable[[str, Budget], Iterator[str]]], ...] = (
    ("base64", _base64),
    ("hex", _hex),
    ("escapes", _escapes),
    ("shifted", _shifted),
)


def decode_layers(text: str, budget: Budget) -> Iterator[tuple[str, str]]:
    """Yield ``(encoding, decoded text)`` for each payload found in ``text``.

    Args:
        text: The raw (not case-folded) text: base64 and ROT13 are case-sensitive.
        budget: Spent by every candidate tried; decoding stops when it runs out.

    Yields:
        The name of the decoder and the decoded, readable text.
    """
    for name, decoder in _DECODERS:
        for decoded in decoder(text, budget):
            yield name, decoded

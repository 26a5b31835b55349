"""PII detection and redaction for the input and output guards.

ombud's own recognizers, each a precompiled pattern plus a validator (Luhn and issuer ranges
for cards, mod 97 for IBANs, the check digit or letter of each national id, numbering-plan
shapes for phones, :mod:`ipaddress` for IPs). No language model, no network, linear time.

Entry points:

- :func:`redact` replaces every item with a typed placeholder (``[EMAIL]``, ``[CARD]``, ...);
- :func:`detect` lists what was found, as :class:`PiiFinding` (positions, never values);
- :class:`PiiRedactor` chooses the categories and which of them block the whole text;
- :class:`StreamRedactor` redacts a stream chunk by chunk with a bounded hold-back;
- :func:`cap_text` and :func:`cap_items` cap what an answer may carry out.

Example:
    >>> redact("Mail jane.doe@example.com or call +44 20 7946 0958.")
    'Mail [EMAIL] or call [PHONE].'
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import TypeVar

from ombud.guards._recognizers import (
    NATIONAL_ID_CATEGORIES,
    RECOGNIZERS,
    PiiCategory,
    PiiFinding,
    Recognizer,
    placeholder,
    render,
    resolve,
    scan,
)
from ombud.guards._stream import MAX_HOLD_BACK, StreamRedactor

__all__ = [
    "ALL_CATEGORIES",
    "DEFAULT_THRESHOLD",
    "MAX_HOLD_BACK",
    "NATIONAL_ID_CATEGORIES",
    "PiiCategory",
    "PiiFinding",
    "PiiRedactor",
    "StreamRedactor",
    "cap_items",
    "cap_text",
    "default_redactor",
    "detect",
    "placeholder",
    "redact",
]

T = TypeVar("T")

ALL_CATEGORIES: frozenset[str] = frozenset(PiiCategory)
DEFAULT_THRESHOLD = 0.5
"""Findings scoring below this are ignored; weak shapes need a context word to reach it."""


class PiiRedactor:
    """Detects and redacts the PII categories it is configured for.

    Args:
        categories: Categories to detect and redact; ``None`` means all of
            :data:`ALL_CATEGORIES`.
        blocked: Categories whose presence blocks the text outright (see
            :meth:`contains_blocked`); they are detected even when not in ``categories``.
        threshold: Minimum confidence for a finding to count.

    Raises:
        ValueError: For an unknown category or a threshold outside ``(0, 1]``.
    """

    def __init__(
        self,
        categories: Iterable[str] | None = None,
        blocked: Iterable[str] = frozenset(),
        threshold: float = DEFAULT_THRESHOLD,
    ) -> None:
        chosen = ALL_CATEGORIES if categories is None else frozenset(categories)
        self.blocked: frozenset[str] = frozenset(blocked)
        unknown = (chosen | self.blocked) - ALL_CATEGORIES
        if unknown:
            raise ValueError(f"unknown PII categories: {sorted(unknown)}")
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.categories: frozenset[str] = chosen | self.blocked
        self.threshold = threshold
        self._recognizers: tuple[Recognizer, ...] = tuple(
            r for r in RECOGNIZERS if r.category in self.categories
        )

    def candidates(self, text: str) -> list[PiiFinding]:
        """Every finding at or above the threshold, overlapping ones included.

        Most callers want :meth:`detect`; the stream redactor needs the overlaps to choose
        where it may cut.
        """
        return scan(text, self._recognizers, self.threshold)

    def detect(self, text: str) -> list[PiiFinding]:
        """Non-overlapping findings in ``text``, in order of position.

        Args:
            text: Any text; adversarial input (long digit runs, 100 KiB) is fine.

        Returns:
            The findings; where two overlap, the higher score (then the longer) is kept.
        """
        return resolve(self.candidates(text))

    def redact(self, text: str) -> str:
        """``text`` with every finding replaced by its placeholder, e.g. ``[IBAN]``."""
        findings = self.detect(text)
        return render(text, findings) if findings else text

    def contains_blocked(self, text: str) -> bool:
        """Whether ``text`` holds an item of a blocked category (the call should be refused)."""
        if not self.blocked:
            return False
        return any(f.category in self.blocked for f in self.detect(text))

    def stream(self) -> StreamRedactor:
        """A :class:`StreamRedactor` that redacts with this redactor's settings."""
        return StreamRedactor(self)


@functools.cache
def default_redactor() -> PiiRedactor:
    """The shared redactor for all categories, built on first use (its state is immutable)."""
    return PiiRedactor()


def detect(text: str) -> list[PiiFinding]:
    """Findings of every category in ``text``; see :meth:`PiiRedactor.detect`."""
    return default_redactor().detect(text)


def redact(text: str) -> str:
    """Replace each PII item in ``text`` with a typed placeholder.

    Args:
        text: Any text.

    Returns:
        The text with items replaced, e.g. ``"IBAN [IBAN], card [CARD]"``; unchanged when
        nothing was found.
    """
    return default_redactor().redact(text)


def cap_text(text: str, max_chars: int) -> tuple[str, bool]:
    """Cap ``text`` at ``max_chars`` characters.

    Args:
        text: The text to cap.
        max_chars: The most characters allowed (0 or more).

    Returns:
        The capped text and whether anything was cut.

    Raises:
        ValueError: If ``max_chars`` is negative.
    """
    if max_chars < 0:
        raise ValueError("max_chars must not be negative")
    if len(text) <= max_chars:
        return text, False
    return text[:max_chars], True


def cap_items(items: Sequence[T], max_items: int) -> tuple[list[T], bool]:
    """Cap a bulk answer (records, rows, raw embedding vectors) at ``max_items`` entries.

    Args:
        items: The entries, in answer order.
        max_items: The most entries allowed (0 or more).

    Returns:
        The first ``max_items`` entries and whether any were dropped.

    Raises:
        ValueError: If ``max_items`` is negative.
    """
    if max_items < 0:
        raise ValueError("max_items must not be negative")
    return list(items[:max_items]), len(items) > max_items

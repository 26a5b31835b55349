"""Redaction of a stream (server-sent events, token by token) with a bounded hold-back.

A model's answer arrives in chunks, and an IBAN or a phone number may be split across two of
them. :class:`StreamRedactor` emits only text whose redaction can no longer change and holds
back the tail that could still be the start of an item.

Why the output is exactly ``redact(whole_text)`` for every split into chunks:

- no recognizer pattern examines more than ``SCAN_REACH`` characters from where its match
  starts, so a candidate starting at least that far before the end of the text received so far
  is the same candidate it will be in the whole text;
- the cut between emitted and held text is placed there, then moved back before any candidate
  that crosses it, so no item is split and overlapping candidates are resolved together;
- context words are looked for at most ``CONTEXT_CHARS`` before a candidate, and the scan
  keeps ``KEEP_CONTEXT`` already emitted characters in front of the held text for them and for
  the patterns' look-behinds.

The hold-back is therefore at most ``SCAN_REACH + MIN_RELEASE - 1`` (91) characters between
scans, and ``SCAN_REACH`` plus the length of an item straddling the cut just after one: never
more than :data:`MAX_HOLD_BACK` (120) characters, unless several overlapping candidates chain
across the cut.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from ombud.guards._recognizers import CONTEXT_CHARS, SCAN_REACH, PiiFinding, render, resolve

if TYPE_CHECKING:
    from ombud.guards.pii import PiiRedactor

MIN_RELEASE = 32
"""Scan again only once this many characters could be released: one scan per few tokens."""
MAX_HOLD_BACK = 2 * SCAN_REACH
"""The most characters held back after a ``feed``, in characters of input."""
KEEP_CONTEXT = 2 * SCAN_REACH + CONTEXT_CHARS
"""Emitted characters kept in front of the held ones for context words and look-behinds."""


class StreamRedactor:
    """Redact a text that arrives in chunks.

    For any split of a text into chunks, the concatenation of every :meth:`feed` result and
    the final :meth:`flush` equals :func:`ombud.guards.pii.redact` of the whole text (or
    :meth:`PiiRedactor.redact` for the redactor given).

    Args:
        redactor: The redactor whose settings apply; the default redactor when ``None``.

    Example:
        >>> stream = StreamRedactor()
        >>> parts = [stream.feed(c) for c in ("IBAN DE89 3704 0044 ", "0532 0130 00, thanks")]
        >>> "".join(parts) + stream.flush()
        'IBAN [IBAN], thanks'
    """

    def __init__(self, redactor: PiiRedactor | None = None) -> None:
        self._redactor = redactor if redactor is not None else _default_redactor()
        self._window = ""
        self._emitted = 0  # offset in _window where text not yet emitted starts

    @property
    def held_back(self) -> int:
        """How many received characters have not been emitted yet."""
        return len(self._window) - self._emitted

    def feed(self, chunk: str) -> str:
        """Take the next chunk; return the redacted text that is safe to emit now.

        Args:
            chunk: The next piece of the stream (any length, possibly empty).

        Returns:
            Redacted text, possibly empty; what it holds back comes out of a later call.
        """
        self._window += chunk
        if self.held_back < SCAN_REACH + MIN_RELEASE:
            return ""
        return self._release(final=False)

    def flush(self) -> str:
        """End of stream: return the redacted rest and reset for a new stream."""
        text = self._release(final=True)
        self._window = ""
        self._emitted = 0
        return text

    def _release(self, *, final: bool) -> str:
        candidates = [
            c for c in self._redactor.candidates(self._window) if c.start >= self._emitted
        ]
        end = len(self._window)
        cut = end if final else _cut_before(candidates, end - SCAN_REACH)
        if cut <= self._emitted:
            return ""
        findings = [f for f in resolve(candidates) if f.end <= cut]
        text = render(self._window, findings, self._emitted, cut)
        drop = max(0, cut - KEEP_CONTEXT)
        self._window = self._window[drop:]
        self._emitted = cut - drop
        return text


def _cut_before(candidates: Iterable[PiiFinding], limit: int) -> int:
    """The largest offset up to ``limit`` that no candidate crosses."""
    spans = sorted(((c.start, c.end) for c in candidates), reverse=True)
    cut = limit
    moved = True
    while moved:
        moved = False
        for start, end in spans:
            if start < cut < end:
                cut = start
                moved = True
    return cut


def _default_redactor() -> PiiRedactor:
    # Imported here: ``pii`` re-exports this module, so a top-level import would be circular.
    from ombud.guards.pii import default_redactor

    return default_redactor()

"""Guarding a streamed answer chunk by chunk (server-sent events).

:class:`StreamingOutputGuard` applies the output guard's rules to a stream: PII is redacted with
a bounded hold-back (what is emitted equals redacting the whole answer), a leaked canary or a
blocked PII category ends the stream with :class:`~ombud.core.errors.GuardBlocked`, and the
stream is cut at the size cap. Nothing a rule would have removed is ever emitted first.
"""

from __future__ import annotations

from ombud.config import GuardSettings
from ombud.core.errors import GuardBlocked
from ombud.guards.injection import leaked_canary
from ombud.guards.pii import PiiRedactor, StreamRedactor


class StreamingOutputGuard:
    """Feed model chunks in, send what :meth:`feed` returns; call :meth:`finish` at the end."""

    def __init__(self, settings: GuardSettings, *, canary: str | None = None) -> None:
        self._settings = settings
        self._canary = canary
        self._pii = PiiRedactor(blocked=settings.blocked_pii_categories)
        self._redact = settings.output_pii == "redact"
        self._stream = StreamRedactor(self._pii) if self._redact else None
        # Raw text not yet checked as a whole: the canary or a blocked item may straddle chunks.
        self._window = ""
        self._window_keep = 256
        self._held = ""
        self._emitted = 0
        self.capped = False

    def feed(self, chunk: str) -> str:
        """The part of the answer that is safe to send now (possibly empty)."""
        if self.capped:
            return ""
        self._check(chunk)
        if self._stream is not None:
            return self._cap(self._stream.feed(chunk))
        # Not redacting: still hold the tail back, so the first half of a card number or a
        # canary split across chunks is never sent before the check that would block it.
        self._held += chunk
        release = max(0, len(self._held) - self._window_keep)
        safe, self._held = self._held[:release], self._held[release:]
        return self._cap(safe)

    def finish(self) -> str:
        """What is left to send at the end of the stream."""
        if self.capped:
            return ""
        rest = self._stream.flush() if self._stream is not None else self._held
        self._held = ""
        return self._cap(rest)

    def _check(self, chunk: str) -> None:
        self._window = (self._window + chunk)[-(self._window_keep + len(chunk)) :]
        if self._canary and leaked_canary(self._window, self._canary):
            raise GuardBlocked(detail="the answer reveals the system prompt")
        if self._pii.contains_blocked(self._window):
            raise GuardBlocked(detail="the answer contains a blocked category of personal data")
        if self._settings.output_pii == "block" and self._pii.detect(self._window):
            raise GuardBlocked(detail="personal data in the answer")

    def _cap(self, text: str) -> str:
        room = self._settings.max_output_chars - self._emitted
        if len(text) >= room:
            self.capped = len(text) > room
            text = text[: max(room, 0)]
        self._emitted += len(text)
        return text

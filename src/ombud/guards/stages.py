"""The guard stages: ``guards.input`` before the model, ``guards.output`` after it.

They act on the call's free text (``Call.input_texts`` / ``Call.output_texts``), which each
route's stages fill and read back; a route with no free text passes through untouched.
"""

from __future__ import annotations

from ombud.config import GuardSettings
from ombud.core.errors import GuardBlocked
from ombud.gateway.call import Call
from ombud.gateway.outcomes import Flag, Outcome
from ombud.guards.injection import InjectionDetector, leaked_canary
from ombud.guards.pii import PiiRedactor, cap_text


class InputGuard:
    """Prompt injection (block or flag by score) and PII in prompts (redact, flag or block)."""

    name = "guards.input"

    def __init__(self, settings: GuardSettings) -> None:
        self._settings = settings
        self._detector = InjectionDetector(
            threshold_block=settings.injection_block_threshold,
            threshold_flag=settings.injection_flag_threshold,
        )
        self._pii = PiiRedactor()

    async def __call__(self, call: Call) -> Outcome:
        if not call.input_texts:
            return None
        flags = [self._injection(text) for text in call.input_texts]
        flags.append(self._pii_in(call))
        found = [f for f in flags if f]
        return Flag(found[0][0], "; ".join(d for _, d in found)) if found else None

    def _injection(self, text: str) -> tuple[str, str] | None:
        if self._settings.injection == "off":
            return None
        result = self._detector.scan(text)
        verdict = self._detector.decide(result)
        reasons = ", ".join(result.reasons) or "suspicious"
        if verdict == "block" and self._settings.injection == "block":
            raise GuardBlocked(detail=f"prompt injection suspected ({reasons})")
        if verdict != "allow":
            return ("injection", f"injection score {result.score:.2f}: {reasons}")
        return None

    def _pii_in(self, call: Call) -> tuple[str, str] | None:
        action = self._settings.input_pii
        if action == "off":
            return None
        categories = sorted(
            {finding.category for text in call.input_texts for finding in self._pii.detect(text)}
        )
        if not categories:
            return None
        if action == "block":
            raise GuardBlocked(detail=f"personal data in the prompt: {', '.join(categories)}")
        if action == "redact":
            call.input_texts = [self._pii.redact(text) for text in call.input_texts]
        return ("pii", f"personal data in the prompt ({action}): {', '.join(categories)}")


class OutputGuard:
    """System-prompt leaks (canary), blocked PII categories, PII redaction, output size caps."""

    name = "guards.output"

    def __init__(self, settings: GuardSettings) -> None:
        self._settings = settings
        self._pii = PiiRedactor(blocked=settings.blocked_pii_categories)

    async def __call__(self, call: Call) -> Outcome:
        if not call.output_texts:
            return None
        if call.canary and any(leaked_canary(text, call.canary) for text in call.output_texts):
            raise GuardBlocked(detail="the answer reveals the system prompt")
        if any(self._pii.contains_blocked(text) for text in call.output_texts):
            raise GuardBlocked(detail="the answer contains a blocked category of personal data")
        notes = [note for note in (self._pii_out(call), self._cap(call)) if note]
        return Flag(notes[0][0], "; ".join(d for _, d in notes)) if notes else None

    def _pii_out(self, call: Call) -> tuple[str, str] | None:
        action = self._settings.output_pii
        if action == "off":
            return None
        categories = sorted(
            {finding.category for text in call.output_texts for finding in self._pii.detect(text)}
        )
        if not categories:
            return None
        if action == "block":
            raise GuardBlocked(detail=f"personal data in the answer: {', '.join(categories)}")
        if action == "redact":
            call.output_texts = [self._pii.redact(text) for text in call.output_texts]
            return None
        return ("pii", f"personal data in the answer: {', '.join(categories)}")

    def _cap(self, call: Call) -> tuple[str, str] | None:
        capped = [cap_text(text, self._settings.max_output_chars) for text in call.output_texts]
        if not any(was_capped for _, was_capped in capped):
            return None
        call.output_texts = [text for text, _ in capped]
        return ("output_capped", f"answer cut to {self._settings.max_output_chars} characters")

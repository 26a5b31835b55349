"""Evidence: signature matches on the normalized views, and how they combine into a score.

Each reason code collects the weights of the matches that support it. Within one code, further
matches add with diminishing returns (the k-th strongest counts ``0.5**k`` of its weight), so ten
phrasings of "ignore the above" are not ten times the evidence. Across codes, independent
evidence combines as ``1 - Π(1 - w)``: one strong signal, or two medium ones, reach the block
threshold; a single weak one (a persona request, a spaced-out word) stays below the flag one.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ombud.guards._multilingual import MULTILINGUAL
from ombud.guards._normalize import Normalized
from ombud.guards._signatures import COMPACT, ENGLISH, Signature

SIGNATURES: tuple[Signature, ...] = ENGLISH + MULTILINGUAL

# Words and phrases that mark a text as talking *about* injections (an article, a report, a
# question about defenses) rather than performing one. A quoted phrase in such a text is a
# mention, not an order; the damping is partial so a real attack with a security-sounding
# preamble still flags.
_DISCUSSION_WORDS = frozenset(
    [
        "attacker",
        "attackers",
        "researcher",
        "researchers",
        "owasp",
        "vulnerability",
        "vulnerabilities",
        "vulnerable",
        "classifier",
        "detector",
        "meme",
        "exploit",
        "newsletter",
        "article",
        "paper",
        "quiz",
        "slide",
        "severity",
        "mitigation",
        "mitigations",
        "defense",
        "defenses",
        "defence",
        "defences",
        "defend",
        "jailbreaks",
    ]
)
_DISCUSSION_PHRASES = (
    "prompt injection", "prompt-injection", "injection attack", "red team", "threat model",
    "phrases like", "phrase like", "phrases such as", "the term", "for example", "blog post",
    "training course", "log entry", "security training", "security advisory", "security report",
    "security research", "jailbreak prompt", "jailbreak attack", "jailbreak technique",
)  # fmt: skip
_WORD = re.compile(r"\w+")
# Tokenizing with ``translate`` and ``split`` (both in C) instead of a regex: this runs per view.
_WORD_BREAKS = str.maketrans(
    dict.fromkeys((c for c in map(chr, range(128)) if not (c.isalnum() or c == "_")), " ")
)
_FIRST_THREE = operator.itemgetter(slice(0, 3))
_ADDRESS = re.compile(r"\S*(?://|@)\S*")
_OPEN_QUOTES = "\"'“‘«„`"
_CLOSE_QUOTES = "\"'”’»`"
DISCUSSION_DAMPING = 0.55
QUOTE_DAMPING = 0.4
OBFUSCATION_BOOST = 0.35


@dataclass(slots=True)
class Evidence:
    """Weights per reason code, gathered by one scan (owned by that scan, never shared)."""

    weights: dict[str, list[float]] = field(default_factory=dict)
    hidden: bool = False

    def add(self, code: str, weight: float) -> None:
        """Record one piece of evidence for ``code``."""
        if weight > 0:
            self.weights.setdefault(code, []).append(weight)

    def codes(self) -> set[str]:
        """The codes with any evidence so far."""
        return set(self.weights)

    def merge(self, other: Evidence) -> None:
        """Add everything ``other`` found."""
        for code, weights in other.weights.items():
            self.weights.setdefault(code, []).extend(weights)

    def score(self) -> float:
        """Combine into one score in [0, 1] (see the module docstring)."""
        miss = 1.0
        for weights in self.weights.values():
            code_miss = 1.0
            for k, weight in enumerate(sorted(weights, reverse=True)):
                code_miss *= 1.0 - weight * 0.5**k
            miss *= code_miss
        return min(1.0, max(0.0, 1.0 - miss))

    def reasons(self) -> tuple[str, ...]:
        """Codes, strongest first (ties by name, so the order is stable)."""
        return tuple(sorted(self.weights, key=lambda c: (-max(self.weights[c]), c)))


def _quoted(text: str, match: re.Match[str]) -> bool:
    before = text[max(0, match.start() - 3) : match.start()]
    after = text[match.end() : match.end() + 60]
    return any(q in before for q in _OPEN_QUOTES) and any(q in after for q in _CLOSE_QUOTES)


Entry = tuple[int, Signature]


@dataclass(frozen=True, slots=True)
class SignatureSet:
    """Signatures indexed for matching (built once, read-only).

    Attributes:
        by_prefix: For signatures with start words, the first three letters of a start word →
            the start word and the signatures that begin with it.
        searched: Signatures without start words, searched for when an anchor occurs.
    """

    by_prefix: Mapping[str, tuple[tuple[str, tuple[Entry, ...]], ...]]
    searched: tuple[Entry, ...]

    @classmethod
    def build(cls, signatures: Iterable[Signature]) -> SignatureSet:
        """Index ``signatures``."""
        by_word: dict[str, list[Entry]] = {}
        searched: list[Entry] = []
        for entry in enumerate(signatures):
            for word in entry[1].starts:
                by_word.setdefault(word, []).append(entry)
            if not entry[1].starts:
                searched.append(entry)
        by_prefix: dict[str, list[tuple[str, tuple[Entry, ...]]]] = {}
        for word, entries in by_word.items():
            by_prefix.setdefault(word[:3], []).append((word, tuple(entries)))
        frozen = {key: tuple(value) for key, value in by_prefix.items()}
        return cls(MappingProxyType(frozen), tuple(searched))

    def matches(self, text: str) -> dict[int, tuple[Signature, re.Match[str]]]:
        """The first match of each signature in ``text``, by signature number."""
        hits: dict[int, tuple[Signature, re.Match[str]]] = {}
        prefixes = set(map(_FIRST_THREE, text.translate(_WORD_BREAKS).split()))
        for key in prefixes & self.by_prefix.keys():
            for word, entries in self.by_prefix[key]:
                for position in _word_starts(text, word):
                    _match_at(text, position, entries, hits)
        for number, signature in self.searched:
            if any(a in text for a in signature.anchors):
                match = signature.pattern.search(text)
                if match is not None:
                    hits[number] = (signature, match)
        return hits


def _word_starts(text: str, word: str) -> Iterator[int]:
    position = text.find(word)
    while position >= 0:
        if position == 0 or not (text[position - 1].isalnum() or text[position - 1] == "_"):
            yield position
        position = text.find(word, position + 1)


def _match_at(
    text: str,
    position: int,
    entries: tuple[Entry, ...],
    hits: dict[int, tuple[Signature, re.Match[str]]],
) -> None:
    for number, signature in entries:
        if number not in hits:
            match = signature.pattern.match(text, position)
            if match is not None:
                hits[number] = (signature, match)


def _is_discussion(text: str) -> bool:
    # URLs and e-mail addresses are left out: "attacker.example" is not a discussion.
    prose = _ADDRESS.sub(" ", text) if "//" in text or "@" in text else text
    if not _DISCUSSION_WORDS.isdisjoint(_WORD.findall(prose)):
        return True
    return any(phrase in prose for phrase in _DISCUSSION_PHRASES)


def match_view(text: str, signatures: SignatureSet, original: str | None = None) -> Evidence:
    """Evidence from every signature matching ``text``; mentions in discussions are damped.

    With ``original`` given, a match whose text does not occur in it (it only exists once
    obfuscation was undone) sets ``hidden`` on the result.
    """
    found = Evidence()
    hits = signatures.matches(text)
    discussion = bool(hits) and _is_discussion(text)
    for signature, match in hits.values():
        if original is not None and match.group(0) not in original:
            found.hidden = True
        weight = signature.weight
        if discussion:
            weight *= DISCUSSION_DAMPING
            if _quoted(text, match):
                weight *= QUOTE_DAMPING
        found.add(signature.code, weight)
    return found


_MAIN = SignatureSet.build(SIGNATURES)
_COMPACT = SignatureSet.build(COMPACT)


def _dedupe_into(target: Evidence, extra: Evidence) -> set[str]:
    """Add codes from ``extra`` that ``target`` lacks; return those codes."""
    new = extra.codes() - target.codes()
    for code in new:
        target.weights[code] = extra.weights[code]
    return new


def _tricks(views: Normalized) -> dict[str, float]:
    """Each obfuscation present, with the weight it carries on its own."""
    tricks: dict[str, float] = {}
    if views.invisible:
        tricks["invisible_characters"] = min(0.5, 0.05 * views.invisible)
    if views.mixed_script:
        tricks["homoglyphs"] = 0.3
    if views.spaced:
        tricks["spaced_letters"] = 0.1
    if views.leet:
        tricks["leetspeak"] = 0.0
    return tricks


def evaluate(views: Normalized) -> Evidence:
    """All evidence in one layer's views: signatures, then obfuscation tricks.

    Signatures run on ``text``; on ``folded`` and ``compact`` only codes not already found
    count. A code found only after undoing a trick makes that trick strong evidence: nobody
    spaces out "ignore previous instructions" by accident.
    """
    if views.scripts_folded:
        # Folding Cyrillic or Greek to Latin garbles those languages: match both views.
        evidence = match_view(views.text, _MAIN)
        hidden = bool(_dedupe_into(evidence, match_view(views.folded, _MAIN)))
    else:
        # Otherwise ``folded`` only undoes obfuscation, so it alone is enough.
        evidence = match_view(views.folded, _MAIN, views.text)
        hidden = evidence.hidden
    if views.spaced or views.invisible or views.mixed_script or not evidence.weights:
        hidden |= bool(_dedupe_into(evidence, match_view(views.compact, _COMPACT)))
    for trick, weight in _tricks(views).items():
        evidence.add(trick, max(weight, OBFUSCATION_BOOST) if hidden else weight)
    return evidence

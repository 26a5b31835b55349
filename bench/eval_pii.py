"""Evaluate the PII guard on the labelled set in ``tests/data/guards/pii/``.

Per category: recall (a labelled span counts as found when a finding of the same category
covers it), precision (findings of the category that overlap a labelled span of that category),
and, over the clean sentences, the share that ``redact`` altered. Exits 1 when a target is
missed: recall >= 0.97 for cards, phones, emails, IBANs, national ids and IPs, and at most
0.05 of clean sentences altered. Run:

    .venv/bin/python bench/eval_pii.py [--split test|dev]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ombud.guards.pii import NATIONAL_ID_CATEGORIES, PiiFinding, PiiRedactor

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "guards" / "pii"
RECALL_TARGET = 0.97
OVER_REDACTION_TARGET = 0.05
NATIONAL_IDS = "national ids"
TARGET_GROUPS = ("CARD", "PHONE", "EMAIL", "IBAN", NATIONAL_IDS, "IP")


@dataclass
class Span:
    start: int
    end: int
    category: str


@dataclass
class Tally:
    """Counts per category (and for the national ids together)."""

    spans: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    clean: int = 0
    altered: int = 0
    missed: list[str] = field(default_factory=list)

    def add(self, text: str, spans: list[Span], findings: list[PiiFinding], altered: bool) -> None:
        if not spans:
            self.clean += 1
            self.altered += altered
        for span in spans:
            hit = any(
                f.category == span.category and f.start <= span.start and f.end >= span.end
                for f in findings
            )
            for key in _keys(span.category):
                self.spans[key] += 1
                self.found[key] += hit
            if not hit:
                self.missed.append(f"{span.category}: {text[span.start : span.end]!r} in {text!r}")
        for finding in findings:
            right = any(
                s.category == finding.category and s.start < finding.end and finding.start < s.end
                for s in spans
            )
            for key in _keys(finding.category):
                self.findings[key] += 1
                self.correct[key] += right


def _keys(category: str) -> tuple[str, ...]:
    return (category, NATIONAL_IDS) if category in NATIONAL_ID_CATEGORIES else (category,)


def evaluate(split: str, redactor: PiiRedactor | None = None) -> Tally:
    """Run the redactor over one split of the labelled set."""
    chosen = redactor or PiiRedactor()
    tally = Tally()
    with (DATA / f"{split}.jsonl").open(encoding="utf-8") as rows:
        for line in rows:
            row = json.loads(line)
            text: str = row["text"]
            spans = [Span(s["start"], s["end"], s["category"]) for s in row["spans"]]
            findings = chosen.detect(text)
            tally.add(text, spans, findings, chosen.redact(text) != text)
    return tally


def recall(tally: Tally, key: str) -> float:
    return tally.found[key] / tally.spans[key] if tally.spans[key] else 1.0


def precision(tally: Tally, key: str) -> float:
    return tally.correct[key] / tally.findings[key] if tally.findings[key] else 1.0


def over_redaction(tally: Tally) -> float:
    return tally.altered / tally.clean if tally.clean else 0.0


def table(tally: Tally) -> str:
    """The Markdown table: one row per category, the national ids together, the clean set."""
    keys = sorted(k for k in tally.spans if k != NATIONAL_IDS) + [NATIONAL_IDS]
    lines = [
        "| category | spans | recall | precision | target |",
        "|---|---:|---:|---:|---|",
    ]
    for key in keys:
        target = f"recall ≥ {RECALL_TARGET}" if key in TARGET_GROUPS else ""
        lines.append(
            f"| {key} | {tally.spans[key]} | {recall(tally, key):.3f} "
            f"| {precision(tally, key):.3f} | {target} |"
        )
    lines.append(
        f"| clean sentences altered | {tally.clean} | | {over_redaction(tally):.3f} "
        f"| ≤ {OVER_REDACTION_TARGET} |"
    )
    return "\n".join(lines)


def failures(tally: Tally) -> list[str]:
    """The targets missed, as sentences; empty when all are met."""
    missed = [
        f"{key} recall {recall(tally, key):.3f} < {RECALL_TARGET}"
        for key in TARGET_GROUPS
        if recall(tally, key) < RECALL_TARGET
    ]
    if over_redaction(tally) > OVER_REDACTION_TARGET:
        missed.append(f"{over_redaction(tally):.3f} of clean sentences altered")
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--show-misses", action="store_true", help="print each missed span")
    args = parser.parse_args()
    tally = evaluate(args.split)
    sys.stdout.write(f"PII guard on the {args.split} split\n\n{table(tally)}\n")
    if args.show_misses:
        sys.stdout.write("".join(f"\nmissed {line}" for line in tally.missed) + "\n")
    missed = failures(tally)
    for line in missed:
        sys.stderr.write(f"target missed: {line}\n")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

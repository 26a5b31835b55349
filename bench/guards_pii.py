"""Benchmark: ``ombud.guards.pii.redact`` on prompts of about 1 KiB, in this process.

Rows: a clean prompt (prose with dates, amounts, order and version numbers), a prompt with
about ten PII items of mixed categories, that prompt streamed in 4-character chunks, and, for
the worst case, 100 KiB of digits and of spaced digit groups. Prints median and p99 in
microseconds as a Markdown table. Run:

    .venv/bin/python bench/guards_pii.py [--runs 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

from ombud.guards.pii import StreamRedactor, detect, redact

CLEAN_PARAGRAPH = (
    "Thanks for the update on the quarterly report. Invoice INV-2024-00312 dated 2024-03-15 "
    "came to $12,480.50 and order 4107774145 shipped on 15.03.2024 with tracking number "
    "1Z999AA10123456784. The team moved to version 2.14.3 last week and build 20240311.4 "
    "passed at 10:42:07. Could you summarise the risks in three bullet points and suggest "
    "next steps for the migration, keeping the tone neutral? "
)
PII_PARAGRAPH = (
    "Customer Jane Doe (jane.doe@example.com, +44 20 7946 0958) paid with card 4111 1111 1111 "
    "1111 and asked for a refund to IBAN DE89 3704 0044 0532 0130 00. Her SSN is 123-45-6789, "
    "her NI number AB 12 34 56 C. The login came from 203.0.113.42 and 2001:db8::8a2e:370:7334. "
    "Her colleague's mobile is 06 12 34 56 78, email m.rossi@example.it, codice fiscale "
    "RSSMRA85T10A562S. Please draft a polite reply confirming the refund timeline. "
)


def _kib(paragraph: str) -> str:
    return (paragraph * (1024 // len(paragraph) + 1))[:1024]


def _time(call: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def _stream(text: str) -> None:
    stream = StreamRedactor()
    for index in range(0, len(text), 4):  # token-sized chunks, as a model streams them
        stream.feed(text[index : index + 4])
    stream.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    clean, pii = _kib(CLEAN_PARAGRAPH), _kib(PII_PARAGRAPH + CLEAN_PARAGRAPH * 2)
    redact(clean)  # build the shared redactor outside the timings
    items = len(detect(pii))
    cases: list[tuple[str, Callable[[], object], int]] = [
        ("redact, 1 KiB clean prompt", lambda: redact(clean), args.runs),
        (f"redact, 1 KiB prompt with {items} PII items", lambda: redact(pii), args.runs),
        ("stream, 1 KiB prompt with PII, 4-char chunks", lambda: _stream(pii), args.runs // 10),
        ("redact, 100 KiB of digits", lambda: redact("7" * 102_400), 20),
        ("redact, 100 KiB of '12 '", lambda: redact("12 " * 34_133), 20),
    ]  # fmt: skip
    lines = ["| case | median µs | p99 µs |", "|---|---:|---:|"]
    for name, call, runs in cases:
        median, p99 = _time(call, max(runs, 1))
        lines.append(f"| {name} | {median:,.0f} | {p99:,.0f} |")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

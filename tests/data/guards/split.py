"""Split a labelled guard corpus into ``dev.jsonl`` and ``test.jsonl``.

The split is random with a fixed seed and stratified by ``(label, category)``, so every
category appears on both sides in the same proportion. It is made once, before any tuning;
only ``dev`` may be looked at while tuning.

    .venv/bin/python tests/data/guards/split.py [injection] [--test-fraction 0.5]
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).parent
SEED = 20240917


Rows = list[dict[str, str]]


def split(rows: Rows, test_fraction: float) -> tuple[Rows, Rows]:
    strata: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        strata[(row["label"], row["category"])].append(row)
    rng = random.Random(SEED)
    dev: list[dict[str, str]] = []
    test: list[dict[str, str]] = []
    for key in sorted(strata):
        group = strata[key]
        rng.shuffle(group)
        cut = round(len(group) * test_fraction)
        test += group[:cut]
        dev += group[cut:]
    return dev, test


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("corpus", nargs="?", default="injection")
    parser.add_argument("--test-fraction", type=float, default=0.5)
    args = parser.parse_args()
    folder = HERE / args.corpus
    lines = (folder / "all.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    dev, test = split(rows, args.test_fraction)
    _write(folder / "dev.jsonl", dev)
    _write(folder / "test.jsonl", test)
    print(f"{folder.name}: dev={len(dev)} test={len(test)}")  # noqa: T201


if __name__ == "__main__":
    main()

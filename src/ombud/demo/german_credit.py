"""The UCI German credit data (CC BY 4.0, see ``data/NOTICE.md``), decoded into readable rows.

The attribute codes (``A11`` ...) become short values (``lt_0`` ...); the personal-status
attribute becomes ``sex`` (its marital part is dropped), and ``sex`` and ``age`` are kept as
protected attributes for fairness monitoring, not as model inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

CATEGORIES: dict[str, dict[str, str]] = {
    "checking_status": {"A11": "lt_0", "A12": "0_to_200", "A13": "ge_200", "A14": "none"},
    "credit_history": {
        "A30": "no_credits", "A31": "all_paid_here", "A32": "existing_paid",
        "A33": "delayed_past", "A34": "critical",
    },
    "purpose": {
        "A40": "car_new", "A41": "car_used", "A42": "furniture", "A43": "radio_tv",
        "A44": "appliances", "A45": "repairs", "A46": "education", "A47": "vacation",
        "A48": "retraining", "A49": "business", "A410": "other",
    },
    "savings": {
        "A61": "lt_100", "A62": "100_to_500", "A63": "500_to_1000", "A64": "ge_1000",
        "A65": "unknown",
    },
    "employment_since": {
        "A71": "unemployed", "A72": "lt_1y", "A73": "1_to_4y", "A74": "4_to_7y", "A75": "ge_7y",
    },
    "sex": {"A91": "male", "A92": "female", "A93": "male", "A94": "male", "A95": "female"},
    "property": {
        "A121": "real_estate", "A122": "savings_insurance", "A123": "car_other", "A124": "none",
    },
    "housing": {"A151": "rent", "A152": "own", "A153": "free"},
}  # fmt: skip

# Column positions in german.data (0-based) of the attributes ombud uses.
_COLUMNS: dict[str, int] = {
    "checking_status": 0,
    "duration_months": 1,
    "credit_history": 2,
    "purpose": 3,
    "credit_amount": 4,
    "savings": 5,
    "employment_since": 6,
    "installment_rate": 7,
    "sex": 8,
    "property": 11,
    "age": 12,
    "housing": 14,
}
_LABEL_COLUMN = 20
INTEGER_FEATURES = ("duration_months", "credit_amount", "installment_rate", "age")


@dataclass(frozen=True)
class Dataset:
    rows: list[dict[str, Any]]
    labels: list[int]
    """1 = bad credit risk (the positive class), 0 = good."""


def load() -> Dataset:
    """Read the shipped file; no network."""
    text = resources.files("ombud.demo").joinpath("data/german.data").read_text()
    rows: list[dict[str, Any]] = []
    labels: list[int] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        row: dict[str, Any] = {}
        for name, position in _COLUMNS.items():
            raw = fields[position]
            row[name] = int(raw) if name in INTEGER_FEATURES else CATEGORIES[name][raw]
        rows.append(row)
        labels.append(1 if fields[_LABEL_COLUMN] == "2" else 0)
    return Dataset(rows=rows, labels=labels)

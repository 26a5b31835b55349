"""An example credit applicant: the demo's printed curl and the OpenAPI example use it."""

from __future__ import annotations

from typing import Any

EXAMPLE_APPLICANT: dict[str, Any] = {
    "checking_status": "0_to_200",
    "duration_months": 24,
    "credit_history": "existing_paid",
    "purpose": "car_used",
    "credit_amount": 4500,
    "savings": "lt_100",
    "employment_since": "1_to_4y",
    "installment_rate": 3,
    "property": "car_other",
    "housing": "own",
    "age": 35,
    "sex": "female",
}

APPLICATION = ("duration_months", "purpose", "credit_amount", "installment_rate")
"""The inputs that belong to the application itself; the applicant's standing data (the other
inputs) comes from the feature store when a call names the subject."""

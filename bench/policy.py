"""Micro-benchmark of policy decisions on the default bundle: µs per decision, median and p99.

Run: ``.venv/bin/python bench/policy.py [--n 5000]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from ombud.authz import Resource
from ombud.core.clock import FrozenClock
from ombud.identity.principal import Principal, PrincipalKind
from ombud.policy import JsonValue, PolicyEngine, RegoDecider, default_bundle_dir
from ombud.policy.inputs import authz_input

PRINCIPAL = Principal(
    id="prn_1", name="p", kind=PrincipalKind.USER, roles=frozenset({"analyst"}),
    tenant_id="ten_a", tenant_slug="a", tenant_tier="standard", credential_id="key_1",
)  # fmt: skip
AFTER_INPUT: JsonValue = {
    "principal": {"id": "prn_1", "roles": ["analyst"], "tenant": "ten_a", "tier": "standard",
                  "kind": "user", "attributes": {}},
    "tenant": {"id": "ten_a", "tier": "standard"}, "route": "model.predict",
    "target": "credit-risk", "purpose": "credit_scoring", "subject": None, "feature": None,
    "model": {"name": "credit-risk", "version": 3, "tier": "standard", "threshold": 0.5},
    "output": {"score": 0.42, "decision": "approve", "threshold": 0.5}, "pii": [],
}  # fmt: skip


def _measure(run: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(n, 500)):
        run()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        run()
        samples.append((time.perf_counter() - started) * 1e6)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    engine = PolicyEngine(default_bundle_dir(), clock=FrozenClock(), pending_limit=1)
    decider = RegoDecider(engine)
    resource = Resource("model", "credit-risk")
    raw = authz_input(PRINCIPAL, "model.predict", resource, {})
    cases: dict[str, Callable[[], object]] = {
        "authz: RegoDecider.decide (input building included)": lambda: decider.decide(
            PRINCIPAL, "model.predict", resource, {}
        ),
        "authz: engine.evaluate": lambda: engine.evaluate("data.ombud.authz.decision", raw),
        "after: engine.evaluate (credit review)": lambda: engine.evaluate(
            "data.ombud.after.decision", AFTER_INPUT
        ),
    }
    print(f"bundle {engine.version[:12]}, {args.n} decisions each\n")
    print("| decision | median µs | p99 µs |")
    print("|---|---:|---:|")
    for name, run in cases.items():
        samples = sorted(_measure(run, args.n))
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        print(f"| {name} | {statistics.median(samples):.0f} | {p99:.0f} |")


if __name__ == "__main__":
    main()

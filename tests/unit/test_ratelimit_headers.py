from __future__ import annotations

from ombud.ratelimit import Decision, DenialReason, Outcome, Quota, QuotaState, rate_limit_headers

PER_KEY = Quota("per-key", 50, 100)
PER_TENANT = Quota("per-tenant", 500, 1000)


def state(quota: Quota, remaining: int, reset_after: float, outcome: Outcome) -> QuotaState:
    return QuotaState(f"k:{quota.name}", quota, outcome, remaining, reset_after, None)


def test_an_allowed_request_reports_every_policy_and_the_tightest_in_the_old_triple() -> None:
    decision = Decision(
        allowed=True,
        limit="per-key",
        states=(
            state(PER_KEY, 37, 1.26, Outcome.ALLOWED),
            state(PER_TENANT, 900, 0.2, Outcome.ALLOWED),
        ),
    )
    assert rate_limit_headers(decision) == {
        "RateLimit-Policy": '"per-key";q=100;w=2, "per-tenant";q=1000;w=2',
        "RateLimit": '"per-key";r=37;t=2, "per-tenant";r=900;t=1',
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "37",
        "RateLimit-Reset": "2",
    }


def test_a_refusal_adds_retry_after_rounded_up() -> None:
    decision = Decision(
        allowed=False,
        limit="per-key",
        reason=DenialReason.RATE_LIMITED,
        retry_after=0.02,
        states=(state(PER_KEY, 0, 2.0, Outcome.LIMITED),),
    )
    headers = rate_limit_headers(decision)
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit"] == '"per-key";r=0;t=2'
    assert headers["RateLimit-Remaining"] == "0"
    later = Decision(allowed=False, limit="per-key", retry_after=2.000001, states=decision.states)
    assert rate_limit_headers(later)["Retry-After"] == "3"
    exact = Decision(allowed=False, limit="per-key", retry_after=2.0, states=decision.states)
    assert rate_limit_headers(exact)["Retry-After"] == "2"


def test_a_refusal_no_wait_can_fix_has_no_retry_after() -> None:
    decision = Decision(
        allowed=False,
        limit="per-key",
        reason=DenialReason.COST_EXCEEDS_BURST,
        states=(state(PER_KEY, 100, 0.0, Outcome.COST_EXCEEDS_BURST),),
    )
    headers = rate_limit_headers(decision)
    assert "Retry-After" not in headers
    assert headers["RateLimit-Reset"] == "0"


def test_a_store_failure_refusal_carries_only_retry_after() -> None:
    decision = Decision(
        allowed=False,
        limit="backend",
        reason=DenialReason.BACKEND_UNAVAILABLE,
        retry_after=1.0,
        backend_failure=True,
    )
    assert rate_limit_headers(decision) == {"Retry-After": "1"}


def test_nothing_checked_means_no_headers() -> None:
    assert rate_limit_headers(Decision(allowed=True, limit="none")) == {}


def test_token_quotas_name_their_unit_and_names_are_escaped() -> None:
    quota = Quota('odd "name"\\', 100, 6000, unit="tokens")
    decision = Decision(
        allowed=True, limit=quota.name, states=(state(quota, 10, 0.5, Outcome.ALLOWED),)
    )
    headers = rate_limit_headers(decision)
    assert headers["RateLimit-Policy"] == '"odd \\"name\\"\\\\";q=6000;qu="tokens";w=60'

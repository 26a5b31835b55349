"""Prometheus metrics, held by one registry per process (built in the composition root).

Every mechanism that needs a metric takes this object as a constructor argument; nothing uses
prometheus-client's global default registry, so several apps can live in one test process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """All of ombud's metrics. Names are stable: dashboards and alerts rely on them."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "ombud_http_request_duration_seconds",
            "HTTP request latency by route, method, status and model.",
            ["route", "method", "status", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_duration = Histogram(
            "ombud_stage_duration_seconds",
            "Time spent in each stage of the request path, by route and stage.",
            ["route", "stage"],
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5),
            registry=r,
        )
        self.denials = Counter(
            "ombud_denials_total",
            "Calls refused, by the stage that refused them and the reason.",
            ["stage", "reason"],
            registry=r,
        )
        self.ratelimit_decisions = Counter(
            "ombud_ratelimit_decisions_total",
            "Rate-limit decisions by limit name and decision (allowed, limited).",
            ["limit", "decision"],
            registry=r,
        )
        self.ratelimit_backend_failures = Counter(
            "ombud_ratelimit_backend_failures_total",
            "Shared rate-limit store failures, by the behaviour applied (fail_closed, local).",
            ["behaviour"],
            registry=r,
        )
        self.concurrency_in_flight = Gauge(
            "ombud_concurrency_in_flight",
            "Calls in flight under a concurrency cap, by cap name.",
            ["cap"],
            registry=r,
        )
        self.record_batch_size = Histogram(
            "ombud_record_batch_size",
            "Records (predictions + audit events) committed per group-commit transaction.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self.record_commits = Counter(
            "ombud_record_commits_total",
            "Group-commit transactions, by outcome (ok, error).",
            ["outcome"],
            registry=r,
        )
        self.job_queue_depth = Gauge(
            "ombud_job_queue_depth",
            "Jobs in the durable queue, by status.",
            ["status"],
            registry=r,
        )
        self.jobs_processed = Counter(
            "ombud_jobs_processed_total",
            "Job attempts finished, by kind and outcome (succeeded, retried, dead).",
            ["kind", "outcome"],
            registry=r,
        )
        self.audit_chain_length = Gauge(
            "ombud_audit_chain_length",
            "Seq of the last audit event this process chained or checkpointed.",
            registry=r,
        )
        self.audit_checkpoint_timestamp = Gauge(
            "ombud_audit_checkpoint_timestamp_seconds",
            "Unix time of the last audit checkpoint this process signed (age: time() - this).",
            registry=r,
        )
        # Human review. Override rate over 1h:
        #   sum(rate(ombud_reviews_decided_total{action="override"}[1h]))
        #     / sum(rate(ombud_reviews_decided_total[1h]))
        self.reviews_opened = Counter(
            "ombud_reviews_opened_total", "Reviews opened (calls sent to a human).", registry=r
        )
        self.reviews_decided = Counter(
            "ombud_reviews_decided_total",
            "Review decisions by action (approve, override).",
            ["action"],
            registry=r,
        )
        self.review_escalations = Counter(
            "ombud_review_escalations_total", "Reviews escalated past their deadline.", registry=r
        )
        self.review_appeals = Counter(
            "ombud_review_appeals_total", "Decided reviews reopened by an appeal.", registry=r
        )
        self.review_webhook_deliveries = Counter(
            "ombud_review_webhook_deliveries_total",
            "Outcome webhook attempts by outcome (delivered, failed, dropped).",
            ["outcome"],
            registry=r,
        )

        # LLM gateway.
        self.llm_requests = Counter(
            "ombud_llm_requests_total",
            "LLM calls answered, by route, alias, deployment that answered and outcome "
            "(ok, cached, error).",
            ["route", "alias", "deployment", "outcome"],
            registry=r,
        )
        self.llm_upstream_attempts = Counter(
            "ombud_llm_upstream_attempts_total",
            "Attempts at a deployment by result (ok, status, timeout, connection, protocol, "
            "breaker_open).",
            ["deployment", "result"],
            registry=r,
        )
        self.llm_upstream_duration = Histogram(
            "ombud_llm_upstream_duration_seconds",
            "Time to the upstream's answer (to the first event for streams), by deployment.",
            ["deployment"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.llm_retries = Counter(
            "ombud_llm_retries_total",
            "Attempts after the first one of a call, by the deployment retried on.",
            ["deployment"],
            registry=r,
        )
        self.llm_retry_budget_exhausted = Counter(
            "ombud_llm_retry_budget_exhausted_total",
            "Retries refused because the retry budget was spent.",
            registry=r,
        )
        self.llm_fallbacks = Counter(
            "ombud_llm_fallbacks_total",
            "Calls answered by a fallback instead of the alias's own deployments, by alias.",
            ["alias"],
            registry=r,
        )
        self.llm_breaker_state = Gauge(
            "ombud_llm_breaker_state",
            "Circuit breaker per deployment: 0 closed, 1 half-open, 2 open.",
            ["deployment"],
            registry=r,
        )
        self.llm_breaker_transitions = Counter(
            "ombud_llm_breaker_transitions_total",
            "Circuit breaker state changes by deployment and new state.",
            ["deployment", "state"],
            registry=r,
        )
        self.llm_tokens = Counter(
            "ombud_llm_tokens_total",
            "Tokens by deployment, direction (input, output) and source (reported, estimated).",
            ["deployment", "direction", "source"],
            registry=r,
        )
        self.llm_cost = Counter(
            "ombud_llm_cost_usd_total",
            "Cost in US dollars by deployment.",
            ["deployment"],
            registry=r,
        )
        self.llm_budget_events = Counter(
            "ombud_llm_budget_events_total",
            "Budget checks that refused a call (hard) or passed a soft limit (soft), by scope.",
            ["scope", "limit"],
            registry=r,
        )
        self.llm_cache = Counter(
            "ombud_llm_cache_total",
            "Response cache lookups and stores by tier (memory, redis) and result (hit, miss, "
            "store, bypass, error).",
            ["tier", "result"],
            registry=r,
        )

        # Rollouts (/v1/deployments).
        self.deployment_routed = Counter(
            "ombud_deployment_routed_total",
            "Calls routed by an active deployment, by model and arm (stable, canary, a, b).",
            ["model", "arm"],
            registry=r,
        )
        self.deployment_rollbacks = Counter(
            "ombud_deployment_rollbacks_total",
            "Deployments rolled back, by model and reason (manual, or the first guard breached: "
            "error_rate, p99_latency, score_psi).",
            ["model", "reason"],
            registry=r,
        )
        self.shadow_mirrors = Counter(
            "ombud_shadow_mirrors_total",
            "Mirrored calls of shadow deployments by model and outcome (compared, error, "
            "dropped: the shadow queue was full).",
            ["model", "outcome"],
            registry=r,
        )
        self.shadow_score_diff = Histogram(
            "ombud_shadow_score_diff",
            "Absolute difference between the candidate's and the stable version's score.",
            ["model"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=r,
        )

        # Outcomes (ground truth) and the KPIs they reveal.
        self.outcomes_received = Counter(
            "ombud_outcomes_received_total",
            "Outcomes posted, by model and result (recorded, unchanged: a repeat, corrected).",
            ["model", "result"],
            registry=r,
        )
        self.model_kpi = Gauge(
            "ombud_model_kpi",
            "A model version's KPI over a trailing window, all tenants, as of the last "
            "outcomes.kpis run in this process (auc, precision, recall, f1, brier, ece, "
            "predictions, labelled, positives, label_coverage; absent when undefined).",
            ["model", "version", "kpi", "window"],
            registry=r,
        )

        # The feature store's online store.
        self.features_materialized = Counter(
            "ombud_features_materialized_total",
            "Entities whose features a materialization run wrote to the online store, by view.",
            ["view"],
            registry=r,
        )
        self.feature_online_reads = Counter(
            "ombud_feature_online_reads_total",
            "Entities served by online feature reads, by view and result (hit, stale, missing).",
            ["view", "result"],
            registry=r,
        )

    def render(self) -> bytes:
        """The text exposition format, for ``/metrics``."""
        return generate_latest(self.registry)

"""Human review: queue, decisions, appeals, deadlines and webhooks."""

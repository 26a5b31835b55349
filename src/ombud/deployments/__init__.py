"""Rollouts of a model's versions: canary, shadow and A/B deployments, and their monitor."""

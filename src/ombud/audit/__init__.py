"""Audit trail: who did what to which resource, for which purpose, with what outcome."""

"""Durable records: prediction logs and audit events, written through one writer."""

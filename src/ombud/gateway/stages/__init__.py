"""Stages every route can use. Domain-specific stages live with their domain."""

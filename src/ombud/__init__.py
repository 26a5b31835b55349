"""ombud: a governed AI backend.

Every AI call goes through one request path that authenticates, limits, applies policy and
filters, and records what happened in an audit trail.
"""

__version__ = "0.1.0"

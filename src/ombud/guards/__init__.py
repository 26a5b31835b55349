"""Guards: input and output filters that run as stages of the request path.

Entry points for offline evaluation: ``ombud.guards.injection.scan(text)`` and
``ombud.guards.pii.redact(text)``.
"""

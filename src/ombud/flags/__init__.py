"""Feature flags for AI features, served through an OpenFeature provider.

Flags live in the ``feature_flags`` table and are managed over ``/v1/flags``; the request path
reads them through :class:`~ombud.flags.provider.FlagProvider`'s in-memory snapshot (stage
``feature.flag``). See docs/flags.md.
"""

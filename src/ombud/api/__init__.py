"""The HTTP edge: dependencies, problem+json rendering, middleware."""
